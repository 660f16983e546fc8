"""Grid2Op random-topology collection: shape, columns, seeding, workers, resume, errors."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from gridfactor.collect import DATASET_FILE, CollectConfig, collect, grid_info
from gridfactor.errors import UserError
from gridfactor.parallel import ParallelConfig
from gridfactor.runs import read_parquet

warnings.filterwarnings("ignore")

ENV = "l2rpn_case14_sandbox"
SMALL = {"env_name": ENV, "n_episodes": 3, "max_steps": 8, "chunk_size": 2, "seed": 5}
IN_PROCESS = ParallelConfig(workers=1)


def _bytes(run_dir) -> bytes:
    return (run_dir / DATASET_FILE).read_bytes()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted in-process collection, shared by the comparisons below."""
    out = tmp_path_factory.mktemp("ref")
    collect(CollectConfig(**SMALL), out, parallel=IN_PROCESS, progress=False)
    return out


def test_dataset_shape_columns_and_encoding(reference):
    info = grid_info(ENV)
    frame = read_parquet(reference / DATASET_FILE)
    sidecar = json.loads((reference / "dataset.json").read_text())
    # sandbox: substations with > 3 elements
    assert info.selected == (1, 2, 3, 4, 5, 8, 12)
    lines, subs = info.line_names, info.sub_names
    expected = [f"s_{n}" for n in lines] + [f"a_{n}" for n in subs] + [f"s_next_{n}" for n in lines]
    assert list(frame.columns[-len(expected) :]) == expected
    for col in ("episode_id", "substation", "episode", "step", "done", "action"):
        assert col in frame.columns
    assert set(frame["substation"]) == set(info.selected)
    assert frame.groupby("substation")["episode"].nunique().eq(3).all()
    assert frame["step"].max() < SMALL["max_steps"]
    assert len(frame) == sidecar["n_rows"]
    assert sidecar["env_name"] == ENV and sidecar["seed"] == 5
    assert {"grid2op", "lightsim2grid"} <= set(sidecar["versions"])
    # canonical order: (substation, episode, step) sorted
    keys = frame[["substation", "episode", "step"]].to_numpy()
    assert (np.lexsort(keys.T[::-1]) == np.arange(len(frame))).all()
    # action encoding: index / n_actions on the acted substation, 0 elsewhere
    for sub_id in info.selected:
        rows = frame[frame["substation"] == sub_id]
        a = rows[[f"a_{n}" for n in subs]].to_numpy()
        np.testing.assert_allclose(
            a[:, sub_id], rows["action"].to_numpy() / info.n_actions[sub_id], rtol=1e-6
        )
        assert (np.delete(a, sub_id, axis=1) == 0).all()
        assert (a[:, sub_id] >= 0).all() and (a[:, sub_id] < 1).all()
    # s_next of a step is s of the next step within an episode (same trajectory)
    s = frame[[f"s_{n}" for n in lines]].to_numpy()
    s_next = frame[[f"s_next_{n}" for n in lines]].to_numpy()
    same_episode = frame["episode_id"].to_numpy()[1:] == frame["episode_id"].to_numpy()[:-1]
    np.testing.assert_array_equal(s_next[:-1][same_episode], s[1:][same_episode])
    # episode starts spread over chronics / time steps
    assert frame.groupby("episode_id")["init_ts"].first().nunique() > 5


def test_same_seed_same_dataset_any_workers_or_chunking(reference, tmp_path):
    collect(CollectConfig(**SMALL), tmp_path / "again", parallel=IN_PROCESS, progress=False)
    assert _bytes(tmp_path / "again") == _bytes(reference)
    # Ray with 2 workers and a different chunking: same rows, same order, same values
    collect(
        CollectConfig(**{**SMALL, "chunk_size": 3}),
        tmp_path / "ray",
        parallel=ParallelConfig(workers=2),
        progress=False,
    )
    pd.testing.assert_frame_equal(
        read_parquet(tmp_path / "ray" / DATASET_FILE), read_parquet(reference / DATASET_FILE)
    )
    collect(
        CollectConfig(**{**SMALL, "seed": 6}),
        tmp_path / "other",
        parallel=IN_PROCESS,
        progress=False,
    )
    assert not read_parquet(tmp_path / "other" / DATASET_FILE).equals(
        read_parquet(reference / DATASET_FILE)
    )


def test_interrupted_then_resumed_is_bit_identical(reference, tmp_path):
    out = tmp_path / "run"
    saved: list[int] = []

    def interrupt_after_three(index: int, total: int) -> None:
        saved.append(index)
        if len(saved) == 3:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C after 3 chunks

    with pytest.raises(KeyboardInterrupt):
        collect(
            CollectConfig(**SMALL),
            out,
            parallel=IN_PROCESS,
            progress=False,
            on_chunk=interrupt_after_three,
        )
    assert not (out / DATASET_FILE).exists()
    assert len(list((out / "parts").glob("*.npz"))) == 3
    resumed: list[int] = []
    collect(
        CollectConfig(**SMALL),
        out,
        parallel=IN_PROCESS,
        progress=False,
        on_chunk=lambda i, n: resumed.append(i),
    )
    assert sorted(resumed) == sorted(set(range(14)) - set(saved))  # 7 subs x 2 chunks
    assert _bytes(out) == _bytes(reference)
    # the action counters of the chunks saved before the interruption come from their parts
    assert _effects(out) == _effects(reference)
    assert _effects(out)["total"]["actions"] == len(read_parquet(out / DATASET_FILE))


def _effects(run_dir) -> dict:
    return json.loads((run_dir / "dataset.json").read_text())["action_effects"]


def test_parts_of_another_collector_version_are_collected_again(reference, tmp_path):
    """A run collected by an older collector (it played other actions): its dataset.json and
    one part lack the current version. Collecting again redoes only that part and rebuilds
    the dataset: same bytes and counters as a fresh run, nothing old mixed in."""
    import shutil

    from gridfactor.collect.grid2op_collect import COLLECTOR_VERSION

    out = tmp_path / "old"
    shutil.copytree(reference, out)
    sidecar = json.loads((out / "dataset.json").read_text())
    assert sidecar.pop("collector_version") == COLLECTOR_VERSION
    (out / "dataset.json").write_text(json.dumps(sidecar))
    old_part = sorted((out / "parts").glob("*.npz"))[3]
    with np.load(old_part) as data:
        arrays = {k: data[k] for k in data.files if k != "collector_version"}
    np.savez(old_part, **arrays)
    redone: list[int] = []
    collect(
        CollectConfig(**SMALL),
        out,
        parallel=IN_PROCESS,
        progress=False,
        on_chunk=lambda i, n: redone.append(i),
    )
    assert redone == [3]
    assert _bytes(out) == _bytes(reference)
    assert _effects(out) == _effects(reference)


def test_explore_lengthens_episodes(tmp_path):
    base = {**SMALL, "n_episodes": 4, "max_steps": 30, "min_elements": 7}  # sub 5 only
    lengths = {}
    for explore in (1.0, 0.1):
        out = tmp_path / str(explore)
        collect(
            CollectConfig(**{**base, "explore": explore}), out, parallel=IN_PROCESS, progress=False
        )
        frame = read_parquet(out / DATASET_FILE)
        lengths[explore] = frame.groupby("episode").size().mean()
        if explore < 1:
            assert (frame["action"] == -1).any()
            assert (frame.loc[frame["action"] == -1, "a_sub_5"] == -1).all()
    assert lengths[0.1] > lengths[1.0]


@pytest.mark.parametrize(
    "field, value",
    [("n_episodes", 0), ("max_steps", -1), ("chunk_size", 0), ("explore", 0.0), ("explore", 1.5)],
)
def test_bad_settings_are_user_errors(field, value):
    with pytest.raises(UserError, match=field.replace("_", "-")):
        CollectConfig(**{**SMALL, field: value}).validate()


def test_unknown_env_is_user_error(tmp_path):
    with pytest.raises(UserError, match="available offline test envs"):
        collect(CollectConfig(env_name="no_such_env"), tmp_path, parallel=IN_PROCESS)


def test_grid2op_aliases_are_known_envs():
    """grid2op's test names include aliases (l2rpn_wcci_2022 -> its _dev data): accepted."""
    from gridfactor.envs.grid2op_env import available_test_envs, check_env_name

    names = available_test_envs()
    assert {"l2rpn_wcci_2022", "l2rpn_wcci_2022_dev", "l2rpn_case14_sandbox"} <= set(names)
    assert "l2rpn_neurips_2020_track2" not in names  # listed by grid2op, no chronics on disk
    check_env_name("l2rpn_wcci_2022")
    with pytest.raises(UserError, match="l2rpn_wcci_2022_dev"):
        check_env_name("l2rpn_wcci_2023")
    # known to grid2op, data not shipped: the message says how to get it
    with pytest.raises(UserError, match=r"grid2op.make\('l2rpn_neurips_2020_track2'\)"):
        check_env_name("l2rpn_neurips_2020_track2")


def test_chronics_cache_gives_the_same_episodes():
    """The in-memory chronics and their jump to the start must not change the data."""
    from gridfactor.collect import grid2op_collect as gc
    from gridfactor.envs import grid2op_env as g2e
    from gridfactor.envs.grid2op_env import make_env

    info = grid_info(ENV)
    chunk = gc.Chunk(ENV, "lightsim", 5, 0, 3, 11, 6, 1.0, info.chronic_ids, info.chronic_lengths)
    cached = gc.run_chunk(chunk)
    key = (ENV, "lightsim")
    # chronics in memory, a reset jumps to its start (the chunk's starts are random steps)
    assert type(g2e.ENV_CACHE[key].chronics_handler.real_data).__name__ == "FastForwardChronics"
    saved = g2e.ENV_CACHE[key], gc._ACTION_CACHE[key]
    try:
        g2e.ENV_CACHE[key], gc._ACTION_CACHE[key] = make_env(ENV), {}
        plain = gc.run_chunk(chunk)
    finally:
        g2e.ENV_CACHE[key], gc._ACTION_CACHE[key] = saved
    assert cached.keys() == plain.keys()
    for name in set(cached) - {"cpu_seconds"}:  # everything but the timing
        np.testing.assert_array_equal(cached[name], plain[name])


def test_rows_per_substation_keeps_the_shortest_prefix_of_chunks(tmp_path):
    """factorize's cap: a substation stops once its first chunks hold the rows MI uses; the
    data is exactly that prefix of the uncapped data, whatever the workers' timing."""
    from gridfactor.collect.grid2op_collect import PARTS_DIR, game_over_rows, load_dataset

    full_config = CollectConfig(env_name=ENV, n_episodes=8, max_steps=8, chunk_size=2, seed=7)
    capped_config = CollectConfig(**{**full_config.__dict__, "rows_per_substation": 12})
    collect(full_config, tmp_path / "full", parallel=IN_PROCESS, progress=False)
    collect(capped_config, tmp_path / "capped", parallel=IN_PROCESS, progress=False)
    collect(capped_config, tmp_path / "ray", parallel=ParallelConfig(workers=2), progress=False)
    assert _bytes(tmp_path / "capped") == _bytes(tmp_path / "ray")

    full, _ = load_dataset(tmp_path / "full")
    capped, sidecar = load_dataset(tmp_path / "capped")
    next_rho = [c for c in full.columns if c.startswith("s_next_")]
    expected = []
    for sub, rows in full.groupby("substation", sort=True):
        usable = (~game_over_rows(rows[next_rho].to_numpy())).astype(int)
        per_chunk = pd.Series(usable).groupby(rows["episode"].to_numpy() // 2).sum()
        enough = np.flatnonzero(per_chunk.cumsum().to_numpy() >= 12)
        n_chunks = enough[0] + 1 if len(enough) else len(per_chunk)
        expected.append(rows[rows["episode"] < 2 * n_chunks])
        assert sidecar["episodes_per_substation"][str(sub)] == 2 * n_chunks
    expected = pd.concat(expected, ignore_index=True)
    pd.testing.assert_frame_equal(capped.reset_index(drop=True), expected)
    # some substation stopped early, and in-process its later chunks never ran
    n_parts = len(list((tmp_path / "capped" / PARTS_DIR).glob("*.npz")))
    assert len(capped) < len(full)
    assert n_parts == sum(sidecar["episodes_per_substation"].values()) // 2 < 4 * 7
