"""The typer application every command module registers on (kept apart from the commands
so that they import it without importing each other)."""

from __future__ import annotations

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Factorize power-grid MDPs from data and learn one RL agent per sub-problem.",
)
