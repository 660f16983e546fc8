"""Creating Grid2Op environments offline, with LightSimBackend, with clear errors."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from gridfactor.errors import UserError


def grid2op_data_dir() -> Path:
    import grid2op

    return Path(grid2op.__file__).parent / "data"


def available_test_envs() -> list[str]:
    """Names of the Grid2Op test environments shipped inside the grid2op package."""
    data = grid2op_data_dir()
    return sorted(p.name for p in data.iterdir() if (p / "chronics").is_dir())


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
        available = available_test_envs()
        if name not in available:
            raise UserError(
                f"unknown or not-on-disk environment {name!r}; available offline test envs: "
                f"{', '.join(available)} (or pass the path of an env directory downloaded "
                "beforehand with grid2op.make)"
            )
        return grid2op.make(name, test=True, backend=backend_obj, **kwargs)
