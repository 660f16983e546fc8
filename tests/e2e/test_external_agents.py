"""Agents that are not gridfactor's: L2RPN submission folders (`evaluate --submission`) and
the public peer `expertop` (l2rpn-baselines' ExpertAgent), on real Grid2Op test envs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import assert_user_error, run_cli

ENV5 = "rte_case5_example"  # do-nothing fails within ~100 steps on its held-out chronics

DO_NOTHING = """
from grid2op.Agent import DoNothingAgent


def make_agent(env, this_directory_path):
    return DoNothingAgent(env.action_space)
"""

# fails at its 10th step of every episode: the episode is lost, not the run
FLAKY = """
from grid2op.Agent import BaseAgent


class Flaky(BaseAgent):
    def reset(self, obs):
        self.steps = 0

    def act(self, observation, reward, done=False):
        self.steps += 1
        if self.steps == 10:
            raise RuntimeError("lost the plot")
        return self.action_space({})


def make_agent(env, this_directory_path):
    return Flaky(env.action_space)
"""

NOT_AN_ACTION = """
from grid2op.Agent import BaseAgent


class Confused(BaseAgent):
    def act(self, observation, reward, done=False):
        return 42


def make_agent(env, this_directory_path):
    return Confused(env.action_space)
"""


def _folder(root: Path, name: str, code: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "__init__.py").write_text(code)
    return folder


def test_submissions_are_evaluated_beside_the_baselines_and_their_failures_stay_theirs(
    tmp_path: Path,
) -> None:
    subs = [
        _folder(tmp_path, "patient", DO_NOTHING),
        _folder(tmp_path, "flaky", FLAKY),
        _folder(tmp_path, "confused", NOT_AN_ACTION),
    ]
    out = tmp_path / "eval"
    args = ["evaluate", "--env", ENV5, "--agents", "do-nothing,expert"]
    for sub in subs:
        args += ["--submission", str(sub)]
    proc = run_cli(
        *args, "--n-episodes", "3", "--episode-steps", "100", "--workers", "1", "--out", str(out)
    )
    assert "patient" in proc.stdout and "agent errors" in proc.stdout
    episodes = pd.read_csv(out / "episodes.csv").set_index(["agent", "episode"])
    table = pd.read_csv(out / "results.csv").set_index("agent")
    assert list(table.index) == ["do-nothing", "expert", "patient", "flaky", "confused"]
    # a submission that does nothing survives exactly as long as do-nothing, episode by episode
    assert (episodes.loc["patient", "survived"] == episodes.loc["do-nothing", "survived"]).all()
    # the flaky agent's 10th step ends each of its episodes as failed, with the error
    flaky = episodes.loc["flaky"]
    assert (flaky["survived"] == 9).all() and not flaky["completed"].any()
    assert flaky["error"].str.contains("RuntimeError: lost the plot").all()
    assert table.loc["flaky", "errors"] == 3
    confused = episodes.loc["confused"]
    assert (confused["survived"] == 0).all()
    assert confused["error"].str.contains("returned int, not a grid2op action").all()
    # nothing else lost: the baselines' rows are whole, without errors
    assert episodes.loc["expert", "error"].isna().all()
    assert table.loc["expert", "survived_mean"] > table.loc["do-nothing", "survived_mean"]
    # what the agents played: the expert a few distinct actions, do-nothing none
    assert table.loc["do-nothing", "distinct_actions"] == 0
    assert table.loc["expert", "distinct_actions"] >= 1
    assert table.loc["do-nothing", "off_reference_frac"] == 0.0
    assert 0.0 < table.loc["expert", "off_reference_frac"] <= 1.0


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("x = 1\n", "defines no make_agent"),
        ("def make_agent(env, path):\n    raise ValueError('no weights')\n", "no weights"),
        ("def make_agent(env, path):\n    return 'agent'\n", "returned str, not a grid2op agent"),
        ("import not_a_module_anywhere\n", "importing its __init__.py failed"),
    ],
)
def test_bad_submission_is_one_line_exit_2(tmp_path: Path, code: str, message: str) -> None:
    sub = _folder(tmp_path, "bad", code)
    proc = run_cli(
        "evaluate",
        "--env",
        ENV5,
        "--submission",
        str(sub),
        "--agents",
        "",
        "--out",
        str(tmp_path / "out"),
        check=False,
    )
    assert_user_error(proc, message)
    assert not (tmp_path / "out" / "episodes").exists()  # refused before any episode


def test_submission_that_is_not_a_folder_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = run_cli(
        "evaluate",
        "--env",
        ENV5,
        "--submission",
        str(tmp_path / "nope"),
        "--out",
        str(tmp_path / "out"),
        check=False,
    )
    assert_user_error(proc, "is not a directory")


def test_expertop_peer_controls_case14_legally(tmp_path: Path) -> None:
    """l2rpn-baselines' ExpertAgent (the `peers` extra) on the held-out chronic of
    rte_case14_realistic: it acts when a line overflows, grid2op accepts every action, and
    it survives at least as long as do-nothing on the same days."""
    out = tmp_path / "peer"
    run_cli(
        "evaluate",
        "--agents",
        "do-nothing,expertop",
        "--n-episodes",
        "2",
        "--episode-steps",
        "288",
        "--workers",
        "1",
        "--out",
        str(out),
    )
    episodes = pd.read_csv(out / "episodes.csv").set_index(["agent", "episode"])
    peer, dn = episodes.loc["expertop"], episodes.loc["do-nothing"]
    assert peer["actions"].sum() > 0 and peer["illegal"].sum() == 0
    assert peer["error"].isna().all()
    assert (peer["survived"] >= dn["survived"]).all()
    assert peer["survived"].sum() > dn["survived"].sum()
    # the peer is a reference of the paired table: every agent against it, same days
    paired = pd.read_csv(out / "paired.csv").set_index(["agent", "reference"])
    gap = paired.loc[("do-nothing", "expertop")]
    assert gap["episodes"] == 2
    assert gap["mean_difference"] == (dn["survived"] - peer["survived"]).mean() < 0


def test_expertop_refuses_grids_it_does_not_know(tmp_path: Path) -> None:
    proc = run_cli(
        "evaluate",
        "--env",
        ENV5,
        "--agents",
        "expertop",
        "--out",
        str(tmp_path / "out"),
        check=False,
    )
    assert_user_error(proc, "expertop does not support rte_case5_example")
