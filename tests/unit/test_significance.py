"""Significance threshold, permutation null and bootstrap stability."""

from __future__ import annotations

import numpy as np
import pytest

from gridfactor.envs.synthetic import Block, make_synthetic
from gridfactor.errors import UserError
from gridfactor.factorize.pipeline import (
    Factorizer,
    ThresholdRule,
    adjacency_factorization,
    threshold_adjacency,
)
from gridfactor.factorize.recovery import score_recovery
from gridfactor.factorize.significance import (
    adjust_pvalues,
    binarize_significance,
    permutation_null,
    resample_inputs,
)
from gridfactor.factorize.stability import bootstrap_stability
from gridfactor.mi import mi_matrix, unbiased_mi_matrix
from gridfactor.parallel import ParallelConfig

IN_PROCESS = ParallelConfig(workers=1)
# Unequal blocks: the seed's quantile rule merges the 2-target block into a bigger one.
BLOCKS = (Block((0, 2, 3, 5), (0,)), Block((1, 4), (1, 2)))


def _data(generator: str, steps: int = 3000, seed: int = 0):
    env = make_synthetic(generator, 6, 3, BLOCKS, seed=seed)
    d = env.rollout(steps, seed=seed)
    inputs = np.concatenate([d["s"], d["a"]], axis=1).astype(float)
    return env, d["s_next"].astype(float), inputs


@pytest.mark.parametrize("generator", ["copy", "factored"])
def test_significance_recovers_unequal_blocks(generator):
    env, targets, inputs = _data(generator)
    mi = unbiased_mi_matrix(targets, inputs, seed=0, k=20, parallel=IN_PROCESS, progress=False)
    adjacency, saved = threshold_adjacency(
        ThresholdRule(n_permutations=12),
        targets,
        inputs,
        mi,
        seed=0,
        k=20,
        parallel=IN_PROCESS,
        progress=False,
    )
    pvalues = saved["pvalues_adjusted.npy"]
    truth = env.ground_truth
    found = adjacency_factorization(adjacency, truth.target_names, truth.input_names)
    score = score_recovery(found, truth, adjacency, env.relation)
    assert score.edge_precision == 1.0  # no false edge: the blocks never merge
    # The target partition is exact; with 3000 steps the factored generator's weakest
    # action edge may be missed (that action then forms its own cluster).
    assert [c.targets for c in found.clusters if c.targets] == [c.targets for c in truth.clusters]
    if generator == "copy":
        assert score.exact
    assert pvalues.shape == adjacency.shape
    assert np.all(pvalues[adjacency] <= 0.01)


def test_null_reproducible_and_independent_of_workers():
    _, targets, inputs = _data("copy", steps=1000)
    kw = dict(n_permutations=3, k=10, progress=False)
    a = permutation_null(targets, inputs, seed=5, parallel=IN_PROCESS, **kw)
    b = permutation_null(targets, inputs, seed=5, parallel=IN_PROCESS, **kw)
    c = permutation_null(targets, inputs, seed=6, parallel=IN_PROCESS, **kw)
    assert a.shape == (3, 6, 9)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    ray_null = permutation_null(targets, inputs, seed=5, parallel=ParallelConfig(workers=2), **kw)
    np.testing.assert_array_equal(ray_null, a)
    # Continuous columns (> 4096 distinct points): threaded kernel in-process, one thread
    # per Ray worker; the null must not change in the last bit.
    t, i = _continuous(5000)
    kw = dict(n_permutations=2, seed=5, k=50, progress=False)
    on_ray = permutation_null(t, i, parallel=ParallelConfig(workers=2), **kw)
    np.testing.assert_array_equal(on_ray, permutation_null(t, i, parallel=IN_PROCESS, **kw))


def _continuous(n: int) -> tuple[np.ndarray, np.ndarray]:
    """targets (n, 2), inputs (n, 1): continuous, one target dependent on the input."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 1))
    return np.hstack([x + rng.normal(size=x.shape), rng.normal(size=x.shape)]), x


def _per_replicate_null(targets, inputs, *, n_permutations, seed, k, scheme):
    """The null as R separate MI-matrix passes over resampled inputs (the unbatched way)."""
    children = np.random.SeedSequence(seed).spawn(n_permutations)
    return np.stack(
        [
            mi_matrix(
                targets, resample_inputs(inputs, c, scheme), k, parallel=IN_PROCESS, progress=False
            )
            for c in children
        ]
    )


@pytest.mark.parametrize("scheme", ["shift", "permute"])
def test_batched_null_equals_per_replicate_bit_for_bit(scheme):
    # Discrete synthetic columns (serial kernel) and continuous ones with > 4096 distinct
    # points (threaded kernel).
    _, targets, inputs = _data("copy", steps=1000)
    datasets = [(targets, inputs), _continuous(5000)]
    for t, i in datasets:
        kw = dict(n_permutations=3, seed=4, k=10, scheme=scheme)
        batched = permutation_null(t, i, parallel=IN_PROCESS, progress=False, **kw)
        np.testing.assert_array_equal(batched, _per_replicate_null(t, i, **kw))


def test_shift_replicate_is_np_roll_by_the_drawn_offset():
    """The replicate rows reproduce the earlier np.roll replicates (same seeds, same nulls)."""
    inputs = np.arange(40.0).reshape(20, 2)
    for child in np.random.SeedSequence(0).spawn(5):
        shift = int(np.random.default_rng(child).integers(2, 18))  # [N/10, 9N/10)
        expected = np.roll(inputs, shift, axis=0)
        np.testing.assert_array_equal(resample_inputs(inputs, child, "shift"), expected)


def test_null_cache_reused(tmp_path):
    _, targets, inputs = _data("copy", steps=600)
    kw = dict(n_permutations=3, seed=5, k=10, parallel=IN_PROCESS, progress=False)
    first = permutation_null(targets, inputs, cache_dir=tmp_path, **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"null_{r}.npy" for r in range(3)]
    np.save(tmp_path / "null_1.npy", np.full(first.shape[1:], 42.0))
    (tmp_path / "null_2.npy").unlink()
    again = permutation_null(targets, inputs, cache_dir=tmp_path, **kw)
    np.testing.assert_array_equal(again[[0, 2]], first[[0, 2]])  # 2 recomputed identically
    assert np.all(again[1] == 42.0)  # 1 read back, not recomputed


def test_min_mi_and_alpha():
    rng = np.random.default_rng(0)
    null = rng.chisquare(1, (20, 3, 4)) / 2e4
    mi = np.full((3, 4), 2e-4)
    mi[0, 0] = 0.5  # strong
    mi[1, 1] = 0.004  # significant but small
    kept = binarize_significance(mi, null)
    assert kept[0, 0] and kept[1, 1] and kept.sum() == 2
    kept = binarize_significance(mi, null, min_mi=0.01)
    assert kept[0, 0] and not kept[1, 1]
    for alpha in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(UserError, match="alpha"):
            binarize_significance(mi, null, alpha=alpha)
    with pytest.raises(UserError, match="min-mi"):
        binarize_significance(mi, null, min_mi=-1)


def test_adjust_pvalues():
    p = np.array([0.01, 0.04, 0.03, np.nan])
    np.testing.assert_allclose(adjust_pvalues(p, "holm")[:3], [0.03, 0.06, 0.06])
    np.testing.assert_allclose(adjust_pvalues(p, "bh")[:3], [0.03, 0.04, 0.04])
    assert np.isnan(adjust_pvalues(p, "bonferroni")[3])


def test_bootstrap_stability_clean_structure():
    env, targets, inputs = _data("copy", steps=4000)
    truth = env.ground_truth
    factorize = Factorizer(
        tuple(truth.target_names),
        tuple(truth.input_names),
        ThresholdRule(n_permutations=8),
        k=20,
        parallel=IN_PROCESS,
    )
    reference, adjacency = factorize(targets, inputs)
    stability = bootstrap_stability(
        targets,
        inputs,
        factorize,
        reference,
        n_bootstrap=2,
        seed=0,
        progress=False,
        resample="subsample",
        fraction=0.5,
    )
    assert stability.edge_frequency.shape == (6, 9)
    # a fraction of the 2 resamples: 0, 1/2 or 1
    assert np.isin(stability.edge_frequency, [0.0, 0.5, 1.0]).all()
    assert stability.cluster_frequency == [1.0, 1.0]
    assert stability.edge_stability(adjacency) == 1.0
    assert stability.edge_frequency[~env.relation].max() <= 1 / 2
    saved = stability.to_dict()
    assert saved["mean_cluster_frequency"] == 1.0 and len(saved["edge_frequency"]) == 6
