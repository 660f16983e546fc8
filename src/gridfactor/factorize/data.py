"""Bring-your-own transitions: read (s, a, s') tables from .npz, .csv or .parquet.

Columns are named ``s_<name>`` (state), ``a_<name>`` (action) and ``s_next_<name>`` (next
state); every ``s_next_<name>`` needs its ``s_<name>``. Other columns are ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gridfactor.errors import UserError
from gridfactor.runs import read_parquet

SUPPORTED = (".npz", ".csv", ".parquet")


@dataclass(frozen=True)
class Transitions:
    """Sampled transitions. states, next_states: (N, n); actions: (N, m)."""

    states: np.ndarray
    actions: np.ndarray
    next_states: np.ndarray
    state_names: list[str]
    action_names: list[str]

    @property
    def targets(self) -> np.ndarray:
        """(N, n) next-state columns: the rows of the MI matrix."""
        return self.next_states

    @property
    def inputs(self) -> np.ndarray:
        """(N, n + m) state then action columns: the columns of the MI matrix."""
        return np.concatenate([self.states, self.actions], axis=1)

    @property
    def target_names(self) -> list[str]:
        return [f"s_next_{n}" for n in self.state_names]

    @property
    def input_names(self) -> list[str]:
        return [f"s_{n}" for n in self.state_names] + [f"a_{n}" for n in self.action_names]


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise UserError(f"transitions file {path} not found; check the path")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise UserError(
            f"cannot read {path.name}: unsupported extension {suffix!r}; use one of "
            f"{', '.join(SUPPORTED)}"
        )
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                columns = {key: np.asarray(npz[key]) for key in npz.files}
            bad = [k for k, v in columns.items() if v.ndim != 1]
            if bad:
                raise UserError(
                    f"{path.name}: arrays must be 1-D columns, but {bad[0]!r} has shape "
                    f"{columns[bad[0]].shape}; save one array per column"
                )
            lengths = {len(v) for v in columns.values()}
            if len(lengths) > 1:
                raise UserError(f"{path.name}: columns have different lengths {sorted(lengths)}")
            return pd.DataFrame(columns)
        if suffix == ".csv":
            return pd.read_csv(path)
        return read_parquet(path)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure means a bad file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(
            f"cannot read {path.name} as {suffix[1:]} ({reason}); is the file complete "
            "and in that format?"
        ) from None


def transitions_from_frame(frame: pd.DataFrame, source: str = "data") -> Transitions:
    """Split a table into s, a, s' arrays, with a clear error for every kind of bad input."""
    next_names = [c[len("s_next_") :] for c in frame.columns if c.startswith("s_next_")]
    state_names = [
        c[len("s_") :] for c in frame.columns if c.startswith("s_") and not c.startswith("s_next_")
    ]
    action_names = [c[len("a_") :] for c in frame.columns if c.startswith("a_")]
    if not next_names:
        raise UserError(
            f"{source} has no next-state columns; name them s_next_<name> (with s_<name> and "
            "a_<name> for state and action)"
        )
    missing = [n for n in next_names if n not in state_names]
    if missing:
        raise UserError(
            f"{source}: column s_next_{missing[0]} has no matching s_{missing[0]}; add it or "
            "rename the columns"
        )
    unmatched = [n for n in state_names if n not in next_names]
    if unmatched:
        raise UserError(
            f"{source}: column s_{unmatched[0]} has no matching s_next_{unmatched[0]}; add it or "
            "rename the columns"
        )
    if not action_names:
        raise UserError(f"{source} has no action columns; name them a_<name>")
    columns = (
        [f"s_{n}" for n in next_names]
        + [f"a_{n}" for n in action_names]
        + [f"s_next_{n}" for n in next_names]
    )
    for column in columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise UserError(
                f"{source}: column {column} is not numeric (dtype {frame[column].dtype}); "
                "encode it as numbers"
            )
    values = frame[columns].to_numpy(dtype=float)
    bad_rows, bad_cols = np.nonzero(~np.isfinite(values))
    if bad_rows.size:
        raise UserError(
            f"{source}: column {columns[bad_cols[0]]} has a NaN or infinite value in row "
            f"{bad_rows[0]} ({bad_rows.size} bad values in all); drop or fill those rows"
        )
    constant = [c for c, col in zip(columns, values.T, strict=True) if np.ptp(col) == 0]
    if constant:
        raise UserError(
            f"{source}: column {constant[0]} is constant ({len(constant)} constant columns); "
            "it carries no information, drop it"
        )
    n, m = len(next_names), len(action_names)
    return Transitions(
        states=values[:, :n],
        actions=values[:, n : n + m],
        next_states=values[:, n + m :],
        state_names=next_names,
        action_names=action_names,
    )


def load_transitions(path: str | os.PathLike) -> Transitions:
    """Read transitions from ``path`` (.npz, .csv, .parquet)."""
    path = Path(path)
    return transitions_from_frame(_read_table(path), source=path.name)
