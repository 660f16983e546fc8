"""Shared test helpers: run the real CLI (in a subprocess as a user would, or in-process),
check a user error, watch Ray workers, a hand-written case14 factorization. Fixtures are in
``conftest.py``; test modules import these helpers, never each other."""

from __future__ import annotations

import contextlib
import faulthandler
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from gridfactor.factorization import Cluster, Factorization

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
GRIDFACTOR = Path(sys.executable).parent / "gridfactor"


def run_cli(
    *args: str,
    cwd: Path | None = None,
    timeout: int = 900,
    check: bool = True,
    extra_env: dict[str, str] | None = None,
):
    """Run `gridfactor ARGS` (``extra_env``: more environment variables); returns the
    CompletedProcess (text)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "RAY_DEDUP_LOGS": "0", **(extra_env or {})}
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


def stamps(paths) -> dict[str, tuple[int, int]]:
    """(inode, mtime in ns) of each file: a file rewritten, even with the same bytes, gets
    another inode (every output goes through a temp file + rename) and a new mtime."""
    out = {}
    for path in paths:
        info = Path(path).stat()
        out[str(path)] = (info.st_ino, info.st_mtime_ns)
    return out


class TestTimeout(BaseException):
    """Raised in the main thread by :func:`fail_after` (a BaseException, so a library's
    ``except Exception`` cannot swallow it)."""

    __test__ = False  # not a test class


@contextlib.contextmanager
def fail_after(seconds: int, grace: int = 60):
    """A hang becomes a failure.

    After ``seconds``, SIGALRM raises :class:`TestTimeout` in the main thread: the test fails.
    A wait inside Ray's C++ code (``ray.get``) runs Python signal handlers but lets only
    KeyboardInterrupt out (any other exception wedges it), so there the handler raises
    KeyboardInterrupt: pytest stops the session and shows where it hung. If the main thread
    never returns to Python at all, faulthandler dumps every thread's stack and exits the
    process ``grace`` s later.
    """

    def on_alarm(signum, frame):
        message = f"still running after {seconds} s: a hang?"
        if frame is not None and f"{os.sep}ray{os.sep}" in frame.f_code.co_filename:
            raise KeyboardInterrupt(message)
        raise TestTimeout(message)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    faulthandler.dump_traceback_later(seconds + grace, exit=True)
    try:
        yield
    finally:
        signal.alarm(0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, previous)


def _parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        # the command name (field 2) may contain spaces: ppid is the 2nd field after ')'
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def busy_ray_workers(task_name: str, ancestor: int) -> list[int]:
    """Pids of the Ray workers descended from ``ancestor`` that execute ``task_name`` now.

    Ray renames a busy worker's process title to ``ray::<task name>``; only descendants of
    ``ancestor`` (this test process, or a node's ``ray start``) count, never other Ray users'
    workers on the machine.
    """
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                title = fh.read().split(b"\0")[0].decode(errors="replace")
            if not title.startswith(f"ray::{task_name}"):
                continue
            parent = pid
            while parent > 1:
                parent = _parent_pid(parent)
                if parent == ancestor:
                    found.append(pid)
                    break
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue  # the process ended while we looked
    return found


def task_starts(worker_logs, task_name: str) -> int:
    """Attempts of ``task_name`` started, counted in Ray worker log files (``worker-*.out``):
    a worker writes ``:task_name:<name>`` at the start of every task attempt."""
    marker = f":task_name:{task_name}\n"
    return sum(Path(p).read_text(errors="replace").count(marker) for p in worker_logs)


def run_main(*args: str) -> subprocess.CompletedProcess:
    """Run ``gridfactor ARGS`` in this process; returns what a subprocess would give."""
    from gridfactor.cli.main import main

    stdout, stderr = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["gridfactor", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                main()
            except SystemExit as exc:  # typer/click always exit through SystemExit
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return subprocess.CompletedProcess(args, code, stdout.getvalue(), stderr.getvalue())


# rte_case14_realistic's substations in three zones (the hand-written reference of the tests)
CASE14_GROUPS = [(0, 1, 4), (2, 3, 5, 6, 7, 8), (9, 10, 11, 12, 13)]


def case14_factorization(
    env, groups=CASE14_GROUPS, env_name="rte_case14_realistic"
) -> Factorization:
    """Hand-written grid factorization: substation groups, lines by origin substation."""
    or_sub = np.asarray(env.line_or_to_subid)
    clusters = [
        Cluster(tuple(int(x) for x in np.flatnonzero(np.isin(or_sub, g))), tuple(g)) for g in groups
    ]
    return Factorization(
        [str(n) for n in env.name_line],
        [str(n) for n in env.name_sub],
        clusters,
        {"env_name": env_name},
    )
