"""The train/validation split of a grid's chronics: demonstrations and training draw from
its train part, evaluation holds out its validation part (so it sits below all three)."""

from __future__ import annotations

from typing import Any


def count_chronics(env: Any) -> int:
    """Number of chronics (scenarios) of a grid2op env."""
    return len(env.chronics_handler.real_data.subpaths)


def make_split(n_chronics: int, validation_fraction: float) -> dict[str, Any]:
    """Train/validation chronics and start ranges (fractions of the chronic length)."""
    if n_chronics >= 2:
        n_val = min(n_chronics - 1, max(1, round(validation_fraction * n_chronics)))
        ids = list(range(n_chronics))
        return {
            "kind": "chronics",
            "train": {"chronics": ids[: n_chronics - n_val], "start_range": [0.0, 1.0]},
            "validation": {"chronics": ids[n_chronics - n_val :], "start_range": [0.0, 1.0]},
        }
    cut = 1.0 - validation_fraction
    return {
        "kind": "time",
        "train": {"chronics": [0], "start_range": [0.0, cut]},
        "validation": {"chronics": [0], "start_range": [cut, 1.0]},
    }
