"""The ``gridfactor`` command line: a thin layer over the stage packages.

Each stage's commands live in their own module and register on :data:`app`
(:mod:`gridfactor.cli.app`); their shared options are in :mod:`gridfactor.cli.options`.
User errors (:class:`gridfactor.errors.UserError`) become one line on stderr, exit code 2.
"""

from __future__ import annotations

import os
import sys
import warnings

import typer

from gridfactor.cli.app import app
from gridfactor.errors import UserError

__all__ = ["app", "main"]


def register_commands() -> None:
    # Imported for their side effect: each module adds its commands to `app`.
    from gridfactor.cli import (  # noqa: F401
        data_cmd,
        ensemble_cmd,
        evaluate_cmd,
        export_cmd,
        grid_cmd,
        synthetic_cmd,
        train_cmd,
    )


def main() -> None:
    import time

    from gridfactor import progress

    warnings.filterwarnings("ignore")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    progress.quiet_libraries()
    register_commands()
    start = time.perf_counter()
    try:
        app()
    except SystemExit as exc:
        if exc.code in (0, None) and progress.TIMES:  # where the time went, last line
            typer.echo(progress.summary(time.perf_counter() - start))
        raise
    except UserError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho(
            "interrupted: finished work is saved; re-run the same command to resume",
            err=True,
        )
        sys.exit(130)
