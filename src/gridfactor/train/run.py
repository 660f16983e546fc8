"""``gridfactor train``: RLlib PPO, one policy per cluster agent (or one centralized policy).

Budget: ``timesteps`` counts *decisions* (RLlib env steps = actions of the cluster agents); the
grid2op steps played by the high-level agent in between are reported separately. Training
stops after the first iteration that reaches the budget.

Train/validation split (seeded, written to ``split.json``): with >= 2 chronics the last
``round(validation_fraction * n)`` chronics (at least one) are held out for validation and
training episodes start anywhere in the other chronics; with a single chronic the chronic is
split in time: training episodes start in its first ``1 - validation_fraction`` part,
validation ones in the rest. rte_case14_realistic's test env has 2 chronics: 000 = train,
001 = validation. ``held_out`` names the validation chronics instead (another fold, e.g. 000
held out and 001 trained on).

Run directory: config.json, factorization.json (the clusters used), split.json,
checkpoints/iter_<n> (every ``checkpoint_every`` iterations, the last ``keep_checkpoints``
kept: 0 = all, for a learning curve on held-out scenarios) and
checkpoints/final, checkpoints/latest.json, metrics.csv (one row per iteration), tb/
(TensorBoard), learning_curve.png. Re-running the same command, or ``--resume``, continues from
the latest checkpoint to the same budget.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gridfactor.agents.high_level import DANGER, check_danger, check_reconnect
from gridfactor.agents.trained import CHECKPOINTS, LATEST, latest_checkpoint
from gridfactor.envs.chronics import check_augment
from gridfactor.envs.split import count_chronics, make_split
from gridfactor.errors import UserError
from gridfactor.factorization import Factorization
from gridfactor.parallel import ParallelConfig, init_ray
from gridfactor.progress import Phase, timed
from gridfactor.runs import prepare_run_dir, save_figure, write_csv, write_json

STATE_FILE = "gridfactor_state.json"
KEEP_PERIODIC = 3
LABEL_ROWS = ("all", "deciding")
IMITATION = "imitation"  # checkpoint holding the cloned policies, before PPO


@dataclass
class TrainConfig:
    """Everything a training run depends on (``out``/``resume``/``overwrite``/``ray_address``
    and ``num_env_runners`` are not part of the run's identity)."""

    env_name: str = "rte_case14_realistic"
    factorization_path: str | None = None
    centralized: bool = False
    timesteps: int = 5000
    # imitation (``demonstrations``: `gridfactor demonstrate` run directories, learned from
    # together, e.g. the expert's and a DAgger round's)
    demonstrations: tuple[str, ...] = ()
    coverage: float = 0.95
    full_action_set: bool = False
    imitation_epochs: int = 60
    # weight of the unlikelihood of the actions the expert saw end the episode (0: off)
    avoid_game_over: float = 0.0
    # cloning's target: 0 = the expert's labels; T > 0 = its simulated ranking,
    # softmax(-max rho / T) over the feasible actions (gridfactor.train.imitation)
    ranking: float = 0.0
    # the rows a zone clone learns from: "all" (its labels at every unsafe state, when every
    # zone was labelled) or "deciding" (only where CAPA handed it the decision)
    label_rows: str = "all"
    seed: int = 0
    obs_mode: str = "local"
    danger: float = DANGER
    # the high-level rules' reconnection of lines when safe: always, checked, never
    reconnect: str = "always"
    episode_steps: int = 500
    reward: str = "CloseToOverflowReward"
    validation_fraction: float = 0.2
    # the validation chronics by id instead of the last validation_fraction (another fold)
    held_out: tuple[int, ...] = ()
    # > 0: PPO's training episodes play perturbed copies of their chronics (DecisionEnvConfig)
    augment: float = 0.0
    # PPO
    train_batch_size: int = 1000
    minibatch_size: int = 128
    num_epochs: int = 5
    lr: float = 3e-4
    gamma: float = 0.95
    hidden: tuple[int, ...] = (128, 128)
    # KL(imitation || policy) coefficient added to PPO's loss (gridfactor.train.anchor)
    anchor: float = 0.0
    # execution
    num_env_runners: int = 0
    ray_address: str | None = None
    out: str = "runs/train"
    resume: bool = False
    overwrite: bool = False
    checkpoint_every: int = 5
    keep_checkpoints: int = KEEP_PERIODIC
    extra: dict[str, Any] = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        """The part recorded in config.json (what makes two runs the same run)."""
        data = asdict(self)
        for key in (
            "out",
            "resume",
            "overwrite",
            "ray_address",
            "num_env_runners",
            "keep_checkpoints",
        ):
            data.pop(key)
        data["hidden"] = list(self.hidden)
        data["demonstrations"] = list(self.demonstrations)
        data["kind"] = "centralized" if self.centralized else "distributed"
        # runs made before these options existed stay resumable
        if not self.augment:
            data.pop("augment")
        if self.label_rows == "all":
            data.pop("label_rows")
        if self.held_out:
            data["held_out"] = list(self.held_out)
        else:
            data.pop("held_out")
        return data

    def validate(self) -> None:
        if self.timesteps < 0 or (self.timesteps == 0 and not self.demonstrations):
            raise UserError(
                f"--timesteps must be > 0 (got {self.timesteps}); 0 is allowed with "
                "--demonstrations (imitation only)"
            )
        if not self.centralized and not self.factorization_path:
            raise UserError("pass --factorization FILE (distributed agents) or --centralized")
        if not 0.0 < self.coverage <= 1.0:
            raise UserError(f"--coverage must be in (0, 1], got {self.coverage}; e.g. 0.95")
        if self.imitation_epochs <= 0:
            raise UserError(f"--imitation-epochs must be > 0, got {self.imitation_epochs}")
        check_reconnect(self.reconnect)
        check_augment(self.augment)
        if self.avoid_game_over < 0.0:
            raise UserError(
                f"--avoid-game-over must be >= 0 (got {self.avoid_game_over}); e.g. 1.0"
            )
        if self.ranking < 0.0:
            raise UserError(f"--ranking must be >= 0 (got {self.ranking}); e.g. 0.02")
        if self.label_rows not in LABEL_ROWS:
            raise UserError(
                f"--label-rows must be one of {', '.join(LABEL_ROWS)} (got {self.label_rows!r})"
            )
        if self.label_rows != "all" and (self.centralized or not self.demonstrations):
            raise UserError(
                "--label-rows is for zone agents cloned from --demonstrations (the centralized "
                "agent learns from the deciding rows already)"
            )
        if self.obs_mode not in ("local", "global"):
            raise UserError(f"--obs must be 'local' or 'global' (got {self.obs_mode!r})")
        if self.centralized and self.obs_mode == "local" and self.demonstrations:
            raise UserError(
                "the centralized agent imitates from whole-grid observations: use --obs global "
                "(the default with --centralized) or train without --demonstrations"
            )
        check_danger(self.danger)
        if self.episode_steps <= 0:
            raise UserError(f"--episode-steps must be > 0 (got {self.episode_steps})")
        if not 0.0 < self.validation_fraction < 1.0:
            raise UserError("--validation-fraction must be in (0, 1)")
        if self.num_env_runners < 0:
            raise UserError("--num-env-runners must be >= 0")
        if self.checkpoint_every <= 0:
            raise UserError("--checkpoint-every must be > 0")
        if self.keep_checkpoints < 0:
            raise UserError("--keep-checkpoints must be >= 0 (0 = keep every checkpoint)")
        if self.minibatch_size > self.train_batch_size:
            raise UserError("--minibatch-size must be <= --train-batch-size")
        if self.anchor < 0.0:
            raise UserError(f"--anchor must be >= 0 (got {self.anchor}); e.g. 1.0")
        if self.anchor > 0.0 and not self.demonstrations:
            raise UserError("--anchor needs --demonstrations: it anchors PPO to the imitation")


def _policy_mapping(agent_id: str, episode: Any = None, **kwargs: Any) -> str:
    # one policy per cluster agent: the policy id is the agent id
    return agent_id


def build_algo_config(cfg: TrainConfig, env_config: dict[str, Any], spaces: dict) -> Any:
    """The PPOConfig (new API stack) for a run; ``spaces`` = {policy: (obs, act space)}."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from gridfactor.agents.decision_env import DecisionEnv
    from gridfactor.progress import quiet_libraries
    from gridfactor.train.anchor import ANCHOR_COEFF, AnchoredPPOLearner
    from gridfactor.train.callbacks import DecisionMetricsCallback

    quiet_libraries()  # importing ray resets its loggers' levels

    model_config = {"fcnet_hiddens": list(cfg.hidden), "head_fcnet_hiddens": []}
    return (
        PPOConfig()
        .environment(DecisionEnv, env_config=env_config, disable_env_checking=True)
        .framework("torch")
        .env_runners(
            num_env_runners=cfg.num_env_runners,
            num_envs_per_env_runner=1,
            rollout_fragment_length="auto",
        )
        .learners(
            num_learners=0,
            learner_class=AnchoredPPOLearner,
            learner_config_dict={ANCHOR_COEFF: cfg.anchor},
        )
        .training(
            train_batch_size_per_learner=cfg.train_batch_size,
            minibatch_size=cfg.minibatch_size,
            num_epochs=cfg.num_epochs,
            lr=cfg.lr,
            gamma=cfg.gamma,
        )
        # a list, not a set: the modules are built (and their weights drawn) in this order
        .multi_agent(policies=sorted(spaces), policy_mapping_fn=_policy_mapping)
        .rl_module(
            rl_module_spec=MultiRLModuleSpec(
                rl_module_specs={
                    pid: RLModuleSpec(
                        observation_space=obs_space,
                        action_space=act_space,
                        model_config=model_config,
                    )
                    for pid, (obs_space, act_space) in spaces.items()
                }
            )
        )
        .callbacks(DecisionMetricsCallback)
        .debugging(seed=cfg.seed, log_level="ERROR")
        .reporting(metrics_num_episodes_for_smoothing=20)
    )


def load_run_factorization(cfg: TrainConfig, g2env: Any) -> Factorization:
    """The run's clusters: the factorization's zones; with --centralized one cluster over the
    same substations (or, without a factorization, over every substation with actions)."""
    from gridfactor.agents.cluster import (
        centralized_factorization,
        check_factorization_for_env,
        merged_factorization,
    )

    if cfg.centralized and not cfg.factorization_path:
        return centralized_factorization(g2env, cfg.env_name)
    fact = Factorization.load(cfg.factorization_path)
    check_factorization_for_env(fact, g2env, cfg.env_name)
    return merged_factorization(fact) if cfg.centralized else fact


def _same_clusters(a: Factorization, b: Factorization) -> bool:
    return [(c.targets, c.inputs) for c in a.clusters] == [
        (c.targets, c.inputs) for c in b.clusters
    ]


def _save_checkpoint(
    algo: Any,
    run_dir: Path,
    name: str,
    state: dict[str, Any],
    *,
    latest: bool = True,
) -> Path:
    """Save into a temp dir then rename: a killed run never leaves half a checkpoint.

    ``latest``: also point ``latest.json`` at it (what a resumed run restores)."""
    ckpt_root = run_dir / CHECKPOINTS
    ckpt_root.mkdir(parents=True, exist_ok=True)
    tmp = ckpt_root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    algo.save_to_path(str(tmp.resolve()))
    write_json(tmp / STATE_FILE, state)
    final = ckpt_root / name
    old = ckpt_root / f".{name}.old"
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    if latest:
        write_json(ckpt_root / LATEST, {"name": name, **state})
    return final


def _prune_periodic(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` periodic checkpoints (0: keep them all)."""
    periodic = sorted(p for p in (run_dir / CHECKPOINTS).glob("iter_*") if p.is_dir())
    for stale in periodic[:-keep] if keep > 0 else []:
        shutil.rmtree(stale, ignore_errors=True)


def _get(result: dict, *keys: str, default: Any = 0.0) -> Any:
    for key in keys:
        if not isinstance(result, dict) or key not in result:
            return default
        result = result[key]
    return result


def metrics_row(
    result: dict, iteration: int, agents: list[str], elapsed: float, totals: dict[str, float]
) -> dict[str, float]:
    """One metrics.csv row from an ``algo.train()`` result."""
    runners = result.get("env_runners", {})
    ours = runners.get("gridfactor", {})
    sums = ours.get("sum", {})
    n_eps = float(ours.get("episodes", 0.0))
    g2 = float(ours.get("grid2op_steps", 0.0))
    if "num_env_steps_sampled" not in runners:
        # without it the budget never advances: fail instead of looping forever
        raise RuntimeError(
            "RLlib's result has no env_runners/num_env_steps_sampled; this RLlib version "
            f"reports {sorted(runners)}: update gridfactor.train.run.metrics_row"
        )
    decisions = float(runners["num_env_steps_sampled"])
    totals["decisions"] += decisions
    totals["grid2op_steps"] += g2
    totals["time_s"] += elapsed

    def mean(key: str) -> float:
        return float(sums.get(key, 0.0)) / n_eps if n_eps else float("nan")

    row = {
        "iteration": iteration,
        "decisions": decisions,
        "decisions_total": totals["decisions"],
        "grid2op_steps": g2,
        "grid2op_steps_total": totals["grid2op_steps"],
        "time_s": elapsed,
        "time_total_s": totals["time_s"],
        "grid2op_steps_per_s": g2 / elapsed if elapsed > 0 else float("nan"),
        "episodes": n_eps,
        "survival_steps_mean": mean("survival_steps"),
        "safe_steps_mean": mean("safe_steps"),
        "game_over_rate": mean("game_over"),
        "grid2op_return_mean": mean("grid2op_return"),
    }
    learners = result.get("learners", {})
    for aid in agents:
        row[f"decisions_per_episode/{aid}"] = mean(f"decisions/{aid}")
        row[f"reward_per_episode/{aid}"] = mean(f"return/{aid}")
        row[f"decisions/{aid}"] = float(_get(runners, "num_agent_steps_sampled", aid, default=0.0))
        row[f"policy_loss/{aid}"] = float(_get(learners, aid, "policy_loss", default=np.nan))
        row[f"entropy/{aid}"] = float(_get(learners, aid, "entropy", default=np.nan))
        row[f"anchor_kl/{aid}"] = float(_get(learners, aid, "anchor_kl", default=np.nan))
    return row


def plot_learning_curve(frame: Any, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    x = frame["grid2op_steps_total"]
    axes[0].plot(x, frame["survival_steps_mean"], marker="o")
    axes[0].set_xlabel("grid2op steps")
    axes[0].set_ylabel("mean episode survival (grid2op steps)")
    for col in [c for c in frame.columns if c.startswith("reward_per_episode/")]:
        axes[1].plot(x, frame[col], marker=".", label=col.split("/", 1)[1])
    axes[1].set_xlabel("grid2op steps")
    axes[1].set_ylabel("mean episode reward per agent")
    axes[1].legend(fontsize=7)
    fig.suptitle(title)
    save_figure(fig, path)


def _init_ray(address: str | None) -> bool:
    """Start (or join) Ray; returns True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    init_ray(ParallelConfig(workers=None, ray_address=address))
    return True


def train(config: TrainConfig) -> Path:
    """Train the agents of ``config``; returns the run directory (see the module docs)."""
    import pandas as pd

    from gridfactor.agents.decision_env import DecisionEnv, DecisionEnvConfig

    config.validate()
    warnings.filterwarnings("ignore")
    from gridfactor.envs.grid2op_env import (
        AGENT_ACTION_TYPES,
        check_action_support,
        make_grid2op_env,
    )

    check_action_support(config.env_name, AGENT_ACTION_TYPES["trained"], "gridfactor train")

    # bad inputs fail before anything is written
    if config.factorization_path:
        Factorization.load(config.factorization_path)
    g2env = make_grid2op_env(config.env_name, config.reward, cache=False)
    fact = load_run_factorization(config, g2env)
    split = make_split(count_chronics(g2env), config.validation_fraction, config.held_out)
    demos = _load_demonstrations(config, fact, split) if config.demonstrations else None
    run_dir = prepare_run_dir(
        config.out, config.identity(), resume=config.resume, overwrite=config.overwrite
    )
    fact_path = run_dir / "factorization.json"
    if fact_path.is_file():
        previous = Factorization.load(fact_path)
        if not _same_clusters(previous, fact):
            raise UserError(
                f"{run_dir} was trained with another factorization ({fact_path}); resume it "
                "with that factorization or choose another --out"
            )
    fact.save(fact_path)
    write_json(run_dir / "split.json", split)
    action_sets = candidate_keys = None
    if demos is not None:
        action_sets, candidate_keys = _imitation_inputs(config, fact, g2env, demos, run_dir)

    env_cfg = DecisionEnvConfig(
        env_name=config.env_name,
        factorization=fact.to_dict(),
        obs_mode=config.obs_mode,
        danger=config.danger,
        reconnect=config.reconnect,
        episode_steps=config.episode_steps,
        chronics=split["train"]["chronics"],
        start_range=tuple(split["train"]["start_range"]),
        reward=config.reward,
        seed=config.seed,
        action_sets=action_sets,
        augment=config.augment,
    )
    # The spaces (and all config errors) come from one env built here, in the driver.
    probe = DecisionEnv(env_cfg)
    spaces = {
        aid: (probe.observation_spaces[aid], probe.action_spaces[aid])
        for aid in probe.possible_agents
    }
    agents = list(probe.possible_agents)

    started_ray = _init_ray(config.ray_address)
    algo = build_algo_config(config, asdict(env_cfg), spaces).build_algo()
    try:
        if demos is not None and latest_checkpoint(run_dir) is None:
            with timed("imitation " + ("centralized" if config.centralized else "distributed")):
                _imitate(config, algo, probe, demos, candidate_keys, run_dir, agents)
        if config.anchor > 0.0:
            _set_anchors(algo, run_dir / CHECKPOINTS / IMITATION, agents)
        return _train_loop(config, run_dir, algo, agents, fact, pd)
    finally:
        algo.stop()
        if started_ray:
            import ray

            ray.shutdown()


def _load_demonstrations(config: TrainConfig, fact: Factorization, split: dict[str, Any]) -> Any:
    """The demonstrations as one, checked against the run's env, split and zones (before
    anything is written)."""
    from gridfactor.demonstrate.demonstrations import combine_demonstrations, load_demonstrations
    from gridfactor.envs.grid2op_env import env_data_dir

    loaded = []
    for path in config.demonstrations:
        demos = load_demonstrations(path)
        if env_data_dir(demos.settings["env_name"]) != env_data_dir(config.env_name):
            raise UserError(
                f"the demonstrations of {path} were recorded on {demos.settings['env_name']} "
                f"but --env is {config.env_name}; record demonstrations of {config.env_name}"
            )
        if demos.sidecar["split"] != split:
            raise UserError(
                f"the demonstrations of {path} were recorded with another train/validation "
                f"split ({demos.sidecar['split']['validation']} held out); use the same "
                "--held-out / --validation-fraction in demonstrate and train"
            )
        demo_fact = Factorization.from_dict(demos.settings["factorization"])
        if not config.centralized and not _same_clusters(demo_fact, fact):
            raise UserError(
                f"the demonstrations of {path} were recorded with other zones than "
                f"{config.factorization_path}; pass the factorization they were recorded with"
            )
        loaded.append(demos)
    return combine_demonstrations(loaded)


def _imitation_inputs(
    config: TrainConfig,
    fact: Factorization,
    g2env: Any,
    demos: Any,
    run_dir: Path,
) -> tuple[dict[str, list[list[int]]], dict[str, list[tuple[int, int]]]]:
    """Reduce (or keep) the action sets, save them. Also returns, per demonstrated zone, its
    full candidate list (the order of a row's ``sim_outcome``)."""
    from gridfactor.agents.cluster import build_agents
    from gridfactor.agents.trained import ACTION_SETS_FILE
    from gridfactor.train.imitation import reduce_action_sets

    agents = build_agents(fact, g2env)
    covered = reduce_action_sets(
        demos.frame,
        agents,
        coverage=config.coverage,
        rows_of=lambda agent: training_rows(demos.frame, agent.agent_id, config),
    )
    sets = {a.agent_id: list(a.action_keys) for a in agents} if config.full_action_set else covered
    write_json(
        run_dir / ACTION_SETS_FILE,
        {
            "coverage": config.coverage,
            "full_action_set": config.full_action_set,
            "demonstrations": list(config.demonstrations),
            "agents": {aid: [list(k) for k in keys] for aid, keys in sets.items()},
            # what the pure policy plays (see TrainedAgent.greedy_sets): with every action
            # learned, the expert's covered choices only; a guard ranks them all
            "greedy": {aid: [list(k) for k in keys] for aid, keys in covered.items()},
            "n_actions_full": {a.agent_id: a.n_actions for a in agents},
        },
    )
    # a distributed run's zones are the demonstrations' (checked above): its agents serve
    zone_agents = agents
    if config.centralized:
        demo_zones = Factorization.from_dict(demos.settings["factorization"])
        zone_agents = build_agents(demo_zones, g2env)
    candidate_keys = {a.agent_id: list(a.action_keys) for a in zone_agents}
    return {aid: [list(k) for k in keys] for aid, keys in sets.items()}, candidate_keys


def training_rows(frame: Any, agent_id: str, config: TrainConfig) -> Any:
    """The demonstration rows agent ``agent_id`` learns from: for the centralized agent every
    decision (the deciding zone's row); for a zone agent its zone's labels, at every unsafe
    state when every zone was labelled (``label_rows="all"``) or only where it decided
    (``"deciding"``)."""
    if config.centralized:
        return frame[frame["decider"]]
    rows = frame[frame["agent"] == agent_id]
    return rows[rows["decider"]] if config.label_rows == "deciding" else rows


def _imitate(
    config: TrainConfig,
    algo: Any,
    env: Any,
    demos: Any,
    candidate_keys: dict[str, list[tuple[int, int]]],
    run_dir: Path,
    agents: list[str],
) -> None:
    """Clone the expert into every policy (the learner's modules), sync the env runners,
    save the ``imitation`` checkpoint and ``imitation.json`` (agreement with the expert)."""
    from gridfactor.sim.candidates import GAME_OVER
    from gridfactor.train.imitation import clone_expert, held_out_episodes, simulated_outcomes

    frame = demos.frame
    held_out = held_out_episodes(frame, config.seed)
    obs_column = "obs_global" if config.centralized or config.obs_mode == "global" else "obs_local"
    by_id = env.by_id

    def fit(learner: Any) -> list[dict[str, Any]]:
        reports = []
        for aid in agents:
            rows = training_rows(frame, aid, config)
            rho, codes = simulated_outcomes(rows, by_id[aid], candidate_keys)
            report = clone_expert(
                learner.module[aid],
                rows,
                by_id[aid],
                obs_column=obs_column,
                held_out=held_out,
                epochs=config.imitation_epochs,
                seed=config.seed,
                avoid=config.avoid_game_over,
                game_over=codes == GAME_OVER,
                ranking=(rho, codes, config.ranking) if config.ranking > 0.0 else None,
            )
            reports.append(report.to_dict())
        return reports

    tic = time.perf_counter()
    (reports,) = algo.learner_group.foreach_learner(fit)
    reports = reports.get() if hasattr(reports, "get") else reports
    algo.env_runner_group.sync_weights(
        from_worker_or_learner_group=algo.learner_group, inference_only=True
    )
    summary = {
        "agents": reports,
        "held_out_episodes": held_out.tolist(),
        "observation": obs_column,
        "seconds": time.perf_counter() - tic,
    }
    write_json(run_dir / "imitation.json", summary)
    for r in reports:
        print(
            f"imitation {r['agent']}: {r['n_train']} decisions, {r['n_actions']} actions, "
            f"agreement with the expert on {r['n_held_out']} held-out decisions: top-1 "
            f"{r['top1']:.2f}, top-5 {r['top5']:.2f} (train top-1 {r['train_top1']:.2f}); "
            f"greedy action a game over in {r['top1_game_over']:.1%}",
            flush=True,
        )
    state = {"iteration": 0, "agents": agents, "decisions": 0.0, "grid2op_steps": 0.0}
    # not the resume point: a run interrupted before its first PPO checkpoint re-clones
    # (seeded, seconds) rather than restoring weights it already holds
    _save_checkpoint(algo, run_dir, IMITATION, {**state, "time_s": 0.0}, latest=False)


def _set_anchors(algo: Any, imitation: Path, agents: list[str]) -> None:
    """Freeze the imitation policies as the PPO anchors (also on resume)."""
    from gridfactor.agents.trained import RL_MODULE_DIR

    module_dir = str((imitation / RL_MODULE_DIR).resolve())
    (loaded,) = algo.learner_group.foreach_learner(lambda learner: learner.set_anchors(module_dir))
    loaded = loaded.get() if hasattr(loaded, "get") else loaded
    if sorted(loaded) != sorted(agents):
        raise UserError(
            f"{imitation} holds no imitation policy for {sorted(set(agents) - set(loaded))}; "
            "train with --demonstrations from the start to anchor PPO"
        )


def _train_loop(
    config: TrainConfig, run_dir: Path, algo: Any, agents: list[str], fact: Any, pd: Any
) -> Path:
    from tensorboardX import SummaryWriter

    kind = "centralized" if config.centralized else "distributed"
    totals = {"decisions": 0.0, "grid2op_steps": 0.0, "time_s": 0.0}
    iteration = 0
    rows: list[dict[str, float]] = []
    ckpt = latest_checkpoint(run_dir)
    if ckpt is not None:
        state = json.loads((ckpt / STATE_FILE).read_text())
        if state.get("agents") != agents:
            raise UserError(
                f"checkpoint {ckpt} holds policies {state.get('agents')} but this "
                f"factorization gives {agents}; use the run's factorization or another --out"
            )
        algo.restore_from_path(str(ckpt.resolve()))
        iteration = int(state["iteration"])
        totals = {k: float(state[k]) for k in totals}
        metrics_path = run_dir / "metrics.csv"
        if metrics_path.is_file():
            old = pd.read_csv(metrics_path)
            rows = old[old["iteration"] <= iteration].to_dict("records")
        print(
            f"resuming from {ckpt.name}: iteration {iteration}, {totals['decisions']:.0f} "
            "decisions done"
        )
    writer = SummaryWriter(str(run_dir / "tb"), purge_step=iteration + 1)

    def state_now() -> dict[str, Any]:
        return {"iteration": iteration, "agents": agents, **totals}

    remaining = max(0, config.timesteps - int(totals["decisions"]))
    bar = Phase(f"train {kind}", remaining, "decision", enabled=remaining > 0, record=remaining > 0)
    try:
        while totals["decisions"] < config.timesteps:
            start = time.perf_counter()
            result = algo.train()
            elapsed = time.perf_counter() - start
            iteration += 1
            row = metrics_row(result, iteration, agents, elapsed, totals)
            rows.append(row)
            for key, value in row.items():
                if key != "iteration" and not (isinstance(value, float) and math.isnan(value)):
                    writer.add_scalar(key, value, iteration)
            writer.flush()
            frame = pd.DataFrame(rows)
            write_csv(run_dir / "metrics.csv", frame)
            bar.update(min(int(row["decisions"]), remaining - bar.count))
            bar.write(
                f"iter {iteration:4d}  decisions {totals['decisions']:8.0f}  grid2op steps "
                f"{totals['grid2op_steps']:9.0f}  {row['grid2op_steps_per_s']:7.1f} steps/s  "
                f"mean survival {row['survival_steps_mean']:7.1f}  episodes "
                f"{row['episodes']:4.0f}"
            )
            if iteration % config.checkpoint_every == 0:
                _save_checkpoint(algo, run_dir, f"iter_{iteration:06d}", state_now())
                _prune_periodic(run_dir, config.keep_checkpoints)
    finally:
        bar.close()
        writer.close()
    _save_checkpoint(algo, run_dir, "final", state_now())
    if rows:
        plot_learning_curve(
            pd.DataFrame(rows), run_dir / "learning_curve.png", f"{kind} PPO, {config.env_name}"
        )
    return run_dir
