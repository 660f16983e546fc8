"""RLlib callback forwarding the decision env's grid2op statistics to RLlib's metrics."""

from __future__ import annotations

from typing import Any

from ray.rllib.callbacks.callbacks import RLlibCallback

PREFIX = "gridfactor"


def _drain(env: Any, env_index: int, metrics_logger: Any) -> None:
    envs = getattr(env, "envs", None)
    inner = envs[env_index].unwrapped if envs is not None else getattr(env, "unwrapped", env)
    steps = getattr(inner, "pending_steps", 0)
    if steps:
        inner.pending_steps = 0
        metrics_logger.log_value((PREFIX, "grid2op_steps"), steps, reduce="sum")
    episodes = getattr(inner, "pending_episodes", None)
    while episodes:
        stats = episodes.pop(0)
        metrics_logger.log_value((PREFIX, "episodes"), 1, reduce="sum")
        for key, value in stats.items():
            # per-iteration sums; means are sum / episodes (computed by the trainer)
            metrics_logger.log_value((PREFIX, "sum", key), value, reduce="sum")


class DecisionMetricsCallback(RLlibCallback):
    """Logs grid2op steps and per-episode statistics (survival, safe steps, decisions and
    return per agent) as per-iteration sums under ``env_runners/gridfactor``."""

    def on_episode_start(self, *, env=None, env_index=0, metrics_logger=None, **kw) -> None:
        _drain(env, env_index, metrics_logger)

    def on_episode_step(self, *, env=None, env_index=0, metrics_logger=None, **kw) -> None:
        _drain(env, env_index, metrics_logger)

    def on_episode_end(self, *, env=None, env_index=0, metrics_logger=None, **kw) -> None:
        _drain(env, env_index, metrics_logger)
