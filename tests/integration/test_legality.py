"""Action legality: which envs can play topology actions, and what grid2op did with them.

Real grid2op test envs; the crafted cases are copies of l2rpn_case14_sandbox's directory with
a ``parameters.json`` (grid2op reads it when the env is made from a directory).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gridfactor.collect import (
    CollectConfig,
    check_action_effects,
    collect,
    describe_action_effects,
)
from gridfactor.collect.grid2op_collect import load_dataset
from gridfactor.envs.grid2op_env import (
    TOPOLOGY,
    action_support,
    available_test_envs,
    check_action_support,
    env_data_dir,
    envs_supporting,
    make_env,
)
from gridfactor.errors import UserError
from gridfactor.parallel import ParallelConfig
from tests.helpers import run_cli, run_main

warnings.filterwarnings("ignore")
IN_PROCESS = ParallelConfig(workers=1)
NO_SET_BUS = ("educ_case14_redisp", "educ_case14_storage")
QUICK = {"educ_case14_redisp", "l2rpn_case14_sandbox", "rte_case5_example"}


def _collected(env_name: str, out: Path, **settings) -> tuple[pd.DataFrame, dict]:
    """Collect in-process (case14's 6+-element substations, seed 0) and load the dataset."""
    config = CollectConfig(env_name=env_name, min_elements=6, seed=0, chunk_size=4, **settings)
    collect(config, out, parallel=IN_PROCESS, progress=False)
    return load_dataset(out)


def _sandbox_with(tmp_path: Path, name: str, **parameters) -> str:
    """A copy of the sandbox env's directory whose grid2op parameters are ``parameters``."""
    env_dir = tmp_path / name  # own name: grid2op names its generated classes after it
    shutil.copytree(
        env_data_dir("l2rpn_case14_sandbox"),
        env_dir,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (env_dir / "parameters.json").write_text(json.dumps(parameters))
    return str(env_dir)


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=() if n in QUICK else pytest.mark.slow) for n in available_test_envs()],
)
def test_action_support_is_what_the_real_action_space_says(name):
    """action_support reads config.py (ms) instead of making the env (s): same answer."""
    env = make_env(name)
    try:
        class_name, types = action_support(name)
        assert env.action_space.actionClass.__name__.startswith(class_name)
        for kind in ("set_bus", "change_bus", "set_line_status", "change_line_status"):
            assert (kind in types) == env.action_space.supports_type(kind), kind
    finally:
        env.close()


def test_which_test_envs_support_topology():
    assert set(NO_SET_BUS) <= set(available_test_envs())
    supporting = envs_supporting(TOPOLOGY)
    assert set(supporting) == set(available_test_envs()) - set(NO_SET_BUS)
    check_action_support("l2rpn_case14_sandbox", TOPOLOGY, "gridfactor collect")
    with pytest.raises(UserError) as info:
        check_action_support("educ_case14_storage", TOPOLOGY, "gridfactor collect")
    message = str(info.value)
    assert "\n" not in message
    for fragment in (
        "educ_case14_storage",
        "PowerlineChangeDispatchAndStorageAction",
        "change_line_status, redispatch, set_storage",
        "set_bus",
        ", ".join(supporting),
    ):
        assert fragment in message, fragment
    with pytest.raises(UserError, match="available offline test envs"):
        check_action_support("no_such_env", TOPOLOGY, "gridfactor collect")


def test_collection_waits_while_its_substation_cools_down(tmp_path):
    """NB_TIMESTEP_COOLDOWN_SUB = 2 and an action drawn at every step: grid2op would refuse
    the two steps after each legal action, so the collector waits (plays do-nothing) on
    them: exactly the steps 0, 3, 6, ... of an episode act, and none is refused.
    NO_OVERFLOW_DISCONNECTION keeps lines from tripping (a tripped line would add
    reconnection refusals the rule below does not model). Expected counts are computed from
    that rule and the dataset alone, not from grid2op's step info as the collector does."""
    env_name = _sandbox_with(
        tmp_path, "sandbox_cooldown2", NB_TIMESTEP_COOLDOWN_SUB=2, NO_OVERFLOW_DISCONNECTION=True
    )
    frame, sidecar = _collected(env_name, tmp_path / "run", n_episodes=6, max_steps=12)
    lines = sidecar["line_names"]
    blackout = (frame[[f"s_next_{n}" for n in lines]].to_numpy() == 0).all(axis=1)
    frame["blackout"] = blackout & frame["done"].to_numpy()
    # the other episode ends are a chronic's last step (no game over: the action counts)
    ends = frame[frame["done"] & ~frame["blackout"]]
    lengths = np.array(sidecar["chronic_lengths"])[ends["chronic"]]
    assert (ends["init_ts"] + ends["step"] == lengths - 1).all()
    cooling = frame["step"].mod(3).gt(0)
    assert (frame.loc[cooling, "action"] == -1).all()  # waited
    assert (frame.loc[~cooling, "action"] >= 0).all()  # acted

    env = make_env(env_name)
    expected = {}
    for sub_id, rows in frame.groupby("substation"):
        space = env.action_space
        actions = space.get_all_unitary_topologies_set(space, sub_id=int(sub_id))
        # an episode starts with every element on bus 1: that action changes nothing
        (all_on_bus_1,) = [i for i, a in enumerate(actions) if set(a.set_bus) <= {0, 1}]
        counts = dict.fromkeys(("changed", "no_change", "game_over", "illegal"), 0)
        for _, episode in rows.groupby("episode"):
            configuration = all_on_bus_1
            for row in episode.itertuples():
                if row.step % 3:
                    continue
                if row.blackout:
                    counts["game_over"] += 1
                elif row.action == configuration:
                    counts["no_change"] += 1
                else:
                    counts["changed"] += 1
                    configuration = row.action
        expected[sidecar["sub_names"][sub_id]] = counts
    env.close()

    effects = sidecar["action_effects"]
    got = {
        name: {k: row[k] for k in ("changed", "no_change", "game_over", "illegal")}
        for name, row in effects["per_substation"].items()
    }
    assert got == expected
    for row in effects["per_substation"].values():
        acted = frame[(frame["substation"] == row["sub_id"]) & ~cooling]
        assert row["actions"] == len(acted) and row["refused"] == 0
    assert sum(c["no_change"] for c in expected.values()) > 0  # every kind was exercised
    assert sum(c["game_over"] for c in expected.values()) > 0
    assert describe_action_effects(sidecar)[0].startswith("action legality: all ")


def test_counters_when_a_rule_refuses_every_action_are_exact(tmp_path):
    """MAX_SUB_CHANGED = 0: grid2op refuses every topology action (a rule the observation
    does not announce, unlike a cooldown): each one is counted illegal, with grid2op's
    message, and the console names the cause per substation."""
    env_name = _sandbox_with(tmp_path, "sandbox_maxsub0", MAX_SUB_CHANGED=0)
    frame, sidecar = _collected(env_name, tmp_path / "run", n_episodes=3, max_steps=6)
    effects = sidecar["action_effects"]
    for row in effects["per_substation"].values():
        rows = frame[frame["substation"] == row["sub_id"]]
        assert row["actions"] == row["illegal"] == row["refused"] == len(rows) > 0
        assert row["changed"] == row["no_change"] == row["game_over"] == 0
        (reason,) = row["reasons"].items()
        assert reason[0] == "illegal:IllegalAction" and reason[1]["count"] == row["illegal"]
        assert "More than 0 substation affected" in reason[1]["example"]
    total = effects["total"]
    assert total["actions"] == total["illegal"] == len(frame)
    lines_out = describe_action_effects(sidecar)
    assert len(lines_out) == 1 + len(effects["per_substation"])
    assert f"refused {total['refused']} of {total['actions']}" in lines_out[0]
    assert all(" illegal (IllegalAction: More than 0 substation" in x for x in lines_out[1:])


def test_factorize_refuses_when_grid2op_refused_the_actions(tmp_path):
    """The CLI: collection runs, then one error line naming the substation and the cause."""
    env_name = _sandbox_with(tmp_path, "sandbox_maxsub0", MAX_SUB_CHANGED=0)
    out = tmp_path / "run"
    proc = run_main(
        "factorize",
        *("--env", env_name, "--n-episodes", "3", "--max-steps", "10", "--min-elements", "6"),
        *("--workers", "1", "--out", str(out)),
    )
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "random topology actions on sub_" in errors[0]
    assert "More than 0 substation affected" in errors[0] and "Relax the env's rule" in errors[0]
    assert not (out / "factorization.json").exists() and not (out / "mi.npy").exists()
    # every action was refused
    frame, sidecar = load_dataset(out)
    assert sidecar["action_effects"]["total"]["illegal"] == len(frame)


def test_env_without_set_bus_gives_empty_actions_and_is_refused(tmp_path):
    """Past the up-front check (the library API): grid2op builds every action empty."""
    config = CollectConfig(
        env_name="educ_case14_redisp", n_episodes=2, max_steps=3, min_elements=6, seed=0
    )
    collect(config, tmp_path, parallel=IN_PROCESS, progress=False)
    sidecar = json.loads((tmp_path / "dataset.json").read_text())
    total = sidecar["action_effects"]["total"]
    assert total["empty"] == total["actions"] == total["refused"] == sidecar["n_rows"] > 0
    with pytest.raises(UserError, match="empty .the action class has no set_bus.") as info:
        check_action_effects(sidecar)
    assert "Use an env whose action class supports set_bus" in str(info.value)


def test_actions_leave_out_lines_alone_so_none_is_refused(tmp_path):
    """l2rpn_case14_sandbox: overflows trip lines; a unitary action sets every element of its
    substation, which would reconnect such a line in its cooldown (grid2op refused 22% of
    sub_12's actions when the collector played them as they are). The collector leaves the
    ends of out lines alone: no action is refused, also on the steps where a line of the
    acted-on substation carried no flow (out, or dangling on a bus of its own)."""
    config = CollectConfig(env_name="l2rpn_case14_sandbox", n_episodes=3, max_steps=10, seed=0)
    collect(config, tmp_path, parallel=IN_PROCESS, progress=False)
    frame, sidecar = load_dataset(tmp_path)
    check_action_effects(sidecar)
    total = sidecar["action_effects"]["total"]
    assert total["refused"] == 0 and total["actions"] > 0
    assert describe_action_effects(sidecar)[0].startswith("action legality: all ")

    env = make_env("l2rpn_case14_sandbox")
    cls = type(env)
    lines = sidecar["line_names"]
    before = frame[[f"s_{n}" for n in lines]].to_numpy()
    after = frame[[f"s_next_{n}" for n in lines]].to_numpy()
    game_over = (after == 0).all(axis=1)
    restricted = 0
    for row in np.flatnonzero((frame["action"] >= 0).to_numpy() & ~game_over):
        sub_id = frame["substation"].iloc[row]
        ends_here = (cls.line_or_to_subid == sub_id) | (cls.line_ex_to_subid == sub_id)
        restricted += bool((ends_here & (before[row] == 0)).any())
    env.close()
    assert restricted > 0  # the case was exercised


def test_collect_prints_one_line_when_every_action_was_legal(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        *("collect", "--env", "rte_case14_realistic", "--n-episodes", "3", "--max-steps", "10"),
        *("--workers", "1", "--out", str(out)),
    )
    sidecar = json.loads((out / "dataset.json").read_text())
    total = sidecar["action_effects"]["total"]
    assert total["refused"] == 0 and total["actions"] == sidecar["n_rows"]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("action legality")]
    assert line.startswith(f"action legality: all {total['actions']} topology actions legal (")
    assert f"{total['no_change']} re-set the configuration in place" in line
    assert sum(total[k] for k in ("changed", "no_change", "game_over")) == total["actions"]


def test_every_baseline_declares_the_action_types_it_plays():
    """Each agent name ``evaluate --agents`` accepts is checked up front (a missing entry
    crashed ``compare`` after training, when its evaluation stage began)."""
    from gridfactor.envs.grid2op_env import AGENT_ACTION_TYPES, check_agents_support
    from gridfactor.evaluate import BASELINES

    assert set(BASELINES) <= set(AGENT_ACTION_TYPES)
    command = "gridfactor evaluate"
    check_agents_support("l2rpn_case14_sandbox", list(BASELINES), command, trained=True)
    with pytest.raises(UserError, match="expert-zone"):
        check_agents_support("educ_case14_redisp", ["do-nothing", "expert-zone"], command)


def test_restricted_actions_stay_on_their_substation():
    """One worker plays every substation with one cache: the action without the out lines'
    ends must be its own substation's, whatever other substation had the same action index
    and the same pattern of out ends before (each line out in turn)."""
    from gridfactor.collect.grid2op_collect import _sub_targets
    from gridfactor.envs.topology import without_out_lines

    env = make_env("l2rpn_case14_sandbox")
    cls = type(env)
    cache: dict = {}
    subs = [s for s in range(cls.n_sub) if cls.sub_info[s] >= 4]
    checked = 0
    for line in range(cls.n_line):
        status = np.ones(cls.n_line, dtype=bool)
        status[line] = False
        for sub_id in subs:
            own = np.flatnonzero(cls.grid_objects_types[:, 0] == sub_id)
            for target in _sub_targets(env, cache, sub_id)[:8]:
                restricted = without_out_lines(env.action_space, cache, target, status)
                if restricted is None:
                    continue
                action, kept = restricted
                assert set(np.flatnonzero(action.set_bus)) <= set(own), (line, sub_id)
                assert set(kept.positions) <= set(own) and line not in kept.end_of
                checked += 1
    env.close()
    assert checked > 20
