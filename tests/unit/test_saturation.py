"""The compare's saturation warning names the agents it cannot rank and a way to rank them."""

import pandas as pd

from gridfactor.experiments.compare import saturation


def results(length: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "agent": ["do-nothing", "expert-zone", "distributed-local"],
            "episodes": [6, 6, 6],
            "completed": [0, 6, 6],
            "survived_mean": [757.5, length, length],
        }
    )


def test_saturated_days_ask_for_weeks_and_saturated_weeks_for_more_episodes():
    days = saturation(results(288.0))
    counts = "do-nothing 0/6, expert-zone 6/6, distributed-local 6/6"
    assert days[0] == f"completed held-out episodes: {counts}"
    assert "expert-zone, distributed-local complete every" in days[1]
    assert "--episode-steps 2016, a week" in days[1]
    weeks = saturation(results(2016.0))
    assert "--n-episodes 12" in weeks[1] and "a week" not in weeks[1]
    assert len(saturation(results(288.0).iloc[:2])) == 1  # one agent at the top: no warning
