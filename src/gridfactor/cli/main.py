"""The ``gridfactor`` command line: a thin layer over the stage packages.

Each stage's commands live in their own module and register on :data:`app`.
User errors (:class:`gridfactor.errors.UserError`) become one line on stderr, exit code 2.
"""

from __future__ import annotations

import os
import sys
import warnings

import typer

from gridfactor.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Factorize power-grid MDPs from data and learn one RL agent per sub-problem.",
)

# Shared option declarations keep flags identical across commands.
WORKERS = typer.Option(
    None, "--workers", help="Parallel tasks (default: all CPUs; 1 = in-process, no Ray)."
)
RAY_ADDRESS = typer.Option(
    None, "--ray-address", help="Address of a running Ray cluster (default: start a local one)."
)
SEED = typer.Option(0, "--seed", help="Random seed: same seed, same results.")
RESUME = typer.Option(False, "--resume", help="Continue the run in --out.")
OVERWRITE = typer.Option(False, "--overwrite", help="Delete --out and start afresh.")
THRESHOLD = typer.Option(
    "significance",
    "--threshold",
    help="Edge rule: significance (permutation test, default) or quantile (the seed's).",
)
QUANTILE = typer.Option(0.7, "--quantile", help="Quantile rule: per-input quantile.")
ALPHA = typer.Option(0.01, "--alpha", help="Significance rule: family-wise error (Holm).")
N_PERMUTATIONS = typer.Option(
    30, "--n-permutations", help="Significance rule: null replicates per pair."
)
MIN_MI = typer.Option(0.0, "--min-mi", help="Significance rule: minimum effect size (nats).")
PARTITION = typer.Option(
    "components",
    "--partition",
    help="Kept edges -> clusters: components (connected components, the seed's step; "
    "default: exact on disjoint blocks, see benchmarks/recovery.py), or zones: spectral, "
    "cocluster, louvain.",
)
GRID_PARTITION = typer.Option(
    "spectral",
    "--partition",
    help="Kept edges -> zones: spectral (default: the same zones for 3 seeds on case14 and "
    "the 36-bus grid, benchmarks/zones.py), cocluster, louvain, or components (connected "
    "components, the seed's step: one cluster on a meshed grid).",
)
N_ZONES = typer.Option(
    "auto", "--n-zones", help="Number of zones, or auto (modularity above a shuffled null)."
)
MAX_ZONES = typer.Option(
    None, "--max-zones", help="Largest number of zones auto tries (default: half the inputs)."
)
N_BOOTSTRAP = typer.Option(
    0, "--n-bootstrap", help="Stability: re-factorize this many half-subsamples (0 = skip)."
)


def _register_commands() -> None:
    # Imported for their side effect: each module adds its commands to `app`.
    from gridfactor.cli import (  # noqa: F401
        data_cmd,
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
    _register_commands()
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
