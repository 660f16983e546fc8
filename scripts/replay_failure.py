"""Why a trained agent lost a held-out episode: its last decisions before the game over.

Usage: python scripts/replay_failure.py EVALUATION RUN --episode N [--last 5]
       [--no-overflow-disconnection] [--teacher]

Replays episode N of a ``gridfactor evaluate`` run directory (its ``scenarios.csv``: chronic,
start, seed) with the pure policy of the training run RUN, as the evaluation plays it, and
prints the last decisions before the episode ended: the grid step, the max rho, the zone
CAPA handed the decision to, the policy's three most likely actions with their
probabilities (index, substation, bus of each of its elements), the index of the action
played (0: do nothing) and what ``obs.simulate`` says of it (max rho one step ahead, or the
exception that ends the episode).

With ``--no-overflow-disconnection`` ``obs.simulate`` runs with grid2op's overflow
disconnection off (the replay itself is unchanged: the pure policy simulates nothing), and
prints the lines the action would push beyond the hard overflow threshold (they trip at
once) and those it leaves over 1 with how long they have been (they trip when that exceeds
the allowed steps): a game over "non connected grid" is often the end of such a trip (the
grid splits and the power flow of the split grid fails), not a topology split by itself.

With ``--teacher`` each decision also shows the zone expert's label in the same state (the
demonstrations' teacher: the candidate of CAPA's zone with the lowest simulated max rho,
do nothing first) and the simulated max rho of the policy's three most likely actions, both
as the teacher simulates them (on the next step's forecast injections, where the played
action's outcome above uses the current ones), so a lost episode shows where the clone
leaves its teacher and by how much the teacher's choice was better one step ahead.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from gridfactor.agents.expert import zone_label
from gridfactor.agents.trained import load_trained_agent
from gridfactor.envs.grid2op_env import make_env, reset_env
from gridfactor.evaluate.scenarios import Scenario


def describe(frame, aid: str, index: int) -> str:
    """'#index sub S [buses]' of action ``index`` of agent ``aid`` ('do nothing' for 0)."""
    if index == 0:
        return "#0 do nothing"
    sub = int(frame.by_id[aid].action_subs[index])
    action = frame.by_id[aid].actions[index]
    positions = np.flatnonzero(action.set_bus)
    return f"#{index} sub {sub} {action.set_bus[positions].tolist()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluation", type=Path)
    parser.add_argument("run", type=Path)
    parser.add_argument("--episode", type=int, required=True)
    parser.add_argument("--last", type=int, default=5, help="decisions shown")
    parser.add_argument(
        "--no-overflow-disconnection",
        action="store_true",
        help="simulate without grid2op's overflow disconnection; show the lines beyond the "
        "hard overflow threshold",
    )
    parser.add_argument(
        "--teacher",
        action="store_true",
        help="also show the zone expert's label and the simulated max rho of the top three",
    )
    args = parser.parse_args()
    if args.teacher and args.no_overflow_disconnection:
        # the simulations follow the env's forecast parameters: without the protection the
        # teacher would see candidates that trip a line as feasible
        raise SystemExit(
            "error: --teacher simulates as the teacher does (line protection on); "
            "run it without --no-overflow-disconnection"
        )
    warnings.filterwarnings("ignore")
    path = args.evaluation / "scenarios.csv"
    if not path.is_file():
        raise SystemExit(f"error: {path} not found; pass a `gridfactor evaluate` --out directory")
    scenarios = pd.read_csv(path)
    match = scenarios[scenarios["episode"] == args.episode]
    if match.empty:
        raise SystemExit(
            f"error: no episode {args.episode} in {path}; "
            f"choose among 0..{int(scenarios['episode'].max())}"
        )
    row = match.iloc[0]
    scenario = Scenario(**{k: row[k] for k in Scenario.__dataclass_fields__})
    agent = load_trained_agent(args.run)
    env = make_env(agent.env_name)
    hard = float(env.parameters.HARD_OVERFLOW_THRESHOLD)
    allowed = int(env.parameters.NB_TIMESTEP_OVERFLOW_ALLOWED)
    if args.no_overflow_disconnection:  # obs.simulate only; taken at the next reset
        params = env.parameters
        params.NO_OVERFLOW_DISCONNECTION = True
        env.change_forecast_parameters(params)
    obs = reset_env(env, seed=int(scenario.seed), options=scenario.reset_options())
    agent.prepare(env)
    frame = agent.bind(env)
    decisions: list[str] = []
    ended = "completed"
    for t in range(int(scenario.length)):
        step = int(scenario.start) + t
        action = agent.act(obs, env)
        if frame.is_unsafe(obs):
            aid, sub = frame.choose_agent(obs)
            logits = agent.logits(aid, frame.encode(aid, obs))
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            top = np.argsort(-probs, kind="stable")[:3]
            ahead, _, over, sim_info = obs.simulate(action, time_step=0)
            outcome = (
                f"game over ({sim_info['exception'][0]!s:.90})"
                if over and sim_info.get("exception")
                else f"max rho {float(np.max(ahead.rho)):.3f}"
            )
            if args.no_overflow_disconnection and not over:
                rho = np.asarray(ahead.rho)
                beyond = np.flatnonzero(rho > hard).tolist()
                # a line over 1 for more than the allowed steps trips too: its counter
                over_one = np.flatnonzero(rho > 1)
                overloaded = {int(i): int(obs.timestep_overflow[i]) for i in over_one}
                outcome += (
                    f" (overflow disconnection off; lines beyond {hard:g}: {beyond}; "
                    f"lines over 1: steps overloaded so far {overloaded}, {allowed} allowed)"
                )
            likely = ", ".join(f"{describe(frame, aid, int(i))}: {probs[i]:.2f}" for i in top)
            if args.teacher:
                best, rho, _ = zone_label(frame, aid, obs)  # the demonstrations' teacher
                likely += (
                    " (simulated max rho "
                    + ", ".join(f"{rho[i]:.3f}" for i in top)
                    + f"); teacher: {describe(frame, aid, best)} at {rho[best]:.3f}"
                )
            # the pure choice (greedy set, cooldown and wait rules applied): what act played
            _, played = agent.choose(obs, env)
            decisions.append(
                f"step {step}: max rho {float(np.max(obs.rho)):.3f}, CAPA: sub {sub} "
                f"({aid}); most likely {likely}; played #{max(played, 0)}, simulated: {outcome}"
            )
        obs, _, done, info = env.step(action)
        if done:
            if info.get("exception"):
                ended = f"game over at step {step} ({info['exception'][0]!s:.90})"
            break
    print(
        f"{args.run}, episode {args.episode} (chronic {scenario.chronic_name}, start "
        f"{scenario.start}, {scenario.length} steps): {ended}"
    )
    for line in decisions[-args.last :]:
        print("  " + line)


if __name__ == "__main__":
    main()
