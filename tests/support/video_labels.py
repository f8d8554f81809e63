"""The labelled clips of ``../shared/datasets/videos`` and the scores of a video analysis against
their labels (shared by tests/vision/test_video.py and benchmarks/video.py).

A clip is a series of shots; the manifest gives each labelled face's box at the shot's first and
last frame, moving linearly in between. Per shot: an enrolled person is *found* when some sample
of the shot has a face overlapping their box (IoU >= 0.3) whose best match is them at similarity
80 or more; a stranger is *matched* when a face on their box has any match at 80; an empty shot
must have no face; and each labelled face must keep *one index*: the faces on its box in the
shot's samples all share one index, used by no other face of the shot and by no other shot.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facesearch.service.video_job import NEAR_MISS
from facesearch.vision.face import Face
from facesearch.vision.similarity import Calibration
from facesearch.vision.tracking import box_of, iou
from facesearch.vision.video import SampledFrame

REPO = Path(__file__).resolve().parents[2]
MIN_IOU = 0.3
MIN_SIMILARITY = 80.0

Box = tuple[float, float, float, float]  # left, top, width, height (ratios)


def videos_dir() -> Path:
    """The labelled clips: ``FACESEARCH_TEST_VIDEOS`` or ``../shared/datasets/videos``."""
    return Path(os.environ.get("FACESEARCH_TEST_VIDEOS", REPO.parent / "shared/datasets/videos"))


def photos_dir() -> Path:
    """The photos the enrol list names: ``FACESEARCH_TEST_PHOTOS`` or beside the clips."""
    default = videos_dir().parent / "faces"
    return Path(os.environ.get("FACESEARCH_TEST_PHOTOS", default))


def read_manifest(directory: Path | None = None) -> dict[str, Any]:
    """The clips' manifest.json."""
    with open((directory or videos_dir()) / "manifest.json") as f:
        manifest: dict[str, Any] = json.load(f)
    return manifest


def labelled_box(face: dict[str, Any], shot: dict[str, Any], timestamp_ms: float) -> Box:
    """A labelled face's box at ``timestamp_ms``, between its shot's first and last box."""
    span = max(1.0, shot["end_ms"] - shot["start_ms"])
    t = min(1.0, max(0.0, (timestamp_ms - shot["start_ms"]) / span))
    start, end = face["box_start"], face["box_end"]
    keys = ("Left", "Top", "Width", "Height")
    left, top, width, height = (start[k] + (end[k] - start[k]) * t for k in keys)
    return left, top, width, height


@dataclass
class Seen:
    """One face of one sample, as the scores need it."""

    timestamp_ms: int
    index: int
    box: Box
    # Best similarity per enrolled identity (only computed where the scores need a match).
    match: Callable[[], tuple[str | None, float]]


@dataclass
class Scores:
    """Per-shot counts of one clip (or of several, added up)."""

    found: int = 0
    to_find: int = 0
    strangers_matched: int = 0
    strangers: int = 0
    empty_with_faces: int = 0
    empty: int = 0
    stable: int = 0
    labelled: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, other: Scores) -> None:
        """Add another clip's counts to these."""
        for name in ("found", "to_find", "strangers_matched", "strangers", "empty_with_faces"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("empty", "stable", "labelled"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures += other.failures

    def summary(self) -> str:
        """One line: each score as a count and a share."""

        def share(a: int, b: int) -> str:
            return f"{a}/{b} ({100 * a / b:.0f} %)" if b else "0/0"

        return (
            f"found {share(self.found, self.to_find)}, strangers matched "
            f"{share(self.strangers_matched, self.strangers)}, empty shots with a face "
            f"{share(self.empty_with_faces, self.empty)}, one index per face "
            f"{share(self.stable, self.labelled)}"
        )


def score_clip(
    clip: dict[str, Any], seen: Iterable[Seen], enrolled: set[str], strangers: set[str]
) -> Scores:
    """The scores of a clip's analysed faces against its labels."""
    faces = list(seen)
    scores = Scores()
    shots_of_index: dict[int, set[int]] = defaultdict(set)
    for number, shot in enumerate(clip["shots"]):
        for face in faces:
            if shot["start_ms"] <= face.timestamp_ms <= shot["end_ms"]:
                shots_of_index[face.index].add(number)
    for number, shot in enumerate(clip["shots"]):
        name = f"{clip['file']} shot {number} ({shot['start_ms']}-{shot['end_ms']} ms)"
        inside = [f for f in faces if shot["start_ms"] <= f.timestamp_ms <= shot["end_ms"]]
        if not shot["faces"]:
            scores.empty += 1
            if inside:
                scores.empty_with_faces += 1
                scores.failures.append(f"{name}: {len(inside)} faces in an empty shot")
            continue
        indices_of: list[set[int]] = []
        for label in shot["faces"]:
            on_box = [
                f
                for f in inside
                if iou(f.box, labelled_box(label, shot, f.timestamp_ms)) >= MIN_IOU
            ]
            indices_of.append({f.index for f in on_box})
            identity = label["identity"]
            if identity in enrolled:
                scores.to_find += 1
                matches = [f.match() for f in on_box]
                if any(who == identity and sim >= MIN_SIMILARITY for who, sim in matches):
                    scores.found += 1
                else:
                    best = max(matches, key=lambda m: m[1], default=None)
                    scores.failures.append(f"{name}: {identity} not found (best {best})")
            elif identity in strangers:
                scores.strangers += 1
                matched = [m for m in (f.match() for f in on_box) if m[1] >= MIN_SIMILARITY]
                if matched:
                    scores.strangers_matched += 1
                    scores.failures.append(f"{name}: stranger {identity} matched {matched[0]}")
        for i, (label, indices) in enumerate(zip(shot["faces"], indices_of, strict=True)):
            scores.labelled += 1
            others = set().union(*(s for j, s in enumerate(indices_of) if j != i))
            one = len(indices) == 1 and not indices & others
            if one and shots_of_index[next(iter(indices))] == {number}:
                scores.stable += 1
            elif label["identity"] is not None or len(indices) > 1:
                scores.failures.append(
                    f"{name}: {label['identity'] or label['photo']} has indices {sorted(indices)}"
                )
            else:
                # An unlabelled face of a group photo the detector may not find (dlib's box
                # may be a face too small or turned): unscored rather than failed.
                scores.labelled -= 1
    return scores


def best_match(
    embedding: np.ndarray, gallery: dict[str, np.ndarray], calibration: Calibration
) -> tuple[str | None, float]:
    """The enrolled identity most similar to ``embedding`` and its similarity."""
    best: tuple[str | None, float] = (None, 0.0)
    for identity, vectors in gallery.items():
        value = float(calibration.similarity(float(np.max(vectors @ embedding))))
        if value > best[1]:
            best = (identity, value)
    return best


class NearMisses:
    """A face search job's second looks (service/video_job.py) with a gallery for collection:
    ``look_again`` for analyze_video, ``watch`` over its frames to search each fresh face."""

    def __init__(self, gallery: dict[str, np.ndarray], calibration: Calibration) -> None:
        self._gallery = gallery
        self._calibration = calibration
        self._near: set[int] = set()

    def look_again(self, index: int) -> bool:
        """Whether the person ``index``'s best match so far fell just short."""
        return index in self._near

    def watch(self, frames: Iterable[SampledFrame]) -> Iterator[SampledFrame]:
        """The frames, each fresh face searched on the way, as the job does."""
        for frame in frames:
            for tracked in frame.faces:
                if tracked.fresh:
                    best = best_match(tracked.face.embedding, self._gallery, self._calibration)
                    if MIN_SIMILARITY - NEAR_MISS <= best[1] < MIN_SIMILARITY:
                        self._near.add(tracked.index)
                    else:
                        self._near.discard(tracked.index)
            yield frame


def seen_faces(
    frames: Iterable[SampledFrame], gallery: dict[str, np.ndarray], calibration: Calibration
) -> list[Seen]:
    """The faces of an analysis as the scores take them (each matched only if asked)."""

    def seen(timestamp_ms: int, index: int, face: Face) -> Seen:
        return Seen(
            timestamp_ms,
            index,
            box_of(face),
            lambda: best_match(face.embedding, gallery, calibration),
        )

    return [seen(f.timestamp_ms, t.index, t.face) for f in frames for t in f.faces]


def enrol(
    client: Any,
    collection_id: str,
    enrolment: dict[str, list[str]],
    photos_dir: Path,
    people: Iterable[str] | None = None,
) -> None:
    """Create the collection and a user per enrolled person (all of the manifest's ``enrol``, or
    ``people``), each with the faces of their enrolment photos."""
    client.create_collection(CollectionId=collection_id)
    for user_id in enrolment if people is None else people:
        client.create_user(CollectionId=collection_id, UserId=user_id)
        face_ids = [
            record["Face"]["FaceId"]
            for photo in enrolment[user_id]
            for record in client.index_faces(
                CollectionId=collection_id,
                Image={"Bytes": (photos_dir / photo).read_bytes()},
                MaxFaces=1,
            )["FaceRecords"]
        ]
        client.associate_faces(CollectionId=collection_id, UserId=user_id, FaceIds=face_ids)
