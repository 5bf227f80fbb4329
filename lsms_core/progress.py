"""Long jobs report progress as generators: each yields (done, total) and returns its result. The engine,
the referring pipeline and the refiner are written that way so a caller can cancel between steps and show
progress; ``run_to_end`` is the one place that drives such a generator to its result."""

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
