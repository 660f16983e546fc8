"""Decision env and high-level rules on the real rte_case14_realistic test env."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest

from gridfactor.agents.cluster import build_agents, centralized_factorization
from gridfactor.agents.high_level import HighLevelRules
from gridfactor.errors import UserError
from tests.helpers import case14_factorization

ENV = "rte_case14_realistic"


@pytest.fixture(scope="module")
def g2env():
    from gridfactor.envs.grid2op_env import make_grid2op_env

    env = make_grid2op_env(ENV, cache=False)
    yield env
    env.close()


@pytest.fixture()
def obs(g2env):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return copy.deepcopy(g2env.reset(seed=0, options={"time serie id": 0}))


def test_is_unsafe(obs):
    rules = HighLevelRules(danger=0.9)
    obs.rho[:] = 0.5
    assert not rules.is_unsafe(obs)
    obs.rho[7] = 0.95
    assert rules.is_unsafe(obs)
    assert not HighLevelRules(danger=0.99).is_unsafe(obs)


def test_rank_substations_capa(obs):
    rules = HighLevelRules()
    obs.rho[:] = 0.1
    # line 7 joins subs 5 and 10, line 12 joins 9 and 10, line 9 joins 5 and 12
    obs.rho[7] = 1.2
    obs.rho[12] = 0.8
    obs.rho[9] = 0.95
    order = rules.rank_substations(obs, [1, 5, 9, 10, 12])
    # subs 5 and 10 both see max 1.2; 10 has mean (1.2 + 0.8) / 2, 5 has a lower mean over
    # its 5 lines; then 12 (0.95), then 9 (0.8), then 1 (0.1)
    assert order == [10, 5, 12, 9, 1]
    assert rules.rank_substations(obs, [1]) == [1]


def test_rank_substations_matches_the_sort_of_its_definition(obs):
    """The vectorized CAPA order equals sorting by (-max rho, -mean rho, id) of each
    substation's lines, ties included (rho drawn on a coarse grid so that they occur)."""
    rules = HighLevelRules()
    lines_of = {
        s: np.flatnonzero((obs.line_or_to_subid == s) | (obs.line_ex_to_subid == s))
        for s in range(obs.n_sub)
    }
    rng = np.random.default_rng(0)
    for _ in range(200):
        obs.rho[:] = rng.integers(0, 4, obs.n_line) / 4
        subs = sorted(rng.choice(obs.n_sub, size=rng.integers(1, obs.n_sub), replace=False))
        expected = sorted(
            subs, key=lambda s: (-obs.rho[lines_of[s]].max(), -obs.rho[lines_of[s]].mean(), s)
        )
        assert rules.rank_substations(obs, subs) == [int(s) for s in expected]


def test_reconnect_action(obs, g2env):
    rules = HighLevelRules()
    obs.line_status[:] = True
    assert rules.reconnect_action(obs, g2env.action_space) is None
    obs.line_status[[4, 11]] = False
    obs.time_before_cooldown_line[:] = 0
    obs.time_before_cooldown_line[4] = 3  # cooling down: not yet
    action = rules.reconnect_action(obs, g2env.action_space)
    assert action is not None
    assert action.line_set_status[11] == 1
    assert np.count_nonzero(action.line_set_status) == 1
    # a line under maintenance is not reconnected
    obs.time_next_maintenance[11] = 0
    obs.duration_next_maintenance[11] = 5
    assert rules.reconnect_action(obs, g2env.action_space) is None


def test_safe_action_reconnects_as_the_frame_says(g2env):
    """always: reconnect when allowed; never: do nothing; checked: reconnect only when the
    simulated step after it stays below the danger threshold (a real disconnection, real
    simulations)."""
    from gridfactor.agents.frame import DecisionFrame

    fact = case14_factorization(g2env)
    do_nothing = g2env.action_space({})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g2env.reset(seed=0, options={"time serie id": 0})
        obs, *_ = g2env.step(g2env.action_space({"set_line_status": [(11, -1)]}))
        for _ in range(g2env.parameters.NB_TIMESTEP_COOLDOWN_LINE):
            obs, *_ = g2env.step(do_nothing)
    assert not obs.line_status[11] and obs.time_before_cooldown_line[11] == 0

    def safe(mode, danger=0.9):
        return DecisionFrame(fact, g2env, danger=danger, reconnect=mode).safe_action(
            obs, g2env.action_space
        )

    assert safe("always").line_set_status[11] == 1
    assert safe("never") == do_nothing
    after = float(obs.simulate(safe("always"))[0].rho.max())
    assert safe("checked", danger=after + 0.01).line_set_status[11] == 1
    assert safe("checked", danger=after - 0.01) == do_nothing
    with pytest.raises(UserError, match="--reconnect must be one of"):
        DecisionFrame(fact, g2env, reconnect="sometimes")


def test_build_agents(g2env):
    # cluster 1 holds only sub 7, which has no topology action: no agent
    fact = case14_factorization(g2env, groups=[(0, 1, 2, 3, 4, 5, 6, 8), (7,)])
    agents = build_agents(fact, g2env)
    assert [a.agent_id for a in agents] == ["cluster_0"]
    assert agents[0].actions[0] == g2env.action_space({})
    assert set(agents[0].action_subs[1:]) == {0, 1, 2, 3, 4, 5, 6, 8}
    central = build_agents(centralized_factorization(g2env, ENV), g2env)
    assert len(central) == 1
    assert 7 not in central[0].subs and central[0].subs.size == 13
    assert central[0].n_actions == 1 + sum(
        len(g2env.action_space.get_all_unitary_topologies_set(g2env.action_space, sub_id=s))
        for s in range(14)
    )


def test_observation_encoder_matches_its_definition(obs, g2env):
    """The encoder's one gather + clip gives, feature by feature, the documented features
    (written out group by group here), on an observation with a disconnected line, a NaN
    rho, an overload beyond the clip, cooldowns and a substation on bus 2."""
    from gridfactor.agents.cluster import ObservationEncoder

    obs.rho[3], obs.rho[5], obs.rho[7] = np.nan, 4.2, 1.3
    obs.line_status[7], obs.rho[7] = False, 0.0
    obs.topo_vect[obs.line_or_pos_topo_vect[7]] = -1
    obs.topo_vect[obs.line_ex_pos_topo_vect[7]] = -1
    obs.topo_vect[obs.line_or_pos_topo_vect[2]] = 2
    obs.time_before_cooldown_line[[7, 8]] = [3, 12]
    obs.time_before_cooldown_sub[[1, 5]] = [3, 10]

    def features(lines, topo_pos, subs):
        rho = np.asarray(obs.rho, dtype=np.float64)
        topo = np.asarray(obs.topo_vect)[topo_pos]
        return np.concatenate(
            [
                np.clip(np.nan_to_num(rho[lines]), 0.0, 3.0),
                np.asarray(obs.line_status, dtype=float)[lines],
                np.minimum(np.asarray(obs.time_before_cooldown_line)[lines] / 10.0, 1.0),
                (topo == 2).astype(float),
                (topo == -1).astype(float),
                np.minimum(np.asarray(obs.time_before_cooldown_sub)[subs] / 10.0, 1.0),
                [min(np.nanmax(rho), 3.0)],
            ]
        ).astype(np.float32)

    for agent in build_agents(case14_factorization(g2env), g2env):
        encoder = ObservationEncoder(agent, g2env, "local")
        expected = features(agent.lines, agent.topo_pos, agent.subs)
        for local in (encoder(obs), encoder.reference(obs)):  # compiled, numpy reference
            assert local.dtype == np.float32 and np.array_equal(local, expected)
    all_lines, all_pos = np.arange(g2env.n_line), np.arange(g2env.dim_topo)
    global_ = ObservationEncoder(agent, g2env, "global")(obs)
    assert np.array_equal(global_, features(all_lines, all_pos, np.arange(g2env.n_sub)))
    # the edge cases are in the features: the overload clipped, the NaN at 0, the indicators
    assert global_[5] == 3.0 and global_[3] == 0.0 and global_[-1] == 3.0
    assert global_[3 * g2env.n_line + obs.line_or_pos_topo_vect[2]] == 1.0


def test_observation_encoder_refuses_more_than_two_busbars(g2env):
    """The encoder's bus indicators assume two busbars: a 3-busbar env gets a one-line
    error naming the fix, not silently wrong features."""
    import grid2op
    from lightsim2grid import LightSimBackend

    from gridfactor.agents.cluster import ObservationEncoder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = grid2op.make(ENV, test=True, n_busbar=3, backend=LightSimBackend())
    try:
        agent = build_agents(case14_factorization(env), env)[0]
        with pytest.raises(UserError, match="n_busbar=2"):
            ObservationEncoder(agent, env, "local")
    finally:
        env.close()


def test_factorization_env_mismatch(g2env):
    from gridfactor.agents.decision_env import DecisionEnv

    fact = case14_factorization(g2env, env_name="l2rpn_case14_sandbox")
    with pytest.raises(UserError, match="made for env"):
        DecisionEnv({"env_name": ENV, "factorization": fact.to_dict()})


def test_decision_env_api_and_turns(g2env):
    from ray.rllib.env.multi_agent_env import MultiAgentEnv
    from ray.rllib.utils.pre_checks.env import check_multiagent_environments

    from gridfactor.agents.decision_env import DecisionEnv

    fact = case14_factorization(g2env)
    env = DecisionEnv(
        {
            "env_name": ENV,
            "factorization": fact.to_dict(),
            "episode_steps": 60,
            "seed": 3,
            "chronics": [0],
        }
    )
    assert isinstance(env, MultiAgentEnv)
    assert env.possible_agents == ["cluster_0", "cluster_1", "cluster_2"]
    check_multiagent_environments(env)
    obs, infos = env.reset(seed=5)
    assert len(obs) == 1  # turn-based: exactly one agent decides
    rng = np.random.default_rng(0)
    episodes = 0
    rewards_total = 0.0
    while episodes < 3:
        (aid,) = obs
        assert env.observation_spaces[aid].contains(obs[aid])
        assert env.rules.is_unsafe(env.obs)  # agents are only asked when unsafe
        action = int(rng.integers(env.action_spaces[aid].n))
        obs, rew, term, trunc, infos = env.step({aid: action})
        assert set(rew) <= {aid}  # the acting agent gets the credit
        rewards_total += sum(rew.values())
        if term["__all__"] or trunc["__all__"]:
            episodes += 1
            stats = env.pending_episodes[-1]
            assert stats["survival_steps"] <= 60
            assert term["__all__"] != trunc["__all__"]
            obs, infos = env.reset()
        else:
            assert len(obs) == 1
    assert env.pending_steps > 0
    env.close()


def test_decision_frames_are_built_once_per_process_and_action_space():
    """An evaluation with --score switches an agent between its own env and grid2op
    Runner's: the frames (every unitary action of the zones) must not be rebuilt."""
    from gridfactor.agents.baselines import ZoneExpertAgent
    from gridfactor.agents.frame import frame_for
    from gridfactor.envs.grid2op_env import make_env

    env_a, env_b = make_env(ENV), make_env(ENV)
    fact = case14_factorization(env_a)
    frame_a, frame_b = frame_for(fact, env_a), frame_for(fact, env_b)
    assert frame_a is not frame_b  # each frame's actions belong to its action space
    agent = ZoneExpertAgent(fact)
    for env, frame in ((env_a, frame_a), (env_b, frame_b), (env_a, frame_a)):
        assert agent.prepare(env) is frame
    assert frame_for(fact, env_a, obs_mode="global") is not frame_a  # other settings


def test_agents_play_topology_actions_without_out_lines_ends(g2env):
    """With two lines of a substation out, every action of the zone agent of that
    substation simulates as legal: the frame plays it without the out lines' ends. The
    same actions as enumerated ask grid2op to reconnect both lines, which it refuses (one
    line status change per step; checked, so the situation is real); the full expert's
    candidates get the same treatment."""
    from gridfactor.agents.baselines import playable_actions, unitary_topology_actions
    from gridfactor.agents.frame import DecisionFrame

    def illegal(obs, actions):
        return sum(bool(obs.simulate(a)[3]["is_illegal"]) for a in actions)

    out = [3, 4]  # substation 1 -> 3 and 1 -> 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g2env.reset(seed=0, options={"time serie id": 0})
        for line in out:  # one status change per step
            obs, _, done, _ = g2env.step(g2env.action_space({"set_line_status": [(line, -1)]}))
    assert not done and not obs.line_status[out].any()
    frame = DecisionFrame(case14_factorization(g2env), g2env)
    aid = frame.sub_owner[1]
    raw = frame.by_id[aid].actions
    assert illegal(obs, raw) > 5  # the double reconnections grid2op refuses
    played = frame.candidates(aid, obs)
    assert len(played) == len(raw) and illegal(obs, played) == 0
    ends = g2env.line_or_pos_topo_vect[out]
    assert all(not np.any(a.set_bus[ends]) for a in played)
    assert frame.action(aid, 3, obs) is played[3]  # cached: one action object per state
    playable = playable_actions(g2env)
    expert = [playable(a, obs) for a in unitary_topology_actions(g2env)]
    assert illegal(obs, expert) == 0


def biased_module(frame, aid, obs, biases: dict[int, float]):
    """(a real, untrained RLlib RLModule for agent ``aid`` whose logits are ``biases``
    whatever the observation, its last layer)."""
    import gymnasium as gym
    import torch
    from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import (
        DefaultPPOTorchRLModule,
    )
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    n_features = frame.encode(aid, obs).shape[0]
    module = RLModuleSpec(
        module_class=DefaultPPOTorchRLModule,
        observation_space=gym.spaces.Box(-np.inf, np.inf, (n_features,), np.float32),
        action_space=gym.spaces.Discrete(frame.by_id[aid].n_actions),
        model_config={"fcnet_hiddens": [8], "head_fcnet_hiddens": []},
    ).build()
    head = [m for m in module.pi.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        for index, value in biases.items():
            head.bias[index] = value
    return module, head


def test_agents_never_pick_actions_of_substations_in_cooldown():
    """With a substation cooldown (3 steps, as on l2rpn_neurips_2020_track1), after an
    action on substation 1 grid2op refuses every action of substation 1. The frame flags
    exactly those; the experts do not simulate them (outcome COOLDOWN, same choice and max
    rho as simulating everything, where they come back ILLEGAL); a trained policy whose
    largest logit is such an action waits (do nothing), and never plays one with a guard
    or when the zones propose."""
    import torch

    from gridfactor.agents.cluster import centralized_factorization
    from gridfactor.agents.expert import COOLDOWN, FEASIBLE, ILLEGAL, best_by_simulation
    from gridfactor.agents.frame import frame_for
    from gridfactor.agents.trained import TrainedAgent
    from gridfactor.envs.grid2op_env import make_grid2op_env

    env = make_grid2op_env(ENV, cache=False)
    params = env.parameters
    params.NB_TIMESTEP_COOLDOWN_SUB = 3
    env.change_parameters(params)
    fact = centralized_factorization(env, ENV)
    frame = frame_for(fact, env)
    (aid,) = frame.agent_ids
    subs = frame.by_id[aid].action_subs

    def changes_topology(action, obs) -> bool:
        at = action.set_bus > 0
        return bool(np.any(action.set_bus[at] != obs.topo_vect[at]))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs = env.reset(seed=0, options={"time serie id": 0})
        assert not frame.in_cooldown(aid, obs).any()
        played = frame.candidates(aid, obs)
        _, rhos, _ = best_by_simulation(obs, played)
        acted = next(
            i
            for i in np.flatnonzero((subs == 1) & np.isfinite(rhos))
            if changes_topology(played[i], obs)
        )
        obs, _, done, _ = env.step(played[acted])
        assert not done and obs.time_before_cooldown_sub[1] > 0
        cooling = frame.in_cooldown(aid, obs)
        assert np.array_equal(cooling, subs == 1) and cooling.sum() > 10
        candidates = frame.candidates(aid, obs)
        best_all, rhos_all, outcomes_all = best_by_simulation(obs, candidates)
        best, rhos, outcomes = best_by_simulation(obs, candidates, cooling)
    assert (outcomes_all[cooling] == ILLEGAL).all()  # what grid2op says: refused
    assert (outcomes[cooling] == COOLDOWN).all() and not (outcomes[~cooling] == COOLDOWN).any()
    assert best == best_all and np.array_equal(rhos, rhos_all)
    assert not cooling[best] and outcomes[best] == FEASIBLE

    # a real (untrained) RLModule whose head prefers a cooling action, then an available one
    preferred, fallback = int(np.flatnonzero(cooling)[0]), int(np.flatnonzero(~cooling)[1])
    module, head = biased_module(frame, aid, obs, {preferred: 10.0, fallback: 5.0})
    agent = TrainedAgent("centralized", ENV, fact, 0.9, "local", {}, Path("."), {aid: module})
    obs.rho[:] = 0.1
    obs.rho[0] = 1.1  # unsafe: a decision is due
    assert int(np.argmax(agent.logits(aid, frame.encode(aid, obs)))) == preferred
    # greedy: the agent waits (plays do nothing) rather than its second choice
    assert agent.choose(obs, env) == (aid, 0)
    assert agent.act(obs, env) == env.action_space({})
    with torch.no_grad():
        head.bias[preferred] = 0.0
    agent = TrainedAgent("centralized", ENV, fact, 0.9, "local", {}, Path("."), {aid: module})
    assert agent.choose(obs, env) == (aid, fallback)  # not cooling: played
    assert agent.act(obs, env) is frame.action(aid, fallback, obs)
    with torch.no_grad():
        head.bias[preferred] = 10.0
    agent = TrainedAgent("centralized", ENV, fact, 0.9, "local", {}, Path("."), {aid: module})
    for guard, coordinator in ((3, "capa"), (0, "propose"), (3, "propose")):
        agent.guard, agent.coordinator = guard, coordinator
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            played = agent.act(obs, env)
        assert not any(played is frame.action(aid, int(i), obs) for i in np.flatnonzero(cooling))
    env.close()


def test_zones_propose_and_the_best_simulated_proposal_is_played(g2env):
    """coordinator "propose": every zone's policy proposes its action, the one with the
    lowest simulated max rho is played, though CAPA hands the decision to another zone."""
    from gridfactor.agents.expert import best_by_simulation
    from gridfactor.agents.frame import frame_for
    from gridfactor.agents.trained import TrainedAgent

    fact = case14_factorization(g2env)
    frame = frame_for(fact, g2env)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs = copy.deepcopy(g2env.reset(seed=0, options={"time serie id": 0}))
        # each zone's best action (its expert's), and how much it lowers max rho
        best = {}
        for aid in frame.agent_ids:
            index, rhos, _ = best_by_simulation(obs, frame.candidates(aid, obs))
            best[aid] = (index, rhos[index], rhos[0])
    winner = min(best, key=lambda a: best[a][1])
    assert best[winner][0] != 0 and best[winner][1] < best[winner][2]  # acting helps
    # a line in danger that CAPA hands to another zone (rho is only read by the rules)
    for line in range(g2env.n_line):
        obs.rho[:] = 0.1
        obs.rho[line] = 1.1
        if frame.choose_agent(obs)[0] != winner:
            break
    capa_zone = frame.choose_agent(obs)[0]
    assert capa_zone != winner
    modules = {
        aid: biased_module(frame, aid, obs, {index: 10.0})[0] for aid, (index, _, _) in best.items()
    }
    agent = TrainedAgent("distributed-local", ENV, fact, 0.9, "local", {}, Path("."), modules)
    capa = agent.act(obs, g2env)
    if best[capa_zone][0] == 0:  # that zone's policy proposes nothing
        assert capa == g2env.action_space({})
    else:
        assert capa is frame.action(capa_zone, best[capa_zone][0], obs)
    assert capa is not frame.action(winner, best[winner][0], obs)
    agent.coordinator = "propose"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proposed = agent.act(obs, g2env)
    assert proposed is frame.action(winner, best[winner][0], obs)


def test_wait_confidence_acts_when_do_nothing_is_likeliest_but_unsure(g2env):
    """Do nothing is the largest logit but holds less than the asked probability: the agent
    plays its most likely action instead; above it, or greedy (0), it waits."""
    from gridfactor.agents.frame import frame_for
    from gridfactor.agents.trained import TrainedAgent
    from gridfactor.evaluate.scenarios import parse_waits

    fact = centralized_factorization(g2env, ENV)
    frame = frame_for(fact, g2env)
    (aid,) = frame.agent_ids
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs = g2env.reset(seed=0, options={"time serie id": 0})
    acting = 7
    module, _ = biased_module(frame, aid, obs, {0: 3.0, acting: 2.5})
    obs.rho[:] = 0.1
    obs.rho[0] = 1.1  # unsafe: a decision is due
    n = frame.by_id[aid].n_actions
    p_wait = np.exp(3.0) / (np.exp(3.0) + np.exp(2.5) + n - 2)
    assert 0.05 < p_wait < 0.95

    def agent(wait: float) -> TrainedAgent:
        return TrainedAgent(
            "centralized",
            ENV,
            fact,
            0.9,
            "local",
            {},
            Path("."),
            {aid: module},
            wait_confidence=wait,
        )

    assert agent(0.0).choose(obs, g2env) == (aid, 0)
    assert agent(p_wait - 0.01).choose(obs, g2env) == (aid, 0)
    assert agent(p_wait + 0.01).choose(obs, g2env) == (aid, acting)
    assert agent(p_wait + 0.01).act(obs, g2env) is frame.action(aid, acting, obs)
    with pytest.raises(UserError, match="wait confidence"):
        agent(1.5)
    assert parse_waits("0,0.7,0.7") == (0.0, 0.7)
    with pytest.raises(UserError, match="--wait-confidence"):
        parse_waits("high")


def random_module(n_features: int, n_actions: int, seed: int):
    """A real, untrained RLlib RLModule (random weights, two tanh layers)."""
    import gymnasium as gym
    import torch
    from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import (
        DefaultPPOTorchRLModule,
    )
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    torch.manual_seed(seed)
    return RLModuleSpec(
        module_class=DefaultPPOTorchRLModule,
        observation_space=gym.spaces.Box(-np.inf, np.inf, (n_features,), np.float32),
        action_space=gym.spaces.Discrete(n_actions),
        model_config={"fcnet_hiddens": [32, 16], "head_fcnet_hiddens": []},
    ).build()


def test_compiled_decision_matches_the_numpy_reference():
    """The pure decision (one compiled call: CAPA, the zone's features, its policy, the
    greedy set, the wait confidence, the cooldown check) chooses, state by state, what the
    numpy reference chooses: ``rank_substations``, the encoder's numpy reference, the
    numpy layers' logits (an ensemble's log mean probabilities), argmax. Real case14 states
    from random topology actions (buses 2, cooldowns, out lines); random policies, so that
    the choices vary; single policies and an ensemble with a greedy set, waiting greedily
    and with a wait confidence."""
    from gridfactor.agents.frame import frame_for
    from gridfactor.agents.policy_net import GreedyEnsemble, GreedyMLP
    from gridfactor.agents.trained import TrainedAgent
    from gridfactor.envs.grid2op_env import make_grid2op_env

    g2env = make_grid2op_env(ENV, cache=False)
    params = g2env.parameters
    params.NB_TIMESTEP_COOLDOWN_SUB = 3  # as on l2rpn_neurips_2020_track1: choices cool
    g2env.change_parameters(params)
    fact = case14_factorization(g2env)
    frame = frame_for(fact, g2env, danger=0.8)
    rng = np.random.default_rng(0)
    states = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs = g2env.reset(seed=0, options={"time serie id": 0})
        for _ in range(150):
            aid = frame.agent_ids[rng.integers(len(frame.agent_ids))]
            index = int(rng.integers(frame.by_id[aid].n_actions))
            obs, _, done, _ = g2env.step(frame.action(aid, index, obs))
            if done:
                obs = g2env.reset(seed=int(rng.integers(100)))
            states.append(copy.deepcopy(obs))
    assert any((s.topo_vect == 2).any() for s in states)
    assert any((s.time_before_cooldown_sub > 0).any() for s in states)

    sizes = {a: (frame.encode(a, obs).size, frame.by_id[a].n_actions) for a in frame.agent_ids}
    single = {
        aid: GreedyMLP.from_module(random_module(*sizes[aid], seed=k))
        for k, aid in enumerate(sizes)
    }
    ensemble = {
        aid: GreedyEnsemble(
            (single[aid], GreedyMLP.from_module(random_module(*sizes[aid], seed=10 + k))),
            (np.arange(n), rng.permutation(n)),
            n,
        )
        for k, (aid, (_, n)) in enumerate(sizes.items())
    }
    greedy_sets = {
        aid: [key for i, key in enumerate(frame.by_id[aid].action_keys) if i % 3 != 1]
        for aid in frame.agent_ids
    }

    def reference(agent: TrainedAgent, obs) -> tuple[str | None, int]:
        if not obs.rho.max() >= agent.danger:
            return None, -1
        sub = frame.rules.rank_substations(obs, frame.candidate_subs)[0]
        aid = frame.sub_owner[sub]
        logits = agent.logits(aid, frame.encoders[aid].reference(obs))
        keys = frame.by_id[aid].action_keys
        if agent.greedy_sets is not None:
            keep = set(agent.greedy_sets[aid])
            logits = np.where([k in keep for k in keys], logits, -np.inf)
        top = int(np.argmax(logits))
        if top == 0 and agent.wait_confidence > 0:
            p = np.exp(logits - logits[0])
            if 1.0 / p.sum() < agent.wait_confidence:
                top = int(np.argmax(logits[1:])) + 1
        if top and frame.in_cooldown(aid, obs)[top]:
            top = 0
        return aid, top

    chosen = set()
    settings = ((single, None, 0.0), (single, None, 0.3), (ensemble, greedy_sets, 0.0))
    for policies, greedy, wait in settings:
        agent = TrainedAgent(
            "distributed-local", ENV, fact, 0.8, "local", {}, Path("."), policies,
            greedy_sets=greedy, wait_confidence=wait,
        )  # fmt: skip
        agent.bind(g2env)
        for obs in states:
            expected = reference(agent, obs)
            assert agent.choose(obs, g2env) == expected
            chosen.add(expected)
            if expected[0] is not None:  # the scores are the (mean) probabilities
                logits = agent.logits(expected[0], frame.encode(expected[0], obs))
                p = np.exp(logits - logits[np.isfinite(logits)].max())
                np.testing.assert_allclose(agent.scores(expected[0], obs), p / p.sum(), atol=1e-6)
    # the states exercise CAPA's zones, acting, waiting and the safe rule
    assert {aid for aid, _ in chosen} >= {None, *frame.agent_ids}
    assert len({index for _, index in chosen if index and index > 0}) >= 5
    assert (frame.agent_ids[0], 0) in chosen or (frame.agent_ids[1], 0) in chosen
    g2env.close()


PREPARE_SCRIPT = """
import warnings, sys
warnings.simplefilter("ignore")
sys.path.insert(0, {root!r})
from pathlib import Path
import numpy as np
from gridfactor.agents import compiled
from gridfactor.agents.frame import frame_for
from gridfactor.agents.policy_net import GreedyMLP
from gridfactor.agents.trained import TrainedAgent
from gridfactor.envs.grid2op_env import make_grid2op_env
from tests.helpers import case14_factorization

env = make_grid2op_env("rte_case14_realistic", cache=False)
env.reset(seed=0, options={{"time serie id": 0}})
fact = case14_factorization(env)
frame = frame_for(fact, env)
rng = np.random.default_rng(0)
policies = {{}}
for aid in frame.agent_ids:
    n_in, n_out = frame.encode(aid, env.get_obs()).size, frame.by_id[aid].n_actions
    w = (rng.standard_normal((n_in, 8)), rng.standard_normal((8, n_out)))
    policies[aid] = GreedyMLP(
        tuple(x.astype(np.float32) for x in w),
        (np.zeros(8, np.float32), np.zeros(n_out, np.float32)),
        ("Tanh", ""),
    )
agent = TrainedAgent("distributed-local", "rte_case14_realistic", fact, 0.9, "local", {{}},
                     Path("."), policies)
entry_points = (compiled._decide, compiled._agent_choice, compiled._scores)
print([len(f.signatures) for f in entry_points])
agent.prepare(env)
print([len(f.signatures) for f in entry_points])
"""


def test_prepare_loads_the_compiled_decision_before_the_first_timed_act():
    """A process's first call of a compiled entry point loads it (~10 ms from numba's
    cache, seconds without): ``prepare``, which the evaluation calls before it times
    ``act``, loads all three, so no decision pays for it (a fresh process: in this one
    earlier tests have loaded them)."""
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run(
        [sys.executable, "-c", PREPARE_SCRIPT.format(root=root)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    before, after = proc.stdout.strip().splitlines()[-2:]
    assert before == "[0, 0, 0]"
    assert after == "[1, 1, 1]"
