"""``gridfactor evaluate``: baselines and trained agents on the same held-out scenarios.

Run directory layout::

    config.json            resolved config (env, agents, runs, split, scenarios seed, ...)
    scenarios.csv          the paired scenarios (chronic, start, length, seed)
    episodes/<agent>/NNNN.json   one finished (agent, episode) result, saved on arrival
    episodes.csv           every per-episode result
    scores/<scorer>/NNNN/  with --score: the env copy holding grid2op's scorer reference runs
                           for scenario NNNN (see ``gridfactor.evaluate.scores``)
    grid2op/<agent>/NNNN_<chronic>/  with --save-episodes: grid2op EpisodeData (grid2viz)
    results.csv / .md      one row per agent (the results table)
    plots/*.png            survival per scenario, survival CDF, learning curves

An interrupted run re-run with the same command skips the (agent, episode) pairs already in
``episodes/``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gridfactor.agents.baselines import (
    BASELINES,
    RECOVERY_SAFE_RHO,
    ZONE_BASELINES,
    Agent,
    make_baseline,
)
from gridfactor.agents.external import AgentError, Grid2opAgent
from gridfactor.agents.high_level import DANGER, check_danger
from gridfactor.agents.trained import read_run_config
from gridfactor.envs.chronics import check_augment, perturb_next_episodes, perturbed_chronics
from gridfactor.envs.grid2op_env import check_agents_support, reset_env
from gridfactor.errors import UserError
from gridfactor.evaluate.scenarios import (
    HeldOut,
    Scenario,
    check_held_out,
    default_held_out,
    sample_scenarios,
)
from gridfactor.parallel import ParallelConfig, parallel_map
from gridfactor.runs import prepare_run_dir, safe_name, write_csv, write_json

DEFAULT_ENV = "rte_case14_realistic"
SAFE_RHO = 0.9  # a step is "safe" when max rho < 0.9 (fixed, whatever the agents' danger)


@dataclass
class EvalConfig:
    """Settings of an evaluation run.

    env_name: grid2op env; None = the trained runs' env, else DEFAULT_ENV.
    agents: baseline names (subset of BASELINES).
    runs: training run directories whose trained agents are evaluated too.
    submissions: L2RPN submission folders (``make_agent(env, path)``; ``gridfactor export``
        folders too) evaluated too, each labelled by its folder's name.
    n_episodes / episode_steps: scenarios (episode_steps 0 = whole held-out window).
    chronics / window: held-out split override; None = the runs' split, else the default
        (:func:`gridfactor.evaluate.scenarios.default_held_out`).
    danger: the baselines' rule threshold (trained agents use their own).
    safe_rho: the ``-recovery`` experts' safe level for putting a substation back.
    checkpoints: checkpoints of the runs to load (None = their final one); with more than
        one, each run is evaluated at each and labelled ``"<agent> [<checkpoint>]"`` (e.g.
        ``(None, "imitation")``: PPO against the clone it started from, paired).
    factorization: zones for ``expert-zone`` (None: the first distributed run's).
    guards: guard sizes each trained run is evaluated with (0 = pure policy; k > 0 =
        simulate its top k actions and play the best, see ``TrainedAgent.guard``).
    coordinators: who decides for each distributed run (``TrainedAgent.coordinator``):
        "capa" and/or "propose"; a one-zone (centralized) run is evaluated with "capa" only.
    reconnects: the trained runs' reconnection rule when safe (``TrainedAgent.reconnect``),
        each evaluated; None = the run's own (the one it was trained with).
    waits: the trained runs' ``TrainedAgent.wait_confidence`` values, each evaluated (0 =
        the greedy policy).
    score: grid2op scorer name (see ``gridfactor.evaluate.scores.SCORERS``) that also scores
        every (agent, scenario) with grid2op's Runner; None = no score.
    save_episodes: also play every (agent, scenario) with grid2op's Runner and keep its
        EpisodeData folder (for grid2viz).
    augment: 0: the chronics as they are; > 0: every scenario plays a perturbed copy of its
        chronic, drawn from the scenario's seed (the same for every agent; see
        ``DecisionEnvConfig.augment``): perturbed training days validate without touching
        the held-out ones.
    """

    env_name: str | None = None
    agents: tuple[str, ...] = BASELINES
    runs: tuple[str, ...] = ()
    submissions: tuple[str, ...] = ()
    n_episodes: int = 10
    episode_steps: int = 288
    chronics: tuple[int, ...] | None = None
    window: tuple[float, float] | None = None
    danger: float = DANGER
    safe_rho: float = RECOVERY_SAFE_RHO
    seed: int = 0
    checkpoints: tuple[str | None, ...] = (None,)
    factorization: str | None = None
    guards: tuple[int, ...] = (0,)
    coordinators: tuple[str, ...] = ("capa",)
    reconnects: tuple[str | None, ...] = (None,)
    waits: tuple[float, ...] = (0.0,)
    score: str | None = None
    save_episodes: bool = False
    augment: float = 0.0
    out: str = "runs/evaluate"
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    resume: bool = False
    overwrite: bool = False
    progress: bool = True


@dataclass(frozen=True)
class AgentSpec:
    """How a worker builds an agent: a baseline by name or a trained run directory."""

    label: str
    kind: str  # "baseline" | "run" | "submission"
    ref: str  # baseline name, run directory or submission folder
    danger: float = DANGER
    checkpoint: str | None = None
    guard: int = 0
    factorization: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    coordinator: str = "capa"
    safe_rho: float = RECOVERY_SAFE_RHO
    reconnect: str | None = None
    wait_confidence: float = 0.0


@dataclass(frozen=True)
class EpisodeTask:
    env_name: str
    agent: AgentSpec
    scenario: Scenario
    out: str = ""  # run directory (where --score / --save-episodes write)
    score: str | None = None
    save_episodes: bool = False
    augment: float = 0.0


# --------------------------------------------------------------------------------------------
# worker side: one episode


_ENVS: dict[str, Any] = {}
_TRAINED: dict[tuple[Any, ...], Any] = {}
_SUBMISSIONS: dict[tuple[str, str], Any] = {}


def _env(name: str, perturbed: bool = False) -> Any:
    """One grid2op env per process and name (creating one takes ~1 s); ``perturbed``: its
    chronics in memory, able to play perturbed copies (:class:`PerturbedChronics`)."""
    key = f"{name}#perturbed" if perturbed else name
    if key not in _ENVS:
        from gridfactor.envs.grid2op_env import make_env, make_grid2op_env

        if perturbed:
            _ENVS[key] = make_grid2op_env(name, reward=None)
            perturbed_chronics(_ENVS[key], name)
        else:
            _ENVS[key] = make_env(name)
    return _ENVS[key]


def _load_trained(
    run_dir: str,
    checkpoint: str | None,
    guard: int = 0,
    coordinator: str = "capa",
    reconnect: str | None = None,
    wait_confidence: float = 0.0,
) -> Any:
    key = (run_dir, checkpoint, guard, coordinator, reconnect, wait_confidence)
    if key not in _TRAINED:
        from gridfactor.agents.trained import load_trained_agent

        _TRAINED[key] = load_trained_agent(*key)
    return _TRAINED[key]


def _agent(spec: AgentSpec, scenario: Scenario, env_name: str) -> Agent:
    if spec.kind == "submission":
        # built once per process and reset per episode, as grid2op's Runner does
        key = (spec.ref, spec.label)
        if key not in _SUBMISSIONS:
            from gridfactor.agents.external import submission_agent

            _SUBMISSIONS[key] = submission_agent(spec.ref, spec.label)
        return _SUBMISSIONS[key]
    if spec.kind == "baseline":
        # A fresh baseline per episode seeded by the scenario: results do not depend on
        # which worker ran which episode before.
        from gridfactor.factorization import Factorization

        fact = None if spec.factorization is None else Factorization.from_dict(spec.factorization)
        return make_baseline(
            spec.ref,
            danger=spec.danger,
            seed=scenario.seed,
            factorization=fact,
            env_name=env_name,
            safe_rho=spec.safe_rho,
        )
    agent = _load_trained(
        spec.ref,
        spec.checkpoint,
        spec.guard,
        spec.coordinator,
        spec.reconnect,
        spec.wait_confidence,
    )
    if hasattr(agent, "reset"):
        agent.reset()
    return agent


def action_key(action: Any) -> str:
    """A short key of what a grid2op action does (equal actions, equal keys)."""
    text = json.dumps(action.as_serializable_dict(), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def run_episode(task: EpisodeTask) -> dict[str, Any]:
    """Play one scenario with one agent; returns the per-episode metrics (a flat dict).

    survived: grid2op steps played before a game over (= length if none).
    safe_steps / overload_steps: survived steps whose max rho is < 0.9 / >= 1.
    actions: steps whose action is not do-nothing; illegal: steps whose action grid2op
    refused as illegal (it played do nothing instead); distinct_actions / action_keys:
    the different actions played (:func:`action_key`); off_reference_steps: survived steps
    with some element on busbar 2; error: the failure of an external agent (a submission,
    a peer) that ended the episode, counted as a game over (None otherwise).
    decisions: steps where a decision was due (some line at rho >= the agent's danger
    threshold); decision_ms: mean wall time of ``act`` on those steps (NaN if none);
    step_ms: mean wall time of ``act`` over every step.
    With --score / --save-episodes the scenario is played again by grid2op's Runner (see
    :func:`_grid2op_episode`): grid2op_steps = steps it played, a game over's step included
    (= survived + 1 - completed when both agree), score = the grid2op scorer's score.
    """
    warnings.filterwarnings("ignore")
    sc = task.scenario
    env = _env(task.env_name, perturbed=task.augment > 0)
    if task.augment > 0:  # the scenario's copy, the same for every agent
        perturb_next_episodes(env, np.random.default_rng(sc.seed), task.augment)
    agent = _agent(task.agent, sc, task.env_name)
    obs = reset_env(env, seed=sc.seed, options=sc.reset_options())
    external = isinstance(agent, Grid2opAgent)
    danger = float(getattr(agent, "danger", task.agent.danger))
    survived = safe = overloads = actions = illegal = decisions = off_reference = 0
    act_s = decide_s = 0.0
    max_rho_sum = 0.0
    game_over = False
    error: str | None = None
    action_keys: set[str] = set()
    wall = time.perf_counter()
    try:
        if hasattr(agent, "prepare"):
            agent.prepare(env)  # one-time set-up, not decision time
        if external:
            agent.reset(obs)
        for _ in range(sc.length):
            due = float(np.max(obs.rho)) >= danger
            tic = time.perf_counter()
            action = agent.act(obs, env)
            elapsed = time.perf_counter() - tic
            act_s += elapsed
            if due:
                decisions += 1
                decide_s += elapsed
            if action.can_affect_something():
                actions += 1
                action_keys.add(action_key(action))
            obs, reward, done, info = env.step(action)
            if external:
                agent.reward = reward
            illegal += bool(info.get("is_illegal"))
            if done and info.get("exception"):
                game_over = True
                break
            survived += 1
            max_rho = float(np.max(obs.rho))
            max_rho_sum += max_rho
            safe += max_rho < SAFE_RHO
            overloads += max_rho >= 1.0
            off_reference += bool((obs.topo_vect > 1).any())
            if done:  # end of the chronic: not a failure
                break
    except AgentError as exc:  # the agent's own failure: this episode fails, not the run
        game_over, error = True, str(exc)
    steps = survived + game_over
    result = {
        "agent": task.agent.label,
        "episode": sc.episode,
        "chronic": sc.chronic,
        "chronic_name": sc.chronic_name,
        "start": sc.start,
        "length": sc.length,
        "survived": survived,
        "survival_frac": survived / sc.length,
        "completed": not game_over,
        "safe_steps": safe,
        "overload_steps": overloads,
        "actions": actions,
        "illegal": illegal,
        "distinct_actions": len(action_keys),
        "action_keys": sorted(action_keys),
        "off_reference_steps": off_reference,
        "error": error,
        "mean_max_rho": max_rho_sum / max(survived, 1),
        "decisions": decisions,
        "decision_ms": 1000.0 * decide_s / decisions if decisions else float("nan"),
        "step_ms": 1000.0 * act_s / max(steps, 1),
        "wall_s": time.perf_counter() - wall,
    }
    if task.score or task.save_episodes:
        result.update(_grid2op_episode(task))
    return result


def _grid2op_episode(task: EpisodeTask) -> dict[str, Any]:
    """The scenario played by grid2op's Runner with the agent as a grid2op agent: scored by
    grid2op's scorer (--score) and/or kept as an EpisodeData folder (--save-episodes)."""
    from gridfactor.evaluate import grid2op_runs

    out, sc, label = Path(task.out), task.scenario, task.agent.label
    agent = _agent(task.agent, sc, task.env_name)
    if isinstance(agent, Grid2opAgent):
        agent.prepare(_env(task.env_name))  # it needs the env's observation space
    scratch = grid2op_runs.scratch_dir(out, label, sc)
    extra: dict[str, Any] = {}
    if task.score:
        from gridfactor.evaluate.scores import score_episode

        extra["score"], steps = score_episode(task.score, out, task.env_name, sc, agent, scratch)
        extra["scorer"] = task.score
    else:
        from gridfactor.agents.grid2op_agent import GridfactorAgent

        env = _env(task.env_name)
        steps = grid2op_runs.play(env, GridfactorAgent(agent, env.action_space), sc, scratch)
    extra["grid2op_steps"] = steps
    if task.save_episodes:
        grid2op_runs.keep_episode(scratch, out, label, sc)
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    return extra


# --------------------------------------------------------------------------------------------
# driver side


def held_out_from_run(run_dir: Path, run_config: dict[str, Any]) -> HeldOut | None:
    """The validation split a training run recorded in split.json (None if absent)."""
    path = run_dir / "split.json"
    if not path.is_file():
        return None
    split = json.loads(path.read_text())
    return HeldOut.from_split(split, int(run_config.get("episode_steps", 0)))


def _label(name: str, run_dir: Path, used: set[str]) -> str:
    label = name
    if label in used:
        label = f"{name}@{run_dir.name}"
    n = 2
    while label in used:
        label, n = f"{name}@{run_dir.name}-{n}", n + 1
    used.add(label)
    return label


def resolve(config: EvalConfig) -> tuple[str, list[AgentSpec], HeldOut, list[dict[str, Any]]]:
    """Check the inputs; returns (env_name, agent specs, held-out split, run configs)."""
    specs: list[AgentSpec] = []
    used: set[str] = set()
    for name in config.agents:
        if name not in BASELINES:
            raise UserError(f"unknown agent {name!r}; choose among {', '.join(BASELINES)}")
    if any(g < 0 for g in config.guards) or not config.guards:
        raise UserError(f"--guard takes sizes >= 0 (0 = pure policy), got {config.guards}")
    check_danger(config.danger)
    from gridfactor.agents.trained import COORDINATORS

    unknown = [c for c in config.coordinators if c not in COORDINATORS]
    if unknown or not config.coordinators:
        raise UserError(
            f"bad --coordinator {','.join(config.coordinators)!r}; choose among "
            f"{', '.join(COORDINATORS)} (comma-separated)"
        )
    zones = _zones_for_expert(config) if set(config.agents) & set(ZONE_BASELINES) else None
    for name in config.agents:
        specs.append(
            AgentSpec(
                _label(name, Path(name), used),
                "baseline",
                name,
                config.danger,
                factorization=zones if name in ZONE_BASELINES else None,
                safe_rho=config.safe_rho,
            )
        )

    run_configs: list[dict[str, Any]] = []
    env_names: set[str] = set()
    splits: set[HeldOut] = set()
    for run in config.runs:
        run_dir = Path(run).resolve()
        if not run_dir.is_dir():
            raise UserError(f"run directory {run} does not exist; pass a gridfactor train run")
        run_cfg = read_run_config(run_dir)
        for checkpoint in config.checkpoints:  # fails early, in the driver
            agent = _load_trained(str(run_dir), checkpoint)
        env_names.add(agent.env_name)
        split = held_out_from_run(run_dir, run_cfg)
        if split is not None:
            splits.add(split)
        one_zone = len(agent.factorization.clusters) == 1  # propose = its own guard
        for coordinator, guard, reconnect, wait in itertools.product(
            config.coordinators, config.guards, config.reconnects, config.waits
        ):
            if coordinator != "capa" and one_zone:
                continue
            name = agent.name + ("" if coordinator == "capa" else f"+{coordinator}")
            name += "" if guard == 0 else f"+guard{guard}"
            name += "" if reconnect is None else f"+reconnect-{reconnect}"
            name += "" if wait == 0.0 else f"+wait{wait:g}"
            base = _label(name, run_dir, used)
            for checkpoint in config.checkpoints:
                # "<label> [<checkpoint>]": the report pairs it with "<label>"
                label = base
                if len(config.checkpoints) > 1 and checkpoint is not None:
                    label = _label(f"{base} [{checkpoint}]", run_dir, used)
                run_configs.append(
                    {
                        "dir": str(run_dir),
                        "label": label,
                        "guard": guard,
                        "coordinator": coordinator,
                        "checkpoint": checkpoint,
                        **run_cfg,
                        **({} if reconnect is None else {"reconnect": reconnect}),
                        **({} if wait == 0.0 else {"wait_confidence": wait}),
                    }
                )
                specs.append(
                    AgentSpec(
                        label,
                        "run",
                        str(run_dir),
                        float(agent.danger),
                        checkpoint,
                        guard,
                        coordinator=coordinator,
                        reconnect=reconnect,
                        wait_confidence=wait,
                    )
                )
    if len(env_names) > 1:
        raise UserError(
            f"the runs were trained on different envs ({', '.join(sorted(env_names))}); "
            "evaluate runs of one env at a time"
        )
    env_name = config.env_name or (env_names.pop() if env_names else DEFAULT_ENV)
    if env_names and env_name not in env_names:
        raise UserError(
            f"--env {env_name} differs from the runs' env {env_names.pop()}; drop --env"
        )
    if not specs and not config.submissions:
        raise UserError("nothing to evaluate; pass --agents, --run DIR and/or --submission DIR")
    check_agents_support(env_name, config.agents, "gridfactor evaluate", trained=bool(config.runs))
    if "expertop" in config.agents:
        from gridfactor.agents.external import check_expertop

        check_expertop(env_name)

    env = _env(env_name)
    for folder in config.submissions:
        from gridfactor.agents.external import check_submission

        path = Path(folder).resolve()
        if not path.is_dir():
            raise UserError(f"--submission {folder} is not a directory; pass a submission folder")
        check_submission(path, env)  # make_agent runs once here: its failures stop the run
        specs.append(AgentSpec(_label(path.name, path, used), "submission", str(path)))
    if config.chronics is not None or config.window is not None:
        base = default_held_out(env)
        held = HeldOut(config.chronics or base.chronics, config.window or base.window)
    elif len(splits) > 1:
        raise UserError(
            "the runs hold out different scenarios; pass --chronics/--window to choose one"
        )
    elif splits:
        held = splits.pop()
    else:
        held = default_held_out(env)
    check_held_out(held, env, env_name)
    check_augment(config.augment)
    if config.augment > 0 and (config.score or config.save_episodes):
        raise UserError(
            "--score and --save-episodes replay the scenarios with grid2op's Runner, which "
            "plays the chronics as they are: drop them or --augment"
        )
    if config.score is not None:
        from gridfactor.evaluate.scores import check_scorer

        check_scorer(config.score, env, env_name)
    return env_name, specs, held, run_configs


def _zones_for_expert(config: EvalConfig) -> dict[str, Any]:
    """The zones expert-zone uses: --factorization, else the first distributed run's."""
    from gridfactor.factorization import Factorization

    if config.factorization:
        return Factorization.load(config.factorization).to_dict()
    for run in config.runs:
        run_cfg = read_run_config(Path(run))
        if not run_cfg.get("centralized") and (Path(run) / "factorization.json").is_file():
            return Factorization.load(Path(run) / "factorization.json").to_dict()
    raise UserError(
        "expert-zone needs zones: pass --factorization FILE (a gridfactor factorize output) "
        "or a distributed --run"
    )


def _episode_path(out: Path, label: str, episode: int) -> Path:
    return out / "episodes" / safe_name(label) / f"{episode:04d}.json"


def evaluate(config: EvalConfig) -> Path:
    """Run (or resume) an evaluation; returns the run directory (see the module docstring)."""
    from gridfactor.evaluate.report import write_reports

    env_name, specs, held, run_configs = resolve(config)
    env = _env(env_name)
    scenarios = sample_scenarios(env, held, config.n_episodes, config.episode_steps, config.seed)
    run_config = {
        "command": "evaluate",
        "env_name": env_name,
        "agents": [s.label for s in specs],
        "runs": [r["dir"] for r in run_configs],
        "checkpoints": list(config.checkpoints),
        "guards": list(config.guards),
        "factorization": config.factorization,
        "n_episodes": config.n_episodes,
        "episode_steps": config.episode_steps,
        "held_out": held.to_dict(),
        "danger": config.danger,
        "seed": config.seed,
    }
    # only when asked: runs made before these options existed keep their config (resumable)
    if config.score:
        run_config["score"] = config.score
    if config.save_episodes:
        run_config["save_episodes"] = True
    if config.coordinators != ("capa",):
        run_config["coordinators"] = list(config.coordinators)
    if config.reconnects != (None,):
        run_config["reconnects"] = list(config.reconnects)
    if config.waits != (0.0,):
        run_config["waits"] = list(config.waits)
    if config.augment > 0:
        run_config["augment"] = config.augment
    if any(name.endswith("-recovery") for name in config.agents):
        run_config["safe_rho"] = config.safe_rho
    if config.submissions:
        run_config["submissions"] = [s.ref for s in specs if s.kind == "submission"]
    out = prepare_run_dir(config.out, run_config, resume=config.resume, overwrite=config.overwrite)
    write_csv(out / "scenarios.csv", pd.DataFrame([s.to_dict() for s in scenarios]))

    if config.score:
        _prepare_scores(config, out, env_name, scenarios)
    here = str(out.resolve())  # workers need not share the driver's working directory
    tasks = [
        EpisodeTask(env_name, spec, sc, here, config.score, config.save_episodes, config.augment)
        for spec in specs
        for sc in scenarios
        if not _episode_path(out, spec.label, sc.episode).is_file()
    ]

    def save(_: int, result: dict[str, Any]) -> None:
        write_json(_episode_path(out, result["agent"], result["episode"]), result)

    if tasks:
        parallel_map(
            run_episode,
            tasks,
            config.parallel,
            desc="evaluate",
            unit="episode",
            progress=config.progress,
            on_result=save,
        )
    episodes = load_episodes(out, [s.label for s in specs], len(scenarios))
    write_reports(out, episodes, run_configs)
    return out


def _prepare_scores(
    config: EvalConfig, out: Path, env_name: str, scenarios: list[Scenario]
) -> None:
    """grid2op's scorer reference runs (do nothing, reconnection without overflow
    disconnection) of every scenario, before any agent is scored against them."""
    from gridfactor.evaluate.scores import ReferenceTask, prepare_reference, scenario_env_dir

    todo = [
        ReferenceTask(str(out.resolve()), config.score, env_name, sc)
        for sc in scenarios
        if not scenario_env_dir(out, config.score, sc, env_name).is_dir()
    ]
    if todo:
        parallel_map(
            prepare_reference,
            todo,
            config.parallel,
            desc=f"{config.score} references",
            progress=config.progress,
        )


def load_episodes(out: Path, labels: list[str], n_episodes: int) -> pd.DataFrame:
    """Every saved (agent, episode) result of ``out`` as a DataFrame, agents in order."""
    rows = []
    for label in labels:
        for episode in range(n_episodes):
            path = _episode_path(out, label, episode)
            if path.is_file():
                rows.append(json.loads(path.read_text()))
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["agent"] = pd.Categorical(frame["agent"], categories=labels, ordered=True)
        frame = frame.sort_values(["agent", "episode"]).reset_index(drop=True)
        frame["agent"] = frame["agent"].astype(str)
    return frame
