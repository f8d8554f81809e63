"""The exact vectors of a collection below the compressed size: one float32 matrix, searched
with one BLAS product over every face.

The matrix holds one column per face, not one row: OpenBLAS's kernel for ``query @ matrix`` over
a (dim, n) matrix runs about twice as fast here as over (n, dim).
"""

from __future__ import annotations

import numpy as np

_MIN_CAPACITY = 64


class Columns:
    """Float32 columns with room to grow at the end. A snapshot holds a view of the first n;
    appends write past every view, and anything else writes a new buffer, so a reader of an
    older snapshot never sees its columns change."""

    def __init__(self) -> None:
        self._buffer = np.empty((0, _MIN_CAPACITY), np.float32)

    def append(self, n: int, embeddings: np.ndarray) -> np.ndarray:
        """The first ``n`` columns followed by ``embeddings`` (one row each): the new view."""
        extra = len(embeddings)
        if self._buffer.shape[0] != embeddings.shape[1]:  # the first faces fix the size
            self._buffer = np.empty((embeddings.shape[1], max(extra, _MIN_CAPACITY)), np.float32)
        elif n + extra > self._buffer.shape[1]:
            grown = np.empty((self._buffer.shape[0], max(2 * n, n + extra)), np.float32)
            grown[:, :n] = self._buffer[:, :n]
            self._buffer = grown
        self._buffer[:, n : n + extra] = embeddings.T
        return self._buffer[:, : n + extra]

    def replace(self, vectors: np.ndarray) -> np.ndarray:
        """``vectors`` (dim, k) in a new buffer (reordered or compacted columns): the new view."""
        kept = vectors.shape[1]
        self._buffer = np.empty((vectors.shape[0], max(kept, _MIN_CAPACITY)), np.float32)
        self._buffer[:, :kept] = vectors
        return self._buffer[:, :kept]


def candidates(
    vectors: tuple[np.ndarray, np.ndarray], query: np.ndarray, min_cosine: float
) -> tuple[np.ndarray, np.ndarray]:
    """The columns of ``vectors`` (a mapped base's, then a tail's) that score ``min_cosine`` or
    more against ``query``, and their cosines."""
    base, tail = vectors
    scores = query @ tail if not base.shape[1] else np.concatenate([query @ base, query @ tail])
    rows = np.flatnonzero(scores >= min_cosine)
    return rows, scores[rows]
