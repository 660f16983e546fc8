"""Decision-env throughput vs raw Grid2Op, in one run.

raw:      grid2op steps/s of a do-nothing agent on the same cached env, with the same episode
          starts (random chronic + start step, at most --episode-steps steps).
decision: grid2op steps/s through DecisionEnv (rule agent inside + random cluster-agent
          actions, one RLlib-style step per decision).
Target: decision >= 50% of raw. Timings are noisy on a shared machine.

    .venv/bin/python benchmarks/train.py [--steps 3000] [--episode-steps 500]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from gridfactor.agents.cluster import centralized_factorization
from gridfactor.agents.decision_env import DecisionEnv

ENV = "rte_case14_realistic"


def raw_steps_per_s(env: DecisionEnv, steps: int) -> float:
    """Do-nothing grid2op steps/s with DecisionEnv's episode starts (reset cost included)."""
    g2, do_nothing = env.g2env, env.g2env.action_space({})
    done_steps = 0
    start = time.perf_counter()
    while done_steps < steps:
        env._start_grid2op_episode()
        for _ in range(env.config.episode_steps):
            _, _, done, _ = g2.step(do_nothing)
            done_steps += 1
            if done or done_steps >= steps:
                break
    return done_steps / (time.perf_counter() - start)


def decision_steps_per_s(env: DecisionEnv, steps: int, seed: int = 0) -> tuple[float, int]:
    rng = np.random.default_rng(seed)
    env.pending_steps = 0
    decisions = 0
    start = time.perf_counter()
    obs, _ = env.reset(seed=seed)
    while env.pending_steps < steps:
        (aid,) = obs
        obs, _, term, trunc, _ = env.step({aid: int(rng.integers(env.action_spaces[aid].n))})
        decisions += 1
        if term["__all__"] or trunc["__all__"]:
            obs, _ = env.reset()
    return env.pending_steps / (time.perf_counter() - start), decisions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--episode-steps", type=int, default=500)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    env = DecisionEnv({"env_name": ENV, "episode_steps": args.episode_steps, "seed": 0})
    # centralized factorization: one agent with every substation's actions (the largest
    # action set); the per-cluster env costs the same per grid2op step
    assert env.factorization.to_dict() == centralized_factorization(env.g2env, ENV).to_dict()
    raw_steps_per_s(env, 200)  # warm-up
    raw = raw_steps_per_s(env, args.steps)
    dec, decisions = decision_steps_per_s(env, args.steps)
    print(f"raw grid2op (do nothing):          {raw:8.1f} steps/s")
    print(f"decision env (random agent acts):  {dec:8.1f} steps/s  ({decisions} decisions)")
    print(f"ratio decision / raw: {dec / raw:.2f} (target >= 0.50)")


if __name__ == "__main__":
    main()
