"""Face detection: YuNet on OpenCV's dnn against YuNet on LiteRT, and what a lower detection
resolution would cost.

Speed (default): in one process, calls of cv2.FaceDetectorYN on the ONNX graph and of LiteRT on
the converted model (detector.YuNetDetector on models.YUNET and models.YUNET_TFLITE: the same
downscaling, the same post-processing) alternate on the 640x480, 1280x720 and 1920x1080
letterboxed versions of a one-face photo, on 1 and 2 threads; medians and their ratio are
printed with the load average. Alternating keeps the ratio fair when the machine is shared.

--resolution-study: for DETECT_MAX_PIXELS of 640x480 (today), 512x384 and 480x360, the faces
LiteRT finds on group/ and people/ of faces/ and on faces-calib/, whether each photo's largest
face is still found (IoU > 0.5 with today's), and the detect times.

--smoke (with either): one block of timed calls (SMOKE_RUNS) and the first SMOKE_PHOTOS photos
of each set, figures meaningless.

    .venv/bin/python benchmarks/detector.py [--resolution-study] [--calib-limit N] [--smoke]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from photoset import FACES, FACES_CALIB
from PIL import Image
from vision import PHOTO, SIZES, letterboxed, load

from facesearch.vision import detector as detector_module
from facesearch.vision import models
from facesearch.vision.detector import Detection, YuNetDetector
from facesearch.vision.errors import ImageError
from facesearch.vision.image import decode_image

RUNS = 40  # timed calls of each runner per row, alternating
BLOCK = 4  # timed calls in a row of one runner
RESOLUTIONS = ((640, 480), (512, 384), (480, 360))
SMOKE_RUNS, SMOKE_PHOTOS = BLOCK, 4  # a --smoke run's RUNS, and photos of each set


def alternating_medians(calls: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Median wall time in ms of each call over RUNS calls, the calls taking turns by blocks
    of BLOCK timed calls. Each block starts with an untimed call: OpenCV's and XNNPACK's pool
    threads spin a while after their work, and on two cores the first call after the other
    runtime's would pay for that spinning, which no analysis does."""
    for call in calls.values():
        for _ in range(3):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(RUNS // BLOCK):
        for name, call in calls.items():
            call()
            for _ in range(BLOCK):
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1000 for name, t in times.items()}


def speed(photos: Path) -> None:
    """OpenCV against LiteRT, per size and thread count."""
    onnx, tflite = models.read_model(models.YUNET), models.read_model(models.YUNET_TFLITE)
    photo = Image.open(photos / PHOTO).convert("RGB")
    images = {size: decode_image(letterboxed(photo, size)) for size in SIZES}
    print(f"YuNet detect(), {PHOTO} letterboxed; median of {RUNS} calls, alternating, ms")
    print(f"{'size':>10} {'threads':>7} {'opencv':>7} {'litert':>7} {'ratio':>6}  load")
    default_threads = cv2.getNumThreads()
    try:
        for threads in (1, 2):
            cv2.setNumThreads(threads)  # OpenCV's pool runs FaceDetectorYN's network
            opencv, litert = YuNetDetector(onnx), YuNetDetector(tflite, threads)
            for size, rgb in images.items():
                assert len(opencv.detect(rgb)) == len(litert.detect(rgb)) == 1
                row = alternating_medians(
                    {
                        "opencv": lambda rgb=rgb, d=opencv: d.detect(rgb),
                        "litert": lambda rgb=rgb, d=litert: d.detect(rgb),
                    }
                )
                print(
                    f"{size[0]:>5}x{size[1]:<4} {threads:>7} {row['opencv']:7.2f} "
                    f"{row['litert']:7.2f} {row['litert'] / row['opencv']:6.2f}  {load()}"
                )
    finally:
        cv2.setNumThreads(default_threads)
    print("(ratio: LiteRT's time over OpenCV's; both include the downscale to 640x480 pixels)")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def _kept(face: Detection, found: list[Detection]) -> bool:
    """Whether ``face`` is among ``found`` (IoU > 0.5)."""
    return any(_iou(face.box, other.box) > 0.5 for other in found)


def _photos(root: Path, kinds: tuple[str, ...], limit: int | None = None) -> list[Path]:
    with (root / "manifest.csv").open(newline="") as f:
        paths = [root / row["path"] for row in csv.DictReader(f) if row["kind"] in kinds]
    return paths[:limit]


def resolution_study(
    photos: Path, calib: Path, calib_limit: int | None, limit: int | None = None
) -> None:
    """Faces found, largest face kept and detect time at each DETECT_MAX_PIXELS (on the first
    ``limit`` photos of faces/ group and people)."""
    detector = YuNetDetector(models.read_model(models.YUNET_TFLITE))
    sets = {
        "faces/group": _photos(photos, ("group",), limit),
        "faces/people": _photos(photos, ("person",), limit),
        "faces-calib": _photos(calib, ("person",), calib_limit),
    }
    today = detector_module.DETECT_MAX_PIXELS
    print(f"DETECT_MAX_PIXELS study (LiteRT, {detector_module.DEFAULT_THREADS} threads)")
    print(
        f"{'set':>13} {'photos':>6} {'>max px':>7} {'max px':>9} {'faces':>6} "
        f"{'faces kept':>11} {'largest kept':>12} {'ms/photo':>8}"
    )
    for name, paths in sets.items():
        images = []
        for path in paths:
            try:
                images.append(decode_image(path.read_bytes()))
            except ImageError:
                continue  # refused by the service: never detected on
        found: dict[int, list[list[Detection]]] = {}
        for width, height in RESOLUTIONS:
            pixels = width * height
            # The module constant detect() reads: patched here only, to measure the alternative.
            detector_module.DETECT_MAX_PIXELS = pixels
            try:
                for rgb in images[:3]:
                    detector.detect(rgb)  # warm this size's interpreters
                start = time.perf_counter()
                found[pixels] = [detector.detect(rgb) for rgb in images]
                elapsed = (time.perf_counter() - start) * 1000 / max(1, len(images))
            finally:
                detector_module.DETECT_MAX_PIXELS = today
            base, now = found[RESOLUTIONS[0][0] * RESOLUTIONS[0][1]], found[pixels]
            largest = [_kept(faces[0], now[i]) for i, faces in enumerate(base) if faces]
            faces_kept = [_kept(face, now[i]) for i, faces in enumerate(base) for face in faces]
            larger = sum(1 for rgb in images if rgb.shape[0] * rgb.shape[1] > pixels)
            print(
                f"{name:>13} {len(images):>6} {larger:>7} {f'{width}x{height}':>9} "
                f"{sum(len(f) for f in found[pixels]):>6} "
                f"{f'{sum(faces_kept)}/{len(faces_kept)}':>11} "
                f"{f'{sum(largest)}/{len(largest)}':>12} {elapsed:8.2f}"
            )
    print("(>max px: photos over max px, the only ones it changes; kept: faces found at 640x480")
    print(" that are found again, IoU > 0.5; largest kept: the same for each photo's largest)")
    letterbox_time(photos)


def letterbox_time(photos: Path) -> None:
    """Detect time of the 1920x1080 letterboxed photo at each DETECT_MAX_PIXELS."""
    detector = YuNetDetector(models.read_model(models.YUNET_TFLITE))
    rgb = decode_image(letterboxed(Image.open(photos / PHOTO).convert("RGB"), SIZES[-1]))
    today = detector_module.DETECT_MAX_PIXELS
    times = []
    for width, height in RESOLUTIONS:
        detector_module.DETECT_MAX_PIXELS = width * height
        try:
            times.append(alternating_medians({"detect": lambda: detector.detect(rgb)})["detect"])
        finally:
            detector_module.DETECT_MAX_PIXELS = today
    labels = ", ".join(f"{w}x{h} {t:.2f} ms" for (w, h), t in zip(RESOLUTIONS, times, strict=True))
    print(f"1920x1080 letterboxed {PHOTO}: {labels}; load {load()}")


def main() -> None:
    """Run the speed comparison, or the resolution study."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=FACES)
    parser.add_argument("--calib", type=Path, default=FACES_CALIB)
    parser.add_argument("--resolution-study", action="store_true")
    parser.add_argument("--calib-limit", type=int, default=None, help="first N faces-calib photos")
    parser.add_argument("--smoke", action="store_true", help="a few calls and photos")
    args = parser.parse_args()
    limit = SMOKE_PHOTOS if args.smoke else None
    if args.smoke:
        global RUNS
        RUNS = SMOKE_RUNS
    print(f"load average {load()}")
    if args.resolution_study:
        photos, calib = args.photos.resolve(), args.calib.resolve()
        resolution_study(photos, calib, limit or args.calib_limit, limit)
    else:
        speed(args.photos.resolve())
    print(f"load average {load()}")


if __name__ == "__main__":
    main()
