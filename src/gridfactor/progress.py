"""Console progress: one display per phase, plain lines off a terminal, a time summary.

``with phase("collect", total=140, unit="chunk") as bar: bar.update()`` shows one progress
display for the phase: a tqdm bar (count, rate, ETA) on a terminal; when stderr is not a
terminal (CI, nohup, a log file) a plain line every 10% instead, so logs hold no carriage
returns. Every phase's wall time is added to :data:`TIMES`; :func:`summary` formats them
for the final line of a command ("time: collect 270 s, MI 95 s, ...").
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

# phase name -> wall seconds, accumulated over the command (phases may repeat)
TIMES: dict[str, float] = {}
# a plain line each time the progress crosses this fraction
PLAIN_STEP = 0.10


def interactive() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class Phase:
    """Progress of one phase (use :func:`phase`)."""

    def __init__(
        self, name: str, total: int | None, unit: str, enabled: bool, record: bool = True
    ) -> None:
        self.name, self.total, self.unit, self.enabled = name, total, unit, enabled
        self.record = record
        self.count = 0
        self.start = time.perf_counter()
        self._next_plain = PLAIN_STEP
        self._bar = None
        if enabled and interactive():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=name, unit=unit, leave=False, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled and self.total:
            done = self.count / self.total
            if done >= self._next_plain or self.count == self.total:
                self._print_plain()
                while self._next_plain <= done:
                    self._next_plain += PLAIN_STEP

    def write(self, line: str) -> None:
        """A log line that does not break the bar."""
        if self._bar is not None:
            self._bar.write(line)
        else:
            print(line, flush=True)

    def _print_plain(self) -> None:
        elapsed = time.perf_counter() - self.start
        rate = self.count / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.count) / rate if rate > 0 and self.total else 0.0
        print(
            f"[{self.name}] {self.count}/{self.total} {self.unit}s "
            f"({100 * self.count / self.total:.0f}%), {rate:.2f} {self.unit}s/s, "
            f"ETA {eta:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self.record:
            TIMES[self.name] = TIMES.get(self.name, 0.0) + time.perf_counter() - self.start


@contextlib.contextmanager
def phase(
    name: str,
    total: int | None = None,
    unit: str = "item",
    enabled: bool = True,
    record: bool = True,
) -> Iterator[Phase]:
    """A progress display for one phase; its wall time goes into :data:`TIMES` (unless
    ``record`` is False: the caller times the parts itself with :func:`timed`)."""
    bar = Phase(name, total, unit, enabled, record)
    try:
        yield bar
    finally:
        bar.close()


@contextlib.contextmanager
def timed(name: str) -> Iterator[None]:
    """Time a phase without a progress display (e.g. the partition step)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        TIMES[name] = TIMES.get(name, 0.0) + time.perf_counter() - start


def summary(total: float | None = None) -> str:
    """``time: collect 270 s, MI 95 s, ...; total 430 s`` (phases in the order they ran)."""
    parts = [f"{name} {_seconds(s)}" for name, s in TIMES.items()]
    text = "time: " + ", ".join(parts) if parts else "time:"
    if total is not None:
        text += f"; total {_seconds(total)}"
    return text


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


def reset() -> None:
    TIMES.clear()


def quiet_libraries() -> None:
    """Silence the INFO/WARNING chatter of Ray, RLlib and grid2op that says nothing about
    the run (banners, deprecation notices); errors still show. ``import ray`` sets its own
    levels, so the commands call this again once ray is imported."""
    import logging
    import os

    for name in ("ray", "ray.rllib", "ray.tune", "ray.data", "grid2op"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
