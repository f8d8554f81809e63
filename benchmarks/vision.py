"""Vision speed and accuracy: per-stage timings at three image sizes, and pairs.csv accuracy.

For 640x480, 1280x720 and 1920x1080 versions of a real one-face photo (letterboxed, JPEG), prints
the median of 20 runs after warm-up of decoding, detection, landmarks and embedding, each stage's
share of the whole ``analyze`` call, and the call itself; then, at 640x480, the throughput and
median latency of one caller against two concurrent ones (as the server's threads run them); then
verification accuracy at similarity 80 on deepface's pairs.csv. The load average is printed
before and after: on a shared machine the timings mean little when it is over the core count.
``--smoke``: one warm-up and one timed run of each (SMOKE_RUNS) and the first SMOKE_PAIRS pairs,
figures meaningless.

    .venv/bin/python benchmarks/vision.py [--photos DIR] [--smoke]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from facesearch.vision import CURRENT, FACE_MODELS, get_analyzer
from facesearch.vision.image import decode_image, sniff_format

DEFAULT_PHOTOS = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "faces"
PHOTO = "people/barack_obama/1.jpg"
SIZES = ((640, 480), (1280, 720), (1920, 1080))
RUNS = 20
CONCURRENT_RUNS = 40  # analyses per caller in the concurrency rows
SMOKE_RUNS, SMOKE_PAIRS = 1, 8  # a --smoke run's RUNS and CONCURRENT_RUNS, and pairs


def median_ms(call: Callable[[], object]) -> float:
    """Median wall time of RUNS calls after three warm-up calls (fewer if RUNS is), in ms."""
    for _ in range(min(3, RUNS)):
        call()
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def letterboxed(photo: Image.Image, size: tuple[int, int]) -> bytes:
    """The photo fitted into ``size`` on a grey canvas, as JPEG bytes."""
    canvas = Image.new("RGB", size, (128, 128, 128))
    fitted = photo.copy()
    fitted.thumbnail(size, Image.Resampling.LANCZOS)
    canvas.paste(fitted, ((size[0] - fitted.width) // 2, (size[1] - fitted.height) // 2))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def speed(photos: Path) -> None:
    """Print the stage timings for each size."""
    analyzer = get_analyzer()
    analyzer.check_ready()
    runtime = analyzer._runtime()  # the calling thread's networks, to time stages one by one
    photo = Image.open(photos / PHOTO).convert("RGB")
    previous = [m for m in FACE_MODELS.values() if m is not CURRENT][-1]
    print(f"one-face photo {PHOTO}; median of {RUNS} runs, ms; load average {load()}")
    print(
        f"{'size':>10} {'faces':>5} {'decode':>7} {'detect':>7} {'landmk':>7} {'embed':>7} "
        f"{'analyze':>8} {'+attrs':>7} {'prev.model':>10}  share: decode/detect/landmk/embed/rest"
    )
    for size in SIZES:
        data = letterboxed(photo, size)
        rgb = decode_image(data)
        detections = runtime.detector.detect(rgb)
        first = detections[0]
        five = runtime.mesher.mesh(rgb, first).five_points()
        aligned = runtime.own.embedder(CURRENT).align(rgb, five)
        # The networks an analysis alone runs on (the wide ones), held only while stages are timed.
        with analyzer._networks() as networks:
            row = {
                "decode": median_ms(lambda data=data: decode_image(data)),
                "detect": median_ms(lambda rgb=rgb: networks.detector.detect(rgb)),
                "landmarks": median_ms(lambda rgb=rgb, d=first: networks.mesher.mesh(rgb, d)),
                "embed": median_ms(
                    lambda rgb=rgb, five=five, a=aligned: (
                        networks.embedder(CURRENT).align(rgb, five),
                        networks.embedder(CURRENT).embed(a),
                    )
                ),
            }
        row |= {
            # The embedding is computed on first use: ask for it, as a search does.
            "analyze": median_ms(lambda data=data: analyzer.analyze(data).faces[0].embedding),
            "attrs": median_ms(
                lambda data=data: analyzer.analyze(data, attributes=True).faces[0].embedding
            ),
            # The baseline in the same run: analyze with the previous face model.
            "previous": median_ms(
                lambda data=data: analyzer.analyze(data, face_model=previous).faces[0].embedding
            ),
        }
        label = f"{size[0]}x{size[1]}"
        stages = [row[k] for k in ("decode", "detect", "landmarks", "embed")]
        shares = [*stages, row["analyze"] - sum(stages)]
        share = "/".join(f"{100 * v / row['analyze']:.0f}" for v in shares)
        print(
            f"{label:>10} {len(detections):>5} {row['decode']:7.1f} {row['detect']:7.1f} "
            f"{row['landmarks']:7.1f} {row['embed']:7.1f} {row['analyze']:8.1f} "
            f"{row['attrs']:7.1f} {row['previous']:10.1f}  {share} %"
        )
    print("(landmarks and embed are per face; the photo has one face, so per image = per face;")
    print(f" prev.model: analyze with {previous.version}, the baseline of {CURRENT.version})")
    print(f"load average {load()}")


def load() -> str:
    """The 1-minute load average (of this machine's cores) as text."""
    return f"{os.getloadavg()[0]:.2f} ({len(os.sched_getaffinity(0))} cores)"


def concurrency(photos: Path) -> None:
    """Throughput and median latency at 640x480 with one caller, then with two at once."""
    analyzer = get_analyzer()
    data = letterboxed(Image.open(photos / PHOTO).convert("RGB"), SIZES[0])

    def search() -> np.ndarray:
        return analyzer.analyze(data).faces[0].embedding

    def caller(ready: threading.Barrier, times: list[float], ends: list[float]) -> None:
        for _ in range(3):  # this thread's networks, built and warm
            search()
        ready.wait()
        for _ in range(CONCURRENT_RUNS):
            start = time.perf_counter()
            search()
            times.append(time.perf_counter() - start)
        ends.append(time.perf_counter())

    print(f"640x480, {CONCURRENT_RUNS} analyses per caller; load average {load()}")
    for callers in (1, 2):
        times: list[float] = []
        ends: list[float] = []
        ready = threading.Barrier(callers + 1)
        threads = [
            threading.Thread(target=caller, args=(ready, times, ends)) for _ in range(callers)
        ]
        for thread in threads:
            thread.start()
        ready.wait()
        start = time.perf_counter()
        for thread in threads:
            thread.join()
        print(
            f"{callers} caller(s): {len(times) / (max(ends) - start):5.1f} analyses/s, "
            f"p50 {statistics.median(times) * 1000:.1f} ms a call"
        )
    print(f"load average {load()}")


def accuracy(photos: Path, limit: int | None = None) -> None:
    """Print pairs.csv verification accuracy at similarity 80 (on its first ``limit`` pairs)."""
    analyzer = get_analyzer()
    cache: dict[str, np.ndarray | None] = {}

    def embedding(path: str) -> np.ndarray | None:
        if path not in cache:
            data = (photos / path).read_bytes()
            faces = analyzer.analyze(data).faces if sniff_format(data) else []
            cache[path] = faces[0].embedding if faces else None
        return cache[path]

    correct = total = 0
    with (photos / "pairs.csv").open() as f:
        for row in list(csv.DictReader(f))[:limit]:
            a, b = embedding(row["path_a"]), embedding(row["path_b"])
            if a is None or b is None:
                continue
            match = float(CURRENT.calibration.scores(a, b[None])[0]) >= 80
            correct += match == (row["same_person"] == "1")
            total += 1
    print(
        f"pairs.csv verification accuracy at similarity 80: {correct / total:.2%} "
        f"({correct}/{total} pairs)"
    )


def main() -> None:
    """Run the speed and accuracy benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("FACESEARCH_TEST_PHOTOS", str(DEFAULT_PHOTOS))
    parser.add_argument("--photos", type=Path, default=Path(default))
    parser.add_argument("--smoke", action="store_true", help="one run of each, a few pairs")
    args = parser.parse_args()
    photos = args.photos.resolve()
    if args.smoke:
        global RUNS, CONCURRENT_RUNS
        RUNS = CONCURRENT_RUNS = SMOKE_RUNS
    speed(photos)
    concurrency(photos)
    accuracy(photos, SMOKE_PAIRS if args.smoke else None)


if __name__ == "__main__":
    main()
