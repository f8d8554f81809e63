"""Image quality of a face: Rekognition's Brightness and Sharpness, both 0..100."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Sharpness saturates: a Laplacian variance of SHARPNESS_SCALE on the 112x112 aligned crop maps
# to 63, twice that to 86. Chosen so ordinary photos of people/ land in 60..100 and a 4x
# down-and-up-sampled (blurred) copy falls under 30.
SHARPNESS_SCALE = 200.0


def brightness(grey_face: np.ndarray) -> float:
    """Mean luminance of the face region, 0 (black) .. 100 (white)."""
    if grey_face.size == 0:
        return 0.0
    return float(grey_face.mean()) / 255.0 * 100.0


def sharpness(aligned_grey: np.ndarray) -> float:
    """Detail of the 112x112 aligned face: variance of its Laplacian, mapped onto 0..100.

    The aligned crop has the same size for every face, so a small (upsampled) face scores low:
    it carries less detail, which is what the quality filter needs to know.
    """
    variance = float(cv2.Laplacian(aligned_grey, cv2.CV_32F, ksize=3).var())
    return 100.0 * (1.0 - float(np.exp(-variance / SHARPNESS_SCALE)))


@dataclass(frozen=True)
class QualityBar:
    """The least a face needs to pass one QualityFilter level."""

    confidence: float  # detector Confidence, 0..100
    min_side: float  # shorter side of the bounding box, pixels
    max_yaw: float  # degrees, absolute
    max_pitch: float
    brightness: float  # 0..100, at least ...
    max_brightness: float  # ... and at most (a blown-out face has no detail)
    sharpness: float  # 0..100
    presence: float  # landmark network's belief in a face, 0..1 (LOW_FACE_QUALITY)


# Bars set on the measured spread of the photo set (docs/vision.md): AUTO keeps every photo of
# people/, LOW drops only what is barely a face, HIGH keeps frontal, well-lit, sharp, big faces.
QUALITY_BARS: dict[str, QualityBar] = {
    "LOW": QualityBar(60.0, 16.0, 80.0, 70.0, 5.0, 99.5, 2.0, 0.05),
    "AUTO": QualityBar(70.0, 24.0, 70.0, 60.0, 10.0, 99.0, 5.0, 0.2),
    "MEDIUM": QualityBar(80.0, 40.0, 55.0, 45.0, 20.0, 97.0, 25.0, 0.5),
    "HIGH": QualityBar(88.0, 64.0, 35.0, 30.0, 30.0, 95.0, 50.0, 0.8),
}
QUALITY_FILTERS = ("NONE", *QUALITY_BARS)


def quality_reasons(
    quality_filter: str,
    *,
    confidence: float,
    min_side: float,
    pose: dict[str, float],
    quality: dict[str, float],
    presence: float,
) -> list[str]:
    """Rekognition's UnindexedFace reasons for a face under ``quality_filter``; [] = passes."""
    if quality_filter == "NONE":
        return []
    bar = QUALITY_BARS.get(quality_filter)
    if bar is None:
        raise ValueError(f"unknown QualityFilter {quality_filter!r}")
    reasons = []
    if abs(pose["Yaw"]) > bar.max_yaw or abs(pose["Pitch"]) > bar.max_pitch:
        reasons.append("EXTREME_POSE")
    if quality["Brightness"] < bar.brightness or quality["Brightness"] > bar.max_brightness:
        reasons.append("LOW_BRIGHTNESS")
    if quality["Sharpness"] < bar.sharpness:
        reasons.append("LOW_SHARPNESS")
    if confidence < bar.confidence:
        reasons.append("LOW_CONFIDENCE")
    if min_side < bar.min_side:
        reasons.append("SMALL_BOUNDING_BOX")
    if presence < bar.presence:
        reasons.append("LOW_FACE_QUALITY")
    return reasons
