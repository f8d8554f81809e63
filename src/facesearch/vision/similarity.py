"""Calibrated similarity (0..100) from the cosine of two unit-norm embeddings.

The scale is defined by the false-match rate per comparison (FMR: how often two photos of different
people reach a cosine): similarity 80 is where FMR = 5e-6, and every 10 points above or below is
ten times fewer or more false matches (90: 5e-7, 99: 6.3e-8, 50: 5e-3). A search compares a photo
with every enrolled face, so a collection of n faces false-matches a stranger at 80 about
n x 5e-6 of the time: about 1 % for 1,000 users of one or two faces each. Each face model's knots
are fitted on the faces-calib photo set by benchmarks/calibrate.py (docs/accuracy.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Similarity 80 (Rekognition's default threshold) sits at this false-match rate per comparison.
FMR_AT_80 = 5e-6
POINTS_PER_DECADE = 10.0
# Where each face model's map has a knot: (-1, 0), the scale's 30 .. 99 (cosines fitted per model),
# then (1, 100): above 99 the scale stops counting decades and spreads the remaining cosines, so
# that strong matches still rank and only identical faces reach 100, as Rekognition's 99.x do.
KNOT_SIMILARITIES = (0.0, *(float(s) for s in range(30, 100, 5)), 99.0, 100.0)


def similarity_of_fmr(fmr: float) -> float:
    """The similarity that a false-match rate per comparison stands for (unclipped)."""
    return 80.0 + POINTS_PER_DECADE * float(np.log10(FMR_AT_80 / fmr))


def fmr_of_similarity(similarity_value: float) -> float:
    """The false-match rate per comparison that a similarity stands for."""
    return float(FMR_AT_80 * 10.0 ** ((80.0 - similarity_value) / POINTS_PER_DECADE))


@dataclass(frozen=True)
class Calibration:
    """A monotone piecewise-linear map from cosine to similarity, through (cosine, similarity)
    knots from (-1, 0) to similarity 100."""

    cosines: tuple[float, ...]
    similarities: tuple[float, ...]

    def __post_init__(self) -> None:
        if not (np.all(np.diff(self.cosines) > 0) and np.all(np.diff(self.similarities) >= 0)):
            raise ValueError("calibration knots must increase")

    def similarity(self, cos: np.ndarray | float) -> np.ndarray | float:
        """The 0..100 similarity of a cosine (or an array of cosines, same shape)."""
        out = np.interp(cos, self.cosines, self.similarities)
        return float(out) if np.ndim(out) == 0 else out

    def min_cosine(self, threshold: float) -> float:
        """The smallest cosine whose similarity reaches ``threshold``.

        Bisection rather than the inverse interpolation, so that rounding never lets a cosine
        through whose similarity falls a hair short of the threshold."""
        low, high = -1.0, 1.0
        if float(self.similarity(low)) >= threshold:
            return low
        for _ in range(60):
            middle = (low + high) / 2
            if float(self.similarity(middle)) >= threshold:
                high = middle
            else:
                low = middle
        return high

    def scores(self, query: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """Similarity of a unit-norm query (d,) against unit-norm rows (n, d): shape (n,)."""
        vectors = np.asarray(vectors, np.float32).reshape(-1, np.asarray(query).shape[-1])
        cos = vectors @ np.asarray(query, np.float32)
        return np.asarray(self.similarity(np.clip(cos, -1.0, 1.0)), np.float64)
