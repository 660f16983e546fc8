import json

import numpy as np
import pytest

from gridfactor.errors import UserError
from gridfactor.factorize import (
    Cluster,
    Factorization,
    binarize_quantile,
    clusters_from_adjacency,
)
from gridfactor.factorize.pipeline import (
    ThresholdRule,
    ZoneRule,
    adjacency_factorization,
    threshold_adjacency,
    zone_factorization,
)
from gridfactor.mi import MIResult


def test_components_of_bipartite_graph_are_ordered_blocks():
    adjacency = np.zeros((4, 5), dtype=bool)
    adjacency[[0, 2], 1] = True  # targets 0, 2 <- input 1
    adjacency[2, 4] = True  # ... and input 4
    adjacency[1, 0] = True  # target 1 <- input 0
    clusters = clusters_from_adjacency(adjacency)
    assert clusters == [
        Cluster((0, 2), (1, 4)),
        Cluster((1,), (0,)),
        Cluster((3,), ()),
        Cluster((), (2,)),
        Cluster((), (3,)),
    ]


def test_quantile_binarization_keeps_top_of_each_column():
    matrix = np.array([[0.9, 0.0], [0.1, 0.0], [0.5, 0.0], [0.2, 0.0]])
    kept = binarize_quantile(matrix, 0.7)
    # 0.7 quantile of [0.1, 0.2, 0.5, 0.9] is 0.53: only 0.9 survives; zero column: no edge.
    assert kept[:, 0].tolist() == [True, False, False, False]
    assert not kept[:, 1].any()
    with pytest.raises(UserError, match="quantile"):
        binarize_quantile(matrix, 1.5)


def test_commands_path_splits_a_bridge_that_merges_components():
    """threshold_adjacency -> zone_factorization, the path `factorize-data` and `synthetic`
    take: two blocks joined by one weaker bridge edge are one connected component (the
    seed's clusters) but two zones; a target and an input without any kept edge stay
    singletons."""
    rng = np.random.default_rng(0)
    unbiased = np.zeros((7, 7))  # exact zeros off the blocks: the quantile keeps what is > 0
    blocks = [([0, 3, 5], [1, 2]), ([1, 2, 4], [0, 3, 4, 5])]
    for rows, cols in blocks:
        unbiased[np.ix_(rows, cols)] = rng.uniform(0.8, 1.2, (len(rows), len(cols)))
    unbiased[0, 0] = 0.3  # the bridge: target 0 (first block) <- input 0 (second block)
    # target 6 and input 6 have no MI at all
    shuffled = rng.uniform(0.0, 0.1, unbiased.shape)  # the rule must read the unbiased MI
    mi = MIResult(mi=unbiased + shuffled, shuffled=shuffled, unbiased=unbiased)
    names_t, names_i = [f"t{i}" for i in range(7)], [f"x{j}" for j in range(7)]
    adjacency, extras = threshold_adjacency(
        ThresholdRule("quantile", quantile=0.4), None, None, mi, seed=0
    )
    assert extras == {}
    np.testing.assert_array_equal(adjacency, unbiased > 0)

    components = adjacency_factorization(adjacency, names_t, names_i, {"threshold": "quantile"})
    assert components.clusters == [
        Cluster((0, 1, 2, 3, 4, 5), (0, 1, 2, 3, 4, 5)),
        Cluster((6,), ()),
        Cluster((), (6,)),
    ]
    same = zone_factorization(unbiased, adjacency, names_t, names_i, ZoneRule("components"))
    assert same.clusters == components.clusters and same.meta["partition"] == "components"

    zones = zone_factorization(
        unbiased, adjacency, names_t, names_i, ZoneRule("spectral"), meta={"seed": 0}
    )
    assert [(list(c.targets), list(c.inputs)) for c in zones.clusters] == [
        *blocks,
        ([6], []),
        ([], [6]),
    ]
    assert zones.meta["zones"]["n_zones"] == 2 and zones.meta["partition"] == "spectral"
    assert zones.meta["seed"] == 0
    rows, cols = zones.block_order()
    assert rows == [0, 3, 5, 1, 2, 4, 6] and cols == [1, 2, 0, 3, 4, 5, 6]


def test_json_round_trip_and_validation(tmp_path):
    factorization = Factorization(
        ["l0", "l1", "l2"],
        ["sub0", "sub1"],
        [Cluster((0, 2), (1,)), Cluster((1,), (0,))],
        meta={"env_name": "x"},
    )
    path = tmp_path / "f.json"
    factorization.save(path)
    loaded = Factorization.load(path)
    assert loaded == factorization
    data = json.loads(path.read_text())
    assert data["clusters"][0]["target_names"] == ["l0", "l2"]

    data["schema_version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="schema_version 99"):
        Factorization.load(path)
    with pytest.raises(UserError, match="out of range"):
        Factorization(["a"], ["b"], [Cluster((3,), (0,))])
    with pytest.raises(UserError, match="more than one cluster"):
        Factorization(["a", "b"], ["c"], [Cluster((0,), (0,)), Cluster((1,), (0,))])
    with pytest.raises(UserError, match="empty"):
        Factorization(["a"], ["b"], [Cluster((), ())])
    path.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        Factorization.load(path)
