"""Time per decision: a trained run's pure policy against the experts, same states.

    python benchmarks/decision.py --run runs/demo/distributed-local --states 200

States: unsafe states (max rho >= the run's danger threshold) met while doing nothing from
seeded random starts of the run's held-out chronics. On every state, one after the other:
the run's pure policy (``act``: one compiled call for CAPA, the observation, the policy's
forward pass and the greedy choice; then the action), the same decision by numpy array
operations (the reference the compiled call replaced), the same logits through the
checkpoint's RLlib RLModule (``forward_inference``, the policy's reference
implementation), the zone expert and the full expert (each simulates its candidates). A
first pass over the states fills one-time caches; then each is timed over ``--repeats``
passes and its fastest pass kept (timeit's rule: the slower passes measure the machine's
other work, not the decision). Prints the mean time per decision of each in its fastest
pass and its ratio to the policy's.

Then the same in play: the pure policy, its numpy reference and the full expert each play
``--episodes`` episodes of ``--episode-steps`` from seeded random starts of the held-out
chronics, and every decision is timed between two grid2op steps, as ``gridfactor
evaluate`` times it (cold CPU caches included). Prints the median and mean of each and their ratios.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def held_out_chronics(agent) -> list[int]:
    """The chronics the run held out (its validation split; chronic 0 if it has none)."""
    return (agent.split.get("validation") or {}).get("chronics") or [0]


def random_start(env, chronics: list[int], rng: np.random.Generator):
    """The observation at a seeded random step (< 6000) of a seeded choice of ``chronics``."""
    env.set_id(int(rng.choice(chronics)))
    env.reset()
    env.fast_forward_chronics(int(rng.integers(0, 6000)))
    return env.get_obs()


def unsafe_states(env, agent, n: int, seed: int) -> list:
    """Up to ``n`` unsafe observations (copies) of do-nothing episodes from seeded random
    starts of the run's held-out chronics."""
    chronics = held_out_chronics(agent)
    rng = np.random.default_rng(seed)
    states: list = []
    for _ in range(50 * n):
        if len(states) >= n:
            break
        obs = random_start(env, chronics, rng)
        for _ in range(2016):
            if float(np.max(obs.rho)) >= agent.danger:
                states.append(obs.copy())
            obs, _, done, _ = env.step(env.action_space({}))
            if done or len(states) >= n:
                break
    return states


def played_decision_ms(decide, env, agent, episodes: int, steps: int, seed: int) -> np.ndarray:
    """(n,) ms of each decision (max rho >= the run's danger) while ``decide`` plays
    ``episodes`` episodes of ``steps`` from seeded random starts of the held-out chronics."""
    chronics = held_out_chronics(agent)
    rng = np.random.default_rng(seed)
    times: list[float] = []
    for _ in range(episodes):
        obs = random_start(env, chronics, rng)
        for _ in range(steps):
            due = float(np.max(obs.rho)) >= agent.danger
            tic = time.perf_counter()
            action = decide(obs)
            elapsed = time.perf_counter() - tic
            if due:
                times.append(1000.0 * elapsed)
            obs, _, done, info = env.step(action)
            if done:
                break
    return np.array(times)


def numpy_reference(agent, frame, env):
    """The pure decision by numpy array operations (CAPA's full ranking, the encoder's
    documented features, the numpy layers, argmax): the path the compiled call replaced,
    kept here as the reference it is timed against (same choices: tests)."""

    def decide(obs):
        if not frame.is_unsafe(obs):
            return frame.safe_action(obs, env.action_space)
        aid = frame.sub_owner[frame.rules.rank_substations(obs, frame.candidate_subs)[0]]
        logits = agent.logits(aid, frame.encoders[aid].reference(obs))
        top = int(np.argmax(logits))
        if top == 0 or frame.in_cooldown(aid, obs)[top]:
            return env.action_space({})
        return frame.action(aid, top, obs)

    return decide


def per_decision_ms(decide, states, repeats: int) -> float:
    """Mean ms per decision over ``states`` in the fastest of ``repeats`` passes."""
    best = float("inf")
    for _ in range(repeats):
        tic = time.perf_counter()
        for obs in states:
            decide(obs)
        best = min(best, time.perf_counter() - tic)
    return 1000.0 * best / len(states)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", required=True, help="a gridfactor train run directory")
    parser.add_argument("--states", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes (the fastest kept)")
    parser.add_argument("--episodes", type=int, default=4, help="episodes played, each agent")
    parser.add_argument("--episode-steps", type=int, default=2016)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch
    from ray.rllib.core.rl_module.rl_module import RLModule

    from gridfactor.agents.baselines import make_baseline
    from gridfactor.agents.trained import RL_MODULE_DIR, load_trained_agent
    from gridfactor.envs.grid2op_env import make_env

    agent = load_trained_agent(args.run)
    env = make_env(agent.env_name)
    frame = agent.bind(env)
    states = unsafe_states(env, agent, args.states, args.seed)
    modules = {
        aid: RLModule.from_checkpoint(str((agent.checkpoint / RL_MODULE_DIR / aid).resolve()))
        for aid in frame.agent_ids
    }

    def rl_module_logits(obs) -> None:
        aid, _ = frame.choose_agent(obs)
        features = torch.as_tensor(frame.encode(aid, obs))[None]
        with torch.no_grad():
            modules[aid].forward_inference({"obs": features})

    zone_expert = make_baseline(
        "expert-zone", danger=agent.danger, factorization=agent.factorization
    )
    expert = make_baseline("expert", danger=agent.danger)
    reference = numpy_reference(agent, frame, env)
    # a first pass fills the one-time caches (actions without the ends of out lines, the
    # experts' action lists and simulators): the timed pass is the steady state
    for warm in states:
        agent.act(warm, env), zone_expert.act(warm, env), expert.act(warm, env), reference(warm)
        rl_module_logits(warm)
    times = {
        "pure policy (compiled)": per_decision_ms(
            lambda o: agent.act(o, env), states, args.repeats
        ),
        "pure policy (numpy reference)": per_decision_ms(reference, states, args.repeats),
        "  CAPA + RLModule forward only": per_decision_ms(rl_module_logits, states, args.repeats),
        "zone expert": per_decision_ms(lambda o: zone_expert.act(o, env), states, args.repeats),
        "full expert": per_decision_ms(lambda o: expert.act(o, env), states, args.repeats),
    }
    print(f"{agent.env_name}, run {args.run} ({agent.name}), {len(states)} unsafe states")
    policy = times["pure policy (compiled)"]
    for name, ms in times.items():
        print(f"{name:32s} {1000 * ms:10.1f} us per decision  {ms / policy:8.1f}x the policy")
    played = {
        "pure policy (compiled)": lambda o: agent.act(o, env),
        "pure policy (numpy reference)": reference,
        "full expert": lambda o: expert.act(o, env),
    }
    print(f"in play: {args.episodes} episodes of {args.episode_steps} steps each")
    stats = {}
    for name, decide in played.items():
        ms = played_decision_ms(decide, env, agent, args.episodes, args.episode_steps, args.seed)
        stats[name] = (float(np.median(ms)), float(ms.mean()))
        print(
            f"{name:32s} {1000 * stats[name][0]:10.1f} us median, "
            f"{1000 * stats[name][1]:10.1f} us mean over {len(ms)} decisions"
        )
    (med_p, mean_p), (med_e, mean_e) = stats["pure policy (compiled)"], stats["full expert"]
    med_n, mean_n = stats["pure policy (numpy reference)"]
    print(
        f"full expert / pure policy in play: {med_e / med_p:.0f}x (medians), "
        f"{mean_e / mean_p:.0f}x (means); numpy reference / compiled: "
        f"{med_n / med_p:.1f}x (medians), {mean_n / mean_p:.1f}x (means)"
    )


if __name__ == "__main__":
    main()
