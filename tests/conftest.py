"""Shared test helpers: run the real CLI in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GRIDFACTOR = Path(sys.executable).parent / "gridfactor"


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 900, check: bool = True):
    """Run `gridfactor ARGS`; returns the CompletedProcess (text)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "RAY_DEDUP_LOGS": "0"}
    proc = subprocess.run(
        [str(GRIDFACTOR), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"gridfactor {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def assert_user_error(proc, *fragments: str) -> None:
    """Exit code 2, one line on stderr naming the problem, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def cli():
    return run_cli


def stamps(paths) -> dict[str, tuple[int, int]]:
    """(inode, mtime in ns) of each file: a file rewritten, even with the same bytes, gets
    another inode (every output goes through a temp file + rename) and a new mtime."""
    out = {}
    for path in paths:
        info = Path(path).stat()
        out[str(path)] = (info.st_ino, info.st_mtime_ns)
    return out
