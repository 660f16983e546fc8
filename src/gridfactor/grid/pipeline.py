"""Factorizing a Grid2Op power grid into clusters of (lines, substations).

Pipeline (``gridfactor factorize``): collect random-topology episodes per selected
substation (:mod:`gridfactor.collect`), then for each selected substation ``j`` estimate
the MI between every line's next rho ``s_next_<line>`` and the substation's action
``a_<sub j>`` on (at most ``n_samples`` rows of) *that substation's own episodes*, minus the
MI with the next-state column shuffled. This gives an (n_line, n_sub) matrix (zero columns
for unselected substations), binarized per column at a quantile, whose bipartite connected
components are the clusters: lines (targets) and substations (inputs).
"""

from __future__ import annotations

import io
import json
import os
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from gridfactor.collect.grid2op_collect import (
    CollectConfig,
    check_action_effects,
    collect,
    from_collector,
    game_over_rows,
    load_dataset,
)
from gridfactor.errors import UserError
from gridfactor.factorization import Factorization
from gridfactor.factorize.partition import check_method, check_n_zones
from gridfactor.factorize.pipeline import ThresholdRule, adjacency_factorization
from gridfactor.factorize.plots import plot_factorization
from gridfactor.factorize.significance import permutation_null, significance_test
from gridfactor.factorize.threshold import binarize_quantile, check_quantile
from gridfactor.grid.maps import plot_grid_clusters
from gridfactor.grid.zones import PRIORS, GridZones, grid_zones, plot_zones_curve
from gridfactor.parallel import ParallelConfig
from gridfactor.progress import phase, timed
from gridfactor.runs import atomic_write, prepare_run_dir, save_npy

MI_PARTS_DIR = "mi_parts"
GRID_PLOT = "grid_clusters.png"
ZONES_CURVE_PLOT = "zones_curve.png"
COMPONENTS = "components"
PARTITIONS = ("spectral", "cocluster", "louvain", COMPONENTS)
# A substation with fewer usable transitions gets no MI column (no edges): its actions ended
# the episodes (game over) almost at once, and a handful of rows estimate nothing.
MIN_ROWS_PER_SUBSTATION = 10


@dataclass(frozen=True)
class GridFactorizeConfig:
    """Settings of a grid factorization (collection settings + MI/threshold settings).

    n_episodes: collected episodes *per selected substation*.
    n_samples: at most this many transitions of a substation's episodes feed its column.
    threshold: ``significance`` (default: permutation test per (line, substation) pair,
        Holm across the matrix at ``alpha``, see :mod:`gridfactor.factorize.significance`)
        or ``quantile`` (the seed's rule). The quantile rule's clusters are always saved
        too (``factorization_quantile.json``), side by side.
    quantile: per-substation (column) quantile threshold of the bias-corrected MI.
    k: KSG neighbours (None = the estimator's default for the sample size).
    partition: how the MI graph becomes zones: a partition method of
        :mod:`gridfactor.factorize.partition` (``spectral`` default, ``cocluster``,
        ``louvain``) on the bias-corrected MI, or ``components`` (the threshold rule's
        connected components, the earlier behaviour). The threshold rule's components are
        saved beside the zones (``factorization_components.json``).
    n_zones: number of zones or ``"auto"`` (see :mod:`gridfactor.factorize.partition`);
        max_zones: the largest K tried (None: half the measured acted-on substations).
    prior: ``proximity`` (MI weighed by grid distance, see :func:`grid_zones`) or ``none``.
    """

    env_name: str = "l2rpn_case14_sandbox"
    n_episodes: int = 1000
    n_samples: int = 50_000
    seed: int = 0
    quantile: float = 0.7
    threshold: str = "significance"
    alpha: float = 0.01
    n_permutations: int = 10
    min_mi: float = 0.0
    max_steps: int = 100
    explore: float = 1.0
    min_elements: int = 4
    k: int | None = None
    chunk_size: int = 50
    partition: str = "spectral"
    n_zones: int | str = "auto"
    max_zones: int | None = None
    prior: str = "proximity"

    def collect_config(self) -> CollectConfig:
        return CollectConfig(
            env_name=self.env_name,
            n_episodes=self.n_episodes,
            max_steps=self.max_steps,
            explore=self.explore,
            min_elements=self.min_elements,
            seed=self.seed,
            chunk_size=self.chunk_size,
            # a substation's column uses at most n_samples rows: collect no more
            rows_per_substation=self.n_samples,
        )

    def validate(self) -> GridFactorizeConfig:
        if self.n_samples <= 0:  # before the collection's check of the same number
            raise UserError(f"--n-samples must be > 0, got {self.n_samples}; e.g. 50000")
        self.collect_config().validate()
        if self.k is not None and self.k <= 0:
            raise UserError(f"--k must be > 0, got {self.k}; omit it for the default")
        check_quantile(self.quantile)
        _ = self.rule  # validates the threshold settings
        if self.partition != COMPONENTS:
            check_method(self.partition)
        # the upper bound (acted-on substations) is checked once the grid is known
        check_n_zones(self.n_zones)
        if self.max_zones is not None and self.max_zones < 1:
            raise UserError(f"--max-zones must be >= 1, got {self.max_zones}")
        if self.prior not in PRIORS:
            raise UserError(f"unknown --prior {self.prior!r}; choose one of {', '.join(PRIORS)}")
        return self

    @property
    def rule(self) -> ThresholdRule:
        return ThresholdRule(
            self.threshold, self.quantile, self.alpha, self.n_permutations, self.min_mi
        )


@dataclass
class GridFactorization:
    """What :func:`factorize_grid` produced (arrays are (n_line, n_sub))."""

    factorization: Factorization
    mi: np.ndarray
    shuffled: np.ndarray
    unbiased: np.ndarray
    adjacency: np.ndarray
    out_dir: Path
    quantile_factorization: Factorization | None = None
    components_factorization: Factorization | None = None
    zones: GridZones | None = None
    files: list[Path] = field(default_factory=list)
    dataset_info: dict[str, Any] = field(default_factory=dict)


def _sub_stream(seed: int, sub_id: int, purpose: int) -> np.random.SeedSequence:
    # Entropy differs from the collection's SeedSequence(seed, spawn_key=(sub, ep)) streams.
    return np.random.SeedSequence([seed, 0x6D69, sub_id, purpose])


def substation_samples(
    frame: Any,
    sub_id: int,
    line_names: list[str],
    sub_names: list[str],
    n_samples: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of substation ``sub_id``'s own episodes, subsampled to ``n_samples`` (seeded).

    Game-over transitions are left out: grid2op reports a next rho of all zeros there, which
    is not a grid state, and since some actions cause blackouts far more often than others
    those rows alone would tie every line to the substation (a global artefact that merges
    every cluster).

    Returns targets (N, n_line) next rho and inputs (N, 1) the substation's action code.
    """
    next_rho = frame[[f"s_next_{n}" for n in line_names]].to_numpy(np.float64)
    rows = np.flatnonzero((frame["substation"].to_numpy() == sub_id) & ~game_over_rows(next_rho))
    if len(rows) > n_samples:
        rng = np.random.default_rng(_sub_stream(seed, sub_id, 0))
        rows = np.sort(rng.choice(rows, size=n_samples, replace=False))
    targets = next_rho[rows]
    inputs = frame[[f"a_{sub_names[sub_id]}"]].to_numpy(np.float64)[rows]
    return targets, inputs


@dataclass
class GridMI:
    """Per-substation MI columns of a grid, (n_line, n_sub) each.

    Columns of unselected substations, and of ``unmeasured`` ones (fewer usable rows than
    :data:`MIN_ROWS_PER_SUBSTATION`), are zero. ``null`` is the permutation null
    (R, n_line, n_sub) of the significance rule (else None).
    """

    mi: np.ndarray
    shuffled: np.ndarray
    unbiased: np.ndarray
    null: np.ndarray | None
    measured: list[int]
    unmeasured: list[int]


def _load_mi_part(path: Path, version: int) -> dict[str, np.ndarray] | None:
    """A substation's saved MI columns, or None when missing or from another collector
    version."""
    if not path.is_file():
        return None
    with np.load(path) as data:
        saved = {k: data[k] for k in data.files}
    return saved if from_collector(saved, version) else None


def grid_mi(
    frame: Any,
    sidecar: dict[str, Any],
    config: GridFactorizeConfig,
    out_dir: str | os.PathLike,
    *,
    parallel: ParallelConfig | None = None,
    progress: bool = True,
) -> GridMI:
    """MI of every line's next rho with each selected substation's action.

    Each substation's columns are saved in ``out_dir/mi_parts`` when done, so an interrupted
    run resumes from the next substation.
    """
    parallel = parallel or ParallelConfig()
    line_names, sub_names = list(sidecar["line_names"]), list(sidecar["sub_names"])
    shape = (len(line_names), len(sub_names))
    mi, shuffled, unbiased = (np.zeros(shape) for _ in range(3))
    significance = config.threshold == "significance"
    null = np.zeros((config.n_permutations, *shape)) if significance else None
    min_rows = max(MIN_ROWS_PER_SUBSTATION, (config.k or 0) + 1)
    parts = Path(out_dir) / MI_PARTS_DIR
    selected = list(sidecar["selected_substations"])
    measured, unmeasured = [], []
    # MI parts of a dataset collected by another collector version are computed again
    version = int(sidecar.get("collector_version", 1))
    saved_parts = {s: _load_mi_part(parts / f"sub{s:03d}.npz", version) for s in selected}
    todo = sum(saved is None for saved in saved_parts.values())
    # one display over the substations left; the MI and the null are timed apart
    with phase(
        "MI", total=todo, unit="substation", enabled=progress and todo > 0, record=False
    ) as display:
        for sub_id in selected:
            part = parts / f"sub{sub_id:03d}.npz"
            saved = saved_parts[sub_id]
            if saved is not None:
                columns = (saved["mi"], saved["shuffled"], saved["unbiased"])
                null_column = saved["null"] if significance else None
                is_measured = bool(saved["measured"])
            else:
                targets, inputs = substation_samples(
                    frame, sub_id, line_names, sub_names, config.n_samples, config.seed
                )
                is_measured = len(targets) >= min_rows
                if is_measured:
                    columns, null_column = _substation_columns(
                        targets, inputs, sub_id, config, parallel
                    )
                else:
                    columns = tuple(np.zeros(len(line_names)) for _ in range(3))
                    null_column = np.zeros((config.n_permutations, len(line_names)))
                buffer = io.BytesIO()
                extra = {"null": null_column} if significance else {}
                np.savez(
                    buffer,
                    mi=columns[0],
                    shuffled=columns[1],
                    unbiased=columns[2],
                    measured=np.array(is_measured),
                    collector_version=np.array(version),
                    **extra,
                )
                with atomic_write(part, "wb") as fh:
                    fh.write(buffer.getvalue())
                display.update()
            (measured if is_measured else unmeasured).append(sub_id)
            for matrix, column in zip((mi, shuffled, unbiased), columns, strict=True):
                matrix[:, sub_id] = column
            if null is not None:
                null[:, :, sub_id] = null_column
    if unmeasured:
        names = ", ".join(sub_names[s] for s in unmeasured)
        print(
            f"warning: no MI for {names}: fewer than {min_rows} transitions without game "
            "over (its actions end episodes at once); they get no edges. Collect more with "
            "--n-episodes.",
            file=sys.stderr,
            flush=True,
        )
    return GridMI(mi, shuffled, unbiased, null, measured, unmeasured)


def _substation_columns(
    targets: np.ndarray,
    inputs: np.ndarray,
    sub_id: int,
    config: GridFactorizeConfig,
    parallel: ParallelConfig,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray | None]:
    """(mi, shuffled, unbiased) columns (n_line,) and the null (R, n_line) or None."""
    from gridfactor.mi import unbiased_mi_matrix

    seed = int(_sub_stream(config.seed, sub_id, 1).generate_state(1)[0])
    with timed("MI"):
        result = unbiased_mi_matrix(
            targets, inputs, seed=seed, k=config.k, parallel=parallel, progress=False
        )
    columns = (result.mi[:, 0], result.shuffled[:, 0], result.unbiased[:, 0])
    if config.threshold != "significance":
        return columns, None
    with timed("null"):
        null_column = permutation_null(
            targets,
            inputs,
            n_permutations=config.n_permutations,
            seed=int(_sub_stream(config.seed, sub_id, 2).generate_state(1)[0]),
            k=config.k,
            parallel=parallel,
            progress=False,
        )[:, :, 0]
    return columns, null_column


def grid_adjacency(
    config: GridFactorizeConfig,
    mi: np.ndarray,
    unbiased: np.ndarray,
    null: np.ndarray | None,
    measured: list[int],
) -> tuple[np.ndarray, np.ndarray | None]:
    """Edges (n_line, n_sub) kept by the config's rule, and the Holm-adjusted p-values
    (significance rule only; only the measured substations' pairs are tested)."""
    if config.threshold == "quantile":
        return binarize_quantile(unbiased, config.quantile), None
    tested = np.zeros(mi.shape, dtype=bool)
    tested[:, measured] = True
    test = significance_test(
        np.where(tested, mi, np.nan), null, alpha=config.alpha, min_mi=config.min_mi
    )
    return test.adjacency & tested, test.adjusted


def selected_substations(config: GridFactorizeConfig) -> list[int]:
    """Substations the collection acts on (at least ``min_elements`` elements)."""
    from gridfactor.envs.grid2op_env import cached_env

    env = cached_env(config.env_name, "lightsim")
    return [s for s, n in enumerate(env.sub_info) if n >= config.min_elements]


# Settings of the partition step only: changing them in an existing run re-partitions its
# saved MI (seconds) instead of asking for --resume / --overwrite.
ZONE_SETTINGS = ("partition", "n_zones", "max_zones", "prior")


def _run_config(config: GridFactorizeConfig) -> dict[str, Any]:
    return {"command": "factorize", **asdict(config)}


def _plots(
    config: GridFactorizeConfig,
    unbiased: np.ndarray,
    adjacency: np.ndarray,
    factorization: Factorization,
    zones: GridZones | None,
    out_dir: Path,
) -> list[Path]:
    """Heatmaps, the grid map (beside the physics reference) and the zones curve."""
    files: list[Path] = []
    files += plot_factorization(
        unbiased,
        adjacency,
        factorization,
        out_dir,
        row_label="line (next rho)",
        col_label="substation (action)",
    )
    if zones is None:
        files.append(plot_grid_clusters(config.env_name, factorization, out_dir / GRID_PLOT))
    else:
        files.append(
            plot_grid_clusters(
                config.env_name,
                factorization,
                out_dir / GRID_PLOT,
                physics_sub_labels=zones.physics.sub_labels,
                physics_line_labels=zones.physics.line_labels,
            )
        )
        files.append(plot_zones_curve(zones.partition, out_dir / ZONES_CURVE_PLOT, config.env_name))
    return files


def factorize_grid(
    config: GridFactorizeConfig,
    out: str | os.PathLike,
    *,
    parallel: ParallelConfig | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> GridFactorization:
    """Collect (or reuse) the dataset in ``out``, estimate the MI, threshold, cluster, save.

    Files in ``out``: config.json, dataset.parquet + dataset.json, mi.npy, shuffled_mi.npy,
    unbiased_mi.npy (n_line, n_sub), factorization.json, mi_heatmap.png, binarized.png,
    blocks.png, grid_clusters.png.
    """
    config.validate()
    parallel = parallel or ParallelConfig()
    from gridfactor.envs.grid2op_env import check_env_name

    check_env_name(config.env_name)  # fail fast, before creating the run directory
    if config.n_zones != "auto":
        check_n_zones(config.n_zones, len(selected_substations(config)))
    out_dir = prepare_run_dir(
        out, _run_config(config), resume=resume, overwrite=overwrite, adjustable=ZONE_SETTINGS
    )
    # --resume continues the run directory's own settings (they may differ from the flags),
    # except the zones', which come from the flags: a run is re-partitioned from its MI.
    saved = json.loads((out_dir / "config.json").read_text())
    if saved != _run_config(config):
        known = {f.name for f in fields(GridFactorizeConfig)}
        config = GridFactorizeConfig(**{k: v for k, v in saved.items() if k in known})
    collect(config.collect_config(), out_dir, parallel=parallel, progress=progress)
    frame, sidecar = load_dataset(out_dir)
    check_action_effects(sidecar)  # refuse data whose actions grid2op mostly refused
    result = grid_mi(frame, sidecar, config, out_dir, parallel=parallel, progress=progress)
    mi, shuffled, unbiased = result.mi, result.shuffled, result.unbiased
    files = []
    for name, matrix in (
        ("mi.npy", mi),
        ("shuffled_mi.npy", shuffled),
        ("unbiased_mi.npy", unbiased),
    ):
        save_npy(out_dir / name, matrix)
        files.append(out_dir / name)
    lengths = frame.groupby(["substation", "episode"]).size().groupby("substation").mean()
    adjacency, pvalues = grid_adjacency(config, mi, unbiased, result.null, result.measured)
    if pvalues is not None:
        save_npy(out_dir / "pvalues_adjusted.npy", pvalues)
        files.append(out_dir / "pvalues_adjusted.npy")
    usable = ~game_over_rows(
        frame[[f"s_next_{n}" for n in sidecar["line_names"]]].to_numpy(np.float64)
    )
    meta = {
        "kind": "grid",
        "env_name": config.env_name,
        "seed": config.seed,
        "n_samples": config.n_samples,
        "n_episodes_per_substation": config.n_episodes,
        # fewer where a substation had n_samples usable rows before its last episode
        "episodes_played_per_substation": sidecar.get("episodes_per_substation"),
        "max_steps": config.max_steps,
        "explore": config.explore,
        "min_elements": config.min_elements,
        "k": config.k,
        "selected_substations": sidecar["selected_substations"],
        "unmeasured_substations": result.unmeasured,
        "samples_per_substation": {
            str(s): int(min(config.n_samples, (usable & (frame["substation"] == s)).sum()))
            for s in sidecar["selected_substations"]
        },
        "versions": sidecar["versions"],
    }
    components = adjacency_factorization(
        adjacency, sidecar["line_names"], sidecar["sub_names"], {**config.rule.describe(), **meta}
    )
    zones = None
    if config.partition == COMPONENTS:
        factorization = components
    else:
        from gridfactor.envs.grid2op_env import cached_env

        env = cached_env(config.env_name, "lightsim")
        with timed("partition"):
            zones = grid_zones(
                env,
                unbiased,
                result.measured,
                list(sidecar["selected_substations"]),
                method=config.partition,
                n_zones=config.n_zones,
                max_zones=config.max_zones,
                seed=config.seed,
                env_name=config.env_name,
                meta={**config.rule.describe(), **meta},
                prior=config.prior,
            )
        factorization = zones.factorization
        components.save(out_dir / "factorization_components.json")
        files.append(out_dir / "factorization_components.json")
    quantile_factorization = None
    if config.threshold != "quantile":
        # The seed's rule, side by side, for comparison.
        quantile_rule = ThresholdRule("quantile", config.quantile)
        quantile_factorization = adjacency_factorization(
            binarize_quantile(unbiased, config.quantile),
            sidecar["line_names"],
            sidecar["sub_names"],
            {**quantile_rule.describe(), **meta},
        )
        quantile_factorization.save(out_dir / "factorization_quantile.json")
        files.append(out_dir / "factorization_quantile.json")
    factorization.save(out_dir / "factorization.json")
    files.append(out_dir / "factorization.json")
    with timed("plots"):
        files += _plots(config, unbiased, adjacency, factorization, zones, out_dir)
    return GridFactorization(
        factorization=factorization,
        mi=mi,
        shuffled=shuffled,
        unbiased=unbiased,
        adjacency=adjacency,
        out_dir=out_dir,
        quantile_factorization=quantile_factorization,
        components_factorization=components,
        zones=zones,
        files=files,
        dataset_info={
            "n_rows": sidecar["n_rows"],
            "mean_episode_length": sidecar["mean_episode_length"],
            "mean_episode_length_per_substation": {
                sidecar["sub_names"][int(s)]: float(v) for s, v in lengths.items()
            },
        },
    )
