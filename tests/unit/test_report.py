"""The evaluation report's notes on overlapping held-out episodes."""

from __future__ import annotations

import pandas as pd

from gridfactor.evaluate.report import loss_moments


def _episodes(rows: list[tuple[str, int, int, int]], length: int = 200) -> pd.DataFrame:
    """(agent, episode, start, survived) rows in chronic '001'; completed = survived all."""
    return pd.DataFrame(
        [
            {
                "agent": agent,
                "episode": episode,
                "chronic_name": "001",
                "start": start,
                "length": length,
                "survived": survived,
                "completed": survived == length,
            }
            for agent, episode, start, survived in rows
        ]
    )


def test_disjoint_episodes_get_no_note():
    episodes = _episodes([("a", 0, 0, 50), ("a", 1, 200, 60), ("a", 2, 5000, 200)])
    assert loss_moments(episodes) == []


def test_overlapping_episodes_lost_at_one_moment_are_one_event():
    episodes = _episodes(
        [
            ("a", 0, 0, 150),  # ends at step 150
            ("a", 1, 100, 52),  # ends at 152: the same moment (within an hour)
            ("a", 2, 5000, 200),
            ("b", 0, 0, 200),
            ("b", 1, 100, 200),
            ("b", 2, 5000, 30),  # lost alone: not a shared moment
        ]
    )
    overlap, shared = loss_moments(episodes)
    # steps 0-299 and 5000-5199: 500 distinct, 600 played
    assert overlap.startswith("overlapping held-out episodes: 3 episodes play 500 distinct steps")
    assert "1.2 times" in overlap
    assert "a 2 lost at 1 moment (2 at 001 step 150-152)" in shared
    assert "b " not in shared


def test_losses_at_distinct_moments_are_not_grouped():
    episodes = _episodes([("a", 0, 0, 20), ("a", 1, 100, 60), ("a", 2, 150, 200)])
    (overlap,) = loss_moments(episodes)  # ends at 20 and 160: two moments, no second note
    assert "3 episodes" in overlap
