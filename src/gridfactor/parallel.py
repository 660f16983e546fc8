"""Parallel map over Ray tasks (local instance by default, a cluster by address).

``workers=1`` runs in-process without starting Ray, which keeps small jobs and debugging
simple. Results come back in input order whatever the completion order, so a run is
reproducible from its seed however many workers it used.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from gridfactor.progress import phase

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class ParallelConfig:
    """Where parallel work runs.

    workers: number of concurrent tasks; 1 = in-process (no Ray), None = all local CPUs.
    ray_address: address of an existing Ray cluster (``ray start --head`` prints it);
        None starts a local Ray instance.
    """

    workers: int | None = None
    ray_address: str | None = None

    @property
    def in_process(self) -> bool:
        return self.workers == 1 and self.ray_address is None


def init_ray(config: ParallelConfig) -> None:
    """Start (or connect to) Ray once per process."""
    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {
        "ignore_reinit_error": True,
        "log_to_driver": False,
        "include_dashboard": False,
        "configure_logging": False,
    }
    if config.ray_address:
        kwargs["address"] = config.ray_address
    else:
        # A local instance keeps Ray's default token authentication; its notice about that
        # says nothing to the user (it stays for --ray-address clusters).
        import logging

        notice = "ray._private.authentication.authentication_token_setup"
        logging.getLogger(notice).setLevel(logging.ERROR)
        # "local" forces a fresh instance even if `ray start` left a cluster on this machine.
        kwargs["address"] = "local"
        kwargs["num_cpus"] = config.workers or os.cpu_count() or 1
    # Workers must not see the driver's tqdm bars or grid2op warnings as noise.
    kwargs["runtime_env"] = {"env_vars": {"PYTHONWARNINGS": "ignore"}}
    ray.init(**kwargs)
    from gridfactor.progress import quiet_libraries

    quiet_libraries()  # importing ray resets its loggers' levels


def parallel_map(
    fn: Callable[..., R],
    items: Sequence[T] | Iterable[T],
    config: ParallelConfig,
    *,
    desc: str = "",
    unit: str = "task",
    progress: bool = True,
    on_result: Callable[[int, R], None] | None = None,
    skip: Callable[[int], bool] | None = None,
    max_retries: int = 3,
) -> list[R]:
    """Apply ``fn`` to every item, in parallel with Ray unless ``config.in_process``.

    ``on_result(index, result)`` is called in the driver as each result arrives (use it to
    save finished work at once, so an interrupted run loses nothing). ``skip(index)`` is
    asked just before an item would start: True leaves it out (its result is None), so
    results that arrived can make later items unnecessary. Ray retries a task whose worker
    died up to ``max_retries`` times.
    """
    items = list(items)
    results: list[Any] = [None] * len(items)
    with phase(desc or "tasks", len(items), unit, enabled=progress, record=progress) as bar:
        if config.in_process:
            for index, item in enumerate(items):
                if skip is not None and skip(index):
                    bar.update(1)
                    continue
                results[index] = fn(item)
                if on_result is not None:
                    on_result(index, results[index])
                bar.update(1)
            return results

        import ray

        init_ray(config)
        remote_fn = ray.remote(max_retries=max_retries, retry_exceptions=False)(fn)
        window = max(1, int(ray.available_resources().get("CPU", 1)) * 2)
        pending: dict[Any, int] = {}
        next_index = 0
        while next_index < len(items) or pending:
            # Bounded number of tasks in flight keeps memory flat for thousands of items.
            while next_index < len(items) and len(pending) < window:
                if skip is not None and skip(next_index):
                    bar.update(1)
                else:
                    pending[remote_fn.remote(items[next_index])] = next_index
                next_index += 1
            if not pending:
                break
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                index = pending.pop(ref)
                results[index] = ray.get(ref)
                if on_result is not None:
                    on_result(index, results[index])
                bar.update(1)
        return results
