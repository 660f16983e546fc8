"""``gridfactor ensemble``: several training runs' policies as one agent."""

from __future__ import annotations

from pathlib import Path

import typer

from gridfactor.cli.app import app
from gridfactor.cli.options import OVERWRITE


@app.command("ensemble")
def ensemble_cmd(
    runs: list[Path] = typer.Option(
        ..., "--run", help="Training run directory (gridfactor train --out); repeat it (>= 2)."
    ),
    out: Path = typer.Option(..., "--out", help="Ensemble directory to write."),
    checkpoint: str = typer.Option(
        None, "--checkpoint", help="The members' checkpoint (default: final)."
    ),
    overwrite: bool = OVERWRITE,
) -> None:
    """Play the runs together: per zone, the action of highest mean probability.

    The ensemble directory is an agent like a training run's: evaluate --run, export and
    demonstrate --policy take it. The runs must share the env, zones, split and decision
    settings; they may come from different demonstrations (a member gives probability 0 to
    the actions it does not know).
    """
    from gridfactor.agents.ensemble import make_ensemble

    folder = make_ensemble(runs, out, checkpoint=checkpoint, overwrite=overwrite)
    typer.echo(f"ensemble of {len(runs)} runs in {folder}")
