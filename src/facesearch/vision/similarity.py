"""Calibrated similarity (0..100) from the cosine of two unit-norm embeddings.

A monotone piecewise-linear map through knots measured on the labelled photo set
(benchmarks/calibrate.py; figures in docs/vision.md): a similarity of 80, Rekognition's default
threshold, sits where different people practically never score, so 80 means a strict match.
"""

from __future__ import annotations

import numpy as np

# (cosine, similarity) knots for SFace 2021dec int8bq; see docs/vision.md for how they were set.
COSINE_KNOTS = np.array([-1.0, 0.0, 0.30, 0.43, 0.52, 0.72, 1.0])
SIMILARITY_KNOTS = np.array([0.0, 0.0, 50.0, 80.0, 90.0, 99.0, 100.0])


def cosine_to_similarity(cos: np.ndarray | float) -> np.ndarray | float:
    """The calibrated 0..100 similarity of a cosine (or array of cosines), same shape."""
    out = np.interp(cos, COSINE_KNOTS, SIMILARITY_KNOTS)
    return float(out) if np.ndim(out) == 0 else out


def similarity(query: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Similarity 0..100 of a unit-norm query (d,) against unit-norm rows (n, d): shape (n,)."""
    vectors = np.asarray(vectors, np.float32).reshape(-1, np.asarray(query).shape[-1])
    cos = vectors @ np.asarray(query, np.float32)
    return np.asarray(cosine_to_similarity(np.clip(cos, -1.0, 1.0)), np.float64)
