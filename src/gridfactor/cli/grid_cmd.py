"""`gridfactor collect`, `gridfactor factorize`, `gridfactor factorize-stability`: Grid2Op."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from gridfactor.cli.main import (
    ALPHA,
    MIN_MI,
    OVERWRITE,
    RAY_ADDRESS,
    RESUME,
    SEED,
    THRESHOLD,
    WORKERS,
    app,
)
from gridfactor.parallel import ParallelConfig

ENV = typer.Option("l2rpn_case14_sandbox", "--env", help="Grid2Op env (offline test envs).")
N_EPISODES = typer.Option(1000, "--n-episodes", help="Episodes PER selected substation.")
MAX_STEPS = typer.Option(100, "--max-steps", help="Episode step limit.")
EXPLORE = typer.Option(
    1.0, "--explore", help="Probability of a random topology action per step (else do nothing)."
)
MIN_ELEMENTS = typer.Option(
    4, "--min-elements", help="Act on substations with at least this many elements."
)
N_SAMPLES = typer.Option(50_000, "--n-samples", help="Max transitions per substation for MI.")
QUANTILE = typer.Option(0.7, "--quantile", help="Quantile rule: per-substation quantile.")
N_PERMUTATIONS = typer.Option(
    10, "--n-permutations", help="Significance rule: null replicates per substation."
)
K = typer.Option(None, "--k", help="KSG neighbours (default: the estimator's default).")


def _config(
    env,
    n_episodes,
    n_samples,
    seed,
    quantile,
    max_steps,
    explore,
    min_elements,
    k,
    threshold,
    alpha,
    n_permutations,
    min_mi,
):
    from gridfactor.grid.pipeline import GridFactorizeConfig

    return GridFactorizeConfig(
        env_name=env,
        n_episodes=n_episodes,
        n_samples=n_samples,
        seed=seed,
        quantile=quantile,
        threshold=threshold,
        alpha=alpha,
        n_permutations=n_permutations,
        min_mi=min_mi,
        max_steps=max_steps,
        explore=explore,
        min_elements=min_elements,
        k=k,
    ).validate()


def _print_result(result) -> None:
    info = result.dataset_info
    typer.echo(
        f"dataset: {info['n_rows']} transitions, mean episode length "
        f"{info['mean_episode_length']:.1f} steps"
    )
    shown = [result.factorization]
    if result.quantile_factorization is not None:
        shown.append(result.quantile_factorization)
    for factorization in shown:
        meta = factorization.meta
        rule = (
            f"significance, alpha={meta['alpha']:g}"
            if meta["threshold"] == "significance"
            else f"quantile {meta['quantile']:g}"
        )
        typer.echo(
            f"{rule}: {len(factorization.clusters)} clusters (lines <- substations; "
            "substations not acted on are left alone):"
        )
        for line in factorization.describe():
            if "<- inputs []" not in line and "targets []" not in line:
                typer.echo(f"  {line}")


@app.command("collect")
def collect_cmd(
    env: str = ENV,
    n_episodes: int = N_EPISODES,
    max_steps: int = MAX_STEPS,
    explore: float = EXPLORE,
    min_elements: int = MIN_ELEMENTS,
    seed: int = SEED,
    out: Path = typer.Option(Path("runs/collect"), "--out", help="Run directory."),
    workers: int = WORKERS,
    ray_address: str = RAY_ADDRESS,
    resume: bool = RESUME,
    overwrite: bool = OVERWRITE,
) -> None:
    """Collect random-topology (s, a, s') episodes per substation into a Parquet dataset."""
    from dataclasses import asdict

    from gridfactor.collect import CollectConfig, collect, describe_action_effects, load_dataset
    from gridfactor.envs.grid2op_env import TOPOLOGY, check_action_support
    from gridfactor.runs import prepare_run_dir

    config = CollectConfig(
        env_name=env,
        n_episodes=n_episodes,
        max_steps=max_steps,
        explore=explore,
        min_elements=min_elements,
        seed=seed,
    ).validate()
    check_action_support(env, TOPOLOGY, "gridfactor collect")  # before the run dir / Ray
    out_dir = prepare_run_dir(
        out, {"command": "collect", **asdict(config)}, resume=resume, overwrite=overwrite
    )
    start = time.perf_counter()
    path = collect(config, out_dir, parallel=ParallelConfig(workers, ray_address))
    _, sidecar = load_dataset(out_dir)
    typer.echo(
        f"{sidecar['n_rows']} transitions from {sidecar['n_episodes_total']} episodes "
        f"(mean length {sidecar['mean_episode_length']:.1f} steps) in "
        f"{time.perf_counter() - start:.0f} s"
    )
    for line in describe_action_effects(sidecar):
        typer.echo(line)
    typer.echo(f"wrote {path} and {out_dir / 'dataset.json'}")


@app.command("factorize")
def factorize_cmd(
    env: str = ENV,
    n_episodes: int = N_EPISODES,
    n_samples: int = N_SAMPLES,
    threshold: str = THRESHOLD,
    quantile: float = QUANTILE,
    alpha: float = ALPHA,
    n_permutations: int = N_PERMUTATIONS,
    min_mi: float = MIN_MI,
    max_steps: int = MAX_STEPS,
    explore: float = EXPLORE,
    min_elements: int = MIN_ELEMENTS,
    k: int = K,
    seed: int = SEED,
    out: Path = typer.Option(Path("runs/factorize"), "--out", help="Run directory."),
    workers: int = WORKERS,
    ray_address: str = RAY_ADDRESS,
    resume: bool = RESUME,
    overwrite: bool = OVERWRITE,
) -> None:
    """Factorize a Grid2Op grid into clusters of lines and substations (MI of random
    topology actions on next line loadings)."""
    from gridfactor.collect import describe_action_effects
    from gridfactor.envs.grid2op_env import TOPOLOGY, check_action_support
    from gridfactor.grid.pipeline import factorize_grid

    config = _config(
        env,
        n_episodes,
        n_samples,
        seed,
        quantile,
        max_steps,
        explore,
        min_elements,
        k,
        threshold,
        alpha,
        n_permutations,
        min_mi,
    )
    check_action_support(env, TOPOLOGY, "gridfactor factorize")  # before the run dir / Ray
    start = time.perf_counter()
    result = factorize_grid(
        config,
        out,
        parallel=ParallelConfig(workers, ray_address),
        resume=resume,
        overwrite=overwrite,
    )
    _print_result(result)
    for line in describe_action_effects(json.loads((result.out_dir / "dataset.json").read_text())):
        typer.echo(line)
    typer.echo(f"done in {time.perf_counter() - start:.0f} s; files in {result.out_dir}:")
    typer.echo("  " + ", ".join(p.name for p in result.files))


@app.command("factorize-stability")
def factorize_stability_cmd(
    env: str = ENV,
    n_episodes: int = N_EPISODES,
    n_samples: int = N_SAMPLES,
    threshold: str = THRESHOLD,
    quantile: float = QUANTILE,
    alpha: float = ALPHA,
    n_permutations: int = N_PERMUTATIONS,
    min_mi: float = MIN_MI,
    max_steps: int = MAX_STEPS,
    explore: float = EXPLORE,
    min_elements: int = MIN_ELEMENTS,
    k: int = K,
    seed: int = SEED,
    stability_seeds: int = typer.Option(
        3, "--stability-seeds", help="Number of seeds (seed, seed+1, ...)."
    ),
    out: Path = typer.Option(Path("runs/stability"), "--out", help="Run directory."),
    workers: int = WORKERS,
    ray_address: str = RAY_ADDRESS,
    resume: bool = RESUME,
    overwrite: bool = OVERWRITE,
) -> None:
    """Factorize with several seeds and print the pairwise adjusted Rand index of the
    substation clusterings."""
    from gridfactor.envs.grid2op_env import TOPOLOGY, check_action_support
    from gridfactor.grid.stability import stability

    config = _config(
        env,
        n_episodes,
        n_samples,
        seed,
        quantile,
        max_steps,
        explore,
        min_elements,
        k,
        threshold,
        alpha,
        n_permutations,
        min_mi,
    )
    check_action_support(env, TOPOLOGY, "gridfactor factorize-stability")  # before any work
    seeds = [seed + i for i in range(stability_seeds)]
    runs, ari = stability(
        config,
        seeds,
        out,
        parallel=ParallelConfig(workers, ray_address),
        resume=resume,
        overwrite=overwrite,
    )
    for run_seed, run in zip(seeds, runs, strict=True):
        typer.echo(f"seed {run_seed}:")
        for line in run.factorization.describe():
            typer.echo(f"  {line}")
    typer.echo("pairwise adjusted Rand index (selected substations' cluster labels):")
    for a in range(len(seeds)):
        for b in range(a + 1, len(seeds)):
            typer.echo(f"  seed {seeds[a]} vs {seeds[b]}: {ari[a, b]:.3f}")
    lines_ari = json.loads((Path(out) / "stability.json").read_text())["adjusted_rand_index_lines"]
    typer.echo("pairwise adjusted Rand index of the line cluster labels:")
    for a in range(len(seeds)):
        for b in range(a + 1, len(seeds)):
            typer.echo(f"  seed {seeds[a]} vs {seeds[b]}: {lines_ari[a][b]:.3f}")
    typer.echo(f"wrote {Path(out) / 'stability.json'}")
