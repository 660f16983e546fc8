"""Creating Grid2Op environments offline, with LightSimBackend, with clear errors."""

from __future__ import annotations

import os
import warnings
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


def reset_env(env: Any, *, seed: int, options: dict[str, Any] | None) -> Any:
    """``env.reset(seed=, options=)`` whose start depends only on (seed, options).

    grid2op (1.12) resets the opponent only after the do-nothing step that a reset with
    ``"init ts"`` plays, so an attack still running at the end of one episode acted at the
    start of the next one. Seen on l2rpn_wcci_2022 (118 buses): the same (seed, start) gave
    another grid state, datasets depended on which worker ran which chunk, and some resets
    ended in a game over ("environment is not initialized"), which killed training.
    Seeding the env and resetting the opponent first fixes it (a no-op for envs without an
    opponent; grid2op has no public call for it).
    """
    env.seed(seed)
    env._oppSpace.reset()
    return env.reset(seed=seed, options=options)
