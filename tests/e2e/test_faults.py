"""Faults: a Ray worker killed mid-computation (MI, collection), a command killed with SIGKILL.

(c) "same seed -> bit-identical data, MI and factorization" is covered elsewhere:
tests/integration/test_collect.py (dataset bytes, any workers/chunking, Ctrl-C + resume),
tests/unit/test_mi.py (Ray == in-process MI), tests/e2e/test_grid_factorize.py (same command twice),
tests/e2e/test_ray_cluster.py (cluster == in-process).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest

from gridfactor.parallel import ParallelConfig
from tests.helpers import busy_ray_workers, run_cli, task_starts

T = TypeVar("T")
# Where the SIGKILL tests kill: set GRIDFACTOR_KILL_SEED to replay another point.
KILL_SEED = int(os.environ.get("GRIDFACTOR_KILL_SEED", "0"))


def _task_starts(task_name: str) -> int:
    """Attempts of ``task_name`` this Ray session's workers started (tasks + retries)."""
    import ray

    session = Path(ray._private.worker._global_node.get_session_dir_path())
    return task_starts((session / "logs").glob("worker-*.out"), task_name)


def _run_killing_one_worker(task_name: str, job: Callable[[], T]) -> tuple[T, int]:
    """Run ``job`` (which uses Ray) in a thread; SIGKILL the first of our Ray workers seen
    executing ``task_name``, 0.3 s into the task. Returns the job's result and how many
    attempts of ``task_name`` the workers started (tasks + retries)."""
    import ray

    result: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(job())
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    if ray.is_initialized():  # a fresh session: its logs count only this job's attempts
        ray.shutdown()
    thread = threading.Thread(target=run)
    try:
        thread.start()
        killed: list[int] = []
        deadline = time.monotonic() + 300
        while not killed and thread.is_alive() and time.monotonic() < deadline:
            busy = busy_ray_workers(task_name, os.getpid())
            if busy:
                time.sleep(0.3)  # let it get into the computation
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.05)
        thread.join(timeout=600)
        assert not thread.is_alive() and not errors, errors
        assert killed, f"no {task_name} task was seen running: too little work to kill one"
        starts = _task_starts(task_name)
    finally:
        if ray.is_initialized():
            ray.shutdown()
    return result[0], starts


def test_worker_killed_during_mi_is_retried_same_result():
    """SIGKILL a Ray worker in the middle of an MI task: Ray retries it, result unchanged."""
    from gridfactor.mi import mi_matrix

    rng = np.random.default_rng(0)
    n = 10_000  # > 4096 distinct points: the threaded numba kernel, a few s per task
    inputs = np.column_stack([rng.integers(0, 20, n) / 19.0, rng.normal(size=(n, 2))])
    targets = np.column_stack([np.sin(3 * inputs[:, 0]), inputs[:, 1] + rng.normal(size=n)])
    targets += 0.1 * rng.normal(size=targets.shape)

    def mi(workers: int) -> np.ndarray:
        parallel = ParallelConfig(workers=workers)
        return mi_matrix(targets, inputs, k=10, parallel=parallel, progress=False)

    on_ray, starts = _run_killing_one_worker("_chunk_task", lambda: mi(2))
    # 6 pairs, one task each with 2 workers; the killed one ran twice
    assert starts == 6 + 1
    np.testing.assert_array_equal(on_ray, mi(1))


@pytest.mark.slow  # CI budget: the long variant of a path CI runs elsewhere
def test_worker_killed_during_collection_is_retried_same_dataset(tmp_path):
    """SIGKILL a Ray worker in the middle of a collection chunk: Ray retries the chunk, the
    dataset is byte-identical to an in-process run."""
    from gridfactor.collect import CollectConfig, collect

    config = CollectConfig(
        env_name="l2rpn_case14_sandbox", n_episodes=20, max_steps=10, chunk_size=10, seed=7
    )

    def dataset(name: str, workers: int) -> bytes:
        path = collect(config, tmp_path / name, parallel=ParallelConfig(workers), progress=False)
        return path.read_bytes()

    on_ray, starts = _run_killing_one_worker("run_chunk", lambda: dataset("ray", 2))
    assert starts == 14 + 1  # 7 substations x 2 chunks; the killed chunk ran twice
    assert on_ray == dataset("one", 1)


def _kill_group_after_chunks(proc: subprocess.Popen, n_chunks: int) -> bool:
    """SIGKILL ``proc``'s process group as soon as its collection reports ``n_chunks`` saved
    chunks; False if it finished first.

    Event-driven: it blocks on the command's progress lines (stderr, plain lines off a
    terminal; printed after the chunk's part file is written), no polling, no sleeps.
    """
    pattern = re.compile(r"^\[collect\] (\d+)/\d+ chunks")
    assert proc.stderr is not None
    for line in proc.stderr:
        match = pattern.match(line)
        if match and int(match.group(1)) >= n_chunks:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            return True
    proc.wait(timeout=30)
    return False


def _start(args: list[str], out: Path) -> subprocess.Popen:
    """The CLI in its own process group, its progress lines readable from stderr."""
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "gridfactor"), *args, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


COLLECT = [
    "--env",
    "l2rpn_case14_sandbox",
    "--n-episodes",
    "60",  # 2 chunks of 50/10 episodes per substation, 14 part files
    "--max-steps",
    "10",
    "--seed",
    "7",
]


# CI budget: CI runs the SIGKILL + resume path with the collect test below
@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_factorize_sigkilled_then_rerun_equals_uninterrupted(tmp_path, workers):
    """`gridfactor factorize` SIGKILLed mid-collection, re-run as is: the same dataset (no
    lost, no duplicated episode), the same MI matrices and factorization."""
    args = ["factorize", *COLLECT, "--n-samples", "200", "--workers", workers]
    out = tmp_path / "killed"
    proc = _start(args, out)
    rng = np.random.default_rng(KILL_SEED)  # seeded: a failure can be replayed
    n_parts = int(rng.integers(1, 8))  # kill at a random point of the collection
    killed = _kill_group_after_chunks(proc, n_parts)
    assert killed, "the run finished before it could be killed"
    assert not (out / "dataset.parquet").exists()
    run_cli(*args, "--out", str(out))
    run_cli(*args, "--out", str(tmp_path / "clean"))
    for name in ("dataset.parquet", "mi.npy", "unbiased_mi.npy", "factorization.json"):
        assert (out / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name
    import pandas as pd

    frame = pd.read_parquet(out / "dataset.parquet")
    played = json.loads((out / "dataset.json").read_text())["episodes_per_substation"]
    assert len(played) == 7
    for sub, episodes in frame.groupby("substation")["episode"]:
        # every episode of the kept chunks once (factorize stops at --n-samples rows)
        assert sorted(episodes.unique()) == list(range(played[str(sub)]))
    assert not frame.duplicated(["substation", "episode", "step"]).any()


def test_collect_sigkilled_at_a_random_point_then_rerun_is_bit_identical(tmp_path):
    """`gridfactor collect` in-process (--workers 1), SIGKILLed after a random number of
    part files (one per substation), re-run as is: same bytes as an uninterrupted run."""
    args = ["collect", *COLLECT[:3], "12", *COLLECT[4:], "--workers", "1"]
    out = tmp_path / "killed"
    proc = _start(args, out)
    # of the 7 part files; seeded (GRIDFACTOR_KILL_SEED) so that a failure can be replayed
    kill_after = int(np.random.default_rng(KILL_SEED).integers(1, 7))
    parts = out / "parts"
    killed = _kill_group_after_chunks(proc, kill_after)
    assert killed, "the run finished before it could be killed"
    n_saved = len(list(parts.glob("*.npz")))
    assert kill_after <= n_saved < 7 and not (out / "dataset.parquet").exists(), kill_after
    run_cli(*args, "--out", str(out))
    run_cli(*args, "--out", str(tmp_path / "clean"))
    assert (out / "dataset.parquet").read_bytes() == (
        tmp_path / "clean" / "dataset.parquet"
    ).read_bytes(), f"killed after {kill_after} part files"
