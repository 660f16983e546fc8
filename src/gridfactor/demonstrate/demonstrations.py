"""Expert demonstrations in the zones' decision frame (``gridfactor demonstrate``).

The zone expert plays the decision env (:class:`gridfactor.agents.decision_env.DecisionEnv`) on the
*training* chronics of the train/validation split (never the held-out ones): at every
decision the CAPA-chosen zone agent's candidate actions (do nothing + the unitary topology
actions of its substations) are simulated one step ahead and the one with the lowest max rho
is the label. Recorded per decision: the zone, that agent's observation exactly as its
policy sees it (``obs_local``) and the whole-grid observation (``obs_global``, what a global
or centralized policy sees), the simulated max rho of every candidate and why it is inf
when it is (``sim_outcome``, see :data:`gridfactor.agents.expert.OUTCOMES`), the label as a
canonical action id (substation, index in grid2op's unitary set of that substation; (-1, -1)
= do nothing), and the action played.

Labels for every zone (``label_zones="all"``, the default): at every decision each zone's
own best candidate is simulated and recorded too, in a row of that zone with ``decider``
False (the decider's row has ``decider`` True). A zone agent only acts when CAPA hands it
the decision, but its clone learns from every unsafe state the grid went through: on the
case14 paper run the zone of substations 1-4 decided 434 times in 5 438 decisions.

Behaviour: with probability ``explore`` the played action is do nothing instead of the
expert's (the label is recorded all the same): the data then also covers the degraded states
a weaker policy reaches, not only the expert's own trajectory. With ``policy`` (a
``gridfactor train`` run of the same zones) that run's pure policy plays and the expert
labels the states it visits: a DAgger round (train again on both demonstrations). With
``policy`` and ``guard`` k > 0 the expert is not asked: the policy's guarded agent plays and
labels (each zone's k most likely actions and do nothing simulated, the lowest max rho
wins, as ``evaluate --guard k`` plays): a round of self-distillation, whose labels the pure
policy can learn (they are among its own top k) at k simulations a zone and decision.

Reproducible and resumable like ``collect``: episode ``e`` is seeded from (seed, e) only;
chunks of episodes run as Ray tasks and are saved as ``parts/ep<first>.npz`` as they
arrive; the Parquet file is assembled in canonical (episode, decision) order.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gridfactor.agents.high_level import DANGER, check_danger, check_reconnect
from gridfactor.envs.chronics import check_augment
from gridfactor.errors import UserError
from gridfactor.parallel import ParallelConfig, parallel_map
from gridfactor.runs import atomic_write, prepare_run_dir, read_parquet, write_json, write_parquet

DEMO_FILE = "demonstrations.parquet"
DEMO_SIDECAR = "demonstrations.json"
PARTS_DIR = "parts"
# What the expert simulates and records. 3: each candidate's outcome (``sim_outcome``),
# candidates of substations in cooldown not simulated; 2: topology actions without the ends
# of out lines (gridfactor.envs.topology); 1 asked grid2op to reconnect them, so many
# candidates were refused. Parts and files of another version are recorded again on
# resume, never mixed. 4: a row per zone and decision (``decider``), the played policy.
DEMONSTRATION_VERSION = 4
LABEL_ZONES = ("all", "capa")


def check_label_zones(label_zones: str) -> None:
    """One line for a ``--label-zones`` that is not one of :data:`LABEL_ZONES`."""
    if label_zones not in LABEL_ZONES:
        raise UserError(
            f"--label-zones must be one of {', '.join(LABEL_ZONES)}, got {label_zones!r}"
        )


@dataclass(frozen=True)
class DemonstrateConfig:
    """Settings of a demonstration run.

    factorization: the zones (a ``gridfactor factorize`` output), as a dict.
    n_episodes: decision-env episodes of at most ``episode_steps`` grid2op steps, starting
        at random times of the training chronics.
    explore: probability of playing do nothing instead of the expert's action.
    validation_fraction / held_out: the train/validation split of ``gridfactor train``
        (``gridfactor.envs.split.make_split``; the held-out chronics are never played).
    label_zones: "all" (every zone's best candidate at every decision) or "capa" (the
        deciding zone's only).
    policy: a ``gridfactor train`` run directory of the same zones whose pure policy plays
        instead of the expert (``explore`` unused); None: the expert plays.
    guard: with ``policy``, 0: the expert labels; k > 0: the policy's guarded agent (its k
        most likely actions and do nothing, simulated) labels and plays.
    augment: 0: the training chronics as they are; > 0: each episode plays a perturbed
        copy of its chronic (see ``DecisionEnvConfig.augment``).
    """

    env_name: str
    factorization: dict[str, Any]
    n_episodes: int = 100
    episode_steps: int = 288
    danger: float = DANGER
    reconnect: str = "always"
    explore: float = 0.3
    validation_fraction: float = 0.2
    held_out: tuple[int, ...] = ()
    seed: int = 0
    chunk_size: int = 4
    label_zones: str = "all"
    policy: str | None = None
    augment: float = 0.0
    guard: int = 0

    def validate(self) -> DemonstrateConfig:
        for name in ("n_episodes", "episode_steps", "chunk_size"):
            if int(getattr(self, name)) <= 0:
                flag = "--" + name.replace("_", "-")
                raise UserError(f"{flag} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.explore < 1.0:
            raise UserError(f"--explore must be in [0, 1), got {self.explore}; e.g. 0.3")
        if not 0.0 < self.validation_fraction < 1.0:
            raise UserError("--validation-fraction must be in (0, 1)")
        check_danger(self.danger)
        check_label_zones(self.label_zones)
        check_reconnect(self.reconnect)
        check_augment(self.augment)
        if self.guard < 0:
            raise UserError(f"--guard must be >= 0, got {self.guard}; e.g. 3")
        if self.guard and not self.policy:
            raise UserError(
                "--guard labels with a policy's guarded agent: pass --policy (a gridfactor "
                "train run of these zones), or drop --guard for the expert's labels"
            )
        return self

    def recorded(self) -> dict[str, Any]:
        """The settings as config.json records them (``guard`` and ``held_out`` only when
        set, so that runs recorded without them stay resumable)."""
        settings = asdict(self)
        if not self.guard:
            del settings["guard"]
        if self.held_out:
            settings["held_out"] = list(self.held_out)
        else:
            del settings["held_out"]
        return settings


@dataclass(frozen=True)
class Chunk:
    config: DemonstrateConfig
    split: tuple[tuple[int, ...], tuple[float, float]]  # training chronics, start range
    ep_start: int
    ep_stop: int

    @property
    def part_name(self) -> str:
        return f"ep{self.ep_start:07d}.pkl"


_ENVS: dict[str, Any] = {}


def _decision_env(chunk: Chunk) -> Any:
    """One decision env per worker process and settings (building one takes seconds)."""
    from gridfactor.agents.decision_env import DecisionEnv, DecisionEnvConfig

    c = chunk.config
    key = json.dumps(
        [
            c.env_name,
            c.factorization,
            c.danger,
            c.reconnect,
            c.episode_steps,
            chunk.split,
            c.augment,
        ]
    )
    if key not in _ENVS:
        _ENVS.clear()
        _ENVS[key] = DecisionEnv(
            DecisionEnvConfig(
                env_name=c.env_name,
                factorization=c.factorization,
                obs_mode="local",
                danger=c.danger,
                reconnect=c.reconnect,
                episode_steps=c.episode_steps,
                chronics=list(chunk.split[0]),
                start_range=tuple(chunk.split[1]),
                seed=c.seed,
                augment=c.augment,
            )
        )
    return _ENVS[key]


def episode_seed(seed: int, episode: int) -> int:
    return int(np.random.SeedSequence(seed, spawn_key=(0x64656D6F, episode)).generate_state(1)[0])


_POLICIES: dict[str, Any] = {}


def _policy(run_dir: str) -> Any:
    """The trained agent of ``run_dir``, loaded once per worker process."""
    from gridfactor.agents.trained import load_trained_agent

    if run_dir not in _POLICIES:
        _POLICIES.clear()
        _POLICIES[run_dir] = load_trained_agent(run_dir)
    return _POLICIES[run_dir]


def _policy_choice(policy: Any, agent: Any, g2obs: Any, g2env: Any) -> int:
    """Index in ``agent``'s (full) actions of what the policy plays: its greedy action, do
    nothing when it waits (its choice is cooling) or when its danger says safe."""
    aid, index = policy.choose(g2obs, g2env)
    if aid != agent.agent_id or index <= 0:
        return 0
    key = policy.bind(g2env).by_id[aid].action_keys[index]
    return agent.index_of(key) or 0


def _guard_skip(policy: Any, agent: Any, g2obs: Any, g2env: Any, k: int) -> np.ndarray:
    """(agent.n_actions,) bool: every action of ``agent`` but do nothing and the policy's
    ``k`` most likely (not cooling) in ``g2obs``: what its guard does not simulate."""
    frame = policy.bind(g2env)
    keys = frame.by_id[agent.agent_id].action_keys
    skip = np.ones(agent.n_actions, dtype=bool)
    skip[0] = False
    for i in policy.proposals(frame, agent.agent_id, g2obs, k):
        index = agent.index_of(keys[i])
        if index is not None:
            skip[index] = False
    return skip


def run_chunk(chunk: Chunk) -> list[dict[str, Any]]:
    """Play the chunk's episodes (the zone expert, ``policy``, or its guarded agent); one
    record per decision and labelled zone (the decider first)."""
    from gridfactor.agents.cluster import ObservationEncoder
    from gridfactor.agents.expert import zone_label

    warnings.filterwarnings("ignore")
    env = _decision_env(chunk)
    policy = _policy(chunk.config.policy) if chunk.config.policy else None
    global_encoder = ObservationEncoder(env.cluster_agents[0], env.g2env, "global")
    rows: list[dict[str, Any]] = []
    for episode in range(chunk.ep_start, chunk.ep_stop):
        rng = np.random.default_rng(episode_seed(chunk.config.seed, episode))
        obs, _ = env.reset(seed=int(rng.integers(2**31 - 1)))
        decision, first_row = 0, len(rows)
        while True:
            (aid,) = obs
            g2obs = env.obs
            labelled = [aid]
            if chunk.config.label_zones == "all":
                labelled += [z for z in env.frame.agent_ids if z != aid]
            obs_global = global_encoder(g2obs)
            played = 0
            for zone in labelled:
                agent = env.by_id[zone]
                tic = time.perf_counter()
                unasked = (
                    _guard_skip(policy, agent, g2obs, env.g2env, chunk.config.guard)
                    if chunk.config.guard
                    else None
                )
                best, rhos, outcomes = zone_label(env.frame, zone, g2obs, unasked)
                if chunk.config.guard:
                    outcomes[unasked] = -1  # not simulated (as in training's outcome codes)
                expert_s = time.perf_counter() - tic
                decider = zone == aid
                if decider:
                    if chunk.config.guard:
                        played = best
                    elif policy is not None:
                        played = _policy_choice(policy, agent, g2obs, env.g2env)
                    else:
                        played = 0 if rng.random() < chunk.config.explore else best
                rows.append(
                    {
                        "episode": episode,
                        "decision": decision,
                        "chronic": int(env.chronic),
                        "start": int(env.start),
                        "grid2op_step": int(env.steps),
                        "agent": zone,
                        "decider": decider,
                        "sub": int(env.current_sub) if decider else -1,
                        "max_rho": float(np.max(g2obs.rho)),
                        "obs_local": (
                            obs[aid] if decider else env.frame.encode(zone, g2obs)
                        ).astype(np.float32),
                        "obs_global": obs_global,
                        "sim_max_rho": rhos.astype(np.float32),
                        "sim_outcome": outcomes,
                        "label_sub": int(agent.action_keys[best][0]),
                        "label_index": int(agent.action_keys[best][1]),
                        "played_sub": int(agent.action_keys[played if decider else 0][0]),
                        "played_index": int(agent.action_keys[played if decider else 0][1]),
                        "expert_ms": 1000.0 * expert_s,
                    }
                )
            decision += 1
            obs, _, term, trunc, _ = env.step({aid: played})
            if term["__all__"] or trunc["__all__"]:
                break
        outcome = env.pending_episodes[-1]  # this episode's (the last one that ended)
        env.pending_episodes.clear()
        for row in rows[first_row:]:
            row["episode_survival"] = float(outcome["survival_steps"])
            row["episode_game_over"] = bool(term["__all__"])
    return rows


def _split(config: DemonstrateConfig) -> dict[str, Any]:
    from gridfactor.envs.grid2op_env import make_grid2op_env
    from gridfactor.envs.split import count_chronics, make_split

    g2env = make_grid2op_env(config.env_name, cache=False)
    return make_split(count_chronics(g2env), config.validation_fraction, config.held_out)


def demonstrate(
    config: DemonstrateConfig,
    out: str | os.PathLike,
    *,
    parallel: ParallelConfig | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Record the demonstrations into the run directory ``out``; returns it."""
    import pandas as pd

    from gridfactor.agents.cluster import check_factorization_for_env
    from gridfactor.envs.grid2op_env import make_grid2op_env
    from gridfactor.factorization import Factorization

    config.validate()
    parallel = parallel or ParallelConfig()
    fact = Factorization.from_dict(config.factorization)
    check_factorization_for_env(
        fact, make_grid2op_env(config.env_name, cache=False), config.env_name
    )
    if config.policy:
        _check_policy_run(Path(config.policy), fact, config.env_name)
    split = _split(config)
    out_dir = prepare_run_dir(
        out, {"command": "demonstrate", **config.recorded()}, resume=resume, overwrite=overwrite
    )
    path, sidecar_path = out_dir / DEMO_FILE, out_dir / DEMO_SIDECAR
    if path.is_file() and sidecar_path.is_file():
        done = json.loads(sidecar_path.read_text())
        if done.get("demonstration_version") == DEMONSTRATION_VERSION:
            return out_dir
    train = (tuple(split["train"]["chronics"]), tuple(split["train"]["start_range"]))
    chunks = [
        Chunk(config, train, a, min(a + config.chunk_size, config.n_episodes))
        for a in range(0, config.n_episodes, config.chunk_size)
    ]
    parts_dir = out_dir / PARTS_DIR
    parts: list[list[dict[str, Any]] | None] = [_load(parts_dir / c.part_name) for c in chunks]
    todo = [i for i, p in enumerate(parts) if p is None]

    def on_result(position: int, rows: list[dict[str, Any]]) -> None:
        index = todo[position]
        buffer = io.BytesIO()
        pickle.dump({"demonstration_version": DEMONSTRATION_VERSION, "rows": rows}, buffer)
        with atomic_write(parts_dir / chunks[index].part_name, "wb") as fh:
            fh.write(buffer.getvalue())
        parts[index] = rows

    tic = time.perf_counter()
    if todo:
        parallel_map(
            run_chunk,
            [chunks[i] for i in todo],
            parallel,
            desc="demonstrate",
            unit="chunk",
            progress=progress,
            on_result=on_result,
        )
    frame = pd.DataFrame([row for rows in parts for row in rows])  # type: ignore[union-attr]
    if frame.empty:
        raise UserError(
            f"no decision in {config.n_episodes} episodes: the grid never reached rho >= "
            f"{config.danger}; lower --danger or play more --n-episodes"
        )
    write_parquet(path, frame)
    per_episode = frame.groupby("episode")["episode_survival"].first()
    decisions = frame[frame["decider"]]
    per_decision_ms = frame.groupby(["episode", "decision"])["expert_ms"].sum()
    labels = decisions["label_sub"] >= 0
    played = decisions["played_sub"] >= 0
    write_json(
        sidecar_path,
        {
            "env_name": config.env_name,
            "demonstration_version": DEMONSTRATION_VERSION,
            "settings": {k: v for k, v in config.recorded().items() if k != "factorization"},
            "split": split,
            "n_decisions": len(decisions),
            "n_episodes": int(frame["episode"].nunique()),
            "decisions_per_agent": decisions["agent"].value_counts().sort_index().to_dict(),
            "labels_per_agent": frame["agent"].value_counts().sort_index().to_dict(),
            "expert_acts_share": float(labels.mean()),
            "played_acts_share": float(played.mean()),
            "agreement_with_expert": float(
                (
                    (decisions["played_sub"] == decisions["label_sub"])
                    & (decisions["played_index"] == decisions["label_index"])
                ).mean()
            ),
            "distinct_labels": int(
                decisions[["label_sub", "label_index"]].drop_duplicates().shape[0]
            ),
            "mean_expert_ms": float(per_decision_ms.mean()),
            "candidate_outcomes": candidate_outcomes(frame),
            "mean_episode_survival": float(per_episode.mean()),
            "wall_seconds": time.perf_counter() - tic,
        },
    )
    return out_dir


def _check_policy_run(run: Path, fact: Any, env_name: str) -> None:
    """UserError unless ``run`` is a distributed training run of these zones on this env."""
    from gridfactor.envs.grid2op_env import env_data_dir
    from gridfactor.factorization import Factorization

    if not (run / "config.json").is_file() or not (run / "factorization.json").is_file():
        raise UserError(f"--policy {run} is not a training run; pass a --out of gridfactor train")
    config = json.loads((run / "config.json").read_text())
    if env_data_dir(config["env_name"]) != env_data_dir(env_name):
        raise UserError(
            f"--policy {run} was trained on {config['env_name']}, not {env_name}; pass a run "
            f"of {env_name}"
        )
    zones = Factorization.load(run / "factorization.json").clusters
    if config.get("centralized") or [(c.targets, c.inputs) for c in zones] != [
        (c.targets, c.inputs) for c in fact.clusters
    ]:
        raise UserError(
            f"--policy {run} is not a distributed run of these zones; pass a run trained with "
            "this --factorization"
        )


def candidate_outcomes(frame: Any) -> dict[str, dict[str, float]]:
    """Per agent (and "all"), the share of its simulated candidates per outcome
    (feasible, cooldown, illegal, ambiguous, game over; do nothing and the candidates a
    guard did not ask for, -1, excluded)."""
    from gridfactor.agents.expert import OUTCOMES

    def shares(rows: Any) -> dict[str, float]:
        codes = np.concatenate([o[1:] for o in rows["sim_outcome"]] or [np.zeros(0, np.int8)])
        codes = codes[codes >= 0]
        counts = np.bincount(codes.astype(int), minlength=len(OUTCOMES))
        total = max(int(codes.size), 1)
        return {name: round(float(counts[code]) / total, 4) for code, name in OUTCOMES.items()}

    out = {"all": shares(frame)}
    for agent, rows in frame.groupby("agent", sort=True):
        out[str(agent)] = shares(rows)
    return out


def _load(path: Path) -> list[dict[str, Any]] | None:
    """The part's rows; None (redo it) when missing, unreadable (should not happen with
    atomic writes) or recorded by another version (see :data:`DEMONSTRATION_VERSION`)."""
    if not path.is_file():
        return None
    try:
        with path.open("rb") as fh:
            part = pickle.load(fh)
    except (OSError, EOFError, pickle.UnpicklingError):
        return None
    if not isinstance(part, dict) or part.get("demonstration_version") != DEMONSTRATION_VERSION:
        return None
    return part["rows"]


@dataclass
class Demonstrations:
    """Loaded demonstrations: the frame (one row per decision) and the sidecar."""

    frame: Any
    sidecar: dict[str, Any]
    settings: dict[str, Any]

    def agent_rows(self, agent: str) -> Any:
        return self.frame[self.frame["agent"] == agent]


def load_demonstrations(path: str | os.PathLike) -> Demonstrations:
    """Read a ``gridfactor demonstrate`` run directory."""
    run = Path(path)
    if not (run / DEMO_FILE).is_file() or not (run / DEMO_SIDECAR).is_file():
        raise UserError(
            f"no demonstrations in {run} (expected {DEMO_FILE} and {DEMO_SIDECAR}); run "
            "`gridfactor demonstrate` first"
        )
    config = json.loads((run / "config.json").read_text())
    frame = read_parquet(run / DEMO_FILE)
    if "decider" not in frame:  # recorded before every zone was labelled: deciders only
        frame["decider"] = True
    return Demonstrations(frame, json.loads((run / DEMO_SIDECAR).read_text()), config)


# Episode ids of the k-th of several demonstration runs are offset by k times this, so that
# runs stay apart (the held-out episodes are drawn by id).
EPISODE_OFFSET = 10_000_000


def combine_demonstrations(runs: list[Demonstrations]) -> Demonstrations:
    """Several demonstration runs as one (the first's sidecar and settings): the expert's
    and the DAgger rounds' labels, learned from together."""
    import pandas as pd

    if len(runs) == 1:
        return runs[0]
    frames = []
    for k, run in enumerate(runs):
        frame = run.frame.copy()
        frame["episode"] = frame["episode"] + k * EPISODE_OFFSET
        frames.append(frame)
    return Demonstrations(pd.concat(frames, ignore_index=True), runs[0].sidecar, runs[0].settings)
