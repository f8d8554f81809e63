"""Stored-video speed, memory and accuracy (facesearch.vision.video).

Speed: for each labelled clip (and a long one, if given), the analysis of the whole clip as a
face search job makes it (each face analysed whole searched among the enrol photos, near misses
looked at again; the collection's search itself is benchmarks/search.py's) as a multiple of real
time (the issue's targets: 640x360 at 30 fps 15x, 1280x720 6x, 1920x1080 3x),
against the decode alone in the same process (the baseline: grab every frame, convert the
sampled ones), with each stage's share. Memory: the RSS growth from before the analysis to its
peak (target under 300 MB whatever the length: run it on a 10-minute clip, made by
``make_videos.py --long 10`` under /tmp, never in the repository). Accuracy on the labelled clips
(enrol photos analysed, then per shot): enrolled people found, strangers matched, empty shots
with a face, one index per face. The load average is printed before and after: on a shared
machine the speeds mean little when it is over the core count (the process's CPU time, printed
beside, varies less).

    PYTHONPATH=tests .venv/bin/python benchmarks/video.py [--videos DIR] [--long /tmp/long.mp4]
    PYTHONPATH=tests .venv/bin/python benchmarks/video.py --smoke 2   # the suite's: 2 s of a clip
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
from support.video_labels import (
    NearMisses,
    Scores,
    photos_dir,
    read_manifest,
    score_clip,
    seen_faces,
    videos_dir,
)

from facesearch.stages import watch
from facesearch.vision import CURRENT, get_analyzer
from facesearch.vision.analyzer import Analyzer
from facesearch.vision.video import DEFAULT_INTERVAL_MS, analyze_video, probe

SPEED_CLIPS = ("street_640x360.mp4", "lobby_1280x720.mov", "hall_1920x1080.mp4")


def load() -> str:
    return "load average " + " ".join(open("/proc/loadavg").read().split()[:3])


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def decode_only(path: str, limit_ms: float) -> float:
    """Seconds to decode the clip as the analysis does, without analysing (the baseline)."""
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    start = time.perf_counter()
    next_ms = 0.0
    while capture.grab():
        position = capture.get(cv2.CAP_PROP_POS_MSEC)
        if position > limit_ms:
            break
        if position + 0.5 >= next_ms:
            cv2.cvtColor(capture.retrieve()[1], cv2.COLOR_BGR2RGB)
            next_ms = (int((position + 0.5) // DEFAULT_INTERVAL_MS) + 1) * DEFAULT_INTERVAL_MS
    capture.release()
    return time.perf_counter() - start


Gallery = dict[str, np.ndarray]


def speed(
    path: str, analyzer: Analyzer, gallery: Gallery | None = None, limit_ms: float | None = None
) -> None:
    """One line: the clip's analysis and its decode alone as multiples of real time, the
    stages' shares, faces, and the RSS growth to the peak. With a ``gallery`` for collection,
    each fresh face is searched in it and near misses looked at again, as the job does."""
    info = probe(path)
    length_ms = min(info.duration_ms, limit_ms or info.duration_ms)
    baseline = decode_only(path, length_ms)
    stages: dict[str, float] = defaultdict(float)
    lock = threading.Lock()

    def add(name: str, seconds: float) -> None:
        with lock:
            stages[name] += seconds

    before, peak = rss_mb(), 0.0
    stop = watch(add)
    start, cpu = time.perf_counter(), time.process_time()
    faces = samples = searched = 0
    near = NearMisses(gallery or {}, CURRENT.calibration)
    for frame in near.watch(analyze_video(path, analyzer, look_again=near.look_again)):
        if frame.timestamp_ms > length_ms:
            break
        samples += 1
        faces += len(frame.faces)
        for tracked in frame.faces:
            if tracked.fresh:  # the embedding a face search job searches the collection with
                searched += 1
                _ = tracked.face.embedding
        if samples % 25 == 0:
            peak = max(peak, rss_mb())
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    stop()
    peak = max(peak, rss_mb())
    seconds = length_ms / 1000
    shares = ", ".join(f"{k} {100 * v / elapsed:.0f} %" for k, v in sorted(stages.items()))
    print(
        f"{Path(path).name} {info.width}x{info.height} {info.frame_rate:g} fps, {seconds:.1f} s: "
        f"{seconds / elapsed:.1f}x real time ({elapsed:.2f} s, CPU {cpu:.2f} s; decode alone "
        f"{seconds / baseline:.1f}x), {samples} samples, {faces} faces ({searched} embedded); "
        f"stage time ({shares}; "
        f"decode runs beside the analysis); RSS +{peak - before:.0f} MB at peak"
    )


def enrolled(analyzer: Analyzer, videos: Path) -> Gallery:
    """The embeddings of the enrol photos, per person."""
    photos = photos_dir()
    return {
        person: np.stack(
            [analyzer.analyze((photos / p).read_bytes()).faces[0].embedding for p in paths]
        )
        for person, paths in read_manifest(videos)["enrol"].items()
    }


def accuracy(analyzer: Analyzer, videos: Path, gallery: Gallery) -> None:
    """The per-shot scores of every labelled H.264 clip, with the failures."""
    manifest = read_manifest(videos)
    calibration = CURRENT.calibration
    total = Scores()
    for clip in manifest["clips"]:
        if clip.get("codec") != "h264":
            continue
        near = NearMisses(gallery, calibration)
        path = str(videos / clip["file"])
        frames = near.watch(analyze_video(path, analyzer, look_again=near.look_again))
        seen = seen_faces(frames, gallery, calibration)
        scores = score_clip(clip, seen, set(manifest["enrol"]), set(manifest["strangers"]))
        print(f"  {clip['file']}: {scores.summary()}")
        total.add(scores)
    print(f"all clips: {total.summary()}")
    for failure in total.failures:
        print(f"  {failure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=Path, default=None, help="the labelled clips' folder")
    parser.add_argument("--long", type=Path, default=None, help="a long clip (make_videos.py)")
    parser.add_argument("--smoke", type=float, default=None, help="only this many seconds")
    args = parser.parse_args()
    videos = args.videos or videos_dir()
    print(load(), f"({os.cpu_count()} cores)")
    analyzer = get_analyzer()
    analyzer.check_ready()
    if args.smoke is not None:
        speed(str(videos / SPEED_CLIPS[0]), analyzer, limit_ms=args.smoke * 1000)
        print(load())
        return
    gallery = enrolled(analyzer, videos)
    for name in SPEED_CLIPS:
        speed(str(videos / name), analyzer, gallery)
    if args.long is not None:
        speed(str(args.long), analyzer, gallery)
    print(load())
    accuracy(analyzer, videos, gallery)
    print(load())


if __name__ == "__main__":
    main()
