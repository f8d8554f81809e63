"""Image quality of a face: Rekognition's Brightness and Sharpness, both 0..100."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Sharpness is logarithmic in the Laplacian variance of the 112x112 aligned grey crop: 0 at
# SHARPNESS_FLOOR, 100 at SHARPNESS_CEILING. On people/ the variance spans 377..35,000 (median
# 4,300, so Sharpness 37..100, median 72); 4x down-and-up-sampled copies have a median of 470 (41).
SHARPNESS_FLOOR = 20.0
SHARPNESS_CEILING = 20_000.0


def brightness(grey_face: np.ndarray) -> float:
    """Mean luminance of the face region, 0 (black) .. 100 (white)."""
    if grey_face.size == 0:
        return 0.0
    return float(grey_face.mean()) / 255.0 * 100.0


def sharpness(aligned_grey: np.ndarray, inside: np.ndarray | None = None) -> float:
    """Detail of the 112x112 aligned face: variance of its Laplacian, mapped onto 0..100.

    The aligned crop has the same size for every face, so a small (upsampled) face scores low:
    it carries less detail, which is what the quality filter needs to know. ``inside`` (bool,
    same shape) marks the crop's pixels that come from the image, for a face cut by its edge:
    the hard line to the black fill beyond would otherwise count as detail.
    """
    laplacian = cv2.Laplacian(aligned_grey, cv2.CV_32F, ksize=3)
    if inside is not None:
        # Only pixels whose whole 3x3 neighbourhood lies in the image.
        kept = cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        laplacian = laplacian[kept] if kept.sum() > 16 else laplacian
    variance = float(laplacian.var())
    span = np.log(SHARPNESS_CEILING / SHARPNESS_FLOOR)
    return float(np.clip(np.log(max(variance, 1e-6) / SHARPNESS_FLOOR) / span, 0.0, 1.0) * 100.0)


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
    "LOW": QualityBar(60.0, 16.0, 85.0, 70.0, 5.0, 99.5, 2.0, 0.0),
    "AUTO": QualityBar(70.0, 20.0, 80.0, 60.0, 10.0, 99.0, 5.0, 0.0),
    "MEDIUM": QualityBar(80.0, 40.0, 55.0, 40.0, 20.0, 97.0, 35.0, 0.05),
    "HIGH": QualityBar(88.0, 64.0, 35.0, 25.0, 30.0, 95.0, 60.0, 0.5),
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
