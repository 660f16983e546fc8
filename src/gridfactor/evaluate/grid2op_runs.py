"""Held-out scenarios played by grid2op's own ``Runner``, saved as ``EpisodeData`` folders.

Layout under an evaluation run directory (what grid2viz reads as ``--agents_path``)::

    grid2op/<agent>/dict_*_space.json          the spaces (written by grid2op's Runner)
    grid2op/<agent>/<NNNN>_<chronic>/          one EpisodeData folder per scenario

grid2op's Runner names an episode folder after its chronic, so two scenarios of one chronic
would overwrite each other: each scenario is run into its own scratch folder and its episode
moved to ``<NNNN>_<chronic>`` (NNNN = the episode number of scenarios.csv).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from gridfactor.evaluate.scenarios import Scenario
from gridfactor.runs import safe_name

EPISODES_DIR = "grid2op"
SCRATCH_DIR = "_scratch"  # grid2viz skips folders starting with "_"


def episode_dir(out: Path, label: str, scenario: Scenario) -> Path:
    """Final EpisodeData folder of (agent ``label``, ``scenario``)."""
    return out / EPISODES_DIR / safe_name(label) / f"{scenario.episode:04d}_{scenario.chronic_name}"


def scratch_dir(out: Path, label: str, scenario: Scenario) -> Path:
    """Empty folder where grid2op writes the episode before it is moved into place."""
    path = out / EPISODES_DIR / SCRATCH_DIR / f"{safe_name(label)}-{scenario.episode:04d}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def play(env: Any, agent: Any, scenario: Scenario, path_save: Path | None = None) -> int:
    """Play ``scenario`` with the grid2op agent ``agent`` through ``grid2op.Runner``; returns
    the steps grid2op played (a game over's step included). Saves the episode in
    ``path_save`` when given."""
    from grid2op.Runner import Runner

    runner = Runner(**env.get_params_for_runner(), agentClass=None, agentInstance=agent)
    ((_, _, _, steps, _),) = runner.run(
        nb_episode=1,
        max_iter=scenario.length,
        env_seeds=[scenario.seed],
        agent_seeds=[scenario.seed],
        reset_options=[scenario.reset_options()],
        path_save=None if path_save is None else str(path_save),
    )
    return int(steps)


def keep_episode(scratch: Path, out: Path, label: str, scenario: Scenario) -> Path:
    """Move the episode grid2op wrote in ``scratch`` to :func:`episode_dir` (renamed, so a
    killed run never leaves half an episode) with the spaces beside it; drop ``scratch``."""
    (episode,) = [p for p in scratch.iterdir() if p.is_dir()]
    final = episode_dir(out, label, scenario)
    final.parent.mkdir(parents=True, exist_ok=True)
    for space in scratch.glob("dict_*.json"):
        if not (final.parent / space.name).is_file():
            os.replace(space, final.parent / space.name)
    if final.exists():
        shutil.rmtree(final)
    os.replace(episode, final)
    shutil.rmtree(scratch, ignore_errors=True)
    return final
