"""grid2op's L2RPN competition scorers (``grid2op.utils``) on gridfactor's held-out scenarios.

How the scorers work (grid2op 1.12): ``ScoreL2RPN2020(env, nb_scenario, env_seeds,
agent_seeds, max_step)`` plays the env's first ``nb_scenario`` chronics from their first step
(for ``max_step`` steps) with do-nothing, and with a line-reconnecting agent under "no
overflow disconnection". ``get(agent)`` then plays the agent on the same chronics and maps its
operation cost per episode (a failed episode pays the unserved load) onto a scale: 0 = the
do-nothing run's cost, 100 = 80% of the losses, -100 = all load unserved, and, when
do-nothing fails, 80 = the reconnecting agent's cost. ScoreL2RPN2022 is the same with the
WCCI 2022 cost (curtailment, storage); ICAPS 2021 and IDF 2023 add alarm / alert and
renewable parts (so their do-nothing score is not 0).

The scorers take no chronic ids and no start steps, keep one episode per chronic (episodes
are folders named after the chronic), and cache the reference runs inside the env's own
folder (``<env dir>/_statistics_<name>``, site-packages for the test envs), reusing a
cache without checking its seeds, steps or score function.

So each held-out scenario gets its own copy of the env folder (files copied, ``chronics``
linked) under the evaluation's run directory, the scorer runs there with ``nb_scenario=1``
and that scenario's seed and length, and its Runner is pointed at the scenario's chronic and
start step (the Runner takes them; the scorer's API does not). Nothing is written outside the
run directory, and the scorer scores exactly the scenarios gridfactor's own loop plays.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridfactor.errors import UserError
from gridfactor.evaluate.scenarios import Scenario


@dataclass(frozen=True)
class ScorerInfo:
    """A grid2op scorer: its class in ``grid2op.utils`` and the env feature it needs."""

    cls: str
    competition: str
    needs: str | None = None  # GridObjects attribute that must be > 0 (None: any env)
    needs_what: str = ""


SCORERS = {
    "l2rpn2020": ScorerInfo("ScoreL2RPN2020", "L2RPN 2020 (operation cost)"),
    "wcci2022": ScorerInfo("ScoreL2RPN2022", "L2RPN WCCI 2022 (operation cost)"),
    "icaps2021": ScorerInfo(
        "ScoreICAPS2021", "L2RPN ICAPS 2021 (cost + alarms)", "dim_alarms", "alarms"
    ),
    "idf2023": ScorerInfo(
        "ScoreL2RPN2023", "L2RPN IDF 2023 (cost + alerts + renewables)", "dim_alerts", "alerts"
    ),
}
SCORES_DIR = "scores"


def fitting_scorers(env: Any) -> list[str]:
    """Names of the scorers that can score agents on ``env``."""
    return [
        name
        for name, info in SCORERS.items()
        if info.needs is None or int(getattr(env, info.needs, 0) or 0) > 0
    ]


def check_scorer(name: str, env: Any, env_name: str) -> None:
    """UserError (one line, naming the scorers that fit) unless ``name`` fits ``env``."""
    fits = fitting_scorers(env)
    if name not in SCORERS:
        raise UserError(f"unknown scorer {name!r}; for {env_name} choose among {', '.join(fits)}")
    if name not in fits:
        raise UserError(
            f"scorer {name} needs an env with {SCORERS[name].needs_what}, which {env_name} "
            f"lacks; for {env_name} choose among {', '.join(fits)}"
        )


def scenario_env_dir(out: Path, scorer: str, scenario: Scenario, env_name: str) -> Path:
    """The env copy (with its cached reference runs) of one scenario under a run directory.

    Its folder keeps the env's folder name: grid2op names the env's classes after it, so the
    copy's actions and observations are those of the env itself.
    """
    from gridfactor.envs.grid2op_env import env_data_dir

    return out / SCORES_DIR / scorer / f"{scenario.episode:04d}" / env_data_dir(env_name).name


def _copy_env(env_name: str, dest: Path) -> None:
    """Copy the env folder's files, link its chronics, leave out any cached statistics."""
    from gridfactor.envs.grid2op_env import env_data_dir

    src = env_data_dir(env_name)
    dest.mkdir(parents=True)
    for entry in sorted(src.iterdir()):
        if entry.name.startswith("_statistics") or entry.name == "__pycache__":
            continue
        if entry.name == "chronics":
            os.symlink(entry, dest / entry.name)
        elif entry.is_dir():
            shutil.copytree(entry, dest / entry.name)
        else:
            shutil.copy2(entry, dest / entry.name)


@contextlib.contextmanager
def on_scenario(scenario: Scenario) -> Iterator[None]:
    """Inside: grid2op's scorers play ``scenario`` (chronic and start step).

    The scorers build ``grid2op.Runner`` objects inside ``grid2op.utils.underlying_statistics``
    and call ``run`` without chronic ids or reset options; this swaps in a Runner that adds
    the scenario's (the Runner's own options: the same reset as gridfactor's loop).
    """
    from unittest import mock

    import grid2op.utils.underlying_statistics as stats
    from grid2op.Runner import Runner

    class ScenarioRunner(Runner):
        def run(self, nb_episode: int, **kwargs: Any) -> Any:
            kwargs["reset_options"] = [scenario.reset_options() for _ in range(nb_episode)]
            return super().run(nb_episode, **kwargs)

    with mock.patch.object(stats, "Runner", ScenarioRunner):
        yield


def make_scorer(name: str, env: Any, scenario: Scenario) -> Any:
    """grid2op's scorer ``name`` for one scenario on ``env`` (an env copy of
    :func:`scenario_env_dir`); computes and caches the reference runs there if missing."""
    import grid2op.utils

    cls = getattr(grid2op.utils, SCORERS[name].cls)
    with on_scenario(scenario):
        return cls(
            env,
            nb_scenario=1,
            env_seeds=[scenario.seed],
            agent_seeds=[scenario.seed],
            max_step=scenario.length,
        )


@dataclass(frozen=True)
class ReferenceTask:
    out: str
    scorer: str
    env_name: str
    scenario: Scenario


def prepare_reference(task: ReferenceTask) -> dict[str, Any]:
    """Build the scenario's env copy and the scorer's reference runs in it (skipped when
    done). Built in a temp folder renamed into place: a killed run leaves no half cache."""
    import warnings

    from gridfactor.envs.grid2op_env import make_env

    warnings.filterwarnings("ignore")
    final = scenario_env_dir(Path(task.out), task.scorer, task.scenario, task.env_name)
    tic = time.perf_counter()
    if not final.is_dir():
        tmp = final.parent.with_name(f".{final.parent.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        _copy_env(task.env_name, tmp / final.name)
        env = make_env(str(tmp / final.name))
        try:
            make_scorer(task.scorer, env, task.scenario)
        finally:
            env.close()
        os.replace(tmp, final.parent)
    return {"episode": task.scenario.episode, "seconds": time.perf_counter() - tic}


def score_episode(
    scorer_name: str, out: Path, env_name: str, scenario: Scenario, agent: Any, path_save: Path
) -> tuple[float, int]:
    """(score, grid2op steps played) of one scenario for a gridfactor agent (``act(obs,
    env)``), scored by grid2op's scorer; the agent's episode is saved in ``path_save``.

    The reference runs must exist (:func:`prepare_reference`).
    """
    import numpy as np

    from gridfactor.agents.grid2op_agent import GridfactorAgent
    from gridfactor.envs.grid2op_env import make_env

    env = make_env(str(scenario_env_dir(out, scorer_name, scenario, env_name)))
    try:
        scorer = make_scorer(scorer_name, env, scenario)
        path_save.mkdir(parents=True, exist_ok=True)
        with on_scenario(scenario):
            scores, steps, _ = scorer.get(
                GridfactorAgent(agent, env.action_space), path_save=str(path_save)
            )
    finally:
        env.close()
    score = scores[0]
    # ICAPS 2021 / IDF 2023 give (total, components...) per episode: keep the total
    total = float(np.atleast_1d(np.asarray(score, dtype=float))[0])
    return total, int(steps[0])
