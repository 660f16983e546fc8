"""gridfactor: factorize power-grid MDPs from data, then learn one RL agent per sub-problem."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_agent"]


def __getattr__(name: str) -> Any:
    # Lazy: `import gridfactor` (and so every CLI start) must not pay for importing grid2op.
    if name == "load_agent":
        from gridfactor.evaluate.grid2op_agent import load_agent

        return load_agent
    raise AttributeError(f"module 'gridfactor' has no attribute {name!r}")
