"""Collection speed: ``gridfactor collect`` against raw LightSim steps, same policy, one run.

Reference (measured here, not assumed): a plain Grid2Op loop a user would write with
``grid2op.make(name, test=True, backend=LightSimBackend())`` playing the same random policy
(each episode of one substation: a reset to a random (chronic, time step), then at every
step a uniformly random unitary topology action of the substation, until game over or
``max_steps``), counting transitions per second. Then the same episodes through gridfactor:

* ``run_chunk``: the collector's episode loop alone (records rho before/after, the action's
  effect on the topology, the legality counters);
* ``collect``: the whole command in-process (grid inspection, chunks, part files, Parquet).

All on one core (``workers=1``), sequentially, so the ratios do not depend on the load as
much as the absolute rates. A first untimed pass warms both envs (env creation and the
chronics cache cost ~1-3 s and are paid once per worker in real runs).

    .venv/bin/python benchmarks/collect.py --env l2rpn_case14_sandbox --episodes 40
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

import numpy as np

from gridfactor.collect import CollectConfig, collect
from gridfactor.collect.grid2op_collect import (
    Chunk,
    episode_seed_sequence,
    grid_info,
    make_chunks,
    run_chunk,
)
from gridfactor.parallel import ParallelConfig


def raw_env(env_name: str, subs) -> tuple:
    """The plain env and its substations' unitary actions (built once, outside the timing,
    as the collector's worker builds its own once)."""
    import grid2op
    from lightsim2grid import LightSimBackend

    env = grid2op.make(env_name, test=True, backend=LightSimBackend())
    actions = {
        s: list(env.action_space.get_all_unitary_topologies_set(env.action_space, sub_id=s))
        for s in subs
    }
    return env, actions


def raw_loop(env, actions, config: CollectConfig, chronic_ids, lengths, subs) -> int:
    """The plain Grid2Op loop with the same episode starts and action draws; transitions."""
    starts = np.array([n - 1 for n in lengths])
    offsets = np.concatenate([[0], np.cumsum(starts)])
    do_nothing = env.action_space({})
    transitions = 0
    for sub in subs:
        for episode in range(config.n_episodes):
            rng = np.random.default_rng(episode_seed_sequence(config.seed, sub, episode))
            env_seed = int(rng.integers(0, 2**31 - 1))
            flat = int(rng.integers(0, offsets[-1]))
            chronic = int(np.searchsorted(offsets, flat, side="right") - 1)
            init_ts = flat - int(offsets[chronic])
            options = {"time serie id": chronic_ids[chronic]}
            if init_ts > 0:
                options["init ts"] = init_ts
            obs = env.reset(seed=env_seed, options=options)
            for _ in range(config.max_steps):
                act = rng.random() < config.explore
                index = int(rng.integers(len(actions[sub]))) if act else -1
                obs, _, done, _ = env.step(actions[sub][index] if act else do_nothing)
                transitions += 1
                if done:
                    break
    return transitions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="l2rpn_case14_sandbox")
    parser.add_argument("--episodes", type=int, default=40, help="per selected substation")
    parser.add_argument("--max-steps", type=int, default=50)
    parser.add_argument("--explore", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=29)
    parser.add_argument("--repeats", type=int, default=2, help="best of, alternated")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    load = os.getloadavg()[0]

    config = CollectConfig(
        env_name=args.env,
        n_episodes=args.episodes,
        max_steps=args.max_steps,
        explore=args.explore,
        seed=args.seed,
    )
    info = grid_info(args.env, config.min_elements, config.backend)
    chunks: list[Chunk] = make_chunks(config, info)
    subs = info.selected

    def time_raw() -> tuple[float, int]:
        tic = time.perf_counter()
        n = raw_loop(env, actions, config, info.chronic_ids, info.chronic_lengths, subs)
        return time.perf_counter() - tic, n

    def time_chunks() -> tuple[float, int]:
        tic = time.perf_counter()
        n = sum(len(run_chunk(c)["action"]) for c in chunks)
        return time.perf_counter() - tic, n

    def time_collect() -> tuple[float, int]:
        with tempfile.TemporaryDirectory() as tmp:
            tic = time.perf_counter()
            path = collect(config, tmp, parallel=ParallelConfig(workers=1), progress=False)
            seconds = time.perf_counter() - tic
            import pyarrow.parquet as pq

            return seconds, pq.read_metadata(path).num_rows

    # warm-up (env creation, caches): one chunk through each path
    env, actions = raw_env(args.env, subs)
    raw_loop(
        env,
        actions,
        CollectConfig(env_name=args.env, n_episodes=1, max_steps=2),
        info.chronic_ids,
        info.chronic_lengths,
        subs[:1],
    )
    run_chunk(chunks[0])

    best: dict[str, tuple[float, int]] = {}
    for _ in range(args.repeats):
        for name, fn in (("raw", time_raw), ("run_chunk", time_chunks), ("collect", time_collect)):
            seconds, n = fn()
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, n)

    raw_rate = best["raw"][1] / best["raw"][0]
    print(
        f"{args.env}: {len(subs)} substations x {args.episodes} episodes, max {args.max_steps}"
        f" steps, explore {args.explore}, seed {args.seed}; best of {args.repeats}; "
        f"load at start {load:.1f}"
    )
    print("| path | transitions | seconds | transitions/s | vs raw LightSim |")
    print("|---|---|---|---|---|")
    for name, (seconds, n) in best.items():
        rate = n / seconds
        print(f"| {name} | {n} | {seconds:.2f} | {rate:.0f} | {rate / raw_rate:.2f} |")


if __name__ == "__main__":
    main()
