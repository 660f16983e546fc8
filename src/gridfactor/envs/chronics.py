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

from grid2op.Chronics import GridStateFromFile, MultifolderWithCache


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
