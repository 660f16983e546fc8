"""Synthetic factored MDPs with known blocks, as Gymnasium environments.

Two generators, both from the seed:

* :class:`CopyMDP`: each next-state variable s'_i copies, at every step, a uniformly random
  one of its related state/action variables (``relation[i, j]`` says x_j may be copied into
  s'_i, with x = [s, a]).
* :class:`FactoredMDP`: per block, a random conditional table P(s'_B | s_B, a_B); the joint
  transition is the product over blocks.

Both expose ``ground_truth`` (a :class:`~gridfactor.factorize.Factorization` whose targets are
``s_next_<i>`` and inputs ``s_<i>`` then ``a_<j>``) and ``relation`` (the true edges), and
``rollout(n_steps)`` for fast data generation under uniformly random actions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from gridfactor.errors import UserError
from gridfactor.factorization import Cluster, Factorization


@dataclass(frozen=True)
class Block:
    """One true sub-problem: indices of its state variables and action variables."""

    states: tuple[int, ...]
    actions: tuple[int, ...]


# The seed's case: 5 state and 3 action binary variables in two blocks.
SEED_BLOCKS = (Block((0, 2, 4), (0, 1)), Block((1, 3), (2,)))


def random_blocks(
    n_state: int, n_action: int, n_blocks: int, rng: np.random.Generator
) -> tuple[Block, ...]:
    """Split state and action variables into ``n_blocks`` random non-empty blocks."""
    if n_blocks < 1 or n_state < n_blocks or n_action < n_blocks:
        raise UserError(
            f"cannot make {n_blocks} blocks from {n_state} state and {n_action} action "
            "variables: every block needs at least one of each; lower --n-blocks"
        )

    def split(n: int) -> list[list[int]]:
        labels = np.concatenate([np.arange(n_blocks), rng.integers(0, n_blocks, n - n_blocks)])
        labels = rng.permutation(labels)
        return [sorted(np.flatnonzero(labels == b).tolist()) for b in range(n_blocks)]

    return tuple(
        Block(tuple(s), tuple(a)) for s, a in zip(split(n_state), split(n_action), strict=True)
    )


def random_unequal_blocks(
    rng: np.random.Generator,
    *,
    state_sizes: tuple[int, int] = (2, 5),
    action_sizes: tuple[int, int] = (1, 3),
    n_blocks: tuple[int, int] = (2, 5),
) -> tuple[int, int, tuple[Block, ...]]:
    """Blocks of random, unequal sizes; variables shuffled so blocks are interleaved.

    Returns (n_state, n_action, blocks).
    """
    count = int(rng.integers(n_blocks[0], n_blocks[1] + 1))
    s_sizes = rng.integers(state_sizes[0], state_sizes[1] + 1, count)
    a_sizes = rng.integers(action_sizes[0], action_sizes[1] + 1, count)
    s_perm = rng.permutation(int(s_sizes.sum()))
    a_perm = rng.permutation(int(a_sizes.sum()))
    s_edges = np.concatenate([[0], np.cumsum(s_sizes)])
    a_edges = np.concatenate([[0], np.cumsum(a_sizes)])
    blocks = tuple(
        Block(
            tuple(sorted(s_perm[s_edges[b] : s_edges[b + 1]].tolist())),
            tuple(sorted(a_perm[a_edges[b] : a_edges[b + 1]].tolist())),
        )
        for b in range(count)
    )
    return int(s_sizes.sum()), int(a_sizes.sum()), blocks


def _check_blocks(n_state: int, n_action: int, blocks: Sequence[Block]) -> None:
    states = sorted(s for b in blocks for s in b.states)
    actions = sorted(a for b in blocks for a in b.actions)
    if states != list(range(n_state)) or actions != list(range(n_action)):
        raise UserError("blocks must partition the state and action variables exactly once each")


class _FactoredBase(gym.Env):
    """Shared parts: spaces, names, ground truth, random-action rollouts."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        n_state: int,
        n_action: int,
        blocks: Sequence[Block],
        n_values: int = 2,
        noise: float = 0.0,
        seed: int | None = None,
    ) -> None:
        _check_blocks(n_state, n_action, blocks)
        if n_values < 2:
            raise UserError(f"variables need at least 2 values, got {n_values}")
        if not 0.0 <= noise < 1.0:
            raise UserError(f"noise probability {noise} is outside [0, 1)")
        self.n_state, self.n_action, self.n_values = n_state, n_action, n_values
        self.blocks = tuple(blocks)
        self.noise = noise
        self.observation_space = gym.spaces.MultiDiscrete([n_values] * n_state)
        self.action_space = gym.spaces.MultiDiscrete([n_values] * n_action)
        self._rng = np.random.default_rng(seed)
        self._state = np.zeros(n_state, dtype=np.int64)

    # ---- names and ground truth ----------------------------------------------------------
    @property
    def state_names(self) -> list[str]:
        return [f"s{i}" for i in range(self.n_state)]

    @property
    def action_names(self) -> list[str]:
        return [f"a{j}" for j in range(self.n_action)]

    @property
    def relation(self) -> np.ndarray:
        """(n_state, n_state + n_action) bool: x_j influences s'_i."""
        relation = np.zeros((self.n_state, self.n_state + self.n_action), dtype=bool)
        for block in self.blocks:
            inputs = list(block.states) + [self.n_state + a for a in block.actions]
            relation[np.ix_(block.states, inputs)] = True
        return relation

    @property
    def ground_truth(self) -> Factorization:
        return Factorization(
            target_names=[f"s_next_{n}" for n in self.state_names],
            input_names=[f"s_{n}" for n in self.state_names]
            + [f"a_{n}" for n in self.action_names],
            clusters=sorted(
                (
                    Cluster(b.states, b.states + tuple(self.n_state + a for a in b.actions))
                    for b in self.blocks
                ),
                key=lambda c: c.targets[0],
            ),
            meta={"source": "ground truth"},
        )

    # ---- Gymnasium API -----------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._state = self._rng.integers(0, self.n_values, self.n_state)
        return self._state.copy(), {}

    def step(self, action):
        action = np.asarray(action, dtype=np.int64)
        self._state = self._transition(self._state, action, self._rng)
        return self._state.copy(), 0.0, False, False, {}

    def _transition(
        self, state: np.ndarray, action: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        raise NotImplementedError

    def _apply_noise(self, next_state: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.noise > 0.0:
            flip = rng.random(self.n_state) < self.noise
            next_state = np.where(flip, rng.integers(0, self.n_values, self.n_state), next_state)
        return next_state

    def rollout(self, n_steps: int, seed: int) -> dict[str, np.ndarray]:
        """One trajectory of ``n_steps`` uniformly random actions.

        Returns {"s": (n_steps, n_state), "a": (n_steps, n_action),
        "s_next": (n_steps, n_state)} int arrays.
        """
        rng = np.random.default_rng(seed)
        states = np.empty((n_steps + 1, self.n_state), dtype=np.int64)
        actions = rng.integers(0, self.n_values, (n_steps, self.n_action))
        states[0] = rng.integers(0, self.n_values, self.n_state)
        for t in range(n_steps):
            states[t + 1] = self._transition(states[t], actions[t], rng)
        return {"s": states[:-1], "a": actions, "s_next": states[1:]}


class CopyMDP(_FactoredBase):
    """s'_i copies a uniformly random one of its related variables x_j (x = [s, a]).

    ``relation`` defaults to every pair within a block; pass one to make sparser blocks.
    """

    def __init__(self, *args: Any, relation: np.ndarray | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._relation = super().relation if relation is None else np.asarray(relation, bool)
        if self._relation.shape != (self.n_state, self.n_state + self.n_action):
            raise UserError(
                f"relation must have shape (n_state, n_state + n_action) = "
                f"({self.n_state}, {self.n_state + self.n_action}), got {self._relation.shape}"
            )
        if not self._relation.any(axis=1).all():
            raise UserError("every next-state variable needs at least one related variable")
        # Candidate inputs per target, padded into one array: one vectorised draw per step.
        self._n_candidates = self._relation.sum(axis=1)
        self._candidates = np.zeros((self.n_state, self._n_candidates.max()), dtype=np.int64)
        for i, row in enumerate(self._relation):
            self._candidates[i, : self._n_candidates[i]] = np.flatnonzero(row)

    @property
    def relation(self) -> np.ndarray:
        return self._relation

    def _transition(self, state, action, rng):
        inputs = np.concatenate([state, action])
        slots = (rng.random(self.n_state) * self._n_candidates).astype(np.int64)
        picks = self._candidates[np.arange(self.n_state), slots]
        return self._apply_noise(inputs[picks], rng)


class FactoredMDP(_FactoredBase):
    """Per block, a random conditional table P(s'_B | s_B, a_B); the joint transition is the
    product over blocks.

    Each row of a block's table is ``randomness * Dirichlet(concentration) + (1 -
    randomness) * onehot(m(condition))`` where ``m`` sets every next-state variable of the
    block to a level (d equally frequent levels) of a random positive weighted sum of the
    block's inputs.
    ``randomness=1`` (default) is the seed's purely random table. Why the other part: a
    purely random table over many inputs behaves like a random (XOR-like) function, whose
    dependence on any *single* input is tiny (pairwise MI ~1e-4 nats for a block of 7
    ternary inputs), so no pairwise-MI method can see the block; the monotone part gives
    each input a pairwise footprint, as physical couplings usually do.
    """

    def __init__(
        self, *args: Any, concentration: float = 0.2, randomness: float = 1.0, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if not 0.0 <= randomness <= 1.0:
            raise UserError(f"randomness {randomness} is outside [0, 1]")
        d = self.n_values
        table_rng = np.random.default_rng(self._rng.integers(2**63))
        self._tables = []
        for block in self.blocks:
            n_inputs = len(block.states) + len(block.actions)
            n_conditions = d**n_inputs
            n_outcomes = d ** len(block.states)
            table = table_rng.dirichlet(np.full(n_outcomes, concentration), n_conditions)
            if randomness < 1.0:
                weights = table_rng.uniform(0.5, 1.5, (len(block.states), n_inputs))
                # Digits of every condition index = the block's input values, first = most
                # significant (same encoding as _transition).
                digits = (np.arange(n_conditions)[:, None] // d ** np.arange(n_inputs)[::-1]) % d
                # Weighted sums cut into d equally frequent levels (max entropy next state).
                sums = digits @ weights.T
                ranks = sums.argsort(axis=0, kind="stable").argsort(axis=0, kind="stable")
                levels = ranks * d // n_conditions
                outcome = levels @ (d ** np.arange(len(block.states))[::-1])
                table = randomness * table
                table[np.arange(n_conditions), outcome] += 1.0 - randomness
            self._tables.append(np.cumsum(table, axis=1))

    def _transition(self, state, action, rng):
        d = self.n_values
        next_state = np.empty(self.n_state, dtype=np.int64)
        for block, cdf in zip(self.blocks, self._tables, strict=True):
            condition = 0
            for value in [*state[list(block.states)], *action[list(block.actions)]]:
                condition = condition * d + int(value)
            outcome = int(np.searchsorted(cdf[condition], rng.random(), side="right"))
            outcome = min(outcome, cdf.shape[1] - 1)
            for index in reversed(block.states):
                next_state[index] = outcome % d
                outcome //= d
        return self._apply_noise(next_state, rng)


GENERATORS = {"copy": CopyMDP, "factored": FactoredMDP}


def make_synthetic(
    generator: str,
    n_state: int,
    n_action: int,
    blocks: Sequence[Block],
    *,
    n_values: int = 2,
    noise: float = 0.0,
    seed: int = 0,
    **options: Any,
) -> _FactoredBase:
    """Build a synthetic MDP by generator name ('copy' or 'factored'); ``options`` go to
    the generator (e.g. ``randomness`` of 'factored')."""
    if generator not in GENERATORS:
        raise UserError(f"unknown generator {generator!r}; use one of {', '.join(GENERATORS)}")
    return GENERATORS[generator](
        n_state, n_action, blocks, n_values=n_values, noise=noise, seed=seed, **options
    )
