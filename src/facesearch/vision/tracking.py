"""Following faces from one sampled video frame to the next (Rekognition's Person.Index).

A face continues the track whose last box (one sample earlier) it overlaps most (IoU). Where the
overlap is large, the face's patch looks like the track's last one and the picture did not jump,
that is enough; otherwise, and every RECHECK_MS, the face model's similarity decides (so the
embedding network runs for new faces and doubtful ones only). A cut that changes the whole
picture ends every track; a cut to a shot of the same background, which the picture as a whole
hardly shows, is caught per face by its patch and then its embedding: a different person at the
same place gets a new index.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facesearch.vision.analyzer import Face
from facesearch.vision.face_model import FaceModel

# Overlap with the track's last box (one sample earlier) from which a face may continue it
# without a look at its embedding, if its patch also looks alike (below) and the picture did not
# jump.
SURE_IOU = 0.5
# Least overlap for a face to continue a track at all (then with a similar embedding).
MIN_IOU = 0.1
# Normalized correlation of the face's 24x24 grey patch with the track's last one from which the
# two look alike: one face moving and zooming slowly between samples mostly stays above it (its
# box jitters: 5 % of such pairs fell below 0.8 on the labelled clips), while two people at one
# place were seen at 0.71 (faces correlate); below it, the embeddings decide.
SAME_PATCH = 0.85
# Similarity (the face model's scale) from which two faces are one person for tracking: 60 is a
# false-match rate of 5e-5 per comparison; samples of one face score over 90.
SAME_SIMILARITY = 60.0
# Mean absolute difference (0..255) of two samples' 32x32 grey thumbnails above which the picture
# is another shot: every track ends. Cuts between shots of one background stay far below it;
# the patches and embeddings separate those.
CUT_CHANGE = 40.0
# Above this change every face is confirmed by its embedding (a cut, or fast motion).
CHECK_CHANGE = 12.0
# A track is confirmed by its embedding at least this often.
RECHECK_MS = 2000.0
# A track not seen for this long is closed (a face missed in a sample or two keeps its index).
MAX_GAP_MS = 1000.0
PATCH_SIDE = 24


def box_of(face: Face) -> tuple[float, float, float, float]:
    """Left, top, width, height of a face's box (ratios of the frame)."""
    box = face.bounding_box
    return box["Left"], box["Top"], box["Width"], box["Height"]


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (left, top, width, height) boxes."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def thumbnail(grey: np.ndarray) -> np.ndarray:
    """A grey frame's 32x32 thumbnail, what cuts are noticed by."""
    return cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)


def patch(grey: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The face's box in a grey frame as a PATCH_SIDE square, zero mean and unit norm."""
    height, width = grey.shape
    x0, y0 = max(0, int(box[0] * width)), max(0, int(box[1] * height))
    x1 = min(width, max(x0 + 1, int(np.ceil((box[0] + box[2]) * width))))
    y1 = min(height, max(y0 + 1, int(np.ceil((box[1] + box[3]) * height))))
    if x0 >= width or y0 >= height:
        return np.zeros(PATCH_SIDE * PATCH_SIDE, np.float32)
    small = cv2.resize(grey[y0:y1, x0:x1], (PATCH_SIDE, PATCH_SIDE), interpolation=cv2.INTER_AREA)
    values = small.astype(np.float32).ravel()
    values -= values.mean()
    norm = float(np.linalg.norm(values))
    return values / norm if norm > 0 else values


@dataclass
class _Track:
    index: int
    box: tuple[float, float, float, float]
    patch: np.ndarray
    embedding: np.ndarray
    seen_ms: float
    checked_ms: float


class Tracker:
    """Assigns each face of each sample an index; one Tracker per video, samples in order."""

    def __init__(self, face_model: FaceModel) -> None:
        self._calibration = face_model.calibration
        self._tracks: list[_Track] = []
        self._next_index = 0
        self._previous: np.ndarray | None = None

    def _similar(self, face: Face, track: _Track) -> bool:
        cos = float(np.dot(face.embedding, track.embedding))
        return float(self._calibration.similarity(cos)) >= SAME_SIMILARITY

    def update(self, faces: list[Face], rgb: np.ndarray, timestamp_ms: float) -> list[int]:
        """The index of each face of the frame ``rgb`` at ``timestamp_ms``, in order. Embeddings
        are computed only for new faces and for those whose track is in doubt."""
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        small = thumbnail(grey)
        change = 0.0 if self._previous is None else float(np.abs(small - self._previous).mean())
        self._previous = small
        if change > CUT_CHANGE:
            self._tracks = []
        self._tracks = [t for t in self._tracks if timestamp_ms - t.seen_ms <= MAX_GAP_MS]
        boxes = [box_of(face) for face in faces]
        patches = [patch(grey, box) for box in boxes]
        pairs = sorted(
            (
                (iou(track.box, box), t, f)
                for t, track in enumerate(self._tracks)
                for f, box in enumerate(boxes)
            ),
            reverse=True,
        )
        assigned: dict[int, int] = {}
        taken: set[int] = set()
        for overlap, t, f in pairs:
            if overlap < MIN_IOU:
                break
            if t in taken or f in assigned:
                continue
            track = self._tracks[t]
            sure = (
                overlap >= SURE_IOU
                and change <= CHECK_CHANGE
                and float(np.dot(patches[f], track.patch)) >= SAME_PATCH
                and timestamp_ms - track.checked_ms < RECHECK_MS
            )
            if sure or self._similar(faces[f], track):
                assigned[f] = t
                taken.add(t)
                if not sure:
                    track.checked_ms = timestamp_ms
        indices = []
        for f, face in enumerate(faces):
            if f not in assigned:
                track = _Track(
                    self._next_index,
                    boxes[f],
                    patches[f],
                    face.embedding,
                    timestamp_ms,
                    timestamp_ms,
                )
                self._next_index += 1
                self._tracks.append(track)
            else:
                track = self._tracks[assigned[f]]
                track.box, track.patch, track.seen_ms = boxes[f], patches[f], timestamp_ms
            indices.append(track.index)
        return indices
