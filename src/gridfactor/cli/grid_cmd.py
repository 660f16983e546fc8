"""`gridfactor collect`, `gridfactor factorize`, `gridfactor factorize-stability`: Grid2Op."""

from __future__ import annotations

import functools
import inspect
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import typer

from gridfactor.cli.app import app
from gridfactor.cli.options import (
    ALPHA,
    GRID_PARTITION,
    MAX_ZONES,
    MIN_MI,
    N_ZONES,
    OVERWRITE,
    RAY_ADDRESS,
    RESUME,
    SEED,
    THRESHOLD,
    WORKERS,
)
from gridfactor.parallel import ParallelConfig

ENV = typer.Option("l2rpn_case14_sandbox", "--env", help="Grid2Op env (offline test envs).")
N_EPISODES = typer.Option(1000, "--n-episodes", help="Episodes PER selected substation.")
MAX_EPISODES = typer.Option(
    1000,
    "--n-episodes",
    help="Episodes PER selected substation, at most: a substation stops once it has "
    "--n-samples transitions without game over.",
)
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
PRIOR = typer.Option(
    "proximity",
    "--prior",
    help="Zones: weigh MI by grid distance (proximity, default) or not (none).",
)


def _factorize_options(
    env: str = ENV,
    n_episodes: int = MAX_EPISODES,
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
    partition: str = GRID_PARTITION,
    n_zones: str = N_ZONES,
    max_zones: int = MAX_ZONES,
    prior: str = PRIOR,
    seed: int = SEED,
) -> Any:
    """The options of a grid factorization, declared once: -> GridFactorizeConfig."""
    from gridfactor.factorize.partition import check_n_zones
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
        partition=partition,
        n_zones=check_n_zones(n_zones),
        max_zones=max_zones,
        prior=prior,
    ).validate()


def _with_factorize_options(command: Callable[..., None]) -> Callable[..., None]:
    """``command(config, **own)`` as a typer command taking the factorization options (of
    :func:`_factorize_options`, first in ``--help``) and its own: typer reads the
    signature and the annotations, so both are given the two lists joined."""
    shared = list(inspect.signature(_factorize_options).parameters.values())
    own = [p for p in inspect.signature(command).parameters.values() if p.name != "config"]

    @functools.wraps(command)
    def run(**options: Any) -> None:
        config = _factorize_options(**{p.name: options.pop(p.name) for p in shared})
        command(config, **options)

    run.__signature__ = inspect.Signature(shared + own)  # type: ignore[attr-defined]
    run.__annotations__ = {
        **_factorize_options.__annotations__,
        **command.__annotations__,
        "return": "None",
    }
    run.__annotations__.pop("config", None)
    return run


def _print_result(result) -> None:
    info = result.dataset_info
    typer.echo(
        f"dataset: {info['n_rows']} transitions, mean episode length "
        f"{info['mean_episode_length']:.1f} steps"
    )
    shown = [f for f in (result.components_factorization, result.quantile_factorization) if f]
    if result.zones is None:
        shown = [result.factorization, *shown[1:]]
    for factorization in shown:
        meta = factorization.meta
        rule = (
            f"significance, alpha={meta['alpha']:g}"
            if meta["threshold"] == "significance"
            else f"quantile {meta['quantile']:g}"
        )
        n_joint = sum(1 for c in factorization.clusters if c.targets and c.inputs)
        typer.echo(
            f"{rule} + connected components: {len(factorization.clusters)} clusters, "
            f"{n_joint} with lines and substations:"
        )
        for line in factorization.describe():
            if "<- inputs []" not in line and "targets []" not in line:
                typer.echo(f"  {line}")
    if result.zones is not None:
        _print_zones(result.zones)


def _print_zones(zones) -> None:
    part = zones.partition
    prior = zones.factorization.meta["zones"]["prior"]
    weighted = "proximity-weighted " if prior == "proximity" else ""
    names = zones.factorization.input_names
    typer.echo(
        f"zones ({part.method}, K = {part.n_zones}, {part.rule}): "
        f"{100 * zones.inside_share:.0f}% of the MI inside zones, "
        f"ARI vs physics reference {zones.ari_physics:.2f}"
    )
    typer.echo(
        f"  K curve ({weighted}MI inside / modularity): "
        + ", ".join(
            f"K={s.n_zones} {100 * s.inside_share:.0f}%/{s.modularity:.3f}" for s in part.curve
        )
    )
    for line in zones.factorization.describe():
        if "<- inputs []" not in line:
            typer.echo(f"  {line.replace('cluster', 'zone', 1)}")
    physics = zones.physics
    typer.echo(
        "  physics reference (susceptance graph, same K): "
        + " / ".join("{" + ", ".join(names[s] for s in subs) + "}" for subs in physics.zones())
    )


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
@_with_factorize_options
def factorize_cmd(
    config: Any,
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

    # before the run dir and Ray
    check_action_support(config.env_name, TOPOLOGY, "gridfactor factorize")
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
@_with_factorize_options
def factorize_stability_cmd(
    config: Any,
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

    check_action_support(config.env_name, TOPOLOGY, "gridfactor factorize-stability")
    seeds = [config.seed + i for i in range(stability_seeds)]
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
            if "<- inputs []" not in line and "targets []" not in line:
                typer.echo(f"  {line}")
    kind = "zone" if config.partition != "components" else "cluster"
    typer.echo(f"pairwise adjusted Rand index of the {kind}s (acted-on substations' labels):")
    for a in range(len(seeds)):
        for b in range(a + 1, len(seeds)):
            typer.echo(f"  seed {seeds[a]} vs {seeds[b]}: {ari[a, b]:.3f}")
    lines_ari = json.loads((Path(out) / "stability.json").read_text())["adjusted_rand_index_lines"]
    typer.echo(f"pairwise adjusted Rand index of the lines' {kind} labels:")
    for a in range(len(seeds)):
        for b in range(a + 1, len(seeds)):
            typer.echo(f"  seed {seeds[a]} vs {seeds[b]}: {lines_ari[a][b]:.3f}")
    typer.echo(f"wrote {Path(out) / 'stability.json'}")


@app.command("zones")
def zones_cmd(
    env: str = ENV,
    k: int = typer.Option(2, "--k", help="Number of zones."),
    seed: int = SEED,
    plot: Path = typer.Option(None, "--plot", help="Also draw the zones on the grid map (PNG)."),
) -> None:
    """Physics reference zones: spectral clustering of the grid's susceptance graph (no data)."""
    from gridfactor.envs.grid2op_env import cached_env, check_env_name
    from gridfactor.grid.physics import physics_zones, susceptance_matrix

    check_env_name(env)
    grid = cached_env(env, "lightsim")
    zones = physics_zones(grid, k, env_name=env, seed=seed)
    affinity = susceptance_matrix(grid)
    same = zones.sub_labels[:, None] == zones.sub_labels[None, :]
    inside = float(affinity[same].sum() / affinity.sum())
    typer.echo(
        f"{env}: {zones.n_zones} zones from the susceptance graph ({100 * inside:.0f}% of the "
        "total susceptance inside zones)"
    )
    for number, subs in enumerate(zones.zones()):
        lines = [str(grid.name_line[i]) for i in np.flatnonzero(zones.line_labels == number)]
        typer.echo(f"  zone {number}: substations {subs}; lines [{', '.join(lines)}]")
    if plot is not None:
        from gridfactor.factorization import Cluster, Factorization
        from gridfactor.grid.maps import plot_grid_clusters

        fact = Factorization(
            target_names=[str(n) for n in grid.name_line],
            input_names=[str(n) for n in grid.name_sub],
            clusters=[
                Cluster(tuple(int(i) for i in np.flatnonzero(zones.line_labels == z)), tuple(subs))
                for z, subs in enumerate(zones.zones())
            ],
        )
        path = plot_grid_clusters(env, fact, plot, title=f"{env}: physics zones, K = {k}")
        typer.echo(f"wrote {path}")
