"""`gridfactor synthetic`: recover known blocks of synthetic factored MDPs."""

from __future__ import annotations

from pathlib import Path

import typer

from gridfactor.cli.app import app
from gridfactor.cli.options import (
    ALPHA,
    MAX_ZONES,
    MIN_MI,
    N_BOOTSTRAP,
    N_PERMUTATIONS,
    N_ZONES,
    OVERWRITE,
    PARTITION,
    QUANTILE,
    RAY_ADDRESS,
    RESUME,
    SEED,
    THRESHOLD,
    WORKERS,
)
from gridfactor.errors import UserError
from gridfactor.parallel import ParallelConfig


@app.command("synthetic")
def synthetic(
    out: Path = typer.Option(Path("runs/synthetic"), "--out", help="Run directory."),
    generator: str = typer.Option(
        "both", "--generator", help="copy, factored or both (the seed's two generators)."
    ),
    n_state: int = typer.Option(None, "--n-state", help="Random structure: state variables."),
    n_action: int = typer.Option(None, "--n-action", help="Random structure: action variables."),
    n_blocks: int = typer.Option(None, "--n-blocks", help="Random structure: number of blocks."),
    n_values: int = typer.Option(2, "--n-values", help="Values per variable (2 = binary)."),
    noise: float = typer.Option(0.0, "--noise", help="Probability a next-state value is random."),
    randomness: float = typer.Option(
        1.0,
        "--randomness",
        help="factored: weight of the purely random table (1 = the seed's; below 1 mixes in "
        "a monotone table so every input has a pairwise footprint).",
    ),
    steps: int = typer.Option(100_000, "--steps", help="Transitions under random actions."),
    threshold: str = THRESHOLD,
    quantile: float = QUANTILE,
    alpha: float = ALPHA,
    n_permutations: int = N_PERMUTATIONS,
    min_mi: float = MIN_MI,
    quantiles: str = typer.Option(
        "0.70:0.94:0.02",
        "--quantiles",
        help="Seed's rule at these quantiles, side by side: '0.7,0.8' or 'start:stop:step'.",
    ),
    partition: str = PARTITION,
    n_zones: str = N_ZONES,
    max_zones: int = MAX_ZONES,
    n_bootstrap: int = N_BOOTSTRAP,
    k: int = typer.Option(None, "--k", help="KSG neighbours (default N/20)."),
    seed: int = SEED,
    workers: int = WORKERS,
    ray_address: str = RAY_ADDRESS,
    resume: bool = RESUME,
    overwrite: bool = OVERWRITE,
) -> None:
    """Factorize synthetic MDPs with known blocks and report the recovery.

    Default: the seed's case (5 state, 3 action binary variables, 2 blocks, 100 000 steps),
    the significance rule, and the seed's quantile rule at 0.70 ... 0.94 side by side.
    """
    from gridfactor.factorization import Factorization
    from gridfactor.factorize.partition import check_n_zones
    from gridfactor.factorize.pipeline import ThresholdRule, ZoneRule
    from gridfactor.factorize.plots import format_table
    from gridfactor.factorize.synthetic import SyntheticConfig, parse_quantiles, run_synthetic

    generators = ("copy", "factored") if generator == "both" else (generator,)
    if any(g not in ("copy", "factored") for g in generators):
        raise UserError(f"unknown generator {generator!r}; use copy, factored or both")
    config = SyntheticConfig(
        generators=generators,
        n_state=n_state,
        n_action=n_action,
        n_blocks=n_blocks,
        n_values=n_values,
        noise=noise,
        randomness=randomness,
        steps=steps,
        quantiles=parse_quantiles(quantiles) if quantiles else (),
        rule=ThresholdRule(threshold, quantile, alpha, n_permutations, min_mi),
        zones=ZoneRule(partition, check_n_zones(n_zones), max_zones),
        n_bootstrap=n_bootstrap,
        k=k,
        seed=seed,
    )
    n_s, n_a, blocks = config.structure()
    typer.echo(f"true blocks ({n_s} state, {n_a} action variables):")
    for block in blocks:
        typer.echo(
            f"  [{', '.join(f's{i}' for i in block.states)}] "
            f"<- [{', '.join(f'a{j}' for j in block.actions)}]"
        )
    table = run_synthetic(
        config,
        out,
        parallel=ParallelConfig(workers=workers, ray_address=ray_address),
        resume=resume,
        overwrite=overwrite,
    )
    typer.echo(format_table(list(table.columns), table.itertuples(index=False)))
    for g in generators:
        typer.echo(f"\n{g}: {config.rule.label}:")
        for line in Factorization.load(out / g / "factorization.json").describe():
            typer.echo(f"  {line}")
    typer.echo(f"\nwrote {out}/recovery.csv and per generator: factorization*.json, *.png")
