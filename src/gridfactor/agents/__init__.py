"""Agents: the high-level rule agent and the per-cluster action/observation definitions."""
