"""Random-topology (s, a, s') data from a Grid2Op environment, in parallel and resumable.

For every *selected* substation (one with at least ``min_elements`` elements), we play
``n_episodes`` episodes in which a random agent acts only on that substation: at each step,
with probability ``explore`` it plays a uniformly random unitary topology action of the
substation (``get_all_unitary_topologies_set``), otherwise it does nothing. An episode stops
at game over, at the end of its chronic or after ``max_steps`` steps. With
``rows_per_substation`` (what ``factorize`` passes: its ``--n-samples``) a substation stops
after the first of its chunks that brings it to that many usable transitions.

Encoding of the action columns ``a_<sub_name>`` (the seed's encoding): for the substation
acted on in the episode, ``action index / number of distinct actions of that substation``
(so values lie in [0, 1)); a do-nothing step (only when ``explore < 1``) is encoded ``-1``;
the other substations are ``0`` in that episode. ``0`` is thus ambiguous between "action
0" and "not acted on": only use a substation's column on its own episodes (rows with
``substation == sub_id``), as the grid factorization does. The raw index is kept in the
``action`` column (-1 = do nothing). On envs with a substation cooldown (the 36-bus and
``l2rpn_icaps_2021``-like envs: 3 steps), the agent waits (does nothing) while its substation
cools down, since grid2op would refuse the action anyway.

Reproducibility: every episode draws its start (chronic, time step), its env seed and its
actions from ``np.random.SeedSequence(seed, spawn_key=(sub_id, episode))``, so the dataset
does not depend on how episodes are grouped into tasks or on the number of workers (the env
of a worker is reused across episodes; a reset with a seed makes episodes independent of
what ran before, checked by the tests).

Resumability: episodes are grouped in fixed chunks (``chunk_size`` episodes of one
substation). Each finished chunk is written atomically as ``parts/<sub>_<first ep>.npz`` as
soon as it arrives; a re-run skips the chunks already on disk; the final Parquet file is
assembled from the parts in canonical (substation, episode, step) order, so an interrupted
and resumed run gives the same bytes as an uninterrupted one.

Action effects: every step that plays a topology action gets a status (see
:data:`EFFECTS`), saved in the part files (so a resumed run counts finished chunks too) and
summed per substation into ``dataset.json["action_effects"]``; the dataset itself is
unchanged. grid2op replaces an illegal or ambiguous action by do-nothing and says so in the
step's ``info``; an env whose action class lacks ``set_bus`` builds the actions empty.
Either way the rows hold do-nothing transitions labelled as actions, which
:func:`check_action_effects` refuses to factorize.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gridfactor.envs.grid2op_env import cached_env, reset_env
from gridfactor.envs.topology import Target, line_lookup, target_of, without_out_lines
from gridfactor.errors import UserError
from gridfactor.parallel import ParallelConfig, parallel_map
from gridfactor.runs import atomic_write, read_parquet, write_json, write_parquet

DATASET_FILE = "dataset.parquet"
SIDECAR_FILE = "dataset.json"
PARTS_DIR = "parts"
DO_NOTHING = -1
# What the random policy plays. 3: a unitary action leaves the ends of out lines alone (see
# gridfactor.envs.topology); 1 played them, so grid2op refused it whenever a line was out; 2 could
# play another substation's action from its cache. Part files and datasets of another
# version are collected again, never mixed.
COLLECTOR_VERSION = 3

# Status of a step (``status`` in the part files). A topology action that grid2op applied:
CHANGED = 1  # it changed the substation's buses
NO_CHANGE = 2  # legal, but the substation already had exactly this configuration
GAME_OVER = 3  # applied, then the step ended in a game over (an exception and done)
# Refused: grid2op played do-nothing instead (the action had no effect).
ILLEGAL = 4  # info["is_illegal"]: a game rule (substation cooldown, max changes, ...)
# info["is_illegal"] and the action set a bus on an end of a line that was out and still in
# its cooldown (tripped by an overflow, attacked by the opponent, in maintenance), i.e. it
# would have reconnected the line. The collector leaves such ends alone (since version 2),
# so its own actions should never get this status; it stays a counted kind, not an assumption.
ILLEGAL_RECONNECTION = 5
AMBIGUOUS = 6  # info["is_ambiguous"]: the action is inconsistent for this env
REFUSED_OTHER = 7  # an exception without game over: failed redispatch, gen up/down times
EMPTY = 8  # the env's action class has no set_bus: grid2op built an empty action
NOT_ACTED = 0  # a do-nothing step of the random agent (explore < 1)
EFFECTS = {
    CHANGED: "changed",
    NO_CHANGE: "no_change",
    GAME_OVER: "game_over",
    ILLEGAL: "illegal",
    ILLEGAL_RECONNECTION: "illegal_reconnection",
    AMBIGUOUS: "ambiguous",
    REFUSED_OTHER: "refused_other",
    EMPTY: "empty",
}
REFUSED = (ILLEGAL, ILLEGAL_RECONNECTION, AMBIGUOUS, REFUSED_OTHER, EMPTY)
EFFECTS_MEANING = (
    "per substation, its random topology actions (do-nothing steps excluded): changed = "
    "applied and changed the buses; no_change = legal, but the substation already had "
    "that configuration; game_over = applied, then a game over (exception and done); refused "
    "= illegal (info['is_illegal']: a game rule, e.g. substation cooldown) + "
    "illegal_reconnection (info['is_illegal'], and the action set a bus on an end of a line "
    "that was out and still in its cooldown: tripped, attacked, maintenance) + ambiguous "
    "(info['is_ambiguous']) + refused_other (an exception without game over: failed "
    "redispatch, generator up/down times) + empty (the action class has no set_bus): grid2op "
    "played do-nothing instead. reasons: grid2op's exception per refusal kind, with an example"
)

# Per worker process, next to its env (gridfactor.envs.grid2op_env.cached_env):
# (env name, backend) -> {sub_id: actions}.
_ACTION_CACHE: dict[tuple[str, str], dict[Any, list[Any]]] = {}


@dataclass(frozen=True)
class CollectConfig:
    """Settings of a random-topology data collection.

    n_episodes: episodes *per selected substation*.
    max_steps: episode step limit (an episode also ends at game over / end of chronic).
    explore: probability of a random topology action at a step (else do nothing);
        1.0 is the seed's behaviour (episodes then last only a few steps, see README).
    min_elements: a substation is selected when it has at least this many elements.
    chunk_size: episodes per task and per part file (part of the run's identity: changing
        it changes the part files, not the data).
    rows_per_substation: stop a substation's episodes once its first chunks hold this many
        usable rows (transitions without game over), e.g. the MI's sample size, since more
        would be subsampled away; None = every substation plays all ``n_episodes``. Which
        chunks are kept depends only on the data (the shortest prefix of the substation's
        chunks that has enough rows), not on the workers' timing.
    """

    env_name: str = "l2rpn_case14_sandbox"
    n_episodes: int = 1000
    max_steps: int = 100
    explore: float = 1.0
    min_elements: int = 4
    seed: int = 0
    chunk_size: int = 50
    backend: str = "lightsim"
    rows_per_substation: int | None = None

    def validate(self) -> CollectConfig:
        for name in ("n_episodes", "max_steps", "min_elements", "chunk_size"):
            value = getattr(self, name)
            if int(value) <= 0:
                flag = "--" + name.replace("_", "-")
                raise UserError(f"{flag} must be > 0, got {value}; pass a positive integer")
        if not 0.0 < self.explore <= 1.0:
            raise UserError(
                f"--explore must be in (0, 1], got {self.explore}; e.g. --explore 1.0 "
                "(always act) or 0.2"
            )
        if self.seed < 0:
            raise UserError(f"--seed must be >= 0, got {self.seed}; pass a non-negative int")
        if self.rows_per_substation is not None and self.rows_per_substation <= 0:
            raise UserError(
                f"rows per substation must be > 0, got {self.rows_per_substation}; e.g. 50000"
            )
        return self


@dataclass(frozen=True)
class GridInfo:
    """What the driver learns about an env once (names, sizes, chronics, action counts)."""

    env_name: str
    line_names: tuple[str, ...]
    sub_names: tuple[str, ...]
    sub_info: tuple[int, ...]
    selected: tuple[int, ...]  # substation ids with >= min_elements elements
    n_actions: dict[int, int] = field(default_factory=dict)  # sub id -> distinct actions
    chronic_ids: tuple[str | None, ...] = (None,)  # "time serie id" per chronic
    chronic_lengths: tuple[int, ...] = (1,)  # steps of each chronic

    @property
    def n_line(self) -> int:
        return len(self.line_names)

    @property
    def n_sub(self) -> int:
        return len(self.sub_names)


@dataclass(frozen=True)
class Chunk:
    """One task: episodes ``[ep_start, ep_stop)`` of substation ``sub_id`` (picklable)."""

    env_name: str
    backend: str
    sub_id: int
    ep_start: int
    ep_stop: int
    seed: int
    max_steps: int
    explore: float
    chronic_ids: tuple[str | None, ...]
    chronic_lengths: tuple[int, ...]

    @property
    def part_name(self) -> str:
        return f"sub{self.sub_id:03d}_ep{self.ep_start:07d}.npz"


def _quiet() -> None:
    warnings.filterwarnings("ignore")


def _cached_env(env_name: str, backend: str) -> tuple[Any, dict[Any, list[Any]]]:
    return cached_env(env_name, backend), _ACTION_CACHE.setdefault((env_name, backend), {})


def _sub_actions(env: Any, cache: dict[Any, list[Any]], sub_id: int) -> list[Any]:
    if sub_id not in cache:
        cache[sub_id] = list(
            env.action_space.get_all_unitary_topologies_set(env.action_space, sub_id=sub_id)
        )
    return cache[sub_id]


def _sub_targets(env: Any, cache: dict[Any, list[Any]], sub_id: int) -> list[Target | None]:
    """Per action of the substation its :class:`Target`, or None when grid2op built it empty
    (an action class without set_bus drops the buses)."""
    key = ("targets", sub_id)
    if key not in cache:
        if "line_at" not in cache:
            cache["line_at"] = line_lookup(type(env))
        cache[key] = [
            target_of(action, cache["line_at"]) if action.can_affect_something() else None
            for action in _sub_actions(env, cache, sub_id)
        ]
    return cache[key]


def _effect(
    info: dict[str, Any], done: bool, target: Target | None, before: np.ndarray | None, prev: Any
) -> int:
    """Status of a step that played a topology action (see :data:`EFFECTS`).

    ``before``: the substation's buses (``obs.topo_vect`` at the target's positions) and
    ``prev`` the observation, before the step. grid2op checks ambiguity first, then the
    rules, then runs the step; an exception in ``info["exception"]`` without those flags
    either replaced the action (failed redispatch, generator up/down times: the episode goes
    on) or ended the episode (a game over).
    """
    if target is None:
        return EMPTY
    if info["is_ambiguous"]:
        return AMBIGUOUS
    if info["is_illegal"]:
        lines = target.lines
        out = ~prev.line_status[lines] & (prev.time_before_cooldown_line[lines] > 0)
        return ILLEGAL_RECONNECTION if out.any() else ILLEGAL
    if info["exception"]:
        return GAME_OVER if done else REFUSED_OTHER
    return NO_CHANGE if before.tobytes() == target.key else CHANGED


def _chronics(env: Any) -> tuple[tuple[str | None, ...], tuple[int, ...]]:
    """Chronic ids (folder names, robust to grid2op's chronic order) and their lengths."""
    real = env.chronics_handler.real_data
    subpaths = getattr(real, "subpaths", None)
    ids: list[str | None] = (
        [os.path.basename(str(p)) for p in subpaths] if subpaths is not None else [None]
    )
    lengths = []
    for chronic_id in ids:
        env.reset(seed=0, options=None if chronic_id is None else {"time serie id": chronic_id})
        length = int(env.chronics_handler.max_timestep())
        if length <= 0:  # infinite/unknown-length chronics: fall back to the env's horizon
            length = int(env.max_episode_duration())
        lengths.append(max(length, 2))
    return tuple(ids), tuple(lengths)


def grid_info(env_name: str, min_elements: int = 4, backend: str = "lightsim") -> GridInfo:
    """Inspect the env: names, selected substations, action counts, chronic lengths."""
    _quiet()
    env, cache = _cached_env(env_name, backend)
    sub_info = tuple(int(n) for n in env.sub_info)
    selected = tuple(s for s, n in enumerate(sub_info) if n >= min_elements)
    if not selected:
        raise UserError(
            f"no substation of {env_name} has >= {min_elements} elements (max "
            f"{max(sub_info)}); lower --min-elements"
        )
    n_actions = {s: len(_sub_actions(env, cache, s)) for s in selected}
    chronic_ids, lengths = _chronics(env)
    return GridInfo(
        env_name=env_name,
        line_names=tuple(str(n) for n in env.name_line),
        sub_names=tuple(str(n) for n in env.name_sub),
        sub_info=sub_info,
        selected=selected,
        n_actions=n_actions,
        chronic_ids=chronic_ids,
        chronic_lengths=lengths,
    )


def episode_seed_sequence(seed: int, sub_id: int, episode: int) -> np.random.SeedSequence:
    """The episode's own random stream: depends only on (seed, substation, episode)."""
    return np.random.SeedSequence(seed, spawn_key=(sub_id, episode))


def run_chunk(chunk: Chunk) -> dict[str, np.ndarray]:
    """Play the chunk's episodes; return per-step arrays (T rows, T = total steps).

    Keys: ``s`` (T, n_line) rho before the step, ``s_next`` (T, n_line) rho after (all 0
    after a game over, as grid2op reports it), ``action`` (T,) index in the substation's
    action list (-1 = do nothing), ``episode``, ``step``, ``chronic``, ``init_ts`` (T,)
    ints, ``done`` (T,) bool, ``status`` (T,) int8 the action's effect (:data:`EFFECTS`,
    0 for do nothing), ``reasons`` () JSON ``{"<status>:<exception>": [count, example]}`` of
    the refused steps, ``cpu_seconds`` () the chunk's CPU time.
    """
    _quiet()
    cpu_start = time.process_time()
    env, cache = _cached_env(chunk.env_name, chunk.backend)
    actions = _sub_actions(env, cache, chunk.sub_id)
    targets = _sub_targets(env, cache, chunk.sub_id)
    do_nothing = env.action_space({})
    reasons: dict[str, list[Any]] = {}
    # Flattened (chronic, start step) pairs: every step but the last of a chronic can start.
    starts_per_chronic = np.array([length - 1 for length in chunk.chronic_lengths])
    offsets = np.concatenate([[0], np.cumsum(starts_per_chronic)])
    cols: dict[str, list[Any]] = {
        k: [] for k in ("s", "s_next", "action", "episode", "step", "chronic", "init_ts", "done")
    }
    status: list[int] = []
    for episode in range(chunk.ep_start, chunk.ep_stop):
        rng = np.random.default_rng(episode_seed_sequence(chunk.seed, chunk.sub_id, episode))
        env_seed = int(rng.integers(0, 2**31 - 1))
        flat = int(rng.integers(0, offsets[-1]))
        chronic = int(np.searchsorted(offsets, flat, side="right") - 1)
        init_ts = flat - int(offsets[chronic])
        options: dict[str, Any] = {}
        if chunk.chronic_ids[chronic] is not None:
            options["time serie id"] = chunk.chronic_ids[chronic]
        if init_ts > 0:  # grid2op refuses "init ts" 0 (it is the default start)
            options["init ts"] = init_ts
        obs = reset_env(env, seed=env_seed, options=options or None)
        for step in range(chunk.max_steps):
            act_now = rng.random() < chunk.explore
            index = int(rng.integers(len(actions))) if act_now else DO_NOTHING
            if act_now and obs.time_before_cooldown_sub[chunk.sub_id] > 0:
                # grid2op would refuse it (envs with a substation cooldown): wait instead,
                # so the data holds no do-nothing labelled as an action (draws unchanged)
                act_now, index = False, DO_NOTHING
            rho = obs.rho.astype(np.float32, copy=True)
            target = targets[index] if act_now else None
            action = actions[index] if act_now else do_nothing
            if target is not None:
                # the ends of out lines are left alone (see gridfactor.envs.topology)
                restricted = without_out_lines(env.action_space, cache, target, obs.line_status)
                if restricted is not None:
                    action, target = restricted
            prev = obs
            before = None if target is None else obs.topo_vect[target.positions]
            obs, _, done, info = env.step(action)
            effect = _effect(info, done, target, before, prev) if act_now else NOT_ACTED
            status.append(effect)
            if effect in REFUSED and effect != EMPTY:
                _count_reason(reasons, effect, info["exception"])
            cols["s"].append(rho)
            cols["s_next"].append(obs.rho.astype(np.float32, copy=True))
            cols["action"].append(index)
            cols["episode"].append(episode)
            cols["step"].append(step)
            cols["chronic"].append(chronic)
            cols["init_ts"].append(init_ts)
            cols["done"].append(bool(done))
            if done:
                break
    n_line = int(env.n_line)
    return {
        "s": np.asarray(cols["s"], dtype=np.float32).reshape(-1, n_line),
        "s_next": np.asarray(cols["s_next"], dtype=np.float32).reshape(-1, n_line),
        "action": np.asarray(cols["action"], dtype=np.int32),
        "episode": np.asarray(cols["episode"], dtype=np.int64),
        "step": np.asarray(cols["step"], dtype=np.int32),
        "chronic": np.asarray(cols["chronic"], dtype=np.int32),
        "init_ts": np.asarray(cols["init_ts"], dtype=np.int32),
        "done": np.asarray(cols["done"], dtype=bool),
        "status": np.asarray(status, dtype=np.int8),
        "reasons": np.asarray(json.dumps(reasons, sort_keys=True)),
        # CPU time of this chunk (incl. a first env creation): a load-independent cost
        "cpu_seconds": np.asarray(time.process_time() - cpu_start),
        "collector_version": np.asarray(COLLECTOR_VERSION),
    }


def _count_reason(reasons: dict[str, list[Any]], effect: int, exceptions: list[Any]) -> None:
    """Count a refusal under "<status>:<first exception's class>", keep its first message."""
    first = exceptions[0] if exceptions else None
    key = f"{EFFECTS[effect]}:{type(first).__name__ if first is not None else 'none'}"
    if key in reasons:
        reasons[key][0] += 1
        return
    # 'Grid2OpException IllegalAction "Substation with ids [4] ..."' -> the quoted part
    text = " ".join(str(first or "").split())
    match = re.fullmatch(r'Grid2OpException \w+ "(.*)"', text)
    reasons[key] = [1, (match.group(1) if match else text)[:200]]


def game_over_rows(next_rho: np.ndarray) -> np.ndarray:
    """(N,) bool: game-over transitions, whose next rho (N, n_line) grid2op reports as 0."""
    return (next_rho == 0.0).all(axis=1)


def usable_rows(part: dict[str, np.ndarray] | None) -> int | None:
    """Transitions without game over in a part (None: the part is not there)."""
    return None if part is None else int((~game_over_rows(part["s_next"])).sum())


def kept_chunks(chunks: list[Chunk], usable: list[int | None], rows: int | None) -> list[bool]:
    """Which chunks the dataset holds: per substation, the shortest prefix of its chunks (in
    episode order) with ``rows`` usable rows, or all of them (``rows`` None or never
    reached). ``usable[i]``: chunk i's usable rows, None while it is not done; a chunk after
    a missing one is kept (undecided), so False means it can never be needed."""
    kept = [True] * len(chunks)
    if rows is None:
        return kept
    so_far: dict[int, int | None] = {}  # substation -> usable rows of its prefix, None: gap
    for index, (chunk, count) in enumerate(zip(chunks, usable, strict=True)):
        total = so_far.get(chunk.sub_id, 0)
        if total is not None and total >= rows:
            kept[index] = False
        elif total is None or count is None:
            so_far[chunk.sub_id] = None
        else:
            so_far[chunk.sub_id] = total + count
    return kept


def make_chunks(config: CollectConfig, info: GridInfo) -> list[Chunk]:
    """All tasks of the collection, in canonical order (substation, first episode)."""
    return [
        Chunk(
            env_name=config.env_name,
            backend=config.backend,
            sub_id=sub_id,
            ep_start=start,
            ep_stop=min(start + config.chunk_size, config.n_episodes),
            seed=config.seed,
            max_steps=config.max_steps,
            explore=config.explore,
            chronic_ids=info.chronic_ids,
            chronic_lengths=info.chronic_lengths,
        )
        for sub_id in info.selected
        for start in range(0, config.n_episodes, config.chunk_size)
    ]


def _save_part(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with atomic_write(path, "wb") as fh:
        fh.write(buffer.getvalue())


def _load_part(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path) as data:
            part = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError):
        return None  # unreadable part (should not happen with atomic writes): redo it
    # A part of another collector version (or older, without the version): redo it.
    return part if from_collector(part, COLLECTOR_VERSION) else None


def from_collector(saved: dict[str, np.ndarray], version: int) -> bool:
    """Whether arrays saved beside a collection (its part files, the MI parts computed from
    its dataset) record collector ``version``; older saves have no version."""
    return "collector_version" in saved and int(saved["collector_version"]) == version


def _assemble(
    chunks: list[Chunk], parts: list[dict[str, np.ndarray]], info: GridInfo, config: CollectConfig
) -> Any:
    """The dataset as a DataFrame, in canonical (substation, episode, step) order."""
    import pandas as pd

    frames = []
    for chunk, arrays in zip(chunks, parts, strict=True):
        n = len(arrays["action"])
        a = np.zeros((n, info.n_sub), dtype=np.float32)
        index = arrays["action"]
        # The seed's encoding: index / number of distinct actions; -1 for do nothing.
        a[:, chunk.sub_id] = np.where(
            index == DO_NOTHING, -1.0, index / info.n_actions[chunk.sub_id]
        ).astype(np.float32)
        data: dict[str, Any] = {
            "substation": np.full(n, chunk.sub_id, dtype=np.int32),
            "episode": arrays["episode"],
            "step": arrays["step"],
            "chronic": arrays["chronic"],
            "init_ts": arrays["init_ts"],
            "action": arrays["action"],
            "done": arrays["done"],
        }
        data.update({f"s_{n_}": arrays["s"][:, j] for j, n_ in enumerate(info.line_names)})
        data.update({f"a_{n_}": a[:, j] for j, n_ in enumerate(info.sub_names)})
        data.update(
            {f"s_next_{n_}": arrays["s_next"][:, j] for j, n_ in enumerate(info.line_names)}
        )
        frames.append(pd.DataFrame(data))
    frame = pd.concat(frames, ignore_index=True)
    # episode id unique over the whole dataset: rank of the substation * n_episodes + episode
    rank = {s: r for r, s in enumerate(info.selected)}
    frame.insert(
        0,
        "episode_id",
        frame["substation"].map(rank).to_numpy(np.int64) * config.n_episodes
        + frame["episode"].to_numpy(np.int64),
    )
    return frame


def _versions() -> dict[str, str]:
    import grid2op

    versions = {"grid2op": grid2op.__version__}
    try:
        import lightsim2grid

        versions["lightsim2grid"] = lightsim2grid.__version__
    except ImportError:  # pragma: no cover - lightsim2grid is a dependency
        versions["lightsim2grid"] = "not installed"
    return versions


def collect(
    config: CollectConfig,
    out_dir: str | os.PathLike,
    *,
    parallel: ParallelConfig | None = None,
    progress: bool = True,
    on_chunk: Any = None,
) -> Path:
    """Collect the dataset into ``out_dir`` (a run directory); return the Parquet path.

    Reuses finished part files in ``out_dir/parts`` and an existing complete dataset.
    ``on_chunk(index, n_chunks)`` is called after each chunk is saved (progress hooks).
    """
    config.validate()
    parallel = parallel or ParallelConfig()
    out_dir = Path(out_dir)
    dataset_path = out_dir / DATASET_FILE
    sidecar_path = out_dir / SIDECAR_FILE
    if dataset_path.is_file() and sidecar_path.is_file():
        sidecar = json.loads(sidecar_path.read_text())
        if (
            sidecar.get("settings") == asdict(config)
            and sidecar.get("collector_version") == COLLECTOR_VERSION
        ):
            return dataset_path

    info = grid_info(config.env_name, config.min_elements, config.backend)
    chunks = make_chunks(config, info)
    parts_dir = out_dir / PARTS_DIR
    parts: list[dict[str, np.ndarray] | None] = [
        _load_part(parts_dir / c.part_name) if (parts_dir / c.part_name).is_file() else None
        for c in chunks
    ]
    todo = [i for i, p in enumerate(parts) if p is None]

    usable = [usable_rows(p) for p in parts]

    def on_result(position: int, arrays: dict[str, np.ndarray]) -> None:
        index = todo[position]
        _save_part(parts_dir / chunks[index].part_name, arrays)
        parts[index], usable[index] = arrays, usable_rows(arrays)
        if on_chunk is not None:
            on_chunk(index, len(chunks))

    def not_needed(position: int) -> bool:  # the substation already has its rows
        return not kept_chunks(chunks, usable, config.rows_per_substation)[todo[position]]

    if todo and progress and len(todo) < len(chunks):
        print(f"collect: {len(chunks) - len(todo)} of {len(chunks)} chunks done before", flush=True)
    if todo:
        parallel_map(
            run_chunk,
            [chunks[i] for i in todo],
            parallel,
            desc="collect",
            unit="chunk",
            progress=progress,
            on_result=on_result,
            skip=not_needed if config.rows_per_substation is not None else None,
        )

    # chunks run in parallel with the last needed one may have finished: left out too
    kept = kept_chunks(chunks, usable, config.rows_per_substation)
    if progress and not all(kept):
        print(
            f"collect: {len(kept) - sum(kept)} of {len(kept)} chunks not needed (their "
            f"substation had {config.rows_per_substation} usable rows before)",
            flush=True,
        )
    chunks = [c for c, keep in zip(chunks, kept, strict=True) if keep]
    parts = [p for p, keep in zip(parts, kept, strict=True) if keep]
    frame = _assemble(chunks, parts, info, config)  # type: ignore[arg-type]
    write_parquet(dataset_path, frame)
    lengths = frame.groupby(["substation", "episode"]).size()
    write_json(
        sidecar_path,
        {
            "env_name": config.env_name,
            "versions": _versions(),
            "seed": config.seed,
            "settings": asdict(config),
            "collector_version": COLLECTOR_VERSION,
            "n_rows": len(frame),
            "n_episodes_total": int(len(lengths)),
            "episodes_per_substation": {
                str(s): int(n) for s, n in lengths.groupby("substation").size().items()
            },
            "mean_episode_length": float(lengths.mean()),
            "done_fraction": float(frame.loc[frame["done"], :].shape[0] / max(1, len(lengths))),
            "worker_cpu_seconds": float(sum(float(p["cpu_seconds"]) for p in parts)),
            "line_names": list(info.line_names),
            "sub_names": list(info.sub_names),
            "sub_info": list(info.sub_info),
            "selected_substations": list(info.selected),
            "n_actions": {str(k): v for k, v in info.n_actions.items()},
            "chronic_ids": list(info.chronic_ids),
            "chronic_lengths": list(info.chronic_lengths),
            "action_effects": action_effects(chunks, parts, info),  # type: ignore[arg-type]
            "action_encoding": (
                "a_<sub> = action index / number of distinct unitary topology actions of the "
                "substation, for the substation acted on in the episode; -1 = do nothing "
                "(explore < 1); 0 for the other substations. Use a substation's column only "
                "on rows with substation == its id."
            ),
        },
    )
    return dataset_path


def action_effects(
    chunks: list[Chunk], parts: list[dict[str, np.ndarray]], info: GridInfo
) -> dict[str, Any]:
    """The counters of ``dataset.json["action_effects"]``, summed from the part files."""
    size = max(EFFECTS) + 1
    counts = {s: np.zeros(size, dtype=np.int64) for s in info.selected}
    reasons: dict[int, dict[str, list[Any]]] = {s: {} for s in info.selected}
    for chunk, part in zip(chunks, parts, strict=True):
        counts[chunk.sub_id] += np.bincount(part["status"], minlength=size)
        for key, (n, example) in json.loads(str(part["reasons"])).items():
            reasons[chunk.sub_id].setdefault(key, [0, example])[0] += n

    def summary(count: np.ndarray) -> dict[str, Any]:
        row: dict[str, Any] = {"actions": int(count[1:].sum())}
        row.update({name: int(count[code]) for code, name in EFFECTS.items()})
        row["refused"] = int(sum(count[code] for code in REFUSED))
        row["refused_fraction"] = row["refused"] / max(1, row["actions"])
        row["refused_fraction_without_reconnections"] = (
            row["refused"] - row["illegal_reconnection"]
        ) / max(1, row["actions"])
        return row

    per_sub = {}
    for sub_id in info.selected:
        row = {"sub_id": sub_id, **summary(counts[sub_id])}
        row["reasons"] = {
            key: {"count": n, "example": example}
            for key, (n, example) in sorted(reasons[sub_id].items())
        }
        per_sub[info.sub_names[sub_id]] = row
    return {
        "meaning": EFFECTS_MEANING,
        "total": summary(sum(counts.values(), np.zeros(size, dtype=np.int64))),
        "per_substation": per_sub,
    }


_REFUSAL_WORDS = {
    "illegal": "illegal",
    "illegal_reconnection": "would reconnect a line in its cooldown",
    "ambiguous": "ambiguous",
    "refused_other": "refused with an exception",
    "empty": "empty (the action class has no set_bus)",
}


def _refusals(row: dict[str, Any], kinds: tuple[str, ...] = tuple(_REFUSAL_WORDS)) -> str:
    """'19 illegal (IllegalAction: <grid2op's message>), 2 would reconnect ...': the
    commonest refusal among ``kinds`` gets grid2op's exception and an example message."""
    examples = [
        (v["count"], key, v["example"])
        for key, v in row["reasons"].items()
        if key.split(":", 1)[0] in kinds
    ]
    top = max(examples) if examples else None
    parts = []
    for kind in kinds:
        if row[kind]:
            part = f"{row[kind]} {_REFUSAL_WORDS[kind]}"
            if top is not None and top[1].split(":", 1)[0] == kind:
                part += f" ({top[1].split(':', 1)[1]}: {top[2]})"
            parts.append(part)
    return ", ".join(parts)


def describe_action_effects(sidecar: dict[str, Any]) -> list[str]:
    """Console lines: one line when grid2op refused no action, else one per substation with
    refusals."""
    effects = sidecar.get("action_effects")
    if effects is None:
        return ["action legality: not recorded (dataset from an older gridfactor)"]
    total = effects["total"]
    if total["refused"] == 0:
        return [
            f"action legality: all {total['actions']} topology actions legal "
            f"({total['changed']} changed the topology, {total['no_change']} re-set the "
            f"configuration in place, {total['game_over']} ended in a game over)"
        ]
    lines = [
        f"action legality: grid2op refused {total['refused']} of {total['actions']} topology "
        f"actions ({total['refused_fraction']:.1%}) and played do-nothing instead:"
    ]
    for name, row in effects["per_substation"].items():
        if row["refused"]:
            lines.append(
                f"  {name}: {row['refused']} of {row['actions']} ({row['refused_fraction']:.1%})"
                f": {_refusals(row)}"
            )
    return lines


def check_action_effects(sidecar: dict[str, Any], max_no_effect: float = 0.05) -> None:
    """Refuse (UserError) a dataset where grid2op refused more than ``max_no_effect`` of a
    substation's topology actions: those rows are do-nothing steps labelled as actions, so
    the substation's MI column would measure nothing.

    Not counted: ``no_change`` actions (legal; the configuration was already in place: part
    of a uniform random policy) and ``illegal_reconnection`` ones (the action would have
    reconnected a line still in its cooldown; the collector's actions leave out lines alone,
    so it does not expect any: it dilutes the substation's MI, it does not void it). The
    console lists both.
    """
    effects = sidecar.get("action_effects")
    if effects is None:  # not recorded: collect() re-assembles such a dataset with them
        return
    key = "refused_fraction_without_reconnections"
    bad = {n: r for n, r in effects["per_substation"].items() if r[key] > max_no_effect}
    if not bad:
        return
    name = max(bad, key=lambda n: bad[n][key])
    row = bad[name]
    counted = row["refused"] - row["illegal_reconnection"]
    others = f"; {len(bad) - 1} more substations too" if len(bad) > 1 else ""
    kinds = ("illegal", "ambiguous", "refused_other", "empty")
    if max(kinds, key=lambda k: row[k]) == "empty":
        fix = "use an env whose action class supports set_bus"
    else:
        fix = (
            "relax the env's rule in a copy of its directory (e.g. MAX_SUB_CHANGED, in "
            "difficulty_levels.json (every level) or else parameters.json; substation "
            "cooldowns need nothing: the collector waits them out) and pass the copy as --env, "
            "or use an env without the rule, e.g. l2rpn_case14_sandbox"
        )
    raise UserError(
        f"grid2op refused {counted} of the {row['actions']} random topology actions on "
        f"{name} ({row[key]:.0%} > {max_no_effect:.0%}{others}) and played do-nothing "
        f"instead: {_refusals(row, kinds)}; a factorization would measure nothing there. "
        f"{fix[0].upper()}{fix[1:]}; counts per substation: dataset.json, action_effects"
    )


def load_dataset(out_dir: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """Read ``dataset.parquet`` and its JSON sidecar from a run directory."""
    out_dir = Path(out_dir)
    path, sidecar = out_dir / DATASET_FILE, out_dir / SIDECAR_FILE
    if not path.is_file() or not sidecar.is_file():
        raise UserError(f"no dataset in {out_dir}; run `gridfactor collect` first")
    return read_parquet(path), json.loads(sidecar.read_text())
