"""How good a zone clone's short list is, one step ahead, on held-out demonstration rows.

Usage: python scripts/shortlist_quality.py DEMONSTRATIONS RUN [RUN ...] [--k 3]

For each training run of zone clones (`gridfactor train --demonstrations DEMONSTRATIONS`),
on the deciding rows of the demonstration episodes its cloning held out (the run's seed
picks them, as in ``imitation.json``): top-1 agreement with the expert's label, the share of
rows where the label is do nothing or among the clone's k most likely acting actions, and
what a guard of k gives up one step ahead: the lowest recorded simulated max rho among do
nothing and those k actions minus the expert's (capped at 1; an infeasible short list
counts 1), and the share of rows where it is within 0.01 of the expert's. No simulation:
the demonstrations hold every candidate's simulated max rho.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from gridfactor.agents.frame import frame_for
from gridfactor.agents.trained import load_trained_agent
from gridfactor.demonstrate.demonstrations import load_demonstrations
from gridfactor.envs.grid2op_env import make_env
from gridfactor.train.imitation import held_out_episodes

DO_NOTHING = (-1, -1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demonstrations", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--k", type=int, default=3)
    args = parser.parse_args()
    demos = load_demonstrations(args.demonstrations).frame
    env = None
    for run in args.runs:
        agent = load_trained_agent(run)
        if env is None:
            env = make_env(agent.env_name)
        full = frame_for(agent.factorization, env, "local", agent.danger, None, agent.reconnect)
        frame = agent.bind(env)
        seed = int(json.loads((run / "config.json").read_text()).get("seed", 0))
        rows = demos[demos["episode"].isin(held_out_episodes(demos, seed)) & demos["decider"]]
        top1, in_top_k, regret = [], [], []
        for row in rows.itertuples():
            keys = [tuple(k) for k in frame.by_id[row.agent].action_keys]
            position = {tuple(k): j for j, k in enumerate(full.by_id[row.agent].action_keys)}
            logits = agent.logits(row.agent, row.obs_local)
            ranked = [keys[i] for i in np.argsort(-logits, kind="stable") if i != 0][: args.k]
            label = (row.label_sub, row.label_index)
            top1.append(keys[int(np.argmax(logits))] == label)
            in_top_k.append(label == DO_NOTHING or label in ranked)
            rho = np.asarray(row.sim_max_rho)
            short = [position[DO_NOTHING], *(position[k] for k in ranked if k in position)]
            gap = float(np.min(rho[short]) - rho[position[label]])
            regret.append(min(gap, 1.0) if np.isfinite(gap) else 1.0)
        regret_arr = np.array(regret)
        print(
            f"{run}: {len(rows)} held-out deciding rows; top-1 {np.mean(top1):.2f}, label in "
            f"do nothing + top {args.k} {np.mean(in_top_k):.2f}; guard {args.k}: max rho "
            f"+{regret_arr.mean():.3f} over the expert's, within 0.01 of it in "
            f"{np.mean(regret_arr < 0.01):.2f} of the rows"
        )


if __name__ == "__main__":
    main()
