"""The high-level rule agent: do nothing when safe, reconnect lines, CAPA hand-off.

The rules follow SMAAC (Yoon et al., 2021): while every line has ``rho < danger`` nothing is
done (except reconnecting lines by rule); when a line is loaded above ``danger`` the candidate
substations are ordered by the loading of the lines around them (CAPA: max rho, then mean
rho) and the decision goes to the agent owning the first one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gridfactor.errors import UserError

# Default danger threshold: agents decide when some line's rho >= DANGER (one value for
# the agents, their configs and the CLI).
DANGER = 0.9
# What the high-level agent does with a disconnected line when safe: reconnect it as soon as
# grid2op allows ("always"), only when the simulated step after it stays below the danger
# threshold ("checked"), or leave it out ("never").
RECONNECT_MODES = ("always", "checked", "never")


def check_reconnect(mode: str) -> str:
    """``mode`` if it is one of :data:`RECONNECT_MODES`, else a one-line UserError."""
    if mode not in RECONNECT_MODES:
        raise UserError(f"--reconnect must be one of {', '.join(RECONNECT_MODES)}, got {mode!r}")
    return mode


def check_danger(danger: float) -> float:
    """``danger`` if it is a usable trigger (> 0), else a one-line UserError."""
    if not danger > 0.0:
        raise UserError(f"--danger must be > 0 (got {danger})")
    return danger


class HighLevelRules:
    """Stateless rules over a raw grid2op observation.

    Args:
        danger: a line is dangerous when its ``rho`` (flow / thermal limit) is ``>= danger``.
    """

    def __init__(self, danger: float = DANGER) -> None:
        self.danger = float(danger)
        self._incidence_cache: dict[tuple, tuple[np.ndarray, ...]] = {}

    def is_unsafe(self, obs: Any) -> bool:
        """True when some line has ``rho >= danger`` (an agent must decide)."""
        return bool(np.asarray(obs.rho).max() >= self.danger)

    @staticmethod
    def reconnectable_lines(obs: Any) -> np.ndarray:
        """(k,) ids of disconnected lines that may be reconnected now: cooldown over and not
        in a maintenance (grid2op forbids reconnecting a line under maintenance)."""
        status = np.asarray(obs.line_status, dtype=bool)
        cooldown = np.asarray(obs.time_before_cooldown_line)
        in_maintenance = (np.asarray(obs.time_next_maintenance) == 0) & (
            np.asarray(obs.duration_next_maintenance) > 0
        )
        return np.flatnonzero(~status & (cooldown == 0) & ~in_maintenance)

    def reconnect_action(self, obs: Any, action_space: Any) -> Any | None:
        """Action reconnecting the lowest-id reconnectable line (grid2op allows one line
        status change per step), or None if no line can be reconnected."""
        lines = self.reconnectable_lines(obs)
        if lines.size == 0:
            return None
        return action_space({"set_line_status": [(int(lines[0]), 1)]})

    def _incidence(self, obs: Any, candidate_subs: Sequence[int]) -> tuple[np.ndarray, ...]:
        """(subs (k,), padded line ids (k, m), incidence (k, n_line) 0/1, line counts (k,),
        has lines (k,)) of the candidates, built once per grid and candidate list: a
        decision then ranks them with a few array operations, not a loop over substations.
        A short row is padded with its own first line, which leaves its max unchanged (a
        row without lines reads line 0: it ranks last whatever its max)."""
        key = (int(obs.n_sub), tuple(candidate_subs))  # numpy and Python ints hash alike
        hit = self._incidence_cache.get(key)
        if hit is None:
            or_sub = np.asarray(obs.line_or_to_subid)
            ex_sub = np.asarray(obs.line_ex_to_subid)
            n_line = len(or_sub)
            lines = [np.flatnonzero((or_sub == s) | (ex_sub == s)) for s in key[1]]
            width = max([len(x) for x in lines] + [1])
            padded = np.zeros((len(lines), width), dtype=int)
            incidence = np.zeros((len(lines), n_line), dtype=np.float32)
            for i, x in enumerate(lines):
                padded[i, : len(x)] = x
                padded[i, len(x) :] = x[0] if len(x) else 0
                incidence[i, x] = 1.0
            counts = incidence.sum(axis=1)
            hit = (
                np.array(key[1], dtype=int),
                padded,
                incidence,
                np.maximum(counts, 1.0),
                counts > 0,
            )
            self._incidence_cache[key] = hit
        return hit

    def rank_substations(self, obs: Any, candidate_subs: Sequence[int]) -> list[int]:
        """CAPA order of ``candidate_subs``: descending max rho of the lines connected to the
        substation (origin or extremity side), ties broken by descending mean rho, then by
        substation id. Substations without lines come last."""
        subs, padded, incidence, counts, has_lines = self._incidence(obs, candidate_subs)
        rho = np.asarray(obs.rho, dtype=np.float32)
        max_rho = rho[padded].max(axis=1)
        mean_rho = (incidence @ rho) / counts
        # lexsort: the last key is the primary one
        order = np.lexsort((subs, -mean_rho, -max_rho, ~has_lines))
        return subs[order].tolist()
