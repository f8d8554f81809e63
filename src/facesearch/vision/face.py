"""What the analyser tells of one face: plain values, no API's shapes.

Geometry is in ratios of the EXIF-corrected image (origin top-left, x right, y down); a box may
reach slightly past 0..1 where the face is cut by the image edge. "Left" and "right" are the
viewer's (the image's). Angles are degrees, scores and confidences 0..100.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Box:
    """A rectangle in ratios of the image's width and height."""

    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True)
class Point:
    """A point in ratios of the image's width and height."""

    x: float
    y: float


@dataclass(frozen=True)
class Pose:
    """Head pose, from the viewer's side: ``yaw`` > 0 when the face turns towards the image's
    right, ``pitch`` > 0 when it tilts up, ``roll`` > 0 when it leans counter-clockwise."""

    roll: float
    yaw: float
    pitch: float


@dataclass(frozen=True)
class Quality:
    """Brightness (mean luminance of the box) and sharpness (detail of the aligned face)."""

    brightness: float
    sharpness: float


@dataclass(frozen=True)
class Binary:
    """A yes-or-no attribute (a smile, open eyes, an open mouth) and how sure it is (50..100)."""

    value: bool
    confidence: float


@dataclass(frozen=True)
class Emotion:
    """One class of the emotion network (its own label: angry, disgust, fear, happy, sad,
    surprise, neutral) and its probability in percent."""

    label: str
    confidence: float


@dataclass(frozen=True)
class Gaze:
    """Where the eyes look relative to the camera (head pose plus the eyes' turn in the head,
    same signs as Pose); ``confidence`` falls as the eyes close."""

    yaw: float
    pitch: float
    confidence: float


@dataclass(frozen=True)
class AgeRange:
    """The ages, in years, that bound most of the predicted age distribution."""

    low: int
    high: int


@dataclass(frozen=True)
class Gender:
    """The likelier presentation of the gender network and its probability in percent."""

    label: Literal["female", "male"]
    confidence: float


@dataclass(frozen=True)
class Attributes:
    """The attributes that ``analyze(..., attributes=True)`` computes."""

    smile: Binary
    eyes_open: Binary
    mouth_open: Binary
    emotions: tuple[Emotion, ...]  # most likely first
    gaze: Gaze
    age_range: AgeRange
    gender: Gender


@dataclass
class Face:
    """One analysed face: where it is, its landmarks, pose and quality, the detector's
    confidence, its embedding (computed on first use) and, if asked for, its attributes."""

    box: Box
    confidence: float  # the detector's, 0..100
    landmarks: dict[str, Point]  # named (landmarks.LANDMARKS), in that order
    pose: Pose
    quality: Quality
    box_pixels: tuple[float, float, float, float]  # x, y, width, height in pixels
    presence: float  # the landmark network's belief that the crop holds a face, 0..1
    # Runs the embedding network on first use of ``embedding``: a group photo pays it only for
    # the faces an operation compares (SearchUsersByImage: the largest; DetectFaces: none).
    embed: Callable[[], np.ndarray] = field(repr=False)
    attributes: Attributes | None = field(default=None, repr=False)
    _embedding: np.ndarray | None = field(default=None, repr=False)

    @property
    def embedding(self) -> np.ndarray:
        """The face's unit-norm vector (of the face model it was analysed with)."""
        if self._embedding is None:
            self._embedding = self.embed()
        return self._embedding
