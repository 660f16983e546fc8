"""``gridfactor ensemble``: several training runs' policies as one agent.

Clones of the same demonstrations that differ only by their training seed play very
differently on held-out days (on the 36-bus grid one draw's five seeds range from 96 to 197
steps a day; docs/results.md): each is a noisy estimate of its teacher. An ensemble plays
the action of highest *mean probability* over its members, zone by zone
(:class:`~gridfactor.agents.policy_net.GreedyEnsemble`); members may come from different
demonstrations and know different actions (a member gives 0 to the ones it does not know).

Layout of an ensemble directory (an agent directory like a training run's: ``evaluate
--run``, ``export``, ``demonstrate --policy`` and ``load_agent`` take it)::

    config.json            kind "ensemble", the members (run, checkpoint) and the settings
                           they share (env, danger, reconnection, observation mode, ...)
    factorization.json     the zones (the members')
    split.json             the members' train/validation split
    action_sets.json       per agent the union of the members' actions (and greedy sets)
    policies/<agent>.npz   per agent the members' layers and their action columns

The directory holds the policies as numpy arrays: it does not need the member runs, Ray or
RLlib once written.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from gridfactor.agents.trained import (
    ACTION_SETS_FILE,
    ENSEMBLE_POLICIES,
    is_ensemble,
    load_trained_agent,
    read_run_config,
)
from gridfactor.errors import UserError
from gridfactor.runs import write_json

# the settings every member must share (they decide how the policies are used)
SHARED_SETTINGS = ("env_name", "centralized", "obs_mode", "danger", "reconnect")
# recorded from the first member (the held-out split's episode length, the run's reward)
COPIED_SETTINGS = ("episode_steps", "reward", "kind")


def make_ensemble(
    runs: list[str | Path],
    out: str | Path,
    *,
    checkpoint: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the ensemble of ``runs`` (their ``checkpoint``, default final) to ``out``.

    The members must share the env, zones, split and decision settings (``SHARED_SETTINGS``):
    else a UserError names the one that differs. The directory is built next to ``out`` and
    renamed into place: an interrupted command leaves no half ensemble.
    """
    from gridfactor.agents.policy_net import GreedyEnsemble

    out = Path(out)
    if len(runs) < 2:
        raise UserError(f"an ensemble needs at least 2 runs (got {len(runs)}); repeat --run")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{out} exists and is not empty; choose another --out or pass --overwrite")
    dirs = [Path(r) for r in runs]
    configs = [_member_config(d) for d in dirs]
    agents = [load_trained_agent(d, checkpoint) for d in dirs]
    splits = [agent.split for agent in agents]  # ({} when a run has no split.json)
    first = dirs[0]
    for d, config, agent, split in zip(dirs[1:], configs[1:], agents[1:], splits[1:], strict=True):
        for key in SHARED_SETTINGS:
            if config.get(key) != configs[0].get(key):
                raise UserError(
                    f"{d} has {key}={config.get(key)!r} but {first} has "
                    f"{configs[0].get(key)!r}; ensemble runs trained with the same {key}"
                )
        if (
            agent.factorization.to_dict()["clusters"]
            != agents[0].factorization.to_dict()["clusters"]
        ):
            raise UserError(
                f"{d} has other zones than {first}; ensemble runs trained with the same "
                "--factorization"
            )
        if split != splits[0]:
            raise UserError(
                f"{d} holds out other episodes than {first} (split.json differs); ensemble "
                "runs of the same env and validation split"
            )

    frames_keys = _action_keys(agents)
    action_sets: dict[str, Any] = {"agents": {}, "greedy": {}}
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / ENSEMBLE_POLICIES).mkdir(parents=True)
    for aid in sorted(agents[0].policies):
        member_keys = [keys[aid] for keys in frames_keys]
        union = list(dict.fromkeys(k for keys in member_keys for k in keys))
        index = {k: i for i, k in enumerate(union)}
        greedy = [
            (agent.greedy_sets or {}).get(aid, keys)
            for agent, keys in zip(agents, member_keys, strict=True)
        ]
        action_sets["agents"][aid] = [list(k) for k in union]
        action_sets["greedy"][aid] = [
            list(k) for k in dict.fromkeys(tuple(k) for keys in greedy for k in keys)
        ]
        # (plain clones: _member_config refused ensembles)
        members = tuple(agent.policies[aid] for agent in agents)
        GreedyEnsemble(
            members,
            tuple(np.array([index[k] for k in keys], dtype=np.int64) for keys in member_keys),
            len(union),
        ).save(tmp / ENSEMBLE_POLICIES / f"{aid}.npz")
    write_json(tmp / ACTION_SETS_FILE, action_sets)
    agents[0].factorization.save(tmp / "factorization.json")
    if splits[0]:
        write_json(tmp / "split.json", splits[0])
    config = {key: configs[0].get(key) for key in (*SHARED_SETTINGS, *COPIED_SETTINGS)}
    config["ensemble"] = True  # (see is_ensemble)
    config["members"] = [
        {"run": str(d.resolve()), "checkpoint": str(agent.checkpoint.resolve())}
        for d, agent in zip(dirs, agents, strict=True)
    ]
    write_json(tmp / "config.json", config)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def _member_config(run_dir: Path) -> dict[str, Any]:
    config = read_run_config(run_dir)
    if is_ensemble(config):
        raise UserError(f"{run_dir} is an ensemble already; pass its member runs instead")
    return config


def _action_keys(agents: list[Any]) -> list[dict[str, list[tuple[int, int]]]]:
    """Per member, per agent id its actions' keys in policy order (do nothing first), as
    its decision frame on the env builds them."""
    from gridfactor.envs.grid2op_env import make_env

    env = make_env(agents[0].env_name)
    try:
        return [
            {a.agent_id: [tuple(k) for k in a.action_keys] for a in agent.bind(env).agents}
            for agent in agents
        ]
    finally:
        env.close()
