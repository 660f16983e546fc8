"""Each candidate action's max rho one step ahead, batched on lightsim2grid.

``obs.simulate`` costs 15-18x the AC power flow it wraps (a grid2op step on a copied env per
candidate). Topology candidates share everything but their topology: the same forecast
injections, thermal limits and protections. So :func:`evaluate_candidates` simulates do
nothing once with ``obs.simulate`` (that sets the forecast grid state exactly as grid2op
does) and solves every other ``set_bus`` candidate on top of that solved grid in one
lightsim2grid ``ScenarioSweep`` batch (one symbolic factorization, value edits per row).

Protections are replayed in the batch as ``Backend.next_grid_state`` does them (lines
beyond the hard limit, or the soft limit for too long, are cut and the row solved again);
a row whose grid splits is a game over. A distributed-slack generator that an action
moves is kept on its bus by renaming the substation's busbars (same grid).
What the batch cannot reproduce goes through ``obs.simulate``, candidate by candidate, and
is counted (``Evaluation.reason``): actions that are not pure ``set_bus`` (a line
reconnection), a forecast state that does not solve, substations in cooldown, ends of
lines that are out, loads or generators left on a busbar without a line, rows the batch
refuses, and rows that the backend would solve differently: a row whose Newton-Raphson
from the base state's voltages fails, is slow, or finds a line above rho 2 is
solved again as the backend starts (from a DC solution of the row's own topology); it
goes through ``obs.simulate`` if that converges where the batch did not, or to another
solution (seen on case14), and is a game over if that diverges too; so does a cascade row
that the batch skips because its cut lines strand a bus, when the backend solves it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from gridfactor.envs.topology import line_lookup

# What simulating a candidate gave. Every outcome but FEASIBLE has max rho = inf.
FEASIBLE, COOLDOWN, ILLEGAL, AMBIGUOUS, GAME_OVER = 0, 1, 2, 3, 4
OUTCOMES = {
    FEASIBLE: "feasible",
    COOLDOWN: "cooldown",  # its substation is in cooldown: not simulated
    ILLEGAL: "illegal",  # refused by grid2op's rules for another reason
    AMBIGUOUS: "ambiguous",
    GAME_OVER: "game over",  # the simulated step ends the episode (e.g. a diverging flow)
}

# How a candidate was evaluated (``Evaluation.route``).
SKIPPED, BATCH, SIMULATE = 0, 1, 2
# Why a candidate went through ``obs.simulate`` (``Evaluation.reason``; 0: it did not).
FALLBACK_REASONS = {
    0: "",
    1: "not set_bus",  # e.g. a line reconnection
    2: "base state",  # the forecast state does not solve, even without protections
    3: "no batch backend",  # not a LightSimBackend
    4: "cooldown",  # grid2op's rules would refuse it (the caller did not skip it)
    5: "out line",  # sets an end of a line that is out in the forecast state
    6: "island",  # injections on a busbar without a line, or a partial substation
    7: "slack move",  # moves a distributed-slack generator (refused by the batch) even
    # with its substation's busbars renamed
    8: "refused",  # the batch refused the row for another reason
    9: "diverged",  # its Newton-Raphson did not converge from the base state's voltages;
    # grid2op's backend starts each power flow from a DC solution of its own topology
    10: "other solution",  # from the base state's voltages it converged to another
    # solution of the power-flow equations than the backend's DC start finds (seen on
    # case14: rho 6.2 and 8.4 where obs.simulate finds 0.92 and 1.70)
    11: "stranded",  # lines cut by its cascade strand a bus: the batch skips the row, the
    # backend solves the rest of the grid
}
_NOT_SET_BUS, _BASE_STATE, _NO_BACKEND, _COOLING, _OUT_LINE = 1, 2, 3, 4, 5
_ISLAND, _SLACK, _REFUSED, _DIVERGED, _OTHER_SOLUTION, _STRANDED = 6, 7, 8, 9, 10, 11
# Newton-Raphson iterations from the base state's voltages from which a row is solved again
# from the backend's DC start. Rows converge in 3-5 (99% on case14 and the 36-bus grid).
SLOW_ITERATIONS = 8
# A row with a line above this rho (or beyond the hard limit, if lower) is solved again
# from the backend's DC start: every spurious solution seen had one (case14: rho 6.2, 8.4
# beyond its hard limit of 2; the 36-bus grid: rho ~27, under its hard limit of 200).
SUSPECT_RHO = 2.0
# Two solutions of a row whose line currents all agree within this (A) are the same one.
_SAME_FLOW_A = 1e-3


class Evaluation(NamedTuple):
    """Per candidate (n,): ``max_rho`` (inf unless FEASIBLE), ``outcome`` (int8, one of
    :data:`OUTCOMES`), ``route`` (int8: SKIPPED, BATCH or SIMULATE) and ``reason`` (int8:
    why it was simulated, a key of :data:`FALLBACK_REASONS`)."""

    max_rho: np.ndarray
    outcome: np.ndarray
    route: np.ndarray
    reason: np.ndarray

    def best(self) -> int:
        """Index of the lowest max rho; the earliest wins ties (put do nothing first)."""
        return lowest(self.max_rho)


# Max rhos closer than this are a tie. The batch (float64) and obs.simulate (float32 rho)
# round the same flow differently (~2e-8): a candidate that changes nothing, evaluated by
# the other route, must not beat do nothing by rounding.
RHO_TIE = 1e-6


def lowest(max_rho: np.ndarray) -> int:
    """Index of the lowest of ``max_rho`` (n,), the earliest of those within
    :data:`RHO_TIE` of each other winning (the experts' rule: do nothing first)."""
    best = 0
    for i in range(1, len(max_rho)):
        if max_rho[i] < max_rho[best] - RHO_TIE:
            best = i
    return best


def in_cooldown(obs: Any, subs: np.ndarray) -> np.ndarray:
    """(n,) bool: the actions on substations ``subs`` (n,) (-1: none, e.g. do nothing)
    whose substation is in cooldown in ``obs``: grid2op would refuse them (``skip``)."""
    subs = np.asarray(subs)
    return (subs >= 0) & (np.asarray(obs.time_before_cooldown_sub)[np.maximum(subs, 0)] > 0)


def simulate_candidate(obs: Any, action: Any) -> tuple[float, int]:
    """(max rho one step after ``action``, outcome) by ``obs.simulate``; inf unless
    FEASIBLE. The reference every batched evaluation is checked against."""
    sim_obs, _, done, info = obs.simulate(action)
    if info.get("is_illegal"):
        return float("inf"), ILLEGAL
    if info.get("is_ambiguous"):
        return float("inf"), AMBIGUOUS
    if done or info.get("exception"):
        return float("inf"), GAME_OVER
    return float(np.max(sim_obs.rho)), FEASIBLE


class _Topology(NamedTuple):
    """What a pure ``set_bus`` candidate does, computed once per action object."""

    positions: np.ndarray  # the topo_vect positions it sets
    buses: np.ndarray  # the buses it sets them to
    subs: np.ndarray  # substations it touches
    lines: np.ndarray  # lines it sets an end of
    unset: np.ndarray  # positions of its substations it leaves as they are
    well_formed: bool  # every busbar it uses holds a line end
    slack_positions: np.ndarray  # positions of distributed-slack generators it sets
    slack_buses: np.ndarray  # the buses it sets them to
    row: Any  # lightsim2grid TopoAction


class _Base(NamedTuple):
    """The forecast state every batched row starts from (do nothing, no protections)."""

    reason: int  # why no row can build on it (0: they can)
    line_status: np.ndarray | None  # (n_line,)
    topo_vect: np.ndarray | None  # (dim_topo,)


_OTHER = "other"
# grid2op action flags that make a candidate more than a set_bus action
_OTHER_MODIFS = (
    "_modif_set_status",
    "_modif_change_bus",
    "_modif_change_status",
    "_modif_redispatch",
    "_modif_storage",
    "_modif_curtailment",
    "_modif_inj",
    "_modif_alarm",
    "_modif_alert",
)


class CandidateEvaluator:
    """Evaluates candidate actions on observations of one grid (one grid2op class).

    Args:
        grid_class: any grid2op class of the grid (``type(obs)``).
        nb_thread: threads of the batch power flows; None: the cores this worker may use
            (the CPUs Ray assigned to the task inside a Ray worker). Results do not depend
            on it.
    """

    _MAX_CACHED = 50_000

    def __init__(self, grid_class: Any, nb_thread: int | None = None) -> None:
        from lightsim2grid.lightsim2grid_cpp import ElementType

        cls = grid_class
        self.grid_class = cls
        self.nb_thread = nb_thread if nb_thread is not None else worker_cores()
        n = cls.dim_topo
        self.kind = np.zeros(n, dtype=np.int8)  # 0 load, 1 gen, 2 line or, 3 line ex, 4 storage
        self.element = np.zeros(n, dtype=int)
        kinds = (
            (ElementType.load, cls.load_pos_topo_vect),
            (ElementType.gen, cls.gen_pos_topo_vect),
            (ElementType.line_or, cls.line_or_pos_topo_vect),
            (ElementType.line_ex, cls.line_ex_pos_topo_vect),
            (ElementType.storage, cls.storage_pos_topo_vect),
        )
        self._element_types = [t for t, _ in kinds]
        for k, (_, positions) in enumerate(kinds):
            self.kind[positions] = k
            self.element[positions] = np.arange(len(positions))
        self.line_at = line_lookup(cls)
        self.pos_sub = np.asarray(cls.grid_objects_types[:, 0], dtype=int)
        self.sub_positions = [np.flatnonzero(self.pos_sub == s) for s in range(cls.n_sub)]
        self._slack_pos: np.ndarray | None = None
        self._cache: dict[int, tuple[Any, Any]] = {}

    # -- per action, once -------------------------------------------------------------
    def _describe(self, action: Any) -> Any:
        hit = self._cache.get(id(action))
        if hit is not None and hit[0] is action:
            return hit[1]
        if len(self._cache) >= self._MAX_CACHED:
            self._cache.clear()
        described = self._topology(action)
        self._cache[id(action)] = (action, described)  # (keeps the action: its id stays its own)
        return described

    def _topology(self, action: Any) -> Any:
        from lightsim2grid.lightsim2grid_cpp import TopoAction

        if any(getattr(action, flag, False) for flag in _OTHER_MODIFS):
            return _OTHER
        if getattr(action, "backend_dependant_callback", None) is not None:
            return _OTHER  # it edits the backend's grid: only a real step runs it
        set_bus = np.asarray(action._set_topo_vect)
        positions = np.flatnonzero(set_bus) if action._modif_set_bus else np.zeros(0, dtype=int)
        buses = set_bus[positions].astype(int)  # (none for do nothing: a plain row)
        if (buses < 1).any():  # a disconnection by set_bus: a line status change
            return _OTHER
        subs = np.unique(self.pos_sub[positions])
        touched = np.concatenate([self.sub_positions[s] for s in subs] + [positions])
        unset = np.setdiff1d(touched, positions)
        is_line = self.line_at[positions] >= 0
        # a busbar with injections (load, generator, storage) must keep a line, else they
        # are cut off (grid2op: game over); a line end alone on a busbar is an open end,
        # which the batch masks as the backend's own power flow does
        well_formed = all(is_line[buses == b].any() for b in np.unique(buses))
        slack = np.isin(positions, self.slack_positions)
        row = self._add(TopoAction(), positions, buses)
        lines = np.unique(self.line_at[positions][is_line])
        return _Topology(
            positions, buses, subs, lines, unset, well_formed, positions[slack], buses[slack], row
        )

    def _add(self, row: Any, positions: np.ndarray, buses: np.ndarray) -> Any:
        """``row`` (a TopoAction) with the elements at ``positions`` set to ``buses``."""
        for pos, bus in zip(positions, buses, strict=True):
            row.add_element(self._element_types[self.kind[pos]], int(self.element[pos]), int(bus))
        return row

    @property
    def slack_positions(self) -> np.ndarray:
        return self._slack_pos if self._slack_pos is not None else np.zeros(0, dtype=int)

    def _learn_slack(self, grid: Any) -> None:
        """Positions of the generators in the distributed slack (read once per grid)."""
        if self._slack_pos is None:
            slack = [i for i, gen in enumerate(grid.get_generators()) if gen.is_slack]
            self._slack_pos = np.asarray(self.grid_class.gen_pos_topo_vect, dtype=int)[slack]
            self._cache.clear()  # descriptions made before knew no slack

    # -- per decision -----------------------------------------------------------------
    def evaluate(
        self, obs: Any, candidates: Sequence[Any], skip: np.ndarray | None = None
    ) -> Evaluation:
        """Evaluate ``candidates`` (n grid2op actions) in ``obs``; ``skip``: (n,) bool,
        candidates known to be refused (substation in cooldown): not evaluated, max rho
        inf, outcome COOLDOWN. Same max rho and outcome as :func:`simulate_candidate`."""
        n = len(candidates)
        rhos = np.full(n, np.inf)
        outcomes = np.full(n, COOLDOWN, dtype=np.int8)
        route = np.full(n, SKIPPED, dtype=np.int8)
        reason = np.zeros(n, dtype=np.int8)
        todo = [i for i in range(n) if skip is None or not skip[i]]
        if not todo:
            return Evaluation(rhos, outcomes, route, reason)

        base = self._base(obs)
        rows: list[int] = []
        topologies: list[_Topology] = []
        fallback: list[int] = []
        for i in todo:
            described = self._describe(candidates[i])
            why = _NOT_SET_BUS if described is _OTHER else base.reason
            if not why:
                why = self._why_not_batched(described, obs, base)
            if why:
                reason[i] = why
                fallback.append(i)
            else:
                rows.append(i)
                topologies.append(described)
        if rows:
            self._batch(obs, base, topologies, rows, rhos, outcomes, route, reason, fallback)
        for i in fallback:
            rhos[i], outcomes[i] = simulate_candidate(obs, candidates[i])
            route[i] = SIMULATE
        return Evaluation(rhos, outcomes, route, reason)

    def _base(self, obs: Any) -> _Base:
        """Do nothing by ``obs.simulate`` without the protections: it leaves the forecast
        state, before any line trips, solved in the observation env's backend (the batch's
        base grid). Do nothing's own outcome, protections included, is a batch row."""
        from lightsim2grid import LightSimBackend

        obs_env = obs._obs_env
        if not isinstance(obs_env.backend, LightSimBackend):
            return _Base(_NO_BACKEND, None, None)
        protections_off = obs_env._no_overflow_disconnection
        obs_env._no_overflow_disconnection = True
        try:
            sim_obs, _, done, info = obs.simulate(obs.action_helper({}))
        finally:
            obs_env._no_overflow_disconnection = protections_off
        if info.get("is_illegal") or info.get("is_ambiguous") or done or info.get("exception"):
            return _Base(_BASE_STATE, None, None)
        self._learn_slack(obs_env.backend._grid)
        return _Base(0, np.array(sim_obs.line_status, dtype=bool), np.array(sim_obs.topo_vect))

    def _why_not_batched(self, topo: _Topology, obs: Any, base: _Base) -> int:
        if (np.asarray(obs.time_before_cooldown_sub)[topo.subs] > 0).any():
            return _COOLING
        if not base.line_status[topo.lines].all():
            return _OUT_LINE
        if topo.unset.size and (base.topo_vect[topo.unset] > 0).any():
            # an element of the substation the action leaves where it is: the busbars'
            # contents depend on the state; obs.simulate judges them
            return _ISLAND
        if not topo.well_formed:
            return _ISLAND
        if self._buses(topo, base) is None:
            return _SLACK
        return 0

    @staticmethod
    def _buses(topo: _Topology, base: _Base) -> np.ndarray | None:
        """The buses a row sets: the action's, or the same busbars under swapped names
        when that keeps every distributed-slack generator on its current bus (the batch
        refuses to move one; the whole substation is set, so the grid is the same); None
        when neither does."""
        current = base.topo_vect[topo.slack_positions]
        if (current == topo.slack_buses).all():
            return topo.buses
        a, b = topo.slack_buses[0], current[0]
        swapped = np.where(topo.buses == a, b, np.where(topo.buses == b, a, topo.buses))
        if (swapped[np.isin(topo.positions, topo.slack_positions)] == current).all():
            return swapped
        return None

    def _row(self, topo: _Topology, buses: np.ndarray, cut: np.ndarray) -> Any:
        """The batch row of a candidate played with ``buses``, without the ends of the
        lines ``cut`` ((n_line,) bool) by its cascade (those lines are out of the row)."""
        from lightsim2grid.lightsim2grid_cpp import TopoAction

        keep = ~cut[np.maximum(self.line_at[topo.positions], 0)] | (
            self.line_at[topo.positions] < 0
        )
        if buses is topo.buses and keep.all():
            return topo.row
        return self._add(TopoAction(), topo.positions[keep], buses[keep])

    def _batch(
        self,
        obs: Any,
        base: _Base,
        topologies: list[_Topology],
        rows: list[int],
        rhos: np.ndarray,
        outcomes: np.ndarray,
        route: np.ndarray,
        reason: np.ndarray,
        fallback: list[int],
    ) -> None:
        """Solve ``rows`` (candidate indices, ``topologies`` their descriptions) in batches,
        with grid2op's protections one step ahead (``Backend.next_grid_state``): lines
        beyond the hard limit, or beyond the soft limit for longer than allowed, are cut
        and the row solved again, until nothing trips (a cascade)."""
        obs_env = obs._obs_env
        backend = obs_env.backend
        limits = np.asarray(backend.get_thermal_limit(), dtype=float)
        n_line = len(limits)
        protections = not obs_env._no_overflow_disconnection
        hard = obs_env._hard_overflow_threshold * limits
        suspect = np.minimum(hard, SUSPECT_RHO * limits)
        soft = obs_env._parameters.SOFT_OVERFLOW_THRESHOLD * limits
        max_counter = np.asarray(obs_env._nb_ts_max_protection_counter)
        n = len(rows)
        buses = [self._buses(topo, base) for topo in topologies]
        cut = np.zeros((n, n_line), dtype=bool)  # cut by the row's own cascade
        counter = np.tile(np.asarray(obs.timestep_protection_engaged, dtype=int), (n, 1))
        increased = np.zeros((n, n_line), dtype=bool)
        pending = np.arange(n)
        while pending.size:
            row_actions = [self._row(topologies[k], buses[k], cut[k]) for k in pending]
            amps, converged, iterations = self._solve(backend, row_actions, cut[pending])
            if amps is None:
                for k in pending:
                    reason[rows[k]] = _REFUSED
                    fallback.append(rows[k])
                return
            rows_now = np.asarray(rows)[pending]
            connected = base.line_status & ~cut[pending]
            with np.errstate(invalid="ignore"):
                solved = converged & np.isfinite(amps).all(axis=1)
                implausible = solved & ((amps > suspect) & connected).any(axis=1)
            # the grid splits (the row is never solved): grid2op ends the episode
            split = ~solved & (iterations == 0)
            keep = ~split
            # Newton-Raphson from the base state's voltages failed, nearly failed, or found
            # flows beyond SUSPECT_RHO (or the hard limit): the backend starts from a DC
            # solution of the row's own topology; where that finds another solution, or
            # none, the batch cannot stand for the row
            check = keep & (~solved | implausible | (iterations >= SLOW_ITERATIONS))
            for j in np.flatnonzero(check):
                k, i = pending[j], rows_now[j]
                own = self._solve_from_dc(backend, topologies[k], buses[k], cut[k])
                if own is None:
                    split[j], keep[j] = True, False  # it diverges there too: a game over
                elif not solved[j] or np.abs(own - amps[j]).max() > _SAME_FLOW_A:
                    reason[i] = _DIVERGED if not solved[j] else _OTHER_SOLUTION
                    fallback.append(int(i))
                    keep[j] = False
            # the batch skips a cascade row whose cut lines strand a bus, even an empty one;
            # the backend solves the rest of the grid: only a row it cannot solve is a game
            # over (36-bus grid: rho 6.8 after a cascade, where the batch said split)
            for j in np.flatnonzero(split & cut[pending].any(axis=1)):
                k, i = pending[j], rows_now[j]
                if self._solve_from_dc(backend, topologies[k], buses[k], cut[k]) is not None:
                    reason[i] = _STRANDED
                    fallback.append(int(i))
                    split[j] = False
            outcomes[rows_now[split]], route[rows_now[split]] = GAME_OVER, BATCH
            kept = pending[keep]
            flows, on = amps[keep], connected[keep]
            trips = np.zeros_like(on)
            if protections:
                raised = (flows > soft) & on & ~increased[kept]
                counter[kept] += raised
                increased[kept] |= raised
                trips = ((flows > hard) | (counter[kept] > max_counter)) & on
            calm = ~trips.any(axis=1)
            done = rows_now[keep][calm]
            rhos[done] = np.max(np.where(on[calm], flows[calm] / limits, 0.0), axis=1)
            outcomes[done], route[done] = FEASIBLE, BATCH
            cut[kept[~calm]] |= trips[~calm]
            still = kept[~calm]
            pending = np.asarray(still, dtype=int)

    def _solve_from_dc(
        self, backend: Any, topo: _Topology, buses: np.ndarray, cut: np.ndarray
    ) -> np.ndarray | None:
        """(n_line,) |current| in A of the row's AC power flow started, as
        ``LightSimBackend.runpf`` starts it (``initdc``), from a DC solution of the row's own
        topology, on a copy of the base grid; None if it diverges."""
        cls = self.grid_class
        grid = backend._grid.copy()
        changed = np.zeros(cls.dim_topo, dtype=bool)
        values = np.zeros(cls.dim_topo, dtype=np.int32)
        changed[topo.positions], values[topo.positions] = True, buses
        ends = np.concatenate([cls.line_or_pos_topo_vect[cut], cls.line_ex_pos_topo_vect[cut]])
        changed[ends], values[ends] = True, -1
        grid.update_topo(changed, values)
        start = grid.dc_pf(np.ones(len(backend.V), dtype=complex), backend.max_it, backend.tol)
        if start.shape[0] == 0 or grid.ac_pf(start, backend.max_it, backend.tol).shape[0] == 0:
            return None
        amps = np.concatenate([grid.get_line_res1()[3], grid.get_trafo_res1()[3]])
        return 1000.0 * np.abs(np.asarray(amps, dtype=float))

    def _sweep(self, grid: Any, row_actions: list[Any], cut: np.ndarray) -> Any:
        """A ScenarioSweep of ``grid`` with its own solver, one row per topology action,
        ``cut`` (rows, n_line) lines out in each row beyond its action."""
        from lightsim2grid.lightsim2grid_cpp import ScenarioSweepCPP

        sweep = ScenarioSweepCPP(grid)
        sweep.change_algorithm(grid.get_algo_type())
        sweep.nb_thread = self.nb_thread
        sweep.set_topo_actions(row_actions)
        if cut.any():
            n_powerline = len(grid.get_lines())  # grid2op's lines: powerlines, then trafos
            sweep.set_contingency_lines(cut[:, :n_powerline])
            sweep.set_contingency_trafos(cut[:, n_powerline:])
        return sweep

    def _solve(
        self, backend: Any, row_actions: list[Any], cut: np.ndarray
    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """((rows, n_line) |current| in A or None if the batch refused it, (rows,) bool
        converged, (rows,) Newton-Raphson iterations, 0 for a row never solved: its grid
        splits): one ScenarioSweep on the backend's solved grid; ``cut`` (rows, n_line)
        lines out in each row beyond its action."""
        grid = backend._grid
        try:
            sweep = self._sweep(grid, row_actions, cut)
            sweep.compute(backend.V, backend.max_it, backend.tol)
        except (RuntimeError, ValueError):
            return None, np.zeros(0, dtype=bool), np.zeros(0, dtype=int)
        converged = np.asarray(sweep.converged_mask(), dtype=bool)
        iterations = np.asarray(sweep.get_row_nb_iter(), dtype=int).ravel()
        return 1000.0 * np.abs(np.asarray(sweep.compute_flows())), converged, iterations


def worker_cores() -> int:
    """Cores this process may use: the CPUs Ray assigned to the current task inside a Ray
    worker (so parallel tasks do not oversubscribe), else the process's CPU affinity."""
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            try:
                context = ray.get_runtime_context()
                if context.worker.mode == ray.WORKER_MODE:
                    return max(1, int(context.get_assigned_resources().get("CPU", 1)))
            except Exception:  # noqa: BLE001 - outside a task: fall through to the affinity
                pass
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


_EVALUATORS: dict[Any, CandidateEvaluator] = {}


def evaluate_candidates(
    obs: Any, candidates: Sequence[Any], skip: np.ndarray | None = None
) -> Evaluation:
    """:meth:`CandidateEvaluator.evaluate` with the process's evaluator of ``obs``'s grid."""
    grid_class = type(obs)
    evaluator = _EVALUATORS.get(grid_class)
    if evaluator is None:
        evaluator = _EVALUATORS[grid_class] = CandidateEvaluator(grid_class)
    return evaluator.evaluate(obs, candidates, skip)
