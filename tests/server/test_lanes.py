"""The image lane: a flood of large requests leaves a thread to small ones, and small ones go
first, while large ones still run."""

from __future__ import annotations

import threading

from facesearch.server.lanes import LARGE_BYTES, ImageLane


def test_small_calls_pass_a_flood_of_large_ones() -> None:
    lane = ImageLane(2)
    release = threading.Event()
    started: list[str] = []

    def large(name: str) -> str:
        started.append(name)
        release.wait(10)
        return name

    try:
        floods = [lane.submit(5 * LARGE_BYTES, lambda i=i: large(f"large{i}")) for i in range(4)]
        # One thread is held by a large call; the other stays free for this one.
        assert lane.submit(100_000, lambda: "small").result(timeout=5) == "small"
        assert started == ["large0"]
        release.set()
        assert [f.result(timeout=10) for f in floods] == [f"large{i}" for i in range(4)]
    finally:
        release.set()
        lane.shutdown()


def test_queued_small_calls_run_before_earlier_large_ones() -> None:
    lane = ImageLane(1)  # one thread: large calls may use it, in turn with small ones
    gate = threading.Event()
    order: list[str] = []
    try:
        blocker = lane.submit(100, lambda: gate.wait(10))
        queued = [lane.submit(3 * LARGE_BYTES, lambda: order.append("large"))]
        queued.append(lane.submit(50_000, lambda: order.append("small")))
        gate.set()
        blocker.result(timeout=5)
        for future in queued:
            future.result(timeout=5)
        assert order == ["small", "large"]
    finally:
        gate.set()
        lane.shutdown()


def test_an_error_reaches_the_caller_and_shutdown_runs_what_is_queued() -> None:
    lane = ImageLane(2)

    def fail() -> None:
        raise ValueError("bad image")

    failing = lane.submit(10, fail)
    done = [lane.submit(10, lambda i=i: i) for i in range(5)]
    lane.shutdown()
    assert isinstance(failing.exception(timeout=1), ValueError)
    assert [f.result(timeout=1) for f in done] == list(range(5))
