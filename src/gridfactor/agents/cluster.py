"""Per-cluster agents: which substations they act on, their actions and observations.

A cluster of a grid factorization holds substation ids (``Cluster.inputs``) and line ids
(``Cluster.targets``). Its agent acts on the cluster's substations that have unitary topology
actions; a cluster without such a substation gets no agent. Substations with topology
actions that are in no cluster are ignored: nobody acts on them and they are not CAPA
candidates (the candidates are the substations owned by some agent).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridfactor.agents.compiled import features, observed, raw_observation
from gridfactor.errors import UserError
from gridfactor.factorization import Cluster, Factorization

OBS_MODES = ("local", "global")
# rho above this is clipped in observations (a line at 3x its limit is beyond saving anyway)
RHO_CLIP = 3.0
# cooldowns are divided by this (grid2op's default cooldowns are 3 and 10 steps)
COOLDOWN_SCALE = 10.0


def agent_id(cluster_index: int) -> str:
    """Agent (and policy) id of the agent of factorization cluster number ``cluster_index``."""
    return f"cluster_{cluster_index}"


# A substation with more unitary topologies than this keeps a fixed sample of them (the
# 36-bus grid's substation 16 has 17 elements and 65 505 topologies: simulating them all at
# every decision would take minutes). Seeded by the substation id: the same sample in every
# process, so action indices (the canonical action ids) agree everywhere.
MAX_SUB_ACTIONS = 256


def unitary_actions(action_space: Any, sub_id: int) -> list[Any]:
    """Unitary topology actions of substation ``sub_id`` (empty when it has none), at most
    :data:`MAX_SUB_ACTIONS` (a fixed sample, in grid2op's order, beyond that)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        actions = list(action_space.get_all_unitary_topologies_set(action_space, sub_id=sub_id))
    if len(actions) > MAX_SUB_ACTIONS:
        rng = np.random.default_rng([0x746F706F, sub_id])
        keep = np.sort(rng.choice(len(actions), size=MAX_SUB_ACTIONS, replace=False))
        actions = [actions[i] for i in keep]
    return actions


@dataclass
class ClusterAgent:
    """The agent of one cluster.

    Attributes:
        agent_id: RLlib agent id == policy id (``cluster_<k>``).
        cluster_index: k, index of the cluster in the factorization.
        subs: (n_s,) substation ids it acts on (those of the cluster with actions).
        lines: (n_l,) line ids it observes in local mode: the cluster's lines plus the lines
            connected to its substations, sorted.
        topo_pos: (n_e,) positions in ``topo_vect`` of the elements of its substations.
        actions: the grid2op actions, index 0 = do nothing, then the unitary topology
            actions of ``subs`` in order (only those of ``action_set`` when one is given).
        action_subs: (n_actions,) substation acted on by each action (-1 for do nothing).
        action_keys: (n_actions,) canonical id of each action: (substation, index in
            grid2op's unitary topology set of that substation); (-1, -1) for do nothing.
            The same id on every agent that can play the action (zones, centralized).
    """

    agent_id: str
    cluster_index: int
    subs: np.ndarray
    lines: np.ndarray
    topo_pos: np.ndarray
    actions: list[Any] = field(repr=False)
    action_subs: np.ndarray = field(repr=False)
    action_keys: list[tuple[int, int]] = field(default_factory=list, repr=False)

    @property
    def n_actions(self) -> int:
        return len(self.actions)

    def index_of(self, key: tuple[int, int]) -> int | None:
        """Position of the action with canonical id ``key`` (None if this agent lacks it)."""
        if not hasattr(self, "_index"):
            self._index = {k: i for i, k in enumerate(self.action_keys)}
        return self._index.get(tuple(key))


DO_NOTHING_KEY = (-1, -1)


def substation_actions(action_space: Any) -> dict[int, list[Any]]:
    """Unitary topology actions of every substation that has some."""
    out = {}
    for sub in range(action_space.n_sub):
        acts = unitary_actions(action_space, sub)
        if acts:
            out[sub] = acts
    return out


def check_factorization_for_env(fact: Factorization, env: Any, env_name: str) -> None:
    """UserError when the factorization was not made for this grid."""
    from gridfactor.envs.grid2op_env import env_data_dir

    fact_env = fact.meta.get("env_name")
    if fact_env is not None and env_data_dir(str(fact_env)) != env_data_dir(str(env_name)):
        raise UserError(
            f"the factorization was made for env {fact_env!r} but --env is {env_name!r}; "
            f"pass --env {fact_env} or a factorization of {env_name}"
        )
    if fact.n_targets != env.n_line or fact.n_inputs != env.n_sub:
        raise UserError(
            f"the factorization has {fact.n_targets} targets x {fact.n_inputs} inputs but "
            f"{env_name} has {env.n_line} lines x {env.n_sub} substations; use a grid "
            "factorization (targets = lines, inputs = substations) of this env"
        )


def centralized_factorization(env: Any, env_name: str) -> Factorization:
    """One cluster holding every line and every substation that has topology actions."""
    subs = tuple(sorted(substation_actions(env.action_space)))
    return Factorization(
        target_names=[str(n) for n in env.name_line],
        input_names=[str(n) for n in env.name_sub],
        clusters=[Cluster(tuple(range(env.n_line)), subs)],
        meta={"env_name": env_name, "centralized": True},
    )


def merged_factorization(fact: Factorization) -> Factorization:
    """One cluster holding every line and substation of ``fact``'s clusters: the centralized
    agent over exactly the substations the distributed agents act on."""
    targets = tuple(sorted(t for c in fact.clusters for t in c.targets))
    inputs = tuple(sorted(i for c in fact.clusters for i in c.inputs))
    return Factorization(
        fact.target_names,
        fact.input_names,
        [Cluster(targets, inputs)],
        {**fact.meta, "centralized": True},
    )


def build_agents(
    fact: Factorization,
    env: Any,
    action_sets: dict[str, list[tuple[int, int]]] | None = None,
) -> list[ClusterAgent]:
    """One ClusterAgent per cluster having at least one substation with actions.

    ``action_sets`` (agent id -> canonical action ids, see ``ClusterAgent.action_keys``)
    restricts an agent's actions to those ids, in the given order after do nothing (which
    every agent keeps as action 0). Agents absent from it keep all their actions.
    """
    space = env.action_space
    per_sub = substation_actions(space)
    or_sub = np.asarray(env.line_or_to_subid)
    ex_sub = np.asarray(env.line_ex_to_subid)
    do_nothing = space({})
    agents = []
    for k, cluster in enumerate(fact.clusters):
        subs = np.array(sorted(s for s in cluster.inputs if s in per_sub), dtype=int)
        if subs.size == 0:
            continue
        touching = np.flatnonzero(np.isin(or_sub, subs) | np.isin(ex_sub, subs))
        lines = np.union1d(np.asarray(cluster.targets, dtype=int), touching).astype(int)
        topo_pos = np.flatnonzero(np.isin(np.asarray(env.grid_objects_types[:, 0]), subs))
        keys = [(int(sub), i) for sub in subs for i in range(len(per_sub[int(sub)]))]
        chosen = (action_sets or {}).get(agent_id(k))
        if chosen is not None:
            allowed = set(keys)
            bad = [
                tuple(c) for c in chosen if tuple(c) not in allowed and tuple(c) != DO_NOTHING_KEY
            ]
            if bad:
                raise UserError(
                    f"action set of {agent_id(k)} holds actions {bad[:3]} that are not "
                    "unitary topology actions of its substations; rebuild the action sets "
                    "from demonstrations of this factorization"
                )
            keys = [tuple(int(x) for x in c) for c in chosen if tuple(c) != DO_NOTHING_KEY]
        agents.append(
            ClusterAgent(
                agent_id=agent_id(k),
                cluster_index=k,
                subs=subs,
                lines=lines,
                topo_pos=topo_pos,
                actions=[do_nothing] + [per_sub[sub][i] for sub, i in keys],
                action_subs=np.asarray([-1] + [sub for sub, _ in keys]),
                action_keys=[DO_NOTHING_KEY, *keys],
            )
        )
    if not agents:
        raise UserError(
            "no cluster of the factorization contains a substation with topology actions; "
            "check that cluster inputs are substation ids of this env"
        )
    return agents


class ObservationEncoder:
    """Raw grid2op observation -> normalized float32 vector for one agent.

    Features (in this order), for the agent's lines L and substation elements E (``local``)
    or all lines and elements (``global``):
      rho[L] clipped to [0, 3]; line_status[L] (0/1); time_before_cooldown_line[L] / 10
      (clipped to 1); bus-2 indicator of E; disconnected indicator of E;
      time_before_cooldown_sub[S] / 10 (clipped to 1) for the agent's substations S (local)
      or all substations (global); max rho of the whole grid (clipped to [0, 3]).
    Size: 3 |L| + 2 |E| + |S| + 1.
    """

    def __init__(self, agent: ClusterAgent, env: Any, mode: str) -> None:
        if mode not in OBS_MODES:
            raise UserError(f"unknown observation mode {mode!r}; use 'local' or 'global'")
        if mode == "local":
            self.lines = agent.lines
            self.topo_pos = agent.topo_pos
            self.subs = agent.subs
        else:
            self.lines = np.arange(env.n_line)
            self.topo_pos = np.arange(env.dim_topo)
            self.subs = np.arange(env.n_sub)
        self.size = 3 * len(self.lines) + 2 * len(self.topo_pos) + len(self.subs) + 1
        # Every feature is clip(raw[index] / divisor + offset, 0, high) of one vector ``raw``
        # holding the observation's rho, line status, line cooldowns, topology, substation
        # cooldowns and max rho: one compiled loop over these tables (agents.compiled), which
        # the trained agents' compiled decision shares. The topology indicators are clips
        # too, of the bus numbers (-1, 1, 2): bus 2 = clip(bus - 1, 0, 1), disconnected =
        # clip(-bus, 0, 1).
        if int(getattr(env, "n_busbar_per_sub", 2)) != 2:
            raise UserError(
                f"the env has {env.n_busbar_per_sub} busbars per substation; gridfactor's agents "
                "observe two: make the env with n_busbar=2 (grid2op's default)"
            )
        n_line, dim_topo, n_sub = int(env.n_line), int(env.dim_topo), int(env.n_sub)
        status, cooldown = n_line, 2 * n_line
        topo, sub_cooldown = 3 * n_line, 3 * n_line + dim_topo
        max_rho = sub_cooldown + n_sub
        groups = (  # (raw offsets, divisor, offset, high) per feature group, in feature order
            (self.lines, 1.0, 0.0, RHO_CLIP),
            (status + self.lines, 1.0, 0.0, 1.0),
            (cooldown + self.lines, COOLDOWN_SCALE, 0.0, 1.0),
            (topo + self.topo_pos, 1.0, -1.0, 1.0),
            (topo + self.topo_pos, -1.0, 0.0, 1.0),
            (sub_cooldown + self.subs, COOLDOWN_SCALE, 0.0, 1.0),
            (np.array([max_rho]), 1.0, 0.0, RHO_CLIP),
        )
        self.feature_index = np.concatenate([np.asarray(pos, dtype=np.int64) for pos, *_ in groups])

        def per_feature(column: int) -> np.ndarray:
            return np.concatenate([np.full(len(g[0]), g[column], dtype=np.float32) for g in groups])

        self.divisor, self.offset, self.upper = per_feature(1), per_feature(2), per_feature(3)
        self._tables = (
            np.array([0, self.size], dtype=np.int64),
            self.feature_index,
            self.divisor,
            self.offset,
            self.upper,
        )

    def __call__(self, obs: Any) -> np.ndarray:
        """(size,) float32 features of ``obs``."""
        return features(0, raw_observation(*observed(obs)), *self._tables)

    def reference(self, obs: Any) -> np.ndarray:
        """The same features by numpy array operations, in float32 as the compiled loop
        computes them: the reference that tests and ``benchmarks/decision.py`` check and time
        the compiled decision against."""
        rho = obs.rho
        raw = np.concatenate(
            (
                rho,
                obs.line_status,
                obs.time_before_cooldown_line,
                obs.topo_vect,
                obs.time_before_cooldown_sub,
                (np.fmax.reduce(rho, initial=0.0),),  # max rho, NaN ignored
            ),
            dtype=np.float32,
        )
        x = raw[self.feature_index] / self.divisor + self.offset
        return np.minimum(np.fmax(x, 0.0), self.upper)  # fmax: NaN -> 0

    @property
    def high(self) -> float:
        return RHO_CLIP
