"""Zones: the partition of an MI graph, the physics reference, their command-line errors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.metrics import adjusted_rand_score

from gridfactor.factorization import clusters_from_adjacency
from gridfactor.factorize.partition import METHODS, ZonePartitioner, ZoneScore, score_zones
from tests.helpers import DATA, assert_user_error


def blocks_matrix(sizes, *, rng, strength=1.0, noise=0.01):
    """(n_t, n_i) block-diagonal MI: block b has sizes[b] = (targets, inputs)."""
    n_t = sum(t for t, _ in sizes)
    n_i = sum(i for _, i in sizes)
    w = rng.uniform(0, noise, (n_t, n_i))
    t_lab, i_lab = (
        np.repeat(range(len(sizes)), [t for t, _ in sizes]),
        np.repeat(range(len(sizes)), [i for _, i in sizes]),
    )
    for b in range(len(sizes)):
        w[np.ix_(t_lab == b, i_lab == b)] += (
            strength * rng.uniform(0.5, 1.0, (t_lab == b).sum())[:, None]
        )
    return w, t_lab, i_lab


@pytest.mark.parametrize("method", METHODS)
def test_bridge_merges_components_but_not_zones(method):
    rng = np.random.default_rng(0)
    w, t_lab, i_lab = blocks_matrix([(6, 3), (5, 3)], rng=rng)
    w[5, 3] = 0.6  # one target of block 0 also moved by an input of block 1: the bridge
    components = clusters_from_adjacency(w > 0.1)
    assert sum(1 for c in components if c.targets and c.inputs) == 1  # one bridge merges all
    part = ZonePartitioner("auto", method, random_state=0).fit_predict(w)
    assert part.n_zones == 2
    assert adjusted_rand_score(i_lab, part.input_labels) == 1.0
    assert adjusted_rand_score(t_lab, part.target_labels) == 1.0


@pytest.mark.parametrize("method", METHODS)
def test_auto_on_block_diagonal_returns_the_blocks(method):
    rng = np.random.default_rng(1)
    w, t_lab, i_lab = blocks_matrix([(4, 2), (6, 3), (5, 2), (3, 2)], rng=rng, noise=0.0)
    part = ZonePartitioner("auto", method, random_state=0).fit_predict(w)
    assert part.n_zones == 4
    assert adjusted_rand_score(i_lab, part.input_labels) == 1.0
    assert adjusted_rand_score(t_lab, part.target_labels) == 1.0
    assert part.score.inside_share == pytest.approx(1.0)
    assert 2 * part.score.null_replicates >= 19  # the chosen K was tested


def test_a_k_the_shuffled_copies_do_not_reach_is_not_significant():
    """The 118-bus grid, seed 3: co-clustering reached K = 25 on the MI but on none of the 19
    shuffled copies; an untested K counted as beating a null of 0 and won with 25 zones."""
    score = ZoneScore(n_zones=25, inside_share=0.73, cut_mi=1.0, modularity=0.66)
    assert not replace(score, null_replicates=0, null_required=19).significant
    assert not replace(score, null_max=0.5, null_replicates=9, null_required=19).significant
    assert replace(score, null_max=0.5, null_replicates=10, null_required=19).significant
    assert replace(score, null_max=0.5, null_replicates=19, null_required=19).significant
    assert not replace(score, null_max=0.7, null_replicates=19, null_required=19).significant
    assert replace(score, n_zones=1).significant


def test_one_zone_when_asked_and_when_nothing_stands_out():
    rng = np.random.default_rng(2)
    w, _, _ = blocks_matrix([(5, 3), (5, 3)], rng=rng)
    one = ZonePartitioner(1).fit_predict(w)
    assert one.n_zones == 1 and set(one.input_labels) == {0} and set(one.target_labels) == {0}
    assert one.score.inside_share == 1.0 and one.score.modularity == pytest.approx(0.0, abs=1e-12)
    flat = rng.uniform(0.9, 1.0, (10, 6))  # every input moves every target alike
    assert ZonePartitioner("auto").fit_predict(flat).n_zones == 1


def test_fixed_k_curve_and_scores_are_consistent():
    rng = np.random.default_rng(3)
    w, _, _ = blocks_matrix([(5, 2), (5, 2), (5, 2)], rng=rng, noise=0.05)
    part = ZonePartitioner(2, max_zones=3).fit_predict(w)
    assert part.n_zones == 2 and part.rule == "fixed"
    assert [s.n_zones for s in part.curve] == [1, 2, 3]
    again = score_zones(w, part.target_labels, part.input_labels)
    assert (again.inside_share, again.modularity) == (
        part.score.inside_share,
        part.score.modularity,
    )
    assert part.score.significant and part.score.modularity > part.score.null_max
    assert part.score.cut_mi == pytest.approx(w.sum() * (1 - part.score.inside_share))
    # the null's spread is recorded (drawn in zones_curve.png)
    for s in part.curve[1:]:
        assert s.null_std > 0 and s.null_max >= s.null_modularity
        assert s.to_dict()["null_std"] == s.null_std


def test_targets_without_mi_use_the_fallback_and_unpartitioned_inputs_are_left_out():
    rng = np.random.default_rng(4)
    w, _, i_lab = blocks_matrix([(4, 2), (4, 2)], rng=rng, noise=0.0)
    w = np.vstack([w, np.zeros((1, 4))])  # a target nobody moves
    w = np.hstack([w, rng.uniform(0, 1, (9, 1))])  # an input that is not partitioned
    fallback = np.zeros_like(w)
    fallback[8, 3] = 1.0  # the lonely target is next to input 3 (zone of block 1)
    part = ZonePartitioner("auto").fit_predict(w, inputs=[0, 1, 2, 3], fallback=fallback)
    assert part.input_labels[4] == -1
    assert part.target_labels[8] == part.input_labels[3]
    no_fallback = ZonePartitioner("auto").fit_predict(w, inputs=[0, 1, 2, 3])
    assert no_fallback.target_labels[8] == -1


def test_seed_settings_case14_matrix_gives_the_two_voltage_levels():
    """l2rpn_case14_sandbox at the seed settings (1000 episodes, 50 000 samples, seed 29):
    the significance rule and the quantile rule give one cluster; the zones are {sub 1-4} and
    {sub 5, 8, 12}, the grid's two voltage levels, with 80% of the MI inside."""
    unbiased = np.load(DATA / "case14_seed29_unbiased_mi.npy")
    acted = [1, 2, 3, 4, 5, 8, 12]
    for method in METHODS:
        part = ZonePartitioner("auto", method, random_state=0).fit_predict(unbiased, acted)
        assert part.n_zones == 2, method
        zones = [set(np.flatnonzero(part.input_labels == z)) for z in range(2)]
        assert zones == [{1, 2, 3, 4}, {5, 8, 12}], method
        assert part.score.inside_share >= 0.79, method


def test_physics_reference_case14_two_connected_zones():
    from gridfactor.envs.grid2op_env import make_env
    from gridfactor.grid.physics import physics_zones

    env = make_env("l2rpn_case14_sandbox")
    zones = physics_zones(env, 2)
    assert zones.zones() == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10, 11, 12, 13]]
    or_sub, ex_sub = env.line_or_to_subid, env.line_ex_to_subid
    for subs in zones.zones():
        inside = np.isin(or_sub, subs) & np.isin(ex_sub, subs)
        graph = csr_matrix(
            (np.ones(inside.sum()), (or_sub[inside], ex_sub[inside])), (env.n_sub, env.n_sub)
        )
        _, labels = connected_components(graph[subs][:, subs], directed=False)
        assert len(set(labels)) == 1, subs
    # a line between the zones goes with one of its two ends
    for line in range(env.n_line):
        assert zones.line_labels[line] in {
            zones.sub_labels[or_sub[line]],
            zones.sub_labels[ex_sub[line]],
        }


def test_zones_command_prints_the_physics_zones(cli):
    proc = cli("zones", "--env", "l2rpn_case14_sandbox", "--k", "2")
    assert "zone 0: substations [0, 1, 2, 3, 4]" in proc.stdout
    assert "zone 1: substations [5, 6, 7, 8, 9, 10, 11, 12, 13]" in proc.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("factorize", "--n-zones", "0"), "--n-zones 0"),
        (("factorize", "--n-zones", "8"), "at most 7"),  # case14 acts on 7 substations
        (("factorize", "--n-zones", "many"), "--n-zones must be 'auto' or an integer"),
        (("factorize", "--partition", "kmeans"), "unknown partition method 'kmeans'"),
        (("zones", "--k", "0"), "--k 0 is outside 1..14"),
    ],
)
def test_bad_zone_arguments_are_one_line_errors(cli, tmp_path, args, fragment):
    out = tmp_path / "run"
    command, *rest = args
    extra = ["--out", str(out), "--n-episodes", "2"] if command == "factorize" else []
    proc = cli(command, "--env", "l2rpn_case14_sandbox", *rest, *extra, check=False)
    assert_user_error(proc, fragment)
    assert not out.exists()
