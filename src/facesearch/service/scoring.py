"""From Rekognition's 0-100 similarity thresholds to the cosines the index compares."""

from __future__ import annotations

from functools import lru_cache

from facesearch.vision import cosine_to_similarity


@lru_cache(maxsize=1024)
def min_cosine(threshold: float) -> float:
    """The smallest cosine whose similarity reaches ``threshold`` (the calibration is monotone)."""
    low, high = -1.0, 1.0
    if float(cosine_to_similarity(low)) >= threshold:
        return low
    for _ in range(60):  # bisection to float precision
        middle = (low + high) / 2
        if float(cosine_to_similarity(middle)) >= threshold:
            high = middle
        else:
            low = middle
    return high


def similarity(cosine: float) -> float:
    """Rekognition's Similarity for a cosine."""
    return float(cosine_to_similarity(cosine))
