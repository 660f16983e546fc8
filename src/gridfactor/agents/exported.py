"""``gridfactor export``: a trained run as an L2RPN-style submission folder.

Layout of the folder::

    __init__.py              make_agent(env, this_directory) -> grid2op BaseAgent
    gridfactor_agent.json    manifest: agent name, env, danger, observation mode, guard,
                             wait confidence,
                             policies, versions, where it came from
    factorization.json       the zones (one cluster for a centralized agent)
    action_sets.json         the per-agent action subsets (when the run has them)
    policies/<agent id>.npz  each zone policy's layers as numpy arrays (observation -> logits,
                             :class:`gridfactor.agents.policy_net.GreedyMLP`, or the
                             members of a :class:`~gridfactor.agents.policy_net.GreedyEnsemble`)

Loading needs grid2op and gridfactor installed, and nothing else: neither the training run
directory nor Ray/RLlib. The policies are plain arrays so that RLlib's checkpoint format
(pickled Ray classes, tied to a Ray version) stays out of the submission; the decision frame
(danger threshold, reconnection, CAPA) is gridfactor's own code, so the exported agent
decides exactly as the evaluated one (one implementation, not a copy that can drift).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from gridfactor.errors import UserError
from gridfactor.runs import write_json, write_text
from gridfactor.version import __version__

# 2: policies as .npz arrays (1: TorchScript)
EXPORT_FORMAT = 2
# file that marks a folder written by `gridfactor export`
EXPORT_MANIFEST = "gridfactor_agent.json"
POLICY_DIR = "policies"

SUBMISSION_INIT = '''"""{name} agent of gridfactor, exported from {run}.

An L2RPN-style submission: ``make_agent(env, this_directory)`` returns a grid2op BaseAgent.
Requires grid2op and gridfactor (pip install gridfactor); not the training run.
"""


def make_agent(env, this_directory):
    from gridfactor import load_agent

    return load_agent(this_directory, env)
'''


def export_run(
    run_dir: str | Path,
    out: str | Path,
    *,
    checkpoint: str | Path | None = None,
    guard: int = 0,
    wait_confidence: float = 0.0,
    overwrite: bool = False,
) -> Path:
    """Write the submission folder of a ``gridfactor train`` run; returns ``out``.

    ``guard`` and ``wait_confidence`` (see :class:`~gridfactor.agents.trained.TrainedAgent`)
    are recorded in the manifest: the submission decides as the evaluation did with them.

    The folder is built next to ``out`` and renamed into place: an interrupted export
    leaves no half folder.
    """
    from gridfactor.agents.trained import (
        ACTION_SETS_FILE,
        check_wait_confidence,
        load_trained_agent,
    )

    run_dir, out = Path(run_dir), Path(out)
    if guard < 0:
        raise UserError(f"--guard must be >= 0 (0 = pure policy), got {guard}")
    check_wait_confidence(wait_confidence)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{out} exists and is not empty; choose another --out or pass --overwrite")
    agent = load_trained_agent(run_dir, checkpoint)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / POLICY_DIR).mkdir(parents=True)
    policies = {}
    for aid, policy in sorted(agent.policies.items()):
        rel = f"{POLICY_DIR}/{aid}.npz"
        policy.save(tmp / rel)
        policies[aid] = {"file": rel, "n_actions": policy.n_actions, "obs_size": policy.n_inputs}
    agent.factorization.save(tmp / "factorization.json")
    if (run_dir / ACTION_SETS_FILE).is_file():
        shutil.copyfile(run_dir / ACTION_SETS_FILE, tmp / ACTION_SETS_FILE)
    write_json(
        tmp / EXPORT_MANIFEST,
        {
            "format": EXPORT_FORMAT,
            "name": agent.name,
            "env_name": agent.env_name,
            "danger": agent.danger,
            "reconnect": agent.reconnect,
            "obs_mode": agent.obs_mode,
            "guard": int(guard),
            "wait_confidence": float(wait_confidence),
            "policies": policies,
            "gridfactor_version": __version__,
            "source": {"run": str(run_dir.resolve()), "checkpoint": str(agent.checkpoint)},
        },
    )
    write_text(tmp / "__init__.py", SUBMISSION_INIT.format(name=agent.name, run=run_dir))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def load_exported_agent(folder: str | Path, guard: int | None = None) -> Any:
    """The :class:`TrainedAgent` of an export folder (numpy only: no Ray, no run directory).

    guard: None = the guard recorded at export time.
    """
    from gridfactor.agents.policy_net import load_policy
    from gridfactor.agents.trained import TrainedAgent, load_action_sets
    from gridfactor.factorization import Factorization

    folder = Path(folder)
    manifest = json.loads((folder / EXPORT_MANIFEST).read_text())
    if manifest.get("format") != EXPORT_FORMAT:
        raise UserError(
            f"{folder} is export format {manifest.get('format')}, this gridfactor reads "
            f"format {EXPORT_FORMAT}; re-export the run with this gridfactor"
        )
    policies = {
        aid: load_policy(folder / spec["file"]) for aid, spec in manifest["policies"].items()
    }
    return TrainedAgent(
        name=manifest["name"],
        env_name=manifest["env_name"],
        factorization=Factorization.load(folder / "factorization.json"),
        danger=float(manifest["danger"]),
        obs_mode=manifest["obs_mode"],
        split={},
        checkpoint=folder,
        policies=policies,
        action_sets=load_action_sets(folder),
        greedy_sets=load_action_sets(folder, "greedy"),
        guard=int(manifest.get("guard", 0) if guard is None else guard),
        reconnect=manifest.get("reconnect", "always"),
        wait_confidence=float(manifest.get("wait_confidence", 0.0)),
    )
