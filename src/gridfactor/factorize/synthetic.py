"""The synthetic experiment: factorize MDPs with known blocks and score the recovery."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gridfactor.envs.synthetic import SEED_BLOCKS, Block, make_synthetic, random_blocks
from gridfactor.errors import UserError
from gridfactor.factorize.data import Transitions
from gridfactor.factorize.pipeline import ThresholdRule, ZoneRule
from gridfactor.factorize.recovery import score_recovery
from gridfactor.factorize.run import factorize_transitions
from gridfactor.parallel import ParallelConfig
from gridfactor.runs import atomic_write, prepare_run_dir, write_csv

SEED_QUANTILES = tuple(round(0.70 + 0.02 * i, 2) for i in range(13))  # 0.70 ... 0.94


@dataclass(frozen=True)
class SyntheticConfig:
    """Settings of a synthetic experiment.

    With n_state/n_action/n_blocks unset, the seed's case (5 state, 3 action variables,
    blocks ([s0,s2,s4],[a0,a1]) and ([s1,s3],[a2])); otherwise random blocks from ``seed``.
    """

    generators: tuple[str, ...] = ("copy", "factored")
    n_state: int | None = None
    n_action: int | None = None
    n_blocks: int | None = None
    n_values: int = 2
    noise: float = 0.0
    randomness: float = 1.0
    steps: int = 100_000
    quantiles: tuple[float, ...] = field(default=SEED_QUANTILES)
    rule: ThresholdRule = field(default_factory=ThresholdRule)
    zones: ZoneRule = field(default_factory=ZoneRule)
    n_bootstrap: int = 0
    k: int | None = None
    seed: int = 0

    def structure(self) -> tuple[int, int, tuple[Block, ...]]:
        given = [v is not None for v in (self.n_state, self.n_action, self.n_blocks)]
        if not any(given):
            return 5, 3, SEED_BLOCKS
        if not all(given):
            raise UserError("give all of --n-state, --n-action and --n-blocks, or none of them")
        rng = np.random.default_rng([self.seed, 1])
        blocks = random_blocks(self.n_state, self.n_action, self.n_blocks, rng)
        return self.n_state, self.n_action, blocks


def run_synthetic(
    config: SyntheticConfig,
    out: str | os.PathLike,
    *,
    parallel: ParallelConfig = ParallelConfig(),
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Run the experiment into ``out``; returns the recovery table (one row per generator
    and threshold: ``config.rule`` first, then the seed's rule at each quantile), also
    written to ``recovery.csv``."""
    if config.steps <= 0:
        raise UserError(f"--steps must be positive, got {config.steps}")
    out_dir = prepare_run_dir(out, asdict(config), resume=resume, overwrite=overwrite)
    n_state, n_action, blocks = config.structure()
    rows = []
    for generator in config.generators:
        env = make_synthetic(
            generator,
            n_state,
            n_action,
            blocks,
            n_values=config.n_values,
            noise=config.noise,
            seed=config.seed,
            **({"randomness": config.randomness} if generator == "factored" else {}),
        )
        sub_dir = out_dir / generator
        transitions = _cached_rollout(env, config.steps, config.seed, sub_dir / "transitions.npz")
        env.ground_truth.save(sub_dir / "truth.json")
        _, results = factorize_transitions(
            transitions,
            sub_dir,
            rule=config.rule,
            zones=config.zones,
            compare_quantiles=config.quantiles,
            seed=config.seed,
            k=config.k,
            n_bootstrap=config.n_bootstrap,
            parallel=parallel,
            progress=progress,
            meta={"generator": generator},
        )
        for number, result in enumerate(results):
            factorization = result.factorization
            score = score_recovery(factorization, env.ground_truth, result.adjacency, env.relation)
            rows.append(
                {
                    "generator": generator,
                    "threshold": result.rule.label,
                    # the main rule's edges become zones; the seed's rule keeps components
                    "clusters": config.zones.method if number == 0 else "components",
                    "exact": score.exact,
                    "ari": score.ari,
                    "edge_precision": score.edge_precision,
                    "edge_recall": score.edge_recall,
                    "n_clusters": len(factorization.clusters),
                    "n_true_clusters": len(blocks),
                    "stability": (
                        result.stability.mean_cluster_frequency if result.stability else ""
                    ),
                }
            )
    table = pd.DataFrame(rows)
    write_csv(out_dir / "recovery.csv", table)
    return table


def _cached_rollout(env, steps: int, seed: int, path: Path) -> Transitions:
    if not path.is_file():
        data = env.rollout(steps, seed=seed)
        with atomic_write(path, "wb") as fh:
            np.savez_compressed(fh, **data)
    with np.load(path) as npz:
        return Transitions(
            states=npz["s"].astype(float),
            actions=npz["a"].astype(float),
            next_states=npz["s_next"].astype(float),
            state_names=env.state_names,
            action_names=env.action_names,
        )


def parse_quantiles(text: str) -> tuple[float, ...]:
    """'0.7' or '0.7,0.8' or '0.70:0.94:0.02' (start:stop:step, inclusive)."""
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            count = int(round((stop - start) / step)) + 1
            values: Sequence[float] = [round(start + i * step, 6) for i in range(count)]
        else:
            values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(
            f"cannot parse quantiles {text!r}; use e.g. 0.7 or 0.7,0.8 or 0.70:0.94:0.02"
        ) from None
    if not values or any(not 0 <= v < 1 for v in values):
        raise UserError(f"quantiles {text!r} must be in [0, 1)")
    return tuple(values)
