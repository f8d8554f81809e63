"""Following faces from one sampled video frame to the next (Rekognition's Person.Index).

A face continues the track whose last box (one sample earlier) it overlaps most (IoU). Where the
overlap is large, the face's patch looks like the track's last one and the picture did not jump,
that is enough; otherwise, and every RECHECK_MS, the face model's
similarity decides (so the embedding network runs for new faces and doubtful ones only). A cut
that changes the whole picture ends every track; a cut to a shot of the same background, which
the picture as a whole hardly shows, is caught per face by its patch and then its embedding: a
different person at the same place gets a new index.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from facesearch.vision.face import Face
from facesearch.vision.face_models import FaceModel

Box = tuple[float, float, float, float]  # left, top, width, height (ratios of the frame)

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
THUMB_SIDE = 32


def box_of(face: Face) -> Box:
    """Left, top, width, height of a face's box (ratios of the frame)."""
    box = face.box
    return box.left, box.top, box.width, box.height


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (left, top, width, height) boxes."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """An RGB frame's 32x32 grey thumbnail, what cuts are noticed by: the mean of 8x8 pixels
    spread evenly over each cell (picked by a nearest-neighbour resize: averaging a large frame
    down at once costs several milliseconds, this a tenth of one)."""
    side = 8 * THUMB_SIDE
    height, width = rgb.shape[:2]
    if width > side or height > side:
        rgb = cv2.resize(rgb, (side, side), interpolation=cv2.INTER_NEAREST)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (THUMB_SIDE, THUMB_SIDE), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32)


def patch(rgb: np.ndarray, box: Box) -> np.ndarray:
    """The face's box in an RGB frame as a grey PATCH_SIDE square, zero mean and unit norm."""
    height, width = rgb.shape[:2]
    x0, y0 = max(0, int(box[0] * width)), max(0, int(box[1] * height))
    x1 = min(width, max(x0 + 1, int(np.ceil((box[0] + box[2]) * width))))
    y1 = min(height, max(y0 + 1, int(np.ceil((box[1] + box[3]) * height))))
    if x0 >= width or y0 >= height:
        return np.zeros(PATCH_SIDE * PATCH_SIDE, np.float32)
    grey = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (PATCH_SIDE, PATCH_SIDE), interpolation=cv2.INTER_AREA)
    values = small.astype(np.float32).ravel()
    values -= values.mean()
    norm = float(np.linalg.norm(values))
    return values / norm if norm > 0 else values


@dataclass
class _Track:
    index: int
    box: Box
    patch: np.ndarray
    embedding: np.ndarray
    seen_ms: float
    checked_ms: float


class Tracker:
    """Assigns each face of each sample an index; one Tracker per video, samples in order:
    ``look`` at each sample's frame, then ``update`` with its faces."""

    def __init__(self, face_model: FaceModel) -> None:
        self._calibration = face_model.calibration
        self._tracks: list[_Track] = []
        self._next_index = 0
        self._previous: np.ndarray | None = None
        self._change = 0.0

    def look(self, rgb: np.ndarray, timestamp_ms: float) -> float:
        """Take the sample's frame ``rgb`` at ``timestamp_ms``: end every track at a cut, close
        those unseen for MAX_GAP_MS. The picture's change since the previous sample (mean
        absolute difference of the thumbnails, 0..255; 0 for the first)."""
        small = thumbnail(rgb)
        previous, self._previous = self._previous, small
        self._change = 0.0 if previous is None else float(np.abs(small - previous).mean())
        if self._change > CUT_CHANGE:
            self._tracks = []
        self._tracks = [t for t in self._tracks if timestamp_ms - t.seen_ms <= MAX_GAP_MS]
        return self._change

    def live(self) -> list[tuple[int, Box]]:
        """The index and last box of every open track."""
        return [(track.index, track.box) for track in self._tracks]

    def _similar(self, embedding: np.ndarray, track: _Track) -> bool:
        cos = float(np.dot(embedding, track.embedding))
        return float(self._calibration.similarity(cos)) >= SAME_SIMILARITY

    def update(
        self,
        boxes: list[Box],
        patches: list[np.ndarray],
        timestamp_ms: float,
        embedding: Callable[[int], np.ndarray],
    ) -> list[int | None]:
        """The index of the track each face of the frame last looked at (its box and patch)
        continues, in order; None for a face that starts a new one (``start`` it).
        ``embedding(f)`` gives face ``f``'s; it is asked only for faces whose track is in
        doubt."""
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
                and self._change <= CHECK_CHANGE
                and float(np.dot(patches[f], track.patch)) >= SAME_PATCH
                and timestamp_ms - track.checked_ms < RECHECK_MS
            )
            if sure or self._similar(embedding(f), track):
                assigned[f] = t
                taken.add(t)
                if not sure:
                    track.checked_ms = timestamp_ms
        out: list[int | None] = []
        for f, box in enumerate(boxes):
            if f not in assigned:
                out.append(None)
                continue
            track = self._tracks[assigned[f]]
            track.box, track.patch, track.seen_ms = box, patches[f], timestamp_ms
            out.append(track.index)
        return out

    def start(self, box: Box, patch: np.ndarray, embedding: np.ndarray, timestamp_ms: float) -> int:
        """Open a track for a face that continues none (after ``update``); its new index."""
        track = _Track(self._next_index, box, patch, embedding, timestamp_ms, timestamp_ms)
        self._next_index += 1
        self._tracks.append(track)
        return track.index
