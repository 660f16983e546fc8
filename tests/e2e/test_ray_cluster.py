"""Scale-out on a real two-node Ray cluster started with ``ray start`` (both nodes on loopback).

The cluster is started and stopped by the test itself: ``ray start --head --block`` and
``ray start --address HEAD --block`` in their own process groups, stopped by killing those
groups (never ``ray stop``, which would kill every Ray process on the machine).

Ray 2.60 enables token authentication on clusters started with ``ray start``: the nodes and
the driver must share the token. The test generates one and passes it to every process as
``RAY_AUTH_MODE=token`` + ``RAY_AUTH_TOKEN`` (without it a driver falls back to
``~/.ray/auth_token``, a file other Ray users of the machine may have written).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import busy_ray_workers, run_cli, task_starts

RAY = Path(sys.executable).parent / "ray"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class Cluster:
    """A running loopback cluster: its address and the env a driver needs to join it."""

    address: str
    env: dict[str, str]
    procs: list[subprocess.Popen]
    logs: list[Path]

    def alive_nodes(self) -> int:
        """Alive nodes, asked by a separate driver process (keeps this process Ray-free)."""
        code = (
            f"import ray; ray.init(address={self.address!r}, log_to_driver=False, "
            "configure_logging=False);"
            "print(sum(n['Alive'] for n in ray.nodes()))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return int(out.stdout.strip().splitlines()[-1])


def _stop(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM the node's process group (raylet, GCS, workers), SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)
    # Ray's children may outlive the `ray start` process itself: kill the whole group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


@contextlib.contextmanager
def ray_cluster(tmp: Path, n_nodes: int = 2, cpus_per_node: int = 1) -> Iterator[Cluster]:
    """``ray start --head`` plus ``n_nodes - 1`` nodes joined with ``ray start --address``."""
    port = free_port()
    address = f"{HOST}:{port}"
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONWARNINGS": "ignore",
    }
    procs: list[subprocess.Popen] = []
    logs: list[Path] = []
    try:
        for node in range(n_nodes):
            common = [
                "--block",
                "--node-ip-address",
                HOST,
                "--num-cpus",
                str(cpus_per_node),
                # two nodes on one machine must not share these fixed default ports
                "--dashboard-agent-listen-port",
                str(free_port()),
                "--temp-dir",
                str(tmp / f"ray{node}"),
                "--disable-usage-stats",
            ]
            if node == 0:
                args = ["start", "--head", "--port", str(port), "--include-dashboard=false"]
                args += ["--ray-client-server-port", str(free_port())]
            else:
                args = ["start", "--address", address]
            log = tmp / f"node{node}.log"
            logs.append(log)
            with open(log, "w") as fh:
                procs.append(
                    subprocess.Popen(
                        [str(RAY), *args, *common],
                        env=env,
                        stdout=fh,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            _wait_started(procs[-1], log)
        cluster = Cluster(address, env, procs, logs)
        deadline = time.monotonic() + 60
        while cluster.alive_nodes() < n_nodes:
            assert time.monotonic() < deadline, "nodes did not join the cluster"
            time.sleep(2)
        yield cluster
    finally:
        for proc in reversed(procs):
            _stop(proc)


def _wait_started(proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "Ray runtime started" in text:
            return
        if proc.poll() is not None:
            raise AssertionError(f"ray start exited ({proc.returncode}):\n{text[-3000:]}")
        time.sleep(0.5)
    raise AssertionError(f"ray start did not start in {timeout} s:\n{log.read_text()[-3000:]}")


def cluster_cli(cluster: Cluster, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """`gridfactor ARGS --ray-address CLUSTER` with the cluster's auth env."""
    env = {**cluster.env, "RAY_DEDUP_LOGS": "0"}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "gridfactor"), *args, "--ray-address", cluster.address],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stdout[-3000:], proc.stderr[-5000:])
    return proc


SYNTHETIC = [
    "synthetic",
    "--generator",
    "copy",
    "--steps",
    "5000",
    "--n-permutations",
    "5",
    "--quantiles",
    "0.7",
]


def nodes_that_ran(cluster: Cluster, task_name: str) -> set[int]:
    """Indices of the nodes where a worker ran ``task_name``.

    Ray marks each task in its worker's log file (``:task_name:<name>``); every node keeps
    its workers' logs under its own ``--temp-dir``.
    """
    used = set()
    for node, log in enumerate(cluster.logs):
        for out in log.parent.glob(f"ray{node}/session_*/logs/worker-*.out"):
            if task_name in out.read_text(errors="replace"):
                used.add(node)
    return used


def cluster_task_starts(cluster: Cluster, task_name: str) -> int:
    """Attempts of ``task_name`` started on all nodes (one log marker per attempt)."""
    logs = [
        out
        for node, log in enumerate(cluster.logs)
        for out in log.parent.glob(f"ray{node}/session_*/logs/worker-*.out")
    ]
    return task_starts(logs, task_name)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    with ray_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


@pytest.mark.slow  # CI budget: CI runs Ray locally; the 2-node cluster tests are slow
def test_synthetic_on_cluster_equals_in_process(cluster, tmp_path):
    """Same seed on a 2-node cluster and in-process: bit-identical MI matrix and clusters."""
    assert cluster.alive_nodes() == 2
    on_cluster = tmp_path / "cluster"
    cluster_cli(cluster, *SYNTHETIC, "--out", str(on_cluster))
    local = tmp_path / "local"
    run_cli(*SYNTHETIC, "--out", str(local), "--workers", "1")
    for name in ("mi.npy", "shuffled_mi.npy", "unbiased_mi.npy"):
        a, b = np.load(on_cluster / "copy" / name), np.load(local / "copy" / name)
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert (on_cluster / "copy" / "factorization.json").read_text() == (
        local / "copy" / "factorization.json"
    ).read_text()
    # the MI tasks ran on both nodes
    assert nodes_that_ran(cluster, "_chunk_task") == {0, 1}


@pytest.mark.slow  # CI budget: the long variant of a path CI runs elsewhere
def test_factorize_grid_on_cluster_equals_in_process(cluster, tmp_path):
    """`gridfactor factorize` (collection + MI) on the cluster: same dataset and matrices."""
    args = ["factorize", "--n-episodes", "4", "--max-steps", "10", "--n-samples", "60"]
    args += ["--seed", "3"]
    cluster_cli(cluster, *args, "--out", str(tmp_path / "cluster"))
    run_cli(*args, "--workers", "1", "--out", str(tmp_path / "local"))
    for name in ("dataset.parquet", "mi.npy", "unbiased_mi.npy", "factorization.json"):
        assert (tmp_path / "cluster" / name).read_bytes() == (
            tmp_path / "local" / name
        ).read_bytes(), name
    assert nodes_that_ran(cluster, "run_chunk") == {0, 1}


@pytest.mark.slow  # CI budget: the long variant of a path CI runs elsewhere
def test_train_centralized_with_env_runners_on_cluster(cluster, tmp_path):
    """RLlib PPO with 2 env runners placed on the 2 one-CPU nodes finishes an iteration."""
    import pandas as pd

    out = tmp_path / "train"
    cluster_cli(
        cluster,
        "train",
        "--centralized",
        "--num-env-runners",
        "2",
        "--timesteps",
        "100",
        "--train-batch-size",
        "100",
        "--minibatch-size",
        "50",
        "--num-epochs",
        "1",
        "--episode-steps",
        "100",
        "--out",
        str(out),
    )
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics["decisions_total"].iloc[-1] >= 100
    assert (out / "checkpoints" / "final").is_dir()
    assert nodes_that_ran(cluster, "SingleAgentEnvRunner") | nodes_that_ran(
        cluster, "MultiAgentEnvRunner"
    ) == {0, 1}


@pytest.mark.slow  # CI budget: the long variant of a path CI runs elsewhere
def test_node_lost_during_collection_is_retried_same_dataset(tmp_path, tmp_path_factory):
    """Kill the second node (its raylet and workers) while it runs a collection chunk: Ray
    re-runs the lost chunks on the head node; the dataset is byte-identical to in-process.
    Its own cluster, so the module's cluster keeps both nodes."""
    args = ["collect", "--n-episodes", "30", "--max-steps", "10", "--seed", "11"]
    # a short temp dir: Ray's socket paths must stay under 108 bytes
    with ray_cluster(tmp_path_factory.mktemp("lost")) as lost:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gridfactor"),
                *args,
                "--out",
                str(tmp_path / "cluster"),
                "--ray-address",
                lost.address,
            ],
            env=lost.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 300
        # kill while the second node is inside a chunk, so that chunk must run again
        while not busy_ray_workers("run_chunk", lost.procs[1].pid):
            assert proc.poll() is None, "finished before the second node ran a chunk"
            assert time.monotonic() < deadline, "the second node never ran a chunk"
            time.sleep(0.02)
        os.killpg(lost.procs[1].pid, signal.SIGKILL)  # the node's raylet and workers
        lost.procs[1].wait(timeout=30)
        _, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-3000:]
        assert lost.procs[1].poll() is not None  # the node was really gone
        # 7 substations x 1 chunk; the lost node's chunk (or chunks) ran again on the head
        assert cluster_task_starts(lost, "run_chunk") > 7
    run_cli(*args, "--workers", "1", "--out", str(tmp_path / "local"))
    name = "dataset.parquet"
    assert (tmp_path / "cluster" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
