"""`gridfactor factorize-data`: factorize your own transitions file."""

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


@app.command("factorize-data")
def factorize_data(
    file: Path = typer.Argument(
        ...,
        help="Transitions: .npz, .csv or .parquet with columns s_<name>, a_<name>, s_next_<name>.",
    ),
    out: Path = typer.Option(None, "--out", help="Run directory (default runs/<file stem>)."),
    threshold: str = THRESHOLD,
    quantile: float = QUANTILE,
    alpha: float = ALPHA,
    n_permutations: int = N_PERMUTATIONS,
    min_mi: float = MIN_MI,
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
    """Estimate the shuffle-corrected MI of next state vs (state, action) and cluster it."""
    from dataclasses import asdict

    from gridfactor.factorize.data import load_transitions
    from gridfactor.factorize.partition import check_n_zones
    from gridfactor.factorize.pipeline import ThresholdRule, ZoneRule
    from gridfactor.factorize.run import describe_result, factorize_transitions
    from gridfactor.mi import default_k
    from gridfactor.runs import prepare_run_dir

    rule = ThresholdRule(threshold, quantile, alpha, n_permutations, min_mi)
    zones = ZoneRule(partition, check_n_zones(n_zones), max_zones)
    transitions = load_transitions(file)
    n_rows = len(transitions.states)
    k_used = default_k(n_rows) if k is None else k
    if not 1 <= k_used < n_rows:
        raise UserError(
            f"{file.name} has {n_rows} rows, too few for k={k_used} neighbours; "
            "give more rows or a smaller --k"
        )
    out = out or Path("runs") / file.stem
    config = {
        "file": str(file.resolve()),
        "rule": asdict(rule),
        "zones": asdict(zones),
        "n_bootstrap": n_bootstrap,
        "k": k,
        "seed": seed,
        "n_rows": n_rows,
        "columns": transitions.state_names + transitions.action_names,
    }
    out_dir = prepare_run_dir(out, config, resume=resume, overwrite=overwrite)
    typer.echo(
        f"{n_rows} transitions, {len(transitions.state_names)} state and "
        f"{len(transitions.action_names)} action variables (k={k_used})"
    )
    _, results = factorize_transitions(
        transitions,
        out_dir,
        rule=rule,
        zones=zones,
        seed=seed,
        k=k,
        n_bootstrap=n_bootstrap,
        parallel=ParallelConfig(workers=workers, ray_address=ray_address),
        meta={"source": str(file)},
    )
    for line in describe_result(results[0]):
        typer.echo(line)
    typer.echo(f"wrote {out_dir}/factorization.json, mi.npy, unbiased_mi.npy, *.png")
