"""Image quality of a face: its brightness and sharpness, both 0..100 (the bars a face must
reach are in quality_bars.py)."""

from __future__ import annotations

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
