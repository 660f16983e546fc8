"""``gridfactor train``: PPO agents per cluster (or one centralized agent) on a Grid2Op env."""

from __future__ import annotations

from pathlib import Path

import typer

from gridfactor.agents.high_level import DANGER
from gridfactor.cli.app import app
from gridfactor.cli.options import (
    AUGMENT,
    HELD_OUT,
    OVERWRITE,
    RAY_ADDRESS,
    RECONNECT,
    RESUME,
    SEED,
    WORKERS,
)


@app.command("train")
def train_command(
    factorization: Path = typer.Option(
        None, "--factorization", help="factorization.json of the grid (clusters of lines/subs)."
    ),
    centralized: bool = typer.Option(
        False,
        "--centralized",
        help="One agent: over the --factorization's substations if given, else all.",
    ),
    demonstrations: list[Path] = typer.Option(
        None,
        "--demonstrations",
        help="`gridfactor demonstrate` run: reduce the action sets, clone the expert, then "
        "PPO. Repeat it to learn from several (a DAgger round: add the run of --policy).",
    ),
    coverage: float = typer.Option(
        0.95, "--coverage", help="Action sets: keep the expert's choices covering this share."
    ),
    full_action_set: bool = typer.Option(
        False,
        "--full-action-set",
        help="With --demonstrations: learn every unitary action; the pure policy still plays "
        "only the --coverage set, a guard ranks them all.",
    ),
    imitation_epochs: int = typer.Option(60, "--imitation-epochs", help="Cloning epochs."),
    avoid_game_over: float = typer.Option(
        0.0,
        "--avoid-game-over",
        help="Cloning: weight of an unlikelihood term on the actions the expert's simulation "
        "saw end the episode (0: off).",
    ),
    ranking: float = typer.Option(
        0.0,
        "--ranking",
        help="Cloning target: 0 = the expert's choices; T > 0 = its simulated ranking, "
        "softmax(-max rho / T) over the feasible actions (e.g. 0.02).",
    ),
    label_rows: str = typer.Option(
        "all",
        "--label-rows",
        help="Rows a zone clone learns from: all (its zone's labels at every unsafe state) or "
        "deciding (only where CAPA handed it the decision).",
    ),
    anchor: float = typer.Option(
        0.0,
        "--anchor",
        help="With --demonstrations: add ANCHOR x KL(imitation || policy) to PPO's loss, "
        "so fine-tuning stays near the clone (0 = plain PPO).",
    ),
    env: str = typer.Option("rte_case14_realistic", "--env", help="Grid2Op env name or path."),
    timesteps: int = typer.Option(
        5000,
        "--timesteps",
        help="PPO budget in decisions (agent actions); 0 with --demonstrations: imitation only.",
    ),
    obs: str | None = typer.Option(
        None,
        "--obs",
        help="Agent observation: local or global [default: global with --centralized, else local].",
    ),
    danger: float = typer.Option(DANGER, "--danger", help="Agents act when some rho >= danger."),
    reconnect: str = RECONNECT,
    episode_steps: int = typer.Option(500, "--episode-steps", help="Max grid2op steps/episode."),
    reward: str = typer.Option("CloseToOverflowReward", "--reward", help="grid2op reward."),
    augment: float = AUGMENT,
    validation_fraction: float = typer.Option(
        0.2, "--validation-fraction", help="Share of chronics (or time) held out."
    ),
    held_out: str = HELD_OUT,
    train_batch_size: int = typer.Option(1000, "--train-batch-size", help="PPO batch."),
    minibatch_size: int = typer.Option(128, "--minibatch-size", help="PPO minibatch."),
    num_epochs: int = typer.Option(5, "--num-epochs", help="PPO epochs per batch."),
    lr: float = typer.Option(3e-4, "--lr", help="Learning rate."),
    num_env_runners: int = typer.Option(
        0, "--num-env-runners", help="Parallel RLlib env runners (0 = sample in-process)."
    ),
    checkpoint_every: int = typer.Option(5, "--checkpoint-every", help="Iterations."),
    keep_checkpoints: int = typer.Option(
        3,
        "--keep-checkpoints",
        help="Periodic checkpoints kept, the newest (0 = all: evaluate them with "
        "--checkpoint iter_000010,... for a learning curve on held-out scenarios).",
    ),
    out: Path = typer.Option(Path("runs/train"), "--out", help="Run directory."),
    seed: int = SEED,
    ray_address: str = RAY_ADDRESS,
    resume: bool = RESUME,
    overwrite: bool = OVERWRITE,
) -> None:
    """Train RLlib PPO: one policy per cluster of --factorization, or --centralized."""
    from gridfactor.evaluate.scenarios import parse_chronics
    from gridfactor.train.run import TrainConfig, train

    config = TrainConfig(
        env_name=env,
        factorization_path=str(factorization) if factorization else None,
        centralized=centralized,
        timesteps=timesteps,
        demonstrations=tuple(str(d) for d in demonstrations or ()),
        coverage=coverage,
        full_action_set=full_action_set,
        imitation_epochs=imitation_epochs,
        avoid_game_over=avoid_game_over,
        ranking=ranking,
        label_rows=label_rows,
        anchor=anchor,
        seed=seed,
        obs_mode=obs or ("global" if centralized else "local"),
        danger=danger,
        reconnect=reconnect,
        episode_steps=episode_steps,
        reward=reward,
        augment=augment,
        validation_fraction=validation_fraction,
        held_out=parse_chronics(held_out, "--held-out") or (),
        train_batch_size=train_batch_size,
        minibatch_size=minibatch_size,
        num_epochs=num_epochs,
        lr=lr,
        num_env_runners=num_env_runners,
        ray_address=ray_address,
        out=str(out),
        resume=resume,
        overwrite=overwrite,
        checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints,
    )
    run_dir = train(config)
    typer.echo(f"trained agents in {run_dir} (metrics.csv, learning_curve.png, checkpoints/)")


@app.command("demonstrate")
def demonstrate_command(
    factorization: Path = typer.Option(
        ..., "--factorization", help="factorization.json of the grid: the zones."
    ),
    env: str = typer.Option("rte_case14_realistic", "--env", help="Grid2Op env name or path."),
    episodes: int = typer.Option(100, "--episodes", help="Decision-env episodes to play."),
    episode_steps: int = typer.Option(288, "--episode-steps", help="Max grid2op steps/episode."),
    explore: float = typer.Option(
        0.3, "--explore", help="Probability of playing do-nothing instead of the expert."
    ),
    danger: float = typer.Option(DANGER, "--danger", help="Decide when some rho >= danger."),
    reconnect: str = RECONNECT,
    validation_fraction: float = typer.Option(
        0.2, "--validation-fraction", help="Held-out share (never played; as in train)."
    ),
    held_out: str = HELD_OUT,
    label_zones: str = typer.Option(
        "all",
        "--label-zones",
        help="all: every zone's best action at every decision; capa: the deciding zone's.",
    ),
    policy: Path = typer.Option(
        None,
        "--policy",
        help="A `gridfactor train` run of these zones plays (its pure policy) and the expert "
        "labels the states it visits: a DAgger round.",
    ),
    guard: int = typer.Option(
        0,
        "--guard",
        help="With --policy: its guarded agent (top GUARD actions and do nothing, simulated) "
        "plays and labels instead of the expert: a self-distillation round.",
    ),
    augment: float = AUGMENT,
    out: Path = typer.Option(Path("runs/demonstrate"), "--out", help="Run directory."),
    seed: int = SEED,
    workers: int = WORKERS,
    ray_address: str = RAY_ADDRESS,
    resume: bool = RESUME,
    overwrite: bool = OVERWRITE,
) -> None:
    """Record the zone expert's decisions on the training chronics (for imitation)."""
    import json

    from gridfactor.demonstrate.demonstrations import DemonstrateConfig, demonstrate
    from gridfactor.envs.grid2op_env import AGENT_ACTION_TYPES, check_action_support
    from gridfactor.evaluate.scenarios import parse_chronics
    from gridfactor.factorization import Factorization
    from gridfactor.parallel import ParallelConfig

    check_action_support(env, AGENT_ACTION_TYPES["trained"], "gridfactor demonstrate")
    config = DemonstrateConfig(
        env_name=env,
        factorization=Factorization.load(factorization).to_dict(),
        n_episodes=episodes,
        episode_steps=episode_steps,
        danger=danger,
        reconnect=reconnect,
        explore=explore,
        validation_fraction=validation_fraction,
        held_out=parse_chronics(held_out, "--held-out") or (),
        seed=seed,
        label_zones=label_zones,
        policy=str(policy) if policy else None,
        augment=augment,
        guard=guard,
    ).validate()
    run_dir = demonstrate(
        config,
        out,
        parallel=ParallelConfig(workers, ray_address),
        resume=resume,
        overwrite=overwrite,
    )
    info = json.loads((run_dir / "demonstrations.json").read_text())
    per_agent = ", ".join(f"{k} {v}" for k, v in info["decisions_per_agent"].items())
    labels = ", ".join(f"{k} {v}" for k, v in info["labels_per_agent"].items())
    teacher = f"the guard of {guard}" if guard else "the expert"
    typer.echo(
        f"{info['n_decisions']} decisions in {info['n_episodes']} episodes ({per_agent}); "
        f"{teacher} acts in {100 * info['expert_acts_share']:.0f}% of them with "
        f"{info['distinct_labels']} distinct actions, {info['mean_expert_ms']:.0f} ms per decision"
        f"; labels per zone: {labels}"
    )
    if policy and not guard:
        typer.echo(
            f"the policy played the expert's action in {100 * info['agreement_with_expert']:.0f}%"
            f" of the decisions and acted in {100 * info['played_acts_share']:.0f}%"
        )
    shares = info["candidate_outcomes"]["all"]
    typer.echo(
        f"{teacher}'s candidates: "
        + ", ".join(f"{100 * v:.1f}% {k}" for k, v in shares.items())
        + " (cooldown: substation in cooldown, not simulated)"
    )
    typer.echo(f"wrote {run_dir / 'demonstrations.parquet'} and demonstrations.json")
