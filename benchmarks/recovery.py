"""Exact recovery of random unequal block structures: zones, components, the seed's quantile.

For each of ``--n-structures`` random structures (2-5 blocks of 2-5 state and 1-3 action
variables, binary for even structure numbers and ternary for odd ones) and both generators
(copy, factored), roll out ``--steps`` transitions, compute the raw and shuffle-corrected MI
matrices and the permutation null once, then binarize with

* ``significance``: raw MI vs the pooled Pearson-III permutation null, Holm at ``--alpha``;
* ``quantile``: the seed's rule, per-column quantile 0.7 of the shuffle-corrected matrix;

then clusters: connected components (``significance``, ``quantile``) or the default spectral
zones on the significant edges weighed by MI (``significance+zones``, what the commands do);

and score ``score_recovery(...).exact``. Prints the table overall and by n_values / number
of blocks, plus the seed's default case, and the total time.

    .venv/bin/python benchmarks/recovery.py --n-structures 50 --workers 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from gridfactor.envs.synthetic import SEED_BLOCKS, make_synthetic, random_unequal_blocks
from gridfactor.factorize.pipeline import ZoneRule, adjacency_factorization, zone_factorization
from gridfactor.factorize.recovery import score_recovery
from gridfactor.factorize.significance import (
    permutation_null,
    significance_test,
)
from gridfactor.factorize.threshold import binarize_quantile
from gridfactor.mi import unbiased_mi_matrix
from gridfactor.parallel import ParallelConfig

# "factored" mixes the seed's random tables with a monotone part (randomness 0.5) so every
# input has a pairwise footprint; "factored-random" is the seed's purely random tables,
# which for large blocks no pairwise-MI rule can recover (see FactoredMDP's docstring).
GENERATORS = {
    "copy": ("copy", {}),
    "factored": ("factored", {"randomness": 0.5}),
    "factored-random": ("factored", {"randomness": 1.0}),
}


def run_case(
    generator: str,
    n_state: int,
    n_action: int,
    blocks,
    *,
    n_values: int,
    steps: int,
    seed: int,
    args: argparse.Namespace,
    parallel: ParallelConfig,
) -> list[dict]:
    name, options = GENERATORS[generator]
    env = make_synthetic(
        name,
        n_state,
        n_action,
        blocks,
        n_values=n_values,
        noise=args.noise,
        seed=seed,
        **options,
    )
    data = env.rollout(steps, seed=seed)
    targets = data["s_next"].astype(float)
    inputs = np.concatenate([data["s"], data["a"]], axis=1).astype(float)
    truth = env.ground_truth
    names = (truth.target_names, truth.input_names)
    result = unbiased_mi_matrix(
        targets, inputs, seed=seed, k=args.k, parallel=parallel, progress=False
    )
    null = permutation_null(
        targets,
        inputs,
        n_permutations=args.n_permutations,
        seed=seed,
        k=args.k,
        parallel=parallel,
        progress=False,
    )
    test = significance_test(result.mi, null, alpha=args.alpha, min_mi=args.min_mi)
    quantile = binarize_quantile(result.unbiased, 0.7)
    rules = {
        # the product's default: significant edges, spectral zones weighed by MI
        "significance+zones": (
            test.adjacency,
            zone_factorization(result.unbiased, test.adjacency, *names, ZoneRule(), seed=seed),
        ),
        "significance": (test.adjacency, adjacency_factorization(test.adjacency, *names)),
        "quantile": (quantile, adjacency_factorization(quantile, *names)),
    }
    rows = []
    for rule, (adjacency, found) in rules.items():
        score = score_recovery(found, truth, adjacency, env.relation)
        rows.append(
            {
                "generator": generator,
                "n_values": n_values,
                "n_blocks": len(blocks),
                "n_pairs": adjacency.size,
                "rule": rule,
                "exact": score.exact,
                "false_edges": int((adjacency & ~env.relation).sum()),
                "missed_edges": int((~adjacency & env.relation).sum()),
            }
        )
    return rows


def summarize(table: pd.DataFrame) -> str:
    lines = []
    for by in (["generator"], ["generator", "n_values"], ["generator", "n_blocks"]):
        pivot = table.pivot_table(index=by, columns="rule", values="exact", aggfunc="mean")
        pivot["cases"] = table[table.rule == "quantile"].groupby(by).size()
        lines.append(pivot.round(3).to_string())
    overall = table.groupby("rule")[["exact", "false_edges", "missed_edges"]].mean()
    lines.append("overall (exact fraction, mean false / missed edges per case):")
    lines.append(overall.round(3).to_string())
    return "\n\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-structures", type=int, default=50)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seed-steps", type=int, default=100_000, help="seed case steps")
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--n-permutations", type=int, default=30)
    parser.add_argument("--min-mi", type=float, default=0.0)
    parser.add_argument("--noise", type=float, default=0.0)
    parser.add_argument("--k", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--out", default=None, help="optional CSV of per-case results")
    args = parser.parse_args()
    parallel = ParallelConfig(workers=args.workers)
    start = time.perf_counter()

    rows = []
    for number in range(args.n_structures):
        rng = np.random.default_rng([args.seed, number])
        n_state, n_action, blocks = random_unequal_blocks(rng)
        n_values = 2 if number % 2 == 0 else 3
        for generator in GENERATORS:
            case = run_case(
                generator,
                n_state,
                n_action,
                blocks,
                n_values=n_values,
                steps=args.steps,
                seed=args.seed * 1000 + number,
                args=args,
                parallel=parallel,
            )
            rows += case
            verdict = ", ".join(f"{r['rule']}={'ok' if r['exact'] else 'FAIL'}" for r in case)
            print(
                f"[{time.perf_counter() - start:7.0f}s] structure {number} {generator} "
                f"({n_state} s, {n_action} a, {len(blocks)} blocks, {n_values} values): "
                f"{verdict}",
                flush=True,
            )
    table = pd.DataFrame(rows)
    if args.out:
        from gridfactor.runs import write_csv

        write_csv(args.out, table)
    if len(table):
        print(
            f"\n{args.n_structures} random structures x {len(GENERATORS)} generators, "
            f"{args.steps} steps"
        )
        print(summarize(table))

    if args.seed_steps > 0:
        print(f"\nseed case (SEED_BLOCKS, 5 state / 3 action, binary, {args.seed_steps} steps):")
        for generator in GENERATORS:
            case = run_case(
                generator,
                5,
                3,
                SEED_BLOCKS,
                n_values=2,
                steps=args.seed_steps,
                seed=args.seed,
                args=args,
                parallel=parallel,
            )
            for r in case:
                print(f"  {generator:8s} {r['rule']:12s} exact={r['exact']}")
    print(f"\ntotal time {time.perf_counter() - start:.0f} s (2 shared cores, noisy)")


if __name__ == "__main__":
    main()
