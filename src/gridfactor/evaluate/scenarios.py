"""Held-out evaluation scenarios: which chronics and time windows, sampled from a seed.

A scenario is (chronic id, start step, length, seed). Every agent plays the same scenarios,
so the comparison is paired: agent differences are not scenario luck.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from gridfactor.envs.split import count_chronics, make_split
from gridfactor.errors import UserError

# Fraction held out when no training run gives the split (gridfactor train's default).
VALIDATION_FRACTION = 0.2


@dataclass(frozen=True)
class HeldOut:
    """Chronics and time window never used in training.

    chronics: chronic ids (indices into the env's chronics folder, sorted order).
    window: (first, last) fractions of each chronic's length; an episode lies wholly inside.
    offset: steps added to the window's first step (a time split skips the steps that
        training episodes starting just before the cut still play).
    """

    chronics: tuple[int, ...]
    window: tuple[float, float] = (0.0, 1.0)
    offset: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"chronics": list(self.chronics), "window": list(self.window), "offset": self.offset}

    @classmethod
    def from_split(cls, split: dict[str, Any], train_episode_steps: int = 0) -> HeldOut:
        """From gridfactor train's ``split.json`` (its "validation" part)."""
        val = split["validation"]
        lo, hi = (float(x) for x in val.get("start_range", (0.0, 1.0)))
        offset = int(train_episode_steps) if split.get("kind") == "time" and lo > 0 else 0
        return cls(tuple(int(c) for c in val["chronics"]), (lo, hi), offset)


@dataclass(frozen=True)
class Scenario:
    """One evaluation episode: start at step ``start`` of chronic ``chronic``."""

    episode: int
    chronic: int
    chronic_name: str
    start: int
    length: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def reset_options(self) -> dict[str, Any]:
        """Options of ``env.reset`` that start this scenario (grid2op's Runner takes them too,
        as ``reset_options``); the episode then lasts ``length`` steps."""
        options: dict[str, Any] = {"time serie id": self.chronic}
        if self.start >= 1:  # grid2op's "init ts" must be >= 1
            options["init ts"] = self.start
        return options


def default_held_out(env: Any, train_episode_steps: int = 0) -> HeldOut:
    """The split ``gridfactor train`` holds out by default (validation fraction 0.2).

    With >= 2 chronics: the last 20% of the chronics (at least one), whole time range
    (rte_case14_realistic: chronic 001; rte_case5_example: chronics 16-19). With one chronic:
    its last 20% of time steps.
    """
    split = make_split(count_chronics(env), VALIDATION_FRACTION)
    return HeldOut.from_split(split, train_episode_steps)


def check_held_out(held: HeldOut, env: Any, env_name: str) -> None:
    n = count_chronics(env)
    bad = [c for c in held.chronics if not 0 <= c < n]
    if not held.chronics or bad:
        raise UserError(
            f"held-out chronics {list(held.chronics)} not in 0..{n - 1} for {env_name}; "
            "pass --chronics with valid ids"
        )
    lo, hi = held.window
    if not 0.0 <= lo < hi <= 1.0:
        raise UserError(
            f"time window {lo}:{hi} is not 0 <= first < last <= 1; pass e.g. --window 0.75:1"
        )


def _chronic_info(env: Any, chronic: int) -> tuple[str, int]:
    """(folder name, number of steps) of a chronic (resets ``env`` onto it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env.reset(seed=0, options={"time serie id": int(chronic)})
    name = str(env.chronics_handler.get_id()).rstrip("/").split("/")[-1]
    return name, int(env.chronics_handler.max_timestep())


def sample_scenarios(
    env: Any, held: HeldOut, n_episodes: int, episode_steps: int, seed: int
) -> list[Scenario]:
    """``n_episodes`` scenarios drawn uniformly from the held-out set with ``seed``.

    episode_steps: grid2op steps per episode; 0 = the whole held-out window of the chronic.
    """
    if n_episodes < 1:
        raise UserError(f"--n-episodes must be >= 1, got {n_episodes}")
    if episode_steps < 0:
        raise UserError(f"--episode-steps must be >= 0 (0 = whole window), got {episode_steps}")
    rng = np.random.default_rng(seed)
    info = {c: _chronic_info(env, c) for c in sorted(set(held.chronics))}
    scenarios = []
    for episode in range(n_episodes):
        chronic = int(rng.choice(held.chronics))
        name, total = info[chronic]
        # grid2op's "init ts" must be >= 1, so the first playable start is step 1 at least
        first = max(1, int(np.floor(held.window[0] * total)) + held.offset)
        last = int(np.floor(held.window[1] * total))
        available = last - first
        if available < 1:
            raise UserError(f"held-out window of chronic {chronic} has no steps; widen --window")
        length = available if episode_steps == 0 else min(episode_steps, available)
        start = int(rng.integers(first, last - length + 1))
        scenarios.append(
            Scenario(episode, chronic, name, start, length, int(rng.integers(2**31 - 1)))
        )
    return scenarios


def parse_chronics(text: str | None, flag: str = "--chronics") -> tuple[int, ...] | None:
    """``"0,3,5"`` or ``"2-4"`` -> chronic ids; None/empty -> None (default split)."""
    if not text:
        return None
    ids: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-", 1)
                ids.extend(range(int(a), int(b) + 1))
            elif part:
                ids.append(int(part))
    except ValueError:
        raise UserError(f"bad {flag} {text!r}; use ids like 0,3,5 or a range 2-4") from None
    return tuple(dict.fromkeys(ids))


def parse_window(text: str | None) -> tuple[float, float] | None:
    """``"0.75:1"`` -> (0.75, 1.0); None/empty -> None."""
    if not text:
        return None
    try:
        lo, hi = (float(x) for x in text.split(":"))
    except ValueError:
        raise UserError(f"bad --window {text!r}; use FIRST:LAST fractions, e.g. 0.75:1") from None
    return lo, hi


def parse_checkpoints(text: str | None) -> tuple[str | None, ...]:
    """``"final,imitation"`` -> (None, "imitation"): the runs' checkpoints to evaluate
    ("final" and an empty text: the run's final one)."""
    if not text:
        return (None,)
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise UserError(f"bad --checkpoint {text!r}; use names like final,imitation")
    return tuple(dict.fromkeys(None if n == "final" else n for n in names))


def parse_reconnects(text: str | None) -> tuple[str | None, ...]:
    """``"always,never"`` -> ("always", "never"); empty -> (None,): each run's own rule."""
    from gridfactor.agents.high_level import check_reconnect

    if not text:
        return (None,)
    return tuple(
        dict.fromkeys(check_reconnect(part.strip()) for part in text.split(",") if part.strip())
    ) or (None,)


def parse_waits(text: str | None) -> tuple[float, ...]:
    """``"0,0.7"`` -> (0.0, 0.7): the trained runs' wait confidences (0 = greedy)."""
    from gridfactor.agents.trained import check_wait_confidence

    if not text:
        return (0.0,)
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(
            f"bad --wait-confidence {text!r}; use numbers in [0, 1], e.g. 0,0.7"
        ) from None
    return tuple(dict.fromkeys(check_wait_confidence(v) for v in values)) or (0.0,)


def parse_guards(text: str | None) -> tuple[int, ...]:
    """``"0,3,10"`` -> (0, 3, 10): guard sizes (0 = pure policy)."""
    if not text:
        return (0,)
    try:
        sizes = tuple(dict.fromkeys(int(part) for part in text.split(",") if part.strip()))
    except ValueError:
        raise UserError(f"bad --guard {text!r}; use sizes like 0,3,10") from None
    if not sizes or any(k < 0 for k in sizes):
        raise UserError(f"bad --guard {text!r}; sizes must be >= 0 (0 = pure policy)")
    return sizes
