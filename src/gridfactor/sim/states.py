"""Unsafe states to check and time the candidate evaluator on (tests and benchmarks)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np


def unsafe_states(
    env: Any, actions: list[Any], *, min_rho: float = 0.8, seed: int = 0, explore: float = 0.2
) -> Iterator[Any]:
    """Observations of ``env`` with max rho >= ``min_rho``, endlessly (take what you need).

    The episodes are played like the demonstrations' (mostly do nothing; with probability
    ``explore`` a random one of ``actions``, e.g. the unitary topologies, so that split
    substations, cut lines and cooldowns are visited too), from ``seed``; a game over starts
    a new episode.
    """
    rng = np.random.default_rng(seed)
    env.seed(seed)
    env.reset()
    do_nothing = env.action_space({})
    while True:
        play = actions[rng.integers(len(actions))] if rng.random() < explore else do_nothing
        obs, _, done, _ = env.step(play)
        if done:
            env.reset()
        elif obs.rho.max() >= min_rho:
            yield obs
