"""A trained agent's pure decision as one compiled function.

A pure decision (is the grid unsafe, CAPA's substation, the zone's observation, its policy's
forward pass, the greedy choice and the cooldown check) was ~35 small numpy operations,
each of which meets cold caches between two grid2op steps. Here it is one numba function
over flat tables built once per decision frame: on case14 21 us back to back and ~58 us in
play, against 65 and ~121 us for the numpy path on the same machine
(``benchmarks/decision.py``). The observation encoder and CAPA's choice of a zone use the
same kernels, so the agents, the experts and the demonstrations read a state alike.

The numpy reference of each piece stays: CAPA's full ranking
(:meth:`~gridfactor.agents.high_level.HighLevelRules.rank_substations`), the encoder's
definition, the numpy layers (:class:`~gridfactor.agents.policy_net.GreedyMLP`); ``tests``
check that the compiled decision chooses as they do on real states.

Scores: per action, the policy's probability (softmax of its logits; for an ensemble the
mean of its members' probabilities, 0 for an action no member knows). Their order is the
order of the logits, so the greedy action and the top k are those of the logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from gridfactor.agents.policy_net import GreedyEnsemble, Policy

ACTIVATION_CODES = {"": 0, "Tanh": 1, "ReLU": 2}


@dataclass(frozen=True)
class FrameTables:
    """What a decision frame decides with before any policy: CAPA's candidates and the
    agents' observations, as flat tables (per agent ``a`` its slice of an agent-wide table
    is ``start[a]:start[a + 1]``).

    Attributes:
        capa: (substations (k,), padded line ids (k, m), line counts (k,; 0: no line),
            owning agent (k,)) of the CAPA candidates, sorted by substation.
        encoder: (start (n_agents + 1,), raw index, divisor, offset, upper) of the agents'
            features (see :class:`~gridfactor.agents.cluster.ObservationEncoder`).
    """

    capa: tuple[np.ndarray, ...]
    encoder: tuple[np.ndarray, ...]

    def capa_first(self, obs: Any) -> int:
        """Index of the candidate CAPA ranks first in ``obs``."""
        subs, padded, counts, _ = self.capa  # the owners serve the decision, not the ranking
        return int(_capa_first(obs.rho, subs, padded, counts))

    def features(self, agent: int, obs: Any) -> np.ndarray:
        """(d,) float32 features of agent ``agent`` in ``obs``."""
        return features(agent, raw_observation(*observed(obs)), *self.encoder)


def frame_tables(
    candidate_subs: list[int],
    candidate_lines: list[np.ndarray],
    owners: list[int],
    encoders: list[Any],
) -> FrameTables:
    """Tables of CAPA's candidates (sorted substation ids, the lines at each, the index of
    the agent owning each) and of the agents' encoders (each with ``feature_index``,
    ``divisor``, ``offset``, ``upper``: (d,) arrays)."""
    width = max([len(x) for x in candidate_lines] + [1])
    padded = np.zeros((len(candidate_lines), width), dtype=np.int64)
    for i, lines in enumerate(candidate_lines):
        padded[i, : len(lines)] = lines
    capa = (
        np.asarray(candidate_subs, dtype=np.int64),
        padded,
        np.array([len(x) for x in candidate_lines], dtype=np.int64),
        np.asarray(owners, dtype=np.int64),
    )
    encoder = (
        _starts([len(e.feature_index) for e in encoders]),
        np.concatenate([e.feature_index for e in encoders]).astype(np.int64),
        np.concatenate([e.divisor for e in encoders]).astype(np.float32),
        np.concatenate([e.offset for e in encoders]).astype(np.float32),
        np.concatenate([e.upper for e in encoders]).astype(np.float32),
    )
    return FrameTables(capa, encoder)


@dataclass(frozen=True)
class CompiledAgents:
    """A frame's tables with its agents' policies, greedy sets and waiting rule (see
    :func:`compile_agents`).

    Attributes:
        frame: the decision frame's tables.
        danger: rho threshold of the high-level rules.
        wait_confidence: see :class:`~gridfactor.agents.trained.TrainedAgent`.
        members: (agent start (n_agents + 1,), layer start (n_members + 1,), column start
            (n_members + 1,), columns): each agent's policies (one, or an ensemble's
            members) and where their actions go among the agent's.
        layers: int64 (n_layers, 5): weight offset, bias offset, inputs, outputs,
            activation code of each layer in ``params`` (weights row-major (d_in, d_out)).
        params: float32, every weight and bias.
        actions: (start (n_agents + 1,), substation (-1: do nothing), greedy (bool)) of
            each agent's actions.
    """

    frame: FrameTables
    danger: float
    wait_confidence: float
    members: tuple[np.ndarray, ...]
    layers: np.ndarray
    params: np.ndarray
    actions: tuple[np.ndarray, ...]

    @property
    def _policy(self) -> tuple[Any, ...]:
        return (*self.members, self.layers, self.params, *self.actions)

    def decide(self, obs: Any) -> tuple[int, int]:
        """(agent index, action index) of the pure decision in ``obs``: (-1, -1) when
        safe; action 0 (do nothing) when the agent waits or its choice is cooling."""
        agent, choice = _decide(
            *observed(obs),
            self.danger,
            self.wait_confidence,
            *self.frame.capa,
            *self.frame.encoder,
            *self._policy,
        )
        return int(agent), int(choice)

    def choice(self, agent: int, obs: Any) -> int:
        """Agent ``agent``'s pure choice in ``obs`` (0: it waits or its choice is cooling)."""
        return int(
            _agent_choice(
                agent, *observed(obs), self.wait_confidence, *self.frame.encoder, *self._policy
            )
        )

    def scores(self, agent: int, obs: Any) -> np.ndarray:
        """(n_actions,) float64 scores of agent ``agent``'s actions in ``obs``."""
        return self.feature_scores(agent, self.frame.features(agent, obs))

    def feature_scores(self, agent: int, features: np.ndarray) -> np.ndarray:
        """(n_actions,) float64 scores of agent ``agent`` for its (d,) features."""
        x = np.ascontiguousarray(features, dtype=np.float32)
        return _scores(agent, x, *self._policy)

    def warm_up(self, obs: Any) -> None:
        """Load (or compile, once per machine) every entry point for ``obs``'s array types:
        a process's first call of each costs ~10 ms from numba's cache, ~7 s without."""
        self.decide(obs)
        self.choice(0, obs)
        self.scores(0, obs)


def observed(obs: Any) -> tuple[np.ndarray, ...]:
    """The arrays of ``obs`` a decision reads."""
    return (
        obs.rho,
        obs.line_status,
        obs.time_before_cooldown_line,
        obs.topo_vect,
        obs.time_before_cooldown_sub,
    )


def _starts(sizes: list[int]) -> np.ndarray:
    return np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)


def compile_agents(
    tables: FrameTables,
    danger: float,
    agents: list[Any],
    policies: list[Policy],
    greedy_masks: list[np.ndarray | None],
    wait_confidence: float,
) -> CompiledAgents:
    """The tables of a frame's ``agents`` (:class:`~gridfactor.agents.cluster.ClusterAgent`,
    in the frame's order) with their ``policies``, greedy masks ((n_actions,) bool; None:
    every action) and the wait confidence."""
    layers: list[tuple[int, ...]] = []
    params: list[np.ndarray] = []
    offset = 0
    members_per_agent, layers_per_member, columns = [], [], []
    for agent, policy in zip(agents, policies, strict=True):
        if isinstance(policy, GreedyEnsemble):
            pairs = list(zip(policy.members, policy.columns, strict=True))
        else:
            pairs = [(policy, np.arange(agent.n_actions))]
        members_per_agent.append(len(pairs))
        for mlp, cols in pairs:
            layers_per_member.append(len(mlp.weights))
            columns.append(np.asarray(cols, dtype=np.int64))
            for w, b, act in zip(mlp.weights, mlp.biases, mlp.activations, strict=True):
                w = np.ascontiguousarray(w, dtype=np.float32)
                layers.append((offset, offset + w.size, *w.shape, ACTIVATION_CODES[act]))
                params += [w.ravel(), np.asarray(b, dtype=np.float32)]
                offset += w.size + len(b)
    greedy = [
        np.ones(a.n_actions, dtype=bool) if m is None else m
        for a, m in zip(agents, greedy_masks, strict=True)
    ]
    return CompiledAgents(
        frame=tables,
        danger=float(danger),
        wait_confidence=float(wait_confidence),
        members=(
            _starts(members_per_agent),
            _starts(layers_per_member),
            _starts([len(c) for c in columns]),
            np.concatenate(columns),
        ),
        layers=np.array(layers, dtype=np.int64).reshape(-1, 5),
        params=np.concatenate(params).astype(np.float32),
        actions=(
            _starts([a.n_actions for a in agents]),
            np.concatenate([a.action_subs for a in agents]).astype(np.int64),
            np.concatenate(greedy).astype(np.bool_),
        ),
    )


# The kernels: plain loops over the tables above (numba compiles them once; cache=True keeps
# the machine code beside this file for the next process).


@njit(cache=True)
def raw_observation(rho, line_status, line_cooldown, topo_vect, sub_cooldown):  # pragma: no cover
    """The encoder's raw vector: rho, line status, line cooldowns, topology, substation
    cooldowns, then max rho (NaN ignored, 0 at least)."""
    n_line, dim_topo, n_sub = rho.size, topo_vect.size, sub_cooldown.size
    raw = np.empty(3 * n_line + dim_topo + n_sub + 1, np.float32)
    max_rho = np.float32(0.0)
    for i in range(n_line):
        raw[i] = rho[i]
        raw[n_line + i] = 1.0 if line_status[i] else 0.0
        raw[2 * n_line + i] = line_cooldown[i]
        if rho[i] > max_rho:
            max_rho = rho[i]
    base = 3 * n_line
    for i in range(dim_topo):
        raw[base + i] = topo_vect[i]
    base += dim_topo
    for i in range(n_sub):
        raw[base + i] = sub_cooldown[i]
    raw[base + n_sub] = max_rho
    return raw


@njit(cache=True)
def features(agent, raw, start, feature_index, divisor, offset, upper):  # pragma: no cover
    """(d,) float32 features of ``agent``: clip(raw[index] / divisor + offset, 0, upper),
    NaN -> 0 (the float32 operations of the numpy encoder, in its order)."""
    lo, hi = start[agent], start[agent + 1]
    x = np.empty(hi - lo, np.float32)
    for k in range(hi - lo):
        v = raw[feature_index[lo + k]] / divisor[lo + k] + offset[lo + k]
        if not v > 0.0:
            v = np.float32(0.0)
        elif v > upper[lo + k]:
            v = upper[lo + k]
        x[k] = v
    return x


@njit(cache=True)
def _forward(x, first_layer, last_layer, layers, params):  # pragma: no cover
    """(n_out,) float32 logits of the MLP of ``layers[first_layer:last_layer]`` (float32
    matrix products, as the numpy and torch policies)."""
    for layer in range(first_layer, last_layer):
        w_at, b_at, n_in, n_out, act = (
            layers[layer, 0],
            layers[layer, 1],
            layers[layer, 2],
            layers[layer, 3],
            layers[layer, 4],
        )
        y = np.dot(x, params[w_at : w_at + n_in * n_out].reshape((n_in, n_out)))
        y += params[b_at : b_at + n_out]
        if act == 1:
            y = np.tanh(y)
        elif act == 2:
            y = np.maximum(y, np.float32(0.0))
        x = y
    return x


@njit(cache=True)
def _scores(
    agent,
    x,
    member_start,
    layer_start,
    column_start,
    columns,
    layers,
    params,
    action_start,
    action_subs,
    greedy,
):  # pragma: no cover
    """(n_actions,) float64 mean member probabilities of ``agent``'s actions."""
    scores = np.zeros(action_start[agent + 1] - action_start[agent], np.float64)
    m_lo, m_hi = member_start[agent], member_start[agent + 1]
    for m in range(m_lo, m_hi):
        logits = _forward(x, layer_start[m], layer_start[m + 1], layers, params)
        top = np.float64(logits.max())
        p = np.empty(logits.size, np.float64)
        total = 0.0
        for j in range(logits.size):
            p[j] = math.exp(np.float64(logits[j]) - top)
            total += p[j]
        c = column_start[m]
        for j in range(logits.size):
            scores[columns[c + j]] += p[j] / total
    return scores / (m_hi - m_lo)


@njit(cache=True)
def _choose(scores, greedy, wait_confidence):  # pragma: no cover
    """The greedy choice among ``greedy`` (the first of the largest; 0 if none); with a
    wait confidence p > 0, do nothing only when its share of the greedy actions' scores is
    >= p, else the most likely acting action (if one has a score)."""
    best, best_score = 0, -1.0
    for j in range(scores.size):
        if greedy[j] and scores[j] > best_score:
            best, best_score = j, scores[j]
    if best != 0 or wait_confidence <= 0.0:
        return best
    total, act, act_score = 0.0, 0, 0.0
    for j in range(scores.size):
        if greedy[j]:
            total += scores[j]
            if j > 0 and scores[j] > act_score:
                act, act_score = j, scores[j]
    if act > 0 and scores[0] / total < wait_confidence:  # not sure enough to wait: act
        return act
    return 0


@njit(cache=True)
def _agent_choice(
    agent,
    rho,
    line_status,
    line_cooldown,
    topo_vect,
    sub_cooldown,
    wait_confidence,
    start,
    feature_index,
    divisor,
    offset,
    upper,
    member_start,
    layer_start,
    column_start,
    columns,
    layers,
    params,
    action_start,
    action_subs,
    greedy,
):  # pragma: no cover
    """``agent``'s pure choice: :func:`_choose`, then 0 (wait) if its substation cools."""
    raw = raw_observation(rho, line_status, line_cooldown, topo_vect, sub_cooldown)
    x = features(agent, raw, start, feature_index, divisor, offset, upper)
    scores = _scores(
        agent, x, member_start, layer_start, column_start, columns, layers, params,
        action_start, action_subs, greedy,
    )  # fmt: skip
    lo = action_start[agent]
    choice = _choose(scores, greedy[lo : lo + scores.size], wait_confidence)
    sub = action_subs[lo + choice]
    if choice > 0 and sub >= 0 and sub_cooldown[sub] > 0:  # grid2op would refuse it
        return 0
    return choice


@njit(cache=True)
def _capa_first(rho, subs, padded, counts):  # pragma: no cover
    """Index of the CAPA candidate ranked first: the largest max rho of its lines, then
    the largest mean, then the lowest substation (candidates come sorted); one without
    lines (count 0) only when no candidate has lines (then the first)."""
    best, best_max, best_mean = 0, -np.inf, -np.inf
    for c in range(subs.size):
        n = counts[c]
        if n == 0:
            continue
        top, total = -np.inf, np.float32(0.0)
        for k in range(n):
            r = rho[padded[c, k]]
            total += r
            if r > top:
                top = r
        mean = total / np.float32(n)
        if top > best_max or (top == best_max and mean > best_mean):
            best, best_max, best_mean = c, top, mean
    return best


@njit(cache=True)
def _decide(
    rho,
    line_status,
    line_cooldown,
    topo_vect,
    sub_cooldown,
    danger,
    wait_confidence,
    subs,
    padded,
    counts,
    owners,
    start,
    feature_index,
    divisor,
    offset,
    upper,
    member_start,
    layer_start,
    column_start,
    columns,
    layers,
    params,
    action_start,
    action_subs,
    greedy,
):  # pragma: no cover
    """(agent, choice) of the pure decision; (-1, -1) when every rho < danger."""
    unsafe = False
    for i in range(rho.size):
        if rho[i] >= danger:
            unsafe = True
            break
    if not unsafe:
        return -1, -1
    agent = owners[_capa_first(rho, subs, padded, counts)]
    choice = _agent_choice(
        agent, rho, line_status, line_cooldown, topo_vect, sub_cooldown, wait_confidence,
        start, feature_index, divisor, offset, upper, member_start, layer_start,
        column_start, columns, layers, params, action_start, action_subs, greedy,
    )  # fmt: skip
    return agent, choice
