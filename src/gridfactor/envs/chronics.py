"""Chronics held in memory, with a reset to any time step in O(1).

A reset to a random start (``env.reset(options={"init ts": t})``, what collection,
demonstrations, training and evaluation all do) makes grid2op fast-forward the chronic one
row at a time: ``GridValue.fast_forward`` calls ``load_next`` t - 1 times and drops the
results. On case14 that is about half of a reset (14 of 27 ms), and resets are most of an
episode that ends in a game over after a few steps.

:class:`FastForwardChronics` keeps grid2op's in-memory chronics (``MultifolderWithCache``) and
only changes ``fast_forward``: when the whole chronic is in memory (no chunked reading), the
rows in between are skipped by moving the chronic's row index, step counter and date
together, then the last row is loaded by grid2op itself, exactly as before. Anything else
(chunked data, a jump past the end, other data classes) takes grid2op's own path. The tests
check that episodes are identical with and without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from grid2op.Chronics import GridStateFromFile, MultifolderWithCache

from gridfactor.errors import UserError


class FastForwardChronics(MultifolderWithCache):
    """``MultifolderWithCache`` whose ``fast_forward`` jumps instead of reading row by row."""

    def fast_forward(self, nb_timestep: int) -> None:
        data = self.data
        skip = int(nb_timestep) - 1
        if skip > 0 and _can_jump(data, skip):
            # what `skip` calls of GridStateFromFile.load_next change, without building rows
            data.current_index += skip
            data.curr_iter += skip
            data.current_datetime += skip * data.time_interval
            nb_timestep = 1
        data.fast_forward(nb_timestep)


def _can_jump(data: object, skip: int) -> bool:
    """Whether ``skip`` rows can be jumped: file-based data fully in memory, the landing row
    and the row after it inside the chronic (else grid2op's own path raises as it should)."""
    if type(data).load_next is not GridStateFromFile.load_next:
        return False  # a data class with its own per-row logic
    if not isinstance(data, GridStateFromFile) or data.chunk_size is not None:
        return False
    if data.current_index + skip + 1 >= data.tmp_max_index:
        return False
    return not (data.max_iter > 0 and data.curr_iter + skip > data.max_iter)


# The in-memory injection arrays a perturbation scales (when the data class has them).
_LOAD_ARRAYS = ("load_p", "load_q", "load_p_forecast", "load_q_forecast")
_PROD_ARRAYS = ("prod_p", "prod_p_forecast")


class PerturbedChronics(FastForwardChronics):
    """:class:`FastForwardChronics` whose resets can play a perturbed copy of the chronic.

    The test data of a grid hold one or two chronics: a clone trained on one of them sees
    the same few days again and again, and loses held-out days in states it never saw.
    :meth:`perturb` sets, for the resets that follow, a factor per load (its p and q) and
    per generator (its p): the chronic's arrays (and its forecasts, so ``obs.simulate``
    sees the same grid) are scaled copies of the cached originals, and every row's
    generation is then rescaled so that it follows the scaled load (losses and mismatch go
    to the slack as before), capped at each generator's pmax. Without a perturbation the
    originals are played unchanged: episodes are identical to :class:`FastForwardChronics`'.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._factors: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None
        self._originals: dict[int, dict[str, np.ndarray]] = {}
        self._perturbed: set[int] = set()

    def perturb(
        self,
        load_factors: np.ndarray | None,
        gen_factors: np.ndarray | None,
        gen_pmax: np.ndarray | None = None,
    ) -> None:
        """Scale the chronics of the resets from now on: shapes (n_load,), (n_gen,), generation
        capped at ``gen_pmax``; ``None`` factors: play them as they are."""
        if load_factors is None or gen_factors is None:
            self._factors = None
        else:
            pmax = None if gen_pmax is None else np.asarray(gen_pmax, float)
            self._factors = (np.asarray(load_factors, float), np.asarray(gen_factors, float), pmax)

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)
        key = id(self.data)
        if self._factors is None and key not in self._perturbed:
            return
        if key not in self._originals:  # copied once per cached chronic, not at every reset
            self._originals[key] = _injection_arrays(self.data)
        originals = self._originals[key]
        if self._factors is None:
            for name, array in originals.items():
                setattr(self.data, name, array.copy())
            self._perturbed.discard(key)
            return
        load_factors, gen_factors, pmax = self._factors
        for name in _LOAD_ARRAYS:
            if name in originals:
                setattr(self.data, name, originals[name] * load_factors)
        for name, load_name in zip(_PROD_ARRAYS, ("load_p", "load_p_forecast"), strict=True):
            if name in originals and load_name in originals:
                scaled = _follow_load(
                    originals[name], gen_factors, originals[load_name], load_factors, pmax
                )
                setattr(self.data, name, scaled)
        self._perturbed.add(key)


def _injection_arrays(data: Any) -> dict[str, np.ndarray]:
    names = _LOAD_ARRAYS + _PROD_ARRAYS
    return {
        n: np.array(getattr(data, n), dtype=float)
        for n in names
        if isinstance(getattr(data, n, None), np.ndarray)
    }


def _follow_load(
    prod: np.ndarray,
    gen_factors: np.ndarray,
    load: np.ndarray,
    load_factors: np.ndarray,
    pmax: np.ndarray | None,
) -> np.ndarray:
    """Generation (T, n_gen) scaled by ``gen_factors``, then per row by the scaled load's
    ratio to the original generation's, capped at ``pmax``."""
    scaled = prod * gen_factors
    target = (
        prod.sum(axis=1) * (load * load_factors).sum(axis=1) / np.maximum(load.sum(axis=1), 1e-9)
    )
    scaled *= (target / np.maximum(scaled.sum(axis=1), 1e-9))[:, None]
    if pmax is not None:
        scaled = np.minimum(scaled, pmax)
    return scaled


def draw_perturbation(
    rng: np.random.Generator, n_load: int, n_gen: int, spread: float
) -> tuple[np.ndarray, np.ndarray]:
    """Factors of a perturbed chronic: load (n_load,), generation (n_gen,).

    Every load is scaled by one factor drawn uniformly in [1 - spread, 1 + spread] (the
    grid's stress level) times its own log-normal factor of sigma ``spread / 4`` (where the
    flows go); every generator by its own log-normal factor of the same sigma (which
    generators carry the load), before generation follows the load (see
    :class:`PerturbedChronics`).
    """
    level = rng.uniform(1.0 - spread, 1.0 + spread)
    sigma = spread / 4.0
    loads = level * np.exp(sigma * rng.standard_normal(n_load))
    gens = np.exp(sigma * rng.standard_normal(n_gen))
    return loads, gens


def perturbed_chronics(env: Any, env_name: str) -> PerturbedChronics:
    """``env``'s chronics, which must be able to play perturbed copies (``--augment``)."""
    chronics = env.chronics_handler.real_data
    if not isinstance(chronics, PerturbedChronics):
        raise UserError(
            f"--augment needs chronics held in memory; {env_name} keeps them in another "
            "form: run without --augment"
        )
    return chronics


def perturb_next_episodes(env: Any, rng: np.random.Generator, spread: float) -> None:
    """Draw a perturbation (:func:`draw_perturbation`) with ``rng``: ``env``'s next resets
    play it."""
    loads, gens = draw_perturbation(rng, env.n_load, env.n_gen, spread)
    perturbed_chronics(env, env.env_name).perturb(loads, gens, env.gen_pmax)


def check_augment(augment: float) -> None:
    if not 0.0 <= augment < 1.0:
        raise UserError(f"--augment must be in [0, 1), got {augment}; e.g. 0.2")
