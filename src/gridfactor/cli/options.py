"""Option declarations shared by the commands: the same flag, help and default everywhere."""

from __future__ import annotations

import typer

# Shared option declarations keep flags identical across commands.
WORKERS = typer.Option(
    None, "--workers", help="Parallel tasks (default: all CPUs; 1 = in-process, no Ray)."
)
RAY_ADDRESS = typer.Option(
    None, "--ray-address", help="Address of a running Ray cluster (default: start a local one)."
)
SEED = typer.Option(0, "--seed", help="Random seed: same seed, same results.")
RECONNECT = typer.Option(
    "always",
    "--reconnect",
    help="High-level rule for a disconnected line when safe: always (reconnect when grid2op "
    "allows), checked (only if the simulated step stays below the danger threshold), never.",
)
AUGMENT = typer.Option(
    0.0,
    "--augment",
    help="0: play the training chronics as they are; A > 0: each episode plays a perturbed "
    "copy (loads scaled by a level in [1-A, 1+A], each load and generator by its own factor).",
)
HELD_OUT = typer.Option(
    None,
    "--held-out",
    help="Chronic ids held out, e.g. 0 or 2-4 (another fold): training plays the others "
    "[default: the last --validation-fraction of the chronics].",
)
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
