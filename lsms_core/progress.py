"""Long jobs report progress as generators: each yields (done, total) and returns its result. The engine,
the referring pipeline and the refiner are written that way so a caller can cancel between steps and show
progress; ``run_to_end`` is the one place that drives such a generator to its result, and ``relay`` the one
place that runs one inside another (``result = yield from relay(inner, step)``)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TypeVar

ProgressFn = Callable[[int, int], None]
T = TypeVar("T")


def run_to_end(gen: Generator[tuple[int, int], None, T], progress: ProgressFn | None = None) -> T:
    """Drive ``gen`` to its end, passing each (done, total) to ``progress``; return what it returns."""
    while True:
        try:
            done, total = next(gen)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(done, total)


def relay(gen: Generator[tuple[int, int], None, T],
          step: Callable[[int, int], tuple[int, int]]) -> Generator[tuple[int, int], None, T]:
    """Re-yield ``gen``'s progress as ``step(done, total)`` (its place in an outer job) and return what it
    returns: ``result = yield from relay(inner, lambda d, t: (offset + d, outer_total))``."""
    while True:
        try:
            done, total = next(gen)
        except StopIteration as stop:
            return stop.value
        yield step(done, total)
