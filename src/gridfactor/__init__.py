"""gridfactor: factorize power-grid MDPs from data, then learn one RL agent per sub-problem."""

from __future__ import annotations

from typing import Any

from gridfactor.version import __version__ as __version__

__all__ = ["load_agent"]


def __getattr__(name: str) -> Any:
    # Lazy: `import gridfactor` (and so every CLI start) must not pay for importing grid2op.
    if name == "load_agent":
        from gridfactor.agents.grid2op_agent import load_agent

        return load_agent
    raise AttributeError(f"module 'gridfactor' has no attribute {name!r}")
