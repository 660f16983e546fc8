"""Imitation: reduce each agent's action set to what the expert uses, then clone the expert.

Action sets (:func:`reduce_action_sets`): per agent, do nothing plus the expert's most
frequent choices in that agent's decisions, up to the smallest set covering ``coverage``
(95%) of them. The learning problem shrinks from hundreds of topologies to the few that
matter; the sets are saved in the run (``action_sets.json``) and used by training and
evaluation alike.

Cloning (:func:`clone_expert`): supervised cross-entropy training of the very RLModule that
PPO then fine-tunes (the learner's torch module, so no weight conversion), on the
demonstrations of the training episodes; the held-out episodes of the demonstrations give
the top-1 / top-5 agreement with the expert. RLlib's offline BC/MARWIL needs single-agent
episodes in its offline format; the policies here are per-agent classifiers over recorded
(observation, label) pairs, which plain torch trains in seconds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from gridfactor.agents.cluster import DO_NOTHING_KEY, ClusterAgent
from gridfactor.errors import UserError

# share of the demonstration episodes held out to measure agreement (by episode)
HELD_OUT_EPISODES = 0.2


def label_keys(frame: Any) -> list[tuple[int, int]]:
    """(n,) canonical action ids of the expert's labels."""
    return list(
        zip(
            frame["label_sub"].astype(int).tolist(),
            frame["label_index"].astype(int).tolist(),
            strict=True,
        )
    )


def reduce_action_sets(
    frame: Any, agents: list[ClusterAgent], *, coverage: float = 0.95, rows_of: Any = None
) -> dict[str, list[tuple[int, int]]]:
    """Per agent: do nothing + the fewest most-chosen actions covering ``coverage`` of the
    expert's choices in that agent's decisions (ties broken by canonical id).

    ``rows_of(agent_id)`` gives the rows of the frame an agent learns from (default: the rows
    whose ``agent`` column is its id). ``coverage >= 1`` keeps every chosen action.
    """
    if not 0.0 < coverage <= 1.0:
        raise UserError(f"--coverage must be in (0, 1], got {coverage}; e.g. 0.95")
    sets = {}
    for agent in agents:
        rows = frame[frame["agent"] == agent.agent_id] if rows_of is None else rows_of(agent)
        counts = Counter(label_keys(rows))
        total = sum(counts.values())
        chosen: list[tuple[int, int]] = [DO_NOTHING_KEY]
        covered = counts.get(DO_NOTHING_KEY, 0)
        for key, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            if total and covered / total >= coverage:
                break
            if key == DO_NOTHING_KEY or agent.index_of(key) is None:
                continue
            chosen.append(key)
            covered += count
        sets[agent.agent_id] = chosen
    return sets


@dataclass
class CloneReport:
    """Agreement with the expert of one cloned policy."""

    agent: str
    n_train: int
    n_held_out: int
    n_actions: int
    dropped: int  # rows whose label is outside the reduced action set
    top1: float  # held-out agreement (NaN without held-out rows)
    top5: float
    train_top1: float
    final_loss: float
    # held-out rows where the greedy action is one the expert saw end the episode (NaN
    # without held-out rows or without the recorded outcomes)
    top1_game_over: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def held_out_episodes(frame: Any, seed: int) -> np.ndarray:
    """(k,) episode ids kept out of cloning to measure agreement (seeded)."""
    episodes = np.sort(frame["episode"].unique())
    n = int(round(HELD_OUT_EPISODES * len(episodes)))
    if len(episodes) < 5 or n == 0:
        return np.array([], dtype=int)
    rng = np.random.default_rng([seed, 0x62632])
    return np.sort(rng.choice(episodes, size=n, replace=False))


def training_pairs(
    rows: Any, agent: ClusterAgent, obs_column: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X (n, d) float32, y (n,) action indices, keep (len(rows),) bool) for one agent: the
    rows whose label is one of its actions (``~keep``: dropped)."""
    index = [agent.index_of(key) for key in label_keys(rows)]
    keep = np.array([i is not None for i in index], dtype=bool)
    if not keep.any():
        return np.zeros((0, 0), np.float32), np.zeros(0, int), keep
    x = np.stack(rows[obs_column].to_numpy()[keep]).astype(np.float32)
    y = np.array([i for i in index if i is not None], dtype=np.int64)
    return x, y, keep


def simulated_outcomes(
    rows: Any, agent: ClusterAgent, candidate_keys: dict[str, list[tuple[int, int]]]
) -> tuple[np.ndarray, np.ndarray]:
    """What the expert's simulation said of each of the agent's actions in each row.

    Returns (rho, codes), both (len(rows), agent.n_actions): the simulated max rho (inf when
    not feasible) and the outcome code (see :data:`gridfactor.sim.candidates.OUTCOMES`),
    -1 where the row's zone did not simulate the action (another zone's, for the
    centralized agent). ``candidate_keys[zone]``: the canonical ids of the zone's full
    candidate list, the order of a row's ``sim_max_rho`` and ``sim_outcome``.
    """
    n, k = len(rows), agent.n_actions
    rho = np.full((n, k), np.inf, dtype=np.float32)
    codes = np.full((n, k), -1, dtype=np.int8)
    position = {
        zone: {tuple(key): j for j, key in enumerate(keys)} for zone, keys in candidate_keys.items()
    }
    learner_keys = [tuple(key) for key in agent.action_keys]
    zones = rows["agent"].to_numpy()
    outcomes = rows["sim_outcome"].to_numpy()
    rhos = rows["sim_max_rho"].to_numpy() if "sim_max_rho" in rows else None
    for r in range(n):
        where = position[zones[r]]
        pairs = [(i, where.get(key)) for i, key in enumerate(learner_keys)]
        pairs = [(i, j) for i, j in pairs if j is not None and j < len(outcomes[r])]
        if not pairs:
            continue
        mine, theirs = np.array(pairs).T
        codes[r, mine] = outcomes[r][theirs]
        if rhos is not None:
            rho[r, mine] = rhos[r][theirs]
    return rho, codes


def game_over_mask(
    rows: Any, agent: ClusterAgent, candidate_keys: dict[str, list[tuple[int, int]]]
) -> np.ndarray:
    """(len(rows), agent.n_actions) bool: True where the agent's action, simulated by the
    expert in that row's state, ended the episode (see :func:`simulated_outcomes`)."""
    from gridfactor.sim.candidates import GAME_OVER

    return simulated_outcomes(rows, agent, candidate_keys)[1] == GAME_OVER


def ranking_targets(
    rho: np.ndarray, codes: np.ndarray, labels: np.ndarray, temperature: float
) -> np.ndarray:
    """(n, k) target distributions: softmax(-rho / temperature) over each row's feasible
    simulated actions (the expert's whole ranking, not only its choice); the one-hot
    ``labels`` ((n,) action indices) where a row has no feasible simulated action.

    A hard label says only which action won; in a state where acting lowers the max rho
    by 0.05 in twenty ways and doing nothing wins by 0.001 in others, the labels spread
    the acting mass over twenty classes and doing nothing wins the argmax. The ranking
    gives every action its share of the probability by how good its simulation was.
    """
    from gridfactor.sim.candidates import FEASIBLE

    feasible = (codes == FEASIBLE) & np.isfinite(rho)
    score = np.where(feasible, -rho / temperature, -np.inf).astype(np.float64)
    best = score.max(axis=1, keepdims=True)
    has = np.isfinite(best[:, 0])
    weights = np.where(feasible, np.exp(score - np.where(has[:, None], best, 0.0)), 0.0)
    targets = np.zeros(rho.shape, dtype=np.float32)
    targets[has] = weights[has] / weights[has].sum(axis=1, keepdims=True)
    targets[np.flatnonzero(~has), labels[~has]] = 1.0
    return targets


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread inside the block, then restore the thread count.

    The clones' minibatches (128 rows, 128x128 MLPs) gain nothing from a second thread,
    but torch's spinning OpenMP threads collide with any other work on the cores: two
    cloning runs side by side on 2 cores took 288 s each with the default threads against
    18 s on one thread (15 s alone, either way, and the same weights).
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _fatal_share(logits: Any, fatal: Any) -> float:
    """Share of rows whose greedy action is marked in ``fatal`` ((n, k) 0/1)."""
    import torch

    if fatal is None or len(logits) == 0:
        return float("nan")
    greedy = torch.argmax(logits, dim=1)
    return float(fatal[torch.arange(len(greedy)), greedy].mean())


def _accuracy(logits: Any, y: Any, k: int) -> float:
    import torch

    if len(y) == 0:
        return float("nan")
    top = torch.topk(logits, min(k, logits.shape[1]), dim=1).indices
    return float((top == y[:, None]).any(dim=1).float().mean())


def clone_expert(
    module: Any,
    rows: Any,
    agent: ClusterAgent,
    *,
    obs_column: str,
    held_out: np.ndarray,
    epochs: int = 60,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    avoid: float = 0.0,
    game_over: np.ndarray | None = None,
    ranking: tuple[np.ndarray, np.ndarray, float] | None = None,
) -> CloneReport:
    """Fit ``module`` (an RLlib torch RLModule) to the expert's labels in ``rows``.

    Cross-entropy on the policy logits (``forward_train``'s ``action_dist_inputs``) over the
    rows of the episodes not in ``held_out``; Adam, minibatches, a fixed number of epochs.
    With ``avoid > 0`` and ``game_over`` ((len(rows), n_actions) bool, see
    :func:`game_over_mask`), an unlikelihood term ``-avoid * sum log(1 - p(a))`` over the
    actions the expert's simulation saw end the episode in that state: cross-entropy only
    asks for the label to win, this asks the policy to keep the fatal actions improbable.
    """
    import torch

    x, y, keep = training_pairs(rows, agent, obs_column)
    dropped = int((~keep).sum())
    if len(y) == 0:
        return CloneReport(agent.agent_id, 0, 0, agent.n_actions, dropped, *(float("nan"),) * 4)
    episodes = rows["episode"].to_numpy()[keep]
    test = np.isin(episodes, held_out)
    x_t, y_t = torch.as_tensor(x), torch.as_tensor(y)
    # the targets: class indices (the labels) or distributions (the ranking)
    target = y_t
    if ranking is not None:
        rho, codes, temperature = ranking
        target = torch.as_tensor(ranking_targets(rho[keep], codes[keep], y, temperature))
    fatal_all = None if game_over is None else torch.as_tensor(game_over[keep], dtype=torch.float32)
    fatal = fatal_all if avoid > 0.0 else None
    train_idx = np.flatnonzero(~test)
    gen = torch.Generator().manual_seed(int(seed))
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    module.train()
    loss = torch.tensor(float("nan"))
    with one_torch_thread():
        for _ in range(epochs):
            order = torch.as_tensor(train_idx)[torch.randperm(len(train_idx), generator=gen)]
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                logits = module.forward_train({"obs": x_t[batch]})["action_dist_inputs"]
                loss = torch.nn.functional.cross_entropy(logits, target[batch])
                if fatal is not None:
                    # log(1 - p) as log(-expm1(log p)): accurate for small p; p = 1 clamped
                    log_p = torch.log_softmax(logits, dim=1)
                    log_rest = torch.log(-torch.expm1(log_p.clamp(max=-1e-6)))
                    loss = loss - avoid * (log_rest * fatal[batch]).sum(dim=1).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    module.eval()
    with torch.no_grad():
        logits = module.forward_train({"obs": x_t})["action_dist_inputs"]
    tr, te = torch.as_tensor(~test), torch.as_tensor(test)
    report = CloneReport(
        agent=agent.agent_id,
        n_train=int((~test).sum()),
        n_held_out=int(test.sum()),
        n_actions=agent.n_actions,
        dropped=dropped,
        top1=_accuracy(logits[te], y_t[te], 1),
        top5=_accuracy(logits[te], y_t[te], 5),
        train_top1=_accuracy(logits[tr], y_t[tr], 1),
        final_loss=float(loss),
        top1_game_over=_fatal_share(logits[te], None if fatal_all is None else fatal_all[te]),
    )
    if not np.isfinite(report.final_loss):
        raise RuntimeError(f"imitation of {agent.agent_id} diverged (loss {report.final_loss})")
    return report
