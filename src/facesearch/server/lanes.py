"""The image operations' threads: large requests never take every thread, and small ones go
first.

A flood of large images (a 9000x9000 PNG takes seconds to decode) served first-come first-served
would make a door camera's 100 kB search wait behind every one of them. So a request over
``LARGE_BYTES`` may run on all threads but one (small calls always find a thread free soon), and
each call's place in the queue is its arrival time plus its size over ``BYTES_PER_SECOND``: a
5 MB image lets later smaller calls pass for 20 s at most (within an SDK's 60 s read timeout),
so large ones are delayed under a flood, never starved.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

# Above this, a request body is a large image (a phone's 12 MP JPEG is 3-4 MB in base64).
LARGE_BYTES = 1_000_000
# A request's head start per byte it is smaller: 100 kB is 0.4 s, a 5 MB body 20 s.
BYTES_PER_SECOND = 250_000

_Entry = tuple[float, int, Future[Any], Callable[[], Any]]


class ImageLane:
    """``threads`` worker threads; at most ``threads - 1`` (at least one) run large calls."""

    def __init__(self, threads: int, name: str = "facesearch-image") -> None:
        self._small: list[_Entry] = []
        self._large: list[_Entry] = []
        self._large_running = 0
        self._large_limit = max(1, threads - 1)
        self._order = itertools.count()
        self._ready = threading.Condition()
        self._closing = False
        self._workers = [
            threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True)
            for i in range(threads)
        ]
        for worker in self._workers:
            worker.start()

    def submit(self, size: int, call: Callable[[], Any]) -> Future[Any]:
        """Run ``call`` on a worker thread; ``size`` (bytes of the request) sets its place."""
        future: Future[Any] = Future()
        with self._ready:
            if self._closing:
                raise RuntimeError("the image lane is shut down")
            place = time.monotonic() + size / BYTES_PER_SECOND
            queue = self._large if size > LARGE_BYTES else self._small
            heapq.heappush(queue, (place, next(self._order), future, call))
            self._ready.notify_all()
        return future

    def shutdown(self) -> None:
        """Run what is queued, then stop the workers and wait for them."""
        with self._ready:
            self._closing = True
            self._ready.notify_all()
        for worker in self._workers:
            worker.join()

    def _next(self) -> tuple[_Entry, bool] | None:
        """The call to run next and whether it is large, if one may run now."""
        may_run_large = self._large and self._large_running < self._large_limit
        if may_run_large and (not self._small or self._large[0] < self._small[0]):
            return heapq.heappop(self._large), True
        if self._small:
            return heapq.heappop(self._small), False
        return None

    def _work(self) -> None:
        while True:
            with self._ready:
                while (picked := self._next()) is None:
                    if self._closing and not self._small and not self._large:
                        return
                    self._ready.wait()
                (_, _, future, call), large = picked
                self._large_running += large
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(call())
                    except BaseException as error:  # handed to the awaiting request
                        future.set_exception(error)
            finally:
                with self._ready:
                    self._large_running -= large
                    self._ready.notify_all()
