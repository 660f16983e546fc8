"""``gridfactor train``: PPO agents per cluster (or one centralized agent) on a Grid2Op env."""

from __future__ import annotations

from pathlib import Path

import typer

from gridfactor.cli.main import OVERWRITE, RAY_ADDRESS, RESUME, SEED, app


@app.command("train")
def train_command(
    factorization: Path = typer.Option(
        None, "--factorization", help="factorization.json of the grid (clusters of lines/subs)."
    ),
    centralized: bool = typer.Option(
        False, "--centralized", help="One agent for all substations (no factorization)."
    ),
    env: str = typer.Option("rte_case14_realistic", "--env", help="Grid2Op env name or path."),
    timesteps: int = typer.Option(
        5000, "--timesteps", help="Budget in decisions (agent actions = RLlib env steps)."
    ),
    obs: str = typer.Option("local", "--obs", help="Agent observation: local or global."),
    danger: float = typer.Option(0.9, "--danger", help="Agents act when some rho >= danger."),
    episode_steps: int = typer.Option(500, "--episode-steps", help="Max grid2op steps/episode."),
    reward: str = typer.Option("CloseToOverflowReward", "--reward", help="grid2op reward."),
    validation_fraction: float = typer.Option(
        0.2, "--validation-fraction", help="Share of chronics (or time) held out."
    ),
    train_batch_size: int = typer.Option(1000, "--train-batch-size", help="PPO batch."),
    minibatch_size: int = typer.Option(128, "--minibatch-size", help="PPO minibatch."),
    num_epochs: int = typer.Option(5, "--num-epochs", help="PPO epochs per batch."),
    lr: float = typer.Option(3e-4, "--lr", help="Learning rate."),
    num_env_runners: int = typer.Option(
        0, "--num-env-runners", help="Parallel RLlib env runners (0 = sample in-process)."
    ),
    checkpoint_every: int = typer.Option(5, "--checkpoint-every", help="Iterations."),
    out: Path = typer.Option(Path("runs/train"), "--out", help="Run directory."),
    seed: int = SEED,
    ray_address: str = RAY_ADDRESS,
    resume: bool = RESUME,
    overwrite: bool = OVERWRITE,
) -> None:
    """Train RLlib PPO: one policy per cluster of --factorization, or --centralized."""
    from gridfactor.train.run import TrainConfig, train

    config = TrainConfig(
        env_name=env,
        factorization_path=str(factorization) if factorization else None,
        centralized=centralized,
        timesteps=timesteps,
        seed=seed,
        obs_mode=obs,
        danger=danger,
        episode_steps=episode_steps,
        reward=reward,
        validation_fraction=validation_fraction,
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
    )
    run_dir = train(config)
    typer.echo(f"trained agents in {run_dir} (metrics.csv, learning_curve.png, checkpoints/)")
