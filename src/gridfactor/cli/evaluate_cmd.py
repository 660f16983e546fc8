"""``gridfactor evaluate`` and ``gridfactor compare``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from gridfactor.agents.high_level import DANGER
from gridfactor.cli.app import app
from gridfactor.cli.options import HELD_OUT, OVERWRITE, RAY_ADDRESS, RESUME, SEED, WORKERS


@app.command("evaluate")
def evaluate_cmd(
    run: list[Path] = typer.Option(
        [], "--run", help="Training run directory to evaluate (repeatable)."
    ),
    submission: list[Path] = typer.Option(
        [],
        "--submission",
        help="L2RPN submission folder (its __init__.py defines make_agent(env, path); "
        "gridfactor export folders too), labelled by its name (repeatable).",
    ),
    agents: str = typer.Option(
        "do-nothing,reconnect,expert,random",
        "--agents",
        help="Baselines, comma-separated: do-nothing,reconnect,expert,expert-zone,"
        "expert-recovery,expert-zone-recovery (the experts also putting split substations "
        "back when safe),random,expertop (l2rpn-baselines' ExpertAgent: pip install "
        "'gridfactor[peers]'); '' for none.",
    ),
    env: str = typer.Option(
        None, "--env", help="Grid2Op env (default: the runs' env, else rte_case14_realistic)."
    ),
    n_episodes: int = typer.Option(10, "--n-episodes", help="Held-out scenarios."),
    episode_steps: int = typer.Option(
        288, "--episode-steps", help="Steps per episode (288 = 1 day; 0 = whole window)."
    ),
    chronics: str = typer.Option(
        None,
        "--chronics",
        help="Held-out chronic ids, e.g. 0,1 or 3-5 (default: the runs' "
        "validation split, else gridfactor train's default: the last 20%% of the chronics, or "
        "of the time steps with a single chronic).",
    ),
    window: str = typer.Option(
        None, "--window", help="Held-out time window as fractions of a chronic, e.g. 0.75:1."
    ),
    danger: float = typer.Option(DANGER, "--danger", help="Baselines' rho danger threshold."),
    safe_rho: float = typer.Option(
        0.8,
        "--safe-rho",
        help="The -recovery experts put a substation back only if the simulated max rho "
        "stays below this.",
    ),
    checkpoint: str = typer.Option(
        None,
        "--checkpoint",
        help="Checkpoint(s) of the runs, e.g. final,imitation (PPO vs its clone, paired).",
    ),
    factorization: Path = typer.Option(
        None, "--factorization", help="Zones for expert-zone (default: a distributed run's)."
    ),
    guard: str = typer.Option(
        "0",
        "--guard",
        help="Trained runs: simulate the policy's top k actions and play the best; "
        "comma-separated sizes, e.g. 0,3,10 (0 = pure policy).",
    ),
    coordinator: str = typer.Option(
        "capa",
        "--coordinator",
        help="Distributed runs: who decides when unsafe: capa (the zone of the substation "
        "CAPA ranks first) or propose (every zone proposes its action, the best simulated "
        "is played); comma-separated to evaluate both, e.g. capa,propose.",
    ),
    reconnect: str = typer.Option(
        None,
        "--reconnect",
        help="Trained runs: their reconnection rule when safe (always, checked, never), "
        "comma-separated to evaluate several (default: each run's own).",
    ),
    wait_confidence: str = typer.Option(
        "0",
        "--wait-confidence",
        help="Trained runs: do nothing only when the policy gives it at least this "
        "probability, else play its most likely action; comma-separated, e.g. 0,0.7 "
        "(0 = the greedy policy).",
    ),
    score: str = typer.Option(
        None,
        "--score",
        help="Also score every agent with grid2op's L2RPN scorer of this name on the same "
        "scenarios: l2rpn2020 or wcci2022 (any env), icaps2021 (envs with alarms), idf2023 "
        "(envs with alerts).",
    ),
    save_episodes: bool = typer.Option(
        False,
        "--save-episodes",
        help="Also save every episode as grid2op EpisodeData in OUT/grid2op/<agent>/ "
        "(open with grid2viz --agents_path OUT/grid2op).",
    ),
    augment: float = typer.Option(
        0.0,
        "--augment",
        help="0: the chronics as they are; A > 0: every scenario plays a perturbed copy "
        "(loads scaled by a level in [1-A, 1+A], each load and generator by its own factor, "
        "drawn from the scenario's seed): e.g. --chronics 0 --augment 0.2 validates on "
        "perturbed training days.",
    ),
    out: Path = typer.Option(Path("runs/evaluate"), "--out", help="Run directory."),
    seed: int = SEED,
    workers: int = WORKERS,
    ray_address: str = RAY_ADDRESS,
    resume: bool = RESUME,
    overwrite: bool = OVERWRITE,
) -> None:
    """Evaluate trained runs and baselines on the same seeded held-out scenarios."""
    import pandas as pd

    from gridfactor.agents.baselines import parse_agent_names
    from gridfactor.evaluate.report import console_table, loss_moments, read_episodes
    from gridfactor.evaluate.runner import EvalConfig, evaluate
    from gridfactor.evaluate.scenarios import (
        parse_checkpoints,
        parse_chronics,
        parse_guards,
        parse_reconnects,
        parse_waits,
        parse_window,
    )
    from gridfactor.parallel import ParallelConfig

    config = EvalConfig(
        env_name=env,
        agents=tuple(parse_agent_names(agents, allow_empty=bool(run or submission))),
        runs=tuple(str(r) for r in run),
        submissions=tuple(str(s) for s in submission),
        n_episodes=n_episodes,
        episode_steps=episode_steps,
        chronics=parse_chronics(chronics),
        window=parse_window(window),
        danger=danger,
        safe_rho=safe_rho,
        seed=seed,
        checkpoints=parse_checkpoints(checkpoint),
        factorization=str(factorization) if factorization else None,
        guards=parse_guards(guard),
        coordinators=tuple(dict.fromkeys(c.strip() for c in coordinator.split(",") if c.strip())),
        reconnects=parse_reconnects(reconnect),
        waits=parse_waits(wait_confidence),
        score=score,
        save_episodes=save_episodes,
        augment=augment,
        out=str(out),
        parallel=ParallelConfig(workers, ray_address),
        resume=resume,
        overwrite=overwrite,
    )
    run_dir = evaluate(config)
    typer.echo(console_table(pd.read_csv(run_dir / "results.csv")))
    for line in loss_moments(read_episodes(run_dir)):
        typer.echo(line)
    typer.echo(f"results: {run_dir / 'results.md'} (per episode: {run_dir / 'episodes.csv'})")
    if save_episodes:
        from gridfactor.envs.grid2op_env import env_data_dir
        from gridfactor.evaluate.grid2op_runs import EPISODES_DIR

        env_dir = env_data_dir(json.loads((run_dir / "config.json").read_text())["env_name"])
        typer.echo(
            f"episodes: grid2viz --agents_path {run_dir / EPISODES_DIR} --env_path {env_dir}"
        )


@app.command("compare")
def compare_cmd(
    env: str = typer.Option(
        "rte_case14_realistic",
        "--env",
        help="Grid2Op env, factorized AND trained on (default: do-nothing fails there).",
    ),
    preset: str = typer.Option(
        "smoke",
        "--preset",
        help="smoke (minutes, CI), day (one-day episodes, minutes), demo (weeks, ~5.5 min: make "
        "demo) or paper (weeks, ~20 min on 2 cores).",
    ),
    demo_episodes: int = typer.Option(
        None, "--demo-episodes", help="Override the preset's demonstration episodes."
    ),
    timesteps: int = typer.Option(
        None, "--timesteps", help="Override the preset's training budget (decisions/agent)."
    ),
    eval_episodes: int = typer.Option(
        None, "--eval-episodes", help="Override the preset's number of evaluation episodes."
    ),
    dagger_rounds: int = typer.Option(
        None, "--dagger-rounds", help="Override the preset's DAgger rounds."
    ),
    anchor: float = typer.Option(
        None, "--anchor", help="Override the preset's KL anchor of PPO to the imitation."
    ),
    label_zones: str = typer.Option(
        None,
        "--label-zones",
        help="Override the preset's demonstration labels: all (every zone) or capa.",
    ),
    avoid_game_over: float = typer.Option(
        None,
        "--avoid-game-over",
        help="Override the preset's unlikelihood weight of game-over actions in cloning.",
    ),
    ranking: float = typer.Option(
        None,
        "--ranking",
        help="Override the preset's cloning target (0: the expert's choices; T > 0: its "
        "simulated ranking at temperature T).",
    ),
    reconnect: str = typer.Option(
        None,
        "--reconnect",
        help="Override the preset's reconnection rule when safe: always, checked, never.",
    ),
    augment: float = typer.Option(
        None,
        "--augment",
        help="Demonstrations, DAgger rounds and PPO play perturbed copies of the training "
        "chronics (see gridfactor demonstrate --augment); the evaluation does not.",
    ),
    danger: float = typer.Option(
        None,
        "--danger",
        help="Override the preset's trigger: the expert labels, the agents and the "
        "baselines' experts act when some line's rho >= DANGER (default 0.9).",
    ),
    guard: str = typer.Option(
        None,
        "--guard",
        help="Override the preset's guard sizes: the variants are also evaluated simulating "
        "their top k actions (comma-separated, e.g. 0,3; 0 = the pure policy, always in).",
    ),
    factorization: Path = typer.Option(
        None,
        "--factorization",
        help="Use these zones (a gridfactor factorization.json of the env) instead of the "
        "factorize stage.",
    ),
    held_out: str = HELD_OUT,
    score: str = typer.Option(
        None,
        "--score",
        help="Also score every agent with grid2op's L2RPN scorer of this name (see evaluate).",
    ),
    out: Path = typer.Option(Path("runs/compare"), "--out", help="Run directory."),
    seed: int = SEED,
    workers: int = WORKERS,
    ray_address: str = RAY_ADDRESS,
    resume: bool = RESUME,
    overwrite: bool = OVERWRITE,
) -> None:
    """factorize -> demonstrate -> imitate + PPO (distributed, centralized) -> evaluate."""
    from gridfactor.evaluate.scenarios import parse_chronics, parse_guards
    from gridfactor.experiments.compare import CompareConfig, compare
    from gridfactor.parallel import ParallelConfig

    overrides = {
        key: value
        for key, value in (
            ("timesteps", timesteps),
            ("eval_episodes", eval_episodes),
            ("demo_episodes", demo_episodes),
            ("dagger_rounds", dagger_rounds),
            ("anchor", anchor),
            ("label_zones", label_zones),
            ("avoid_game_over", avoid_game_over),
            ("ranking", ranking),
            ("reconnect", reconnect),
            ("augment", augment),
            ("danger", danger),
            ("guards", list(parse_guards(guard)) if guard is not None else None),
        )
        if value is not None
    }
    run_dir = compare(
        CompareConfig(
            env_name=env,
            preset=preset,
            seed=seed,
            overrides=overrides,
            factorization=str(factorization) if factorization else None,
            score=score,
            held_out=parse_chronics(held_out, "--held-out") or (),
            out=str(out),
            parallel=ParallelConfig(workers, ray_address),
            resume=resume,
            overwrite=overwrite,
        )
    )
    typer.echo(f"report: {run_dir / 'report.md'}")
