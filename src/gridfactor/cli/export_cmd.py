"""``gridfactor export``: a trained run as an L2RPN-style submission folder."""

from __future__ import annotations

from pathlib import Path

import typer

from gridfactor.cli.app import app
from gridfactor.cli.options import OVERWRITE


@app.command("export")
def export_cmd(
    run: Path = typer.Argument(..., help="Training run directory (gridfactor train --out)."),
    out: Path = typer.Option(..., "--out", help="Submission folder to write."),
    checkpoint: str = typer.Option(None, "--checkpoint", help="Checkpoint (default: final)."),
    guard: int = typer.Option(
        0, "--guard", help="Simulate the policy's top k actions and play the best (0 = off)."
    ),
    wait_confidence: float = typer.Option(
        0.0,
        "--wait-confidence",
        help="Do nothing only when the policy gives it this probability, else play its most "
        "likely action (0 = greedy; see evaluate --wait-confidence).",
    ),
    overwrite: bool = OVERWRITE,
) -> None:
    """Write RUN's agent as a submission: make_agent(env, this_directory) -> grid2op agent."""
    from gridfactor.agents.exported import export_run

    folder = export_run(
        run,
        out,
        checkpoint=checkpoint,
        guard=guard,
        wait_confidence=wait_confidence,
        overwrite=overwrite,
    )
    typer.echo(f"exported {run} to {folder}")
    typer.echo(f"submission: make_agent(env, this_directory) in {folder / '__init__.py'}")
