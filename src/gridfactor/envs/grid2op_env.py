"""Creating Grid2Op environments offline, with LightSimBackend, with clear errors."""

from __future__ import annotations

import functools
import importlib.util
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gridfactor.errors import UserError


def available_test_envs() -> list[str]:
    """Names ``grid2op.make(name, test=True)`` opens from the data shipped inside grid2op.

    Includes grid2op's own aliases, e.g. ``l2rpn_wcci_2022`` (its test data is
    ``l2rpn_wcci_2022_dev``).
    """
    import grid2op
    from grid2op.MakeEnv.Make import TEST_DEV_ENVS

    return [
        name
        for name in grid2op.list_available_test_env()
        if (Path(TEST_DEV_ENVS[name]) / "chronics").is_dir()
    ]


def check_env_name(name: str) -> None:
    """Raise the one-line UserError for an env that is neither a test env nor a directory.

    Cheap (no env is created): commands call it before they create a run directory.
    """
    if os.path.isdir(name) or name in available_test_envs():
        return
    raise UserError(
        f"unknown or not-on-disk environment {name!r}; available offline test envs: "
        f"{', '.join(available_test_envs())}; for another env, download it once where there "
        f"is internet (python -c \"import grid2op; grid2op.make('{name}')\") and pass its "
        "directory (under grid2op.get_current_local_dir()) as --env"
    )


# grid2op's names of the action types gridfactor plays: "set_bus" for every topology action
# (random collection, agents), "set_line_status" for the agents' line reconnections.
TOPOLOGY: tuple[str, ...] = ("set_bus",)
AGENT_ACTION_TYPES: dict[str, tuple[str, ...]] = {
    "do-nothing": (),
    "reconnect": ("set_line_status",),
    "expert": ("set_bus", "set_line_status"),
    "expert-zone": ("set_bus", "set_line_status"),
    "expert-recovery": ("set_bus", "set_line_status"),
    "expert-zone-recovery": ("set_bus", "set_line_status"),
    "random": ("set_bus", "set_line_status"),
    "expertop": ("set_bus", "set_line_status"),  # l2rpn-baselines' ExpertAgent
    "trained": ("set_bus", "set_line_status"),  # cluster agents + the reconnection rule
}
_SHOWN_TYPES = (
    "set_bus",
    "change_bus",
    "set_line_status",
    "change_line_status",
    "redispatch",
    "set_storage",
    "curtail",
)
_TYPE_MEANING = {"set_bus": "topology", "set_line_status": "line reconnection"}


@functools.cache
def action_support(name: str) -> tuple[str, frozenset[str]]:
    """(action class name, action types it accepts) of an env, as ``grid2op.make`` builds it.

    ``env.action_space.supports_type(t)`` is ``t in action_class.authorized_keys`` for the
    topology and line types, and grid2op takes the class from the "action_class" of the env's
    config.py (``BaseAction`` if unset). Reading config.py the same way costs ~1 ms where
    creating the env costs 1-4 s (all 16 test envs: ~15 ms vs ~40 s), so commands can check
    before anything starts. Envs without a readable config.py (multi-mix datasets) are
    created once instead. Cached per name for the process.
    """
    from grid2op.Action import BaseAction

    config = env_data_dir(name) / "config.py"
    action_class = None
    if config.is_file():
        try:
            spec = importlib.util.spec_from_file_location("gridfactor_env_config", config)
            module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                spec.loader.exec_module(module)  # type: ignore[union-attr]
            action_class = module.config.get("action_class") or BaseAction
        except Exception:  # noqa: BLE001 - fall back to asking a real env
            action_class = None
    if action_class is None:
        env = make_env(name)
        action_class = env.action_space.actionClass
        env.close()
    keys = frozenset(action_class.authorized_keys)
    return action_class.__name__, keys


def envs_supporting(needs: Iterable[str]) -> list[str]:
    """The offline test envs whose action class accepts every action type of ``needs``."""
    needs = set(needs)
    return [n for n in available_test_envs() if needs <= action_support(n)[1]]


def check_action_support(name: str, needs: Iterable[str], command: str) -> None:
    """Raise the one-line UserError when env ``name`` cannot play the action types ``needs``.

    Without it, grid2op builds such actions empty (it drops the unsupported keys with a
    warning) and every "action" is a do-nothing: e.g. educ_case14_redisp has no ``set_bus``,
    so a topology factorization there measures noise. Cheap (see :func:`action_support`):
    commands call it before they create a run directory or start Ray. Also checks the name.
    """
    check_env_name(name)
    needs = tuple(dict.fromkeys(needs))
    class_name, types = action_support(name)
    missing = [t for t in needs if t not in types]
    if not missing:
        return
    shown = [t for t in _SHOWN_TYPES if t in types]
    wanted = ", ".join(f"{t} ({_TYPE_MEANING.get(t, t)})" for t in missing)
    raise UserError(
        f"{command} needs {wanted} actions, which env {name} does not support: its action "
        f"class {class_name} supports only {', '.join(shown) or 'no action type'} (grid2op "
        f"would turn every such action into do-nothing); use an env that supports "
        f"{' and '.join(needs)}, e.g. the test envs {', '.join(envs_supporting(needs))}"
    )


def check_agents_support(
    name: str, agents: Iterable[str], command: str, *, trained: bool = False
) -> None:
    """:func:`check_action_support` for what ``agents`` play (names of
    :data:`AGENT_ACTION_TYPES`; ``trained``: trained runs too); the error names the agents
    that cannot act."""
    agents = list(dict.fromkeys([*agents, *(["trained"] if trained else [])]))
    needs = [t for agent in agents for t in AGENT_ACTION_TYPES[agent]]
    check_env_name(name)
    missing = set(needs) - action_support(name)[1]
    users = [a for a in agents if missing & set(AGENT_ACTION_TYPES[a])]
    label = f"{command} (agents {', '.join(users)})" if users else command
    check_action_support(name, needs, label)


def env_data_dir(name: str) -> Path:
    """The directory holding an env's data: aliases of one test env give the same one."""
    if os.path.isdir(name):
        return Path(name).resolve()
    from grid2op.MakeEnv.Make import TEST_DEV_ENVS

    return Path(TEST_DEV_ENVS.get(name, name)).resolve()


def make_env(name: str, *, backend: str = "lightsim", **kwargs: Any) -> Any:
    """``grid2op.make(name, test=True)`` with LightSimBackend: nothing is downloaded.

    A path to an environment directory on disk (e.g. a full dataset downloaded with
    ``grid2op.make`` beforehand) is accepted too.
    """
    import grid2op

    if backend == "lightsim":
        from lightsim2grid import LightSimBackend

        backend_obj = LightSimBackend()
    elif backend == "pandapower":
        from grid2op.Backend import PandaPowerBackend

        backend_obj = PandaPowerBackend()
    else:
        raise UserError(f"unknown backend {backend!r}; use 'lightsim' or 'pandapower'")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if os.path.isdir(name):
            return grid2op.make(name, backend=backend_obj, **kwargs)
        check_env_name(name)
        return grid2op.make(name, test=True, backend=backend_obj, **kwargs)


def reward_class(name: str) -> type:
    import grid2op.Reward as rewards

    cls = getattr(rewards, name, None)
    if not isinstance(cls, type):
        choices = sorted(n for n in dir(rewards) if n.endswith("Reward") and n != "BaseReward")
        raise UserError(f"unknown grid2op reward {name!r}; choose one of {', '.join(choices)}")
    return cls


def make_grid2op_env(
    env_name: str, reward: str | None = "CloseToOverflowReward", *, cache: bool = True
) -> Any:
    """The grid2op env (LightSimBackend) with the given reward class (None: the env's own).

    With ``cache`` the chronics are kept in memory (:class:`PerturbedChronics`): a reset
    then no longer re-reads the compressed CSV files, which otherwise dominates short
    episodes, jumps to its start time step at once, and can play a perturbed copy.
    """
    rewards = {} if reward is None else {"reward_class": reward_class(reward)}
    if not cache:
        return make_env(env_name, **rewards)
    from gridfactor.envs.chronics import PerturbedChronics

    env = make_env(env_name, chronics_class=PerturbedChronics, **rewards)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the default filter caches only the first chronic: cache them all
        env.chronics_handler.real_data.set_filter(lambda path: True)
        env.chronics_handler.reset()
    return env


# Per worker process: (env name, backend) -> env. Making a Grid2Op env costs ~1-3 s, far
# more than an episode (~40 ms), so a worker builds it once and reuses it.
ENV_CACHE: dict[tuple[str, str], Any] = {}


def cached_env(env_name: str, backend: str = "lightsim") -> Any:
    """This process's env of (``env_name``, ``backend``), chronics in memory: built once."""
    key = (env_name, backend)
    if key not in ENV_CACHE:
        ENV_CACHE[key] = make_cached_chronics_env(env_name, backend)
    return ENV_CACHE[key]


def make_cached_chronics_env(env_name: str, backend: str) -> Any:
    """The env with its chronics held in memory (:class:`FastForwardChronics`) when possible.

    A reset otherwise re-reads the chronic's CSV files (~50 ms, more than most episodes) and
    then reads it row by row up to the start (~14 ms on case14); the observations are
    identical (checked by the tests). Envs whose chronics are not plain folders fall back to
    the default class.
    """
    from grid2op.Chronics import Multifolder

    from gridfactor.envs.chronics import FastForwardChronics

    env = make_env(env_name, backend=backend)
    if type(env.chronics_handler.real_data) is not Multifolder or os.path.isdir(env_name):
        return env  # other chronics classes / full datasets on disk (could be huge): as is
    try:
        cached = make_env(env_name, backend=backend, chronics_class=FastForwardChronics)
        cached.chronics_handler.real_data.set_filter(lambda _: True)
        cached.chronics_handler.real_data.reset()
    except Exception:  # noqa: BLE001 - any failure: the plain env works, only slower
        return env
    env.close()
    return cached


def reset_env(env: Any, *, seed: int, options: dict[str, Any] | None) -> Any:
    """``env.reset(seed=, options=)`` whose start depends only on (seed, options).

    grid2op (1.12) resets the opponent only after the do-nothing step that a reset with
    ``"init ts"`` plays, so an attack still running at the end of one episode acted at the
    start of the next one. Seen on l2rpn_wcci_2022 (118 buses): the same (seed, start) gave
    another grid state, datasets depended on which worker ran which chunk, and some resets
    ended in a game over ("environment is not initialized"), which killed training.
    Seeding the env and resetting the opponent first fixes it (a no-op for envs without an
    opponent; grid2op has no public call for it).

    A start where the grid is already lost (grid2op's reset ends in a game over, e.g. step
    428 of l2rpn_idf_2023's second test chronic with seed 428: an opponent attack at the
    first step) moves one step forward with the next seed, up to :data:`MAX_START_SHIFT`
    times, so every (seed, start) maps to the same playable episode.
    """
    from grid2op.Exceptions import Grid2OpException

    shifted = dict(options or {})
    for shift in range(MAX_START_SHIFT + 1):
        env.seed(seed + shift)
        env._oppSpace.reset()
        try:
            return env.reset(seed=seed + shift, options=shifted or None)
        except Grid2OpException:
            shifted["init ts"] = int(shifted.get("init ts", 0)) + 1
    raise UserError(
        f"every start from {options} to {MAX_START_SHIFT} steps later ends in a game over on "
        f"{env.env_name}; pick other chronics or starts"
    )


# A day of 5-minute steps: how far a lost start may move forward (see reset_env).
MAX_START_SHIFT = 288
