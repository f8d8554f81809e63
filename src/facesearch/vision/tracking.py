"""Following faces from one sampled video frame to the next (Rekognition's Person.Index).

A face joins the track whose last box it overlaps most (IoU), when the overlap is sure and the
picture did not change much; otherwise, or when the overlap is only fair, the face model's
similarity decides (the embedding is computed only then, and for new tracks). A cut (the frame's
thumbnail far from the previous sample's) ends every track: a different person at the same place
after a cut gets a new index.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facesearch.vision.analyzer import Face
from facesearch.vision.face_model import FaceModel

# Overlap with the track's last box (one sample earlier) above which the face is that track's
# without a look at its embedding, if the picture changed little.
SURE_IOU = 0.5
# Least overlap for a face to continue a track at all (with a similar embedding).
MIN_IOU = 0.1
# Similarity (the face model's scale) at which two faces are one person for tracking: 60 is a
# false-match rate of 5e-5 per comparison, and consecutive samples of one face score over 90.
SAME_SIMILARITY = 60.0
# Mean absolute difference (0..255) of two samples' 32x32 grey thumbnails: above CUT_CHANGE the
# picture is another shot; above CHECK_CHANGE tracks are confirmed by their embeddings.
CUT_CHANGE = 40.0
CHECK_CHANGE = 12.0
# A track not seen for this long is closed (a face hidden for a moment keeps its index).
MAX_GAP_MS = 1000.0


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


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """A frame's 32x32 grey thumbnail, what cuts are noticed by."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)


@dataclass
class _Track:
    index: int
    box: tuple[float, float, float, float]
    embedding: np.ndarray
    seen_ms: float


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
        """The index of each face of the frame ``rgb`` at ``timestamp_ms``, in order."""
        small = thumbnail(rgb)
        change = 0.0 if self._previous is None else float(np.abs(small - self._previous).mean())
        self._previous = small
        if change > CUT_CHANGE:
            self._tracks = []
        self._tracks = [t for t in self._tracks if timestamp_ms - t.seen_ms <= MAX_GAP_MS]
        boxes = [box_of(face) for face in faces]
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
            sure = overlap >= SURE_IOU and change <= CHECK_CHANGE
            if sure or self._similar(faces[f], track):
                assigned[f] = t
                taken.add(t)
        indices = []
        for f, face in enumerate(faces):
            if f not in assigned:
                track = _Track(self._next_index, boxes[f], face.embedding, timestamp_ms)
                self._next_index += 1
                self._tracks.append(track)
            else:
                track = self._tracks[assigned[f]]
                track.box, track.seen_ms = boxes[f], timestamp_ms
            indices.append(track.index)
        return indices
