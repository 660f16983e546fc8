"""Zones benchmark: partition methods x priors on real grids, several seeds, one run.

For each grid and seed a ``gridfactor factorize`` run (resumable: an existing run directory
with the same settings is reused; ``--threshold quantile`` because the zones use only the
shuffle-corrected MI, never the threshold rule's null), then every partition method
(spectral, cocluster, louvain) with each prior (proximity, none) on its MI matrix:

* K chosen by ``auto``, zone sizes (acted-on substations), share of the MI inside zones;
* ARI of the zones against the physics reference (susceptance graph, same K), on the
  acted-on substations;
* the partition step's wall time;
* across seeds: the pairwise ARI of the zone labels of the acted-on substations;
* at K = 2 (fixed): the ARI against the physics reference (case14: the {0-4}/{5-13} split).

    .venv/bin/python benchmarks/zones.py --grids case14 neurips wcci --workers 2

Prints the table (and writes ``zones_benchmark_<grids>.csv`` into ``--out``) with the machine
load.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
import warnings

import numpy as np
import pandas as pd

from gridfactor.errors import UserError
from gridfactor.grid.pipeline import GridFactorizeConfig, factorize_grid
from gridfactor.parallel import ParallelConfig

# name -> (env, settings, seeds): case14 at the seed's settings; the larger grids at sizes
# that fit the 2-core machine (36 buses: the quick-check settings)
GRIDS = {
    "case14": ("l2rpn_case14_sandbox", {"n_episodes": 1000, "n_samples": 50_000}, (29, 30, 31)),
    "neurips": ("l2rpn_neurips_2020_track1", {"n_episodes": 150, "n_samples": 50_000}, (4, 5, 6)),
    "wcci": (
        "l2rpn_wcci_2022",
        {"n_episodes": 80, "n_samples": 50_000, "max_steps": 50},
        (1, 2, 3),
    ),
}
METHODS = ("spectral", "cocluster", "louvain")
PRIORS = ("proximity", "none")


def zone_rows(run, env, env_name: str, seed: int) -> list[dict]:
    from gridfactor.grid.zones import grid_zones

    fact = run.factorization
    measured = [
        s for s in fact.meta["selected_substations"] if s not in fact.meta["unmeasured_substations"]
    ]
    selected = list(fact.meta["selected_substations"])
    rows = []
    for method, prior in itertools.product(METHODS, PRIORS):
        tic = time.perf_counter()
        zones = grid_zones(
            env,
            run.unbiased,
            measured,
            selected,
            method=method,
            n_zones="auto",
            max_zones=None,
            seed=seed,
            env_name=env_name,
            meta={},
            prior=prior,
        )
        seconds = time.perf_counter() - tic
        labels = zones.factorization.input_labels()[selected]
        sizes = sorted((int((labels == z).sum()) for z in set(labels.tolist())), reverse=True)
        try:  # louvain may never land on exactly 2 zones
            k2 = grid_zones(
                env,
                run.unbiased,
                measured,
                selected,
                method=method,
                n_zones=2,
                max_zones=2,
                seed=seed,
                env_name=env_name,
                meta={},
                prior=prior,
            )
            k2_ari, k2_inside = k2.ari_physics, k2.inside_share
        except UserError:
            k2_ari = k2_inside = float("nan")
        rows.append(
            {
                "grid": env_name,
                "seed": seed,
                "method": method,
                "prior": prior,
                "K": zones.partition.n_zones,
                "sizes": "/".join(map(str, sizes)),
                "largest_share": sizes[0] / len(selected),
                "inside_share": zones.inside_share,
                "ari_physics": zones.ari_physics,
                "ari_physics_k2": k2_ari,
                "inside_share_k2": k2_inside,
                "partition_s": seconds,
                "labels": labels.tolist(),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", nargs="+", default=list(GRIDS), choices=list(GRIDS))
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--out", default="runs/bench-zones")
    parser.add_argument(
        "--n-seeds", type=int, default=None, help="only the first N seeds of each grid"
    )
    parser.add_argument(
        "--episodes",
        type=int,
        default=None,
        help="episodes per substation instead of each grid's default (runs go to "
        "<grid>-e<N>-s<seed>)",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(f"load average at start: {os.getloadavg()}", flush=True)
    from gridfactor.envs.grid2op_env import make_env

    parallel = ParallelConfig(workers=args.workers)
    rows, timings = [], []
    for grid in args.grids:
        env_name, settings, seeds = GRIDS[grid]
        name = grid
        if args.episodes is not None:
            settings = {**settings, "n_episodes": args.episodes}
            name = f"{grid}-e{args.episodes}"
        env = make_env(env_name)
        for seed in seeds[: args.n_seeds]:
            tic = time.perf_counter()
            config = GridFactorizeConfig(
                env_name=env_name, seed=seed, threshold="quantile", **settings
            )
            run = factorize_grid(
                config, f"{args.out}/{name}-s{seed}", parallel=parallel, resume=True
            )
            timings.append((grid, seed, time.perf_counter() - tic, run.dataset_info["n_rows"]))
            print(f"{grid} seed {seed}: factorize {timings[-1][2]:.0f} s", flush=True)
            rows += zone_rows(run, env, env_name, seed)
    table = pd.DataFrame(rows)
    # seed stability: pairwise ARI of the zone labels of the acted-on substations
    from sklearn.metrics import adjusted_rand_score

    stability = []
    for (grid, method, prior), group in table.groupby(["grid", "method", "prior"], sort=False):
        labels = group["labels"].tolist()
        pairs = [adjusted_rand_score(a, b) for a, b in itertools.combinations(labels, 2)]
        stability.append(
            {
                "grid": grid,
                "method": method,
                "prior": prior,
                "seed_ari_min": min(pairs) if pairs else np.nan,
                "seed_ari_mean": float(np.mean(pairs)) if pairs else np.nan,
            }
        )
    summary = (
        table.groupby(["grid", "method", "prior"], sort=False)
        .agg(
            K=("K", lambda k: "/".join(map(str, k))),
            sizes=("sizes", lambda s: " ".join(s)),
            largest_share=("largest_share", "max"),
            inside_share=("inside_share", "mean"),
            ari_physics=("ari_physics", "mean"),
            ari_physics_k2=("ari_physics_k2", "mean"),
            partition_s=("partition_s", "max"),
        )
        .reset_index()
        .merge(pd.DataFrame(stability), on=["grid", "method", "prior"])
    )
    os.makedirs(args.out, exist_ok=True)
    # one file pair per grid selection: a run on other grids does not overwrite this one
    tag = "-".join(args.grids) + ("" if args.episodes is None else f"-e{args.episodes}")
    table.drop(columns="labels").to_csv(f"{args.out}/zones_benchmark_{tag}.csv", index=False)
    summary.to_csv(f"{args.out}/zones_summary_{tag}.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary.round(3).to_string(index=False))
    for grid, seed, seconds, n_rows in timings:
        print(f"{grid} seed {seed}: {n_rows} transitions, factorize {seconds:.0f} s")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
