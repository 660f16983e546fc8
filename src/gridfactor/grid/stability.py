"""Seed stability of a grid factorization: the same command with several seeds."""

from __future__ import annotations

import itertools
import os
from dataclasses import asdict

import numpy as np

from gridfactor.errors import UserError
from gridfactor.grid.pipeline import GridFactorization, GridFactorizeConfig, factorize_grid
from gridfactor.parallel import ParallelConfig
from gridfactor.runs import prepare_run_dir, write_json


def stability(
    config: GridFactorizeConfig,
    seeds: list[int],
    out: str | os.PathLike,
    *,
    parallel: ParallelConfig | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> tuple[list[GridFactorization], np.ndarray]:
    """Factorize with each seed (a run per seed in ``out/seed_<s>``) and compare clusterings.

    Returns the runs and the (n_seeds, n_seeds) pairwise adjusted Rand index of the cluster
    labels of the *selected* substations (unselected ones are always singletons and would
    inflate the agreement). Also writes ``out/stability.json``.
    """
    from sklearn.metrics import adjusted_rand_score

    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise UserError(f"need at least 2 distinct seeds, got {seeds}; e.g. --stability-seeds 3")
    out_dir = prepare_run_dir(
        out,
        {"command": "factorize-stability", "seeds": seeds, **asdict(config)},
        resume=resume,
        overwrite=overwrite,
    )
    runs = []
    for seed in seeds:
        run_config = GridFactorizeConfig(**{**asdict(config), "seed": seed})
        runs.append(
            factorize_grid(
                run_config,
                out_dir / f"seed_{seed}",
                parallel=parallel,
                resume=resume,
                progress=progress,
            )
        )
    selected = list(runs[0].factorization.meta["selected_substations"])
    labels = [r.factorization.input_labels()[selected] for r in runs]
    line_labels = [r.factorization.target_labels() for r in runs]
    ari = np.ones((len(seeds), len(seeds)))
    ari_lines = np.ones((len(seeds), len(seeds)))
    for a, b in itertools.combinations(range(len(seeds)), 2):
        ari[a, b] = ari[b, a] = adjusted_rand_score(labels[a], labels[b])
        # Lines too: with few selected substations the substation ARI is often trivially 1.
        ari_lines[a, b] = ari_lines[b, a] = adjusted_rand_score(line_labels[a], line_labels[b])
    write_json(
        out_dir / "stability.json",
        {
            "seeds": seeds,
            "selected_substations": selected,
            "substation_labels": {
                str(s): lab.tolist() for s, lab in zip(seeds, labels, strict=True)
            },
            "adjusted_rand_index": ari.tolist(),
            "mean_pairwise_ari": float(ari[np.triu_indices(len(seeds), 1)].mean()),
            "adjusted_rand_index_lines": ari_lines.tolist(),
        },
    )
    return runs, ari
