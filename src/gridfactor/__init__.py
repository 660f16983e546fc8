"""gridfactor: factorize power-grid MDPs from data, then learn one RL agent per sub-problem."""

__version__ = "0.1.0"
