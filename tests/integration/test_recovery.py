"""The experts' recovery rule: a split substation goes back to its reference topology when a
simulation says it is safe, on a real case14 state."""

from __future__ import annotations

import warnings

import numpy as np


def test_a_split_substation_is_put_back_only_when_safe_and_not_cooling():
    from gridfactor.agents.baselines import unitary_topology_actions, unitary_topology_subs
    from gridfactor.agents.expert import Recovery
    from gridfactor.envs.grid2op_env import make_grid2op_env

    warnings.filterwarnings("ignore")
    env = make_grid2op_env("rte_case14_realistic", cache=False)
    params = env.parameters
    params.NB_TIMESTEP_COOLDOWN_SUB = 2
    env.change_parameters(params)
    env.seed(0)
    obs = env.reset()
    actions, subs = unitary_topology_actions(env), unitary_topology_subs(env)
    sub = 1
    positions = np.flatnonzero(type(env).grid_objects_types[:, 0] == sub)
    split = next(
        a for a, s in zip(actions, subs, strict=True) if s == sub and (a.set_bus == 2).any()
    )
    obs, _, done, info = env.step(split)
    assert not done and not info["is_illegal"] and (obs.topo_vect[positions] == 2).any()
    rules = Recovery(env.action_space, [sub, 5], safe_rho=2.0)
    assert rules.action(obs) is None  # substation 1 is cooling: grid2op would refuse it
    obs, *_ = env.step(env.action_space({}))
    obs, *_ = env.step(env.action_space({}))
    assert obs.time_before_cooldown_sub[sub] == 0 and (obs.topo_vect[positions] == 2).any()
    back = rules.action(obs)
    assert back is not None
    assert Recovery(env.action_space, [sub], safe_rho=0.01).action(obs) is None  # not safe
    assert Recovery(env.action_space, [5], safe_rho=2.0).action(obs) is None  # not split
    obs, _, done, info = env.step(back)
    assert not done and not info["is_illegal"]
    assert (obs.topo_vect[positions] == 1).all()  # the reference topology again
