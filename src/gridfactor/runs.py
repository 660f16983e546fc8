"""Run directories: atomic writes, the run's config, resume/overwrite rules.

Every output of a command goes through :func:`atomic_write` (temp file + ``os.replace``) so a
run killed at any point leaves either the old file or the new one, never half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gridfactor.errors import UserError

CONFIG_FILE = "config.json"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temp file next to ``path``; on success rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_write(path, "w") as fh:
        json.dump(obj, fh, indent=2, default=_json_default)
        fh.write("\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w") as fh:
        fh.write(text)


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_write(path, "wb") as fh:
        np.save(fh, array)


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 120) -> None:
    """Save a matplotlib figure atomically as PNG and close it."""
    import matplotlib.pyplot as plt

    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def safe_name(label: str) -> str:
    """``label`` as a file or folder name (an agent label may hold ``/`` or ``:``)."""
    return re.sub(r"[^A-Za-z0-9_.@-]+", "_", label)


def write_csv(path: str | os.PathLike, frame: Any) -> None:
    """Write a pandas DataFrame atomically as CSV."""
    with atomic_write(path, "w") as fh:
        frame.to_csv(fh, index=False)


def write_parquet(path: str | os.PathLike, frame: Any) -> None:
    """Write a pandas DataFrame atomically as zstd-compressed Parquet (no index)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer, compression="zstd")
    with atomic_write(path, "wb") as fh:
        fh.write(buffer.getvalue().to_pybytes())


def read_parquet(path: str | os.PathLike) -> Any:
    """Read a Parquet file into a pandas DataFrame, Arrow opening the file by its path.

    ``pandas.read_parquet`` hands Arrow a Python file object; Arrow's read-ahead threads
    then hold Python buffers, and when one is released while the interpreter exits the
    process aborts after its work is done ("terminate called without an active
    exception": 1 in 3 processes reading a small file, 1 in 5 to 15 ``collect`` runs
    under load; apache/arrow#34314).
    """
    import pyarrow.parquet as pq

    return pq.read_table(os.fspath(path)).to_pandas()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def _normalize(config: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(config, default=_json_default))


def prepare_run_dir(
    out: str | os.PathLike,
    config: dict[str, Any],
    *,
    resume: bool = False,
    overwrite: bool = False,
    adjustable: tuple[str, ...] = (),
) -> Path:
    """Create (or reopen) a run directory whose ``config.json`` records ``config``.

    An existing directory with the *same* config is reopened (finished work is kept, so an
    interrupted command re-run as it was resumes). A different config is refused unless
    ``overwrite`` (start afresh) is given; ``resume`` accepts the existing config's run.
    ``adjustable``: keys of the last step's settings (e.g. the zones of ``factorize``) that
    may change in an existing run: they are taken from ``config`` and recorded, and the
    command redoes that step only.
    """
    out = Path(out)
    config = _normalize(config)
    config_path = out / CONFIG_FILE
    if out.exists() and overwrite:
        shutil.rmtree(out)
    if config_path.exists():
        try:
            existing = json.loads(config_path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(
                f"{config_path} is corrupt ({exc.msg}); delete the run directory or pass "
                "--overwrite"
            ) from None
        changed = sorted(
            key
            for key in set(existing) | set(config)
            if existing.get(key) != config.get(key) and key not in adjustable
        )
        if changed and not resume:
            raise UserError(
                f"run directory {out} holds a run with a different config "
                f"(differs in: {', '.join(changed)}); pass --resume to continue it, "
                "--overwrite to replace it, or choose another --out"
            )
        adjusted = {**existing, **{k: config[k] for k in adjustable if k in config}}
        if adjusted != existing:
            write_json(config_path, adjusted)
        return out
    elif out.exists() and any(out.iterdir()):
        raise UserError(
            f"output directory {out} exists and is not a gridfactor run; choose another --out "
            "or pass --overwrite"
        )
    out.mkdir(parents=True, exist_ok=True)
    write_json(config_path, config)
    return out
