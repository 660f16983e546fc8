"""Topology actions as grid2op can play them: leave the ends of out lines alone.

A unitary topology action sets every element of its substation, so on the end of a line
that is out (tripped by an overflow, in maintenance) it asks grid2op to reconnect the line,
which grid2op refuses while the line cools down, or when two lines would change status
(``MAX_LINE_STATUS_CHANGED``): the step becomes a do nothing (and ``obs.simulate`` reports
the action as illegal). On l2rpn_neurips_2020_track1 this refused 27% of the random
actions (up to 73% on one substation), and 3 of the 26% of the zone expert's candidates that
simulated as infeasible. Played without those ends, the rest of the configuration is
applied and the out lines stay out, as an operator would do it; reconnecting them is the
high-level rules' job.

The collector (random actions) and every agent (the decision env, the experts, the trained
policies) play their topology actions through this one function.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class Target(NamedTuple):
    """What a topology action sets: ``buses`` at ``positions`` of ``topo_vect`` (``key``:
    their bytes, a ~1 us comparison where numpy's takes ~5); ``lines``: the lines with an end
    among them; ``end_of``: per position, the line it is an end of (-1: a load, generator or
    storage unit)."""

    positions: np.ndarray
    buses: np.ndarray
    key: bytes
    lines: np.ndarray
    end_of: np.ndarray


def line_lookup(grid_class: Any) -> np.ndarray:
    """(dim_topo,) per ``topo_vect`` position the line it is an end of, -1 if none.

    ``grid_class``: any grid2op class of the grid (``type(env)``, ``type(env.action_space)``).
    """
    ends = np.concatenate([grid_class.line_or_pos_topo_vect, grid_class.line_ex_pos_topo_vect])
    line_ids = np.concatenate([np.arange(grid_class.n_line)] * 2)
    line_at = np.full(grid_class.dim_topo, -1)
    line_at[ends] = line_ids
    return line_at


def target_of(action: Any, line_at: np.ndarray) -> Target | None:
    """The :class:`Target` of ``action``'s ``set_bus`` part; None when it sets no bus."""
    from grid2op.dtypes import dt_int  # the dtype of obs.topo_vect

    buses = action.set_bus
    positions = np.flatnonzero(buses)
    if positions.size == 0:
        return None
    end_of = line_at[positions]
    buses = buses[positions].astype(dt_int)
    return Target(positions, buses, buses.tobytes(), np.unique(end_of[end_of >= 0]), end_of)


def without_out_lines(
    action_space: Any, cache: dict[Any, Any], target: Target, line_status: np.ndarray
) -> tuple[Any, Target] | None:
    """(the action without the ends of the lines that are out, its target); None when no
    line of the target is out (play the action as it is).

    Cached in ``cache`` per (target, set of out lines): keyed by the target's own positions
    and buses, so one cache can serve every substation of the grid.
    """
    out = (target.end_of >= 0) & ~line_status[np.maximum(target.end_of, 0)]
    if not out.any():
        return None
    key = ("without", target.positions.tobytes(), target.key, out.tobytes())
    if key not in cache:
        kept = ~out
        positions, buses = target.positions[kept], target.buses[kept]
        set_bus = np.zeros(type(action_space).dim_topo, dtype=int)
        set_bus[positions] = buses
        cache[key] = (
            action_space({"set_bus": set_bus}),
            Target(positions, buses, buses.tobytes(), target.lines, target.end_of[kept]),
        )
    return cache[key]


class PlayableActions:
    """Topology actions of one action space as they can be played in a given state.

    ``playable(action, obs)``: ``action`` itself when none of the lines it sets an end of is
    out, else the action without those ends (:func:`without_out_lines`). Apply it to
    topology actions only: a reconnection sets an out line's status on purpose. Targets are
    cached by action identity (the agents' action lists live as long as this object).
    """

    def __init__(self, action_space: Any) -> None:
        self.action_space = action_space
        self.line_at = line_lookup(type(action_space))
        self._targets: dict[int, tuple[Any, Target | None]] = {}
        self._cache: dict[Any, Any] = {}

    def __call__(self, action: Any, obs: Any) -> Any:
        line_status = np.asarray(obs.line_status)
        if line_status.all():
            return action
        hit = self._targets.get(id(action))
        if hit is None or hit[0] is not action:
            hit = (action, target_of(action, self.line_at))
            self._targets[id(action)] = hit
        if hit[1] is None:
            return action
        restricted = without_out_lines(self.action_space, self._cache, hit[1], line_status)
        return action if restricted is None else restricted[0]
