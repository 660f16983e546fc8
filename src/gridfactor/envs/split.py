"""The train/validation split of a grid's chronics: demonstrations and training draw from
its train part, evaluation holds out its validation part (so it sits below all three)."""

from __future__ import annotations

from typing import Any

from gridfactor.errors import UserError


def count_chronics(env: Any) -> int:
    """Number of chronics (scenarios) of a grid2op env."""
    return len(env.chronics_handler.real_data.subpaths)


def make_split(
    n_chronics: int, validation_fraction: float, held_out: tuple[int, ...] = ()
) -> dict[str, Any]:
    """Train/validation chronics and start ranges (fractions of the chronic length).

    held_out: the validation chronics by id (another fold, e.g. ``(0,)`` on a grid of two
        chronics); the others train. Empty: the last ``validation_fraction`` of the chronics
        (at least one), or with one chronic its last ``validation_fraction`` of time.
    """
    if held_out:
        chosen = sorted(set(int(c) for c in held_out))
        bad = [c for c in chosen if not 0 <= c < n_chronics]
        if bad or len(chosen) >= n_chronics:
            raise UserError(
                f"--held-out {','.join(map(str, held_out))} must name chronics in "
                f"0..{n_chronics - 1} and leave at least one to train on"
            )
        return {
            "kind": "chronics",
            "train": {
                "chronics": [c for c in range(n_chronics) if c not in chosen],
                "start_range": [0.0, 1.0],
            },
            "validation": {"chronics": chosen, "start_range": [0.0, 1.0]},
        }
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
