"""Which offline Grid2Op test envs work for topology factorization, measured.

For every env ``grid2op.make(name, test=True)`` opens: its action class and whether it
supports ``set_bus`` (the up-front check of every command), then a small random-topology
collection (``--episodes`` per selected substation, ``--max-steps`` steps, seed 0,
in-process) and what grid2op did with the actions: the share applied, the share refused
(illegal / ambiguous / exception / empty; would-reconnect-a-line-in-cooldown apart), and
whether ``gridfactor factorize`` would accept the data (<= 5% refused per substation).

    .venv/bin/python benchmarks/envs.py [--envs NAME ...] [--episodes 4] [--max-steps 20]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

from gridfactor.collect import CollectConfig, check_action_effects, collect
from gridfactor.collect.grid2op_collect import load_dataset
from gridfactor.envs.grid2op_env import TOPOLOGY, action_support, available_test_envs
from gridfactor.errors import UserError
from gridfactor.parallel import ParallelConfig


def measure(name: str, episodes: int, max_steps: int) -> dict:
    action_class, supported = action_support(name)
    row = {"env": name, "action class": action_class}
    row["set_bus"] = "yes" if set(TOPOLOGY) <= supported else "no"
    tic = time.perf_counter()
    config = CollectConfig(env_name=name, n_episodes=episodes, max_steps=max_steps, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            collect(config, tmp, parallel=ParallelConfig(workers=1), progress=False)
        except UserError as error:
            row.update(verdict=f"collect refused: {error}")
            return row
        _, sidecar = load_dataset(tmp)
    total = sidecar["action_effects"]["total"]
    per_sub = sidecar["action_effects"]["per_substation"]
    n = max(1, total["actions"])
    row.update(
        substations=len(per_sub),
        actions=total["actions"],
        applied=f"{(total['changed'] + total['no_change'] + total['game_over']) / n:.0%}",
        refused=f"{(total['refused'] - total['illegal_reconnection']) / n:.0%}",
        reconnection=f"{total['illegal_reconnection'] / n:.0%}",
        seconds=f"{time.perf_counter() - tic:.0f}",
    )
    key = "refused_fraction_without_reconnections"
    worst = max(per_sub, key=lambda sub: per_sub[sub][key])
    kinds = ("illegal", "ambiguous", "refused_other", "empty")
    kind = max(kinds, key=lambda k: per_sub[worst][k])
    try:
        check_action_effects(sidecar)
        row["verdict"] = "factorize: yes"
    except UserError:
        row["verdict"] = f"factorize refuses ({worst}: {per_sub[worst][key]:.0%} {kind})"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=None)
    parser.add_argument("--episodes", type=int, default=4, help="per selected substation")
    parser.add_argument("--max-steps", type=int, default=20)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(
        f"load at start {os.getloadavg()[0]:.1f}; {args.episodes} episodes per substation, "
        f"max {args.max_steps} steps, always act (explore 1.0), seed 0"
    )
    keys = [
        "env",
        "action class",
        "set_bus",
        "substations",
        "actions",
        "applied",
        "refused",
        "reconnection",
        "seconds",
        "verdict",
    ]
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for name in args.envs or available_test_envs():
        row = measure(name, args.episodes, args.max_steps)
        print("| " + " | ".join(str(row.get(k, "–")) for k in keys) + " |", flush=True)


if __name__ == "__main__":
    main()
