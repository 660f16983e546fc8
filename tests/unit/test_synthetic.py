import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env

from gridfactor.envs.synthetic import (
    SEED_BLOCKS,
    CopyMDP,
    FactoredMDP,
    random_blocks,
    random_unequal_blocks,
)
from gridfactor.errors import UserError
from gridfactor.factorize.run import MI_FILES
from tests.helpers import assert_user_error, stamps


@pytest.mark.parametrize("cls", [CopyMDP, FactoredMDP])
def test_envs_follow_gymnasium_api_and_expose_truth(cls):
    env = cls(5, 3, SEED_BLOCKS, seed=0)
    check_env(env, skip_render_check=True)
    truth = env.ground_truth
    assert [c.targets for c in truth.clusters] == [(0, 2, 4), (1, 3)]
    assert truth.input_names[truth.clusters[1].inputs[-1]] == "a_a2"
    assert env.relation.sum() == 3 * 5 + 2 * 3


@pytest.mark.parametrize("cls", [CopyMDP, FactoredMDP])
def test_rollout_respects_blocks(cls):
    env = cls(5, 3, SEED_BLOCKS, n_values=3, seed=1)
    data = env.rollout(3000, seed=2)
    assert data["s"].shape == (3000, 5) and data["a"].shape == (3000, 3)
    np.testing.assert_array_equal(data["s"][1:], data["s_next"][:-1])
    assert data["s"].max() == 2
    # Blocks never mix: s'_1 depends on its block only, so it is independent of a0.
    frame = pd.DataFrame({"a0": data["a"][:, 0], "s1n": data["s_next"][:, 1]})
    means = frame.groupby("a0").s1n.mean()
    assert means.max() - means.min() < 0.15
    np.testing.assert_array_equal(env.rollout(50, seed=2)["s"], env.rollout(50, seed=2)["s"])


def test_copy_env_copies_a_related_variable():
    relation = np.zeros((2, 3), dtype=bool)
    relation[0, 2] = True  # s'_0 <- a0
    relation[1, 0] = True  # s'_1 <- s0
    env = CopyMDP(2, 1, [SEED_BLOCKS[0].__class__((0, 1), (0,))], relation=relation, seed=0)
    data = env.rollout(200, seed=0)
    np.testing.assert_array_equal(data["s_next"][:, 0], data["a"][:, 0])
    np.testing.assert_array_equal(data["s_next"][:, 1], data["s"][:, 0])


def test_random_structures_partition_variables():
    rng = np.random.default_rng(3)
    blocks = random_blocks(8, 4, 3, rng)
    assert sorted(s for b in blocks for s in b.states) == list(range(8))
    assert all(b.states and b.actions for b in blocks)
    n_state, n_action, blocks = random_unequal_blocks(rng)
    assert 2 <= len(blocks) <= 5
    assert all(2 <= len(b.states) <= 5 and 1 <= len(b.actions) <= 3 for b in blocks)
    assert sorted(a for b in blocks for a in b.actions) == list(range(n_action))
    with pytest.raises(UserError, match="lower --n-blocks"):
        random_blocks(2, 4, 3, rng)


def test_synthetic_command_recovers_seed_case(cli, tmp_path):
    out = tmp_path / "run"
    proc = cli(
        "synthetic",
        "--out",
        str(out),
        "--steps",
        "20000",
        "--quantiles",
        "0.7,0.8",
        "--n-permutations",
        "10",
        "--workers",
        "1",
    )
    table = pd.read_csv(out / "recovery.csv")
    assert len(table) == 6
    assert table.loc[table["threshold"] != "quantile 0.80", "exact"].all(), table
    assert "copy: significance alpha=0.01:" in proc.stdout
    for generator in ("copy", "factored"):
        for name in (
            "factorization.json",
            "truth.json",
            "mi.npy",
            "unbiased_mi.npy",
            "mi_heatmap.png",
            "binarized.png",
            "blocks.png",
            "transitions.npz",
        ):
            assert (out / generator / name).is_file(), name
    # Same command again: reuses the finished run (resume): the rollouts, MI matrices and
    # permutation nulls are loaded, not recomputed (same files, untouched); same table.
    finished = [
        out / generator / name
        for generator in ("copy", "factored")
        for name in ("transitions.npz", *MI_FILES)
    ]
    nulls = sorted(out.glob("*/null/null_*.npy"))
    assert len(nulls) == 2 * 10, nulls  # --n-permutations 10 per generator
    before = stamps(finished + nulls)
    cli(
        "synthetic",
        "--out",
        str(out),
        "--steps",
        "20000",
        "--quantiles",
        "0.7,0.8",
        "--n-permutations",
        "10",
        "--workers",
        "1",
    )
    pd.testing.assert_frame_equal(pd.read_csv(out / "recovery.csv"), table)
    assert stamps(finished + nulls) == before
    # A different config in the same directory is refused, one line.
    assert_user_error(
        cli("synthetic", "--out", str(out), "--steps", "1000", check=False), "different config"
    )


def test_monotone_tables_give_inputs_a_pairwise_footprint():
    from gridfactor.envs.synthetic import Block
    from gridfactor.mi import unbiased_mi_matrix
    from gridfactor.parallel import ParallelConfig

    blocks = [Block((0, 1, 2, 3), (0, 1, 2))]
    deterministic = FactoredMDP(4, 3, blocks, n_values=3, randomness=0.0, seed=5)
    data = deterministic.rollout(2000, seed=0)
    frame = pd.DataFrame(np.concatenate([data["s"], data["a"], data["s_next"]], axis=1))
    assert frame.groupby(list(range(7))).nunique().max().max() == 1  # same (s, a) -> same s'
    mean_mi = {}
    for randomness in (0.5, 1.0):
        env = FactoredMDP(4, 3, blocks, n_values=3, randomness=randomness, seed=5)
        data = env.rollout(4000, seed=0)
        result = unbiased_mi_matrix(
            data["s_next"].astype(float),
            np.concatenate([data["s"], data["a"]], axis=1).astype(float),
            seed=0,
            k=20,
            parallel=ParallelConfig(workers=1),
            progress=False,
        )
        mean_mi[randomness] = result.unbiased.mean()
    # The seed's purely random tables hide single inputs (pairwise MI ~ 0); half monotone
    # tables make them visible.
    assert mean_mi[0.5] > 0.01 > abs(mean_mi[1.0])
