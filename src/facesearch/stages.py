"""The stages of a request's work (decode, detect, landmarks, embed, attributes, search), timed
for whoever watches: the server's ``/metrics`` registers a watcher; with none, timing is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from time import perf_counter

Watcher = Callable[[str, float], None]

_watchers: list[Watcher] = []


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the enclosed work as stage ``name`` and tell every watcher (seconds)."""
    if not _watchers:
        yield
        return
    start = perf_counter()
    try:
        yield
    finally:
        elapsed = perf_counter() - start
        for watcher in tuple(_watchers):
            watcher(name, elapsed)


def watch(watcher: Watcher) -> Callable[[], None]:
    """Call ``watcher(stage, seconds)`` after each stage from now on; returns its remover."""
    _watchers.append(watcher)
    return lambda: _watchers.remove(watcher)
