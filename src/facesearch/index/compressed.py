"""The compressed candidates of a large collection: PQ codes scanned, 8-bit codes to re-score.

Each vector is kept as a 16-byte product-quantisation code (faiss's fast-scan PQ, 4 bits per
sub-vector) and as 8-bit scalar codes (128 bytes), together about half of float32's memory. A
query scans every PQ code (about 1 ms at a million faces on 2 cores) and re-scores the best of
them with the 8-bit codes (within about 0.005 of the exact cosine); the caller re-ranks the
candidates those scores put near or above the bar with the exact vectors from the store. Only a
face the PQ scan ranks far too low can be missed (``benchmarks/scale.py`` measures how often).
Scanning every code, unlike an inverted file, does not depend on how the collection clusters (an
IVF lost real matches among synthetic faces). The trained quantisers (:func:`train`) are kept in
the store and shared by every process, so every process returns the same results.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

PQ_SUBVECTORS = 32  # of 4 bits each: 16 bytes a face
TRAINING_FACES = 50_000
# The first candidates asked of the PQ scan; then 4 times as many while the last of them still
# score near the bar and the limit is not met, up to 8 per result asked for.
FIRST_CANDIDATES = 128
CANDIDATES_PER_RESULT = 8
# How many PQ candidates the 8-bit codes re-score: 32 per candidate kept for the first few,
# twice as many as kept beyond (the PQ ranking's order is good enough that far down).
REFINE_FACTOR = 32
# 8-bit codes put a cosine within about 0.005 of the exact one: candidates this far below the
# bar are still re-ranked exactly.
CODE_MARGIN = 0.02
_MIN_CAPACITY = 64


def train(sample: np.ndarray) -> bytes:
    """Trained, empty codes for vectors like ``sample``: the fast-scan PQ (faiss's own
    serialisation) and the 8-bit codes' per-dimension ranges, in one blob."""
    import faiss  # only collections past the exact-search size pay for loading it

    sample = np.ascontiguousarray(sample, np.float32)
    pq = faiss.IndexPQFastScan(sample.shape[1], PQ_SUBVECTORS, 4, faiss.METRIC_INNER_PRODUCT)
    pq.train(sample)
    blob = io.BytesIO()
    np.savez(
        blob,
        pq=faiss.serialize_index(pq),
        low=sample.min(axis=0),
        high=sample.max(axis=0),
    )
    return blob.getvalue()


class Codes:
    """The compressed vectors: a fast-scan PQ (faiss) for the scan, 8-bit codes (numpy) to
    re-score its best candidates, and the seq of each entry. Entries are only appended; a
    deleted face's entry stays until the codes are rebuilt.

    The 8-bit codes and seqs of the first entries may be a *base* mapped from a file (shared
    by the processes of a machine); those appended afterwards go to a tail in memory. The PQ
    is always in memory (faiss cannot map a fast-scan index; it is 16 bytes a face)."""

    def __init__(self, model: bytes, dim: int) -> None:
        import faiss

        with np.load(io.BytesIO(model)) as parts:
            pq = faiss.deserialize_index(parts["pq"])
            low, high = parts["low"], parts["high"]
        if pq.d != dim:
            raise RuntimeError(f"the search model is for {pq.d}-d vectors, not {dim}-d")
        step = np.maximum(high - low, 1e-6).astype(np.float32) / 255
        self._setup(pq, low.astype(np.float32), step, np.empty(0, np.int64), None)

    @classmethod
    def from_parts(
        cls,
        pq: np.ndarray,
        low: np.ndarray,
        step: np.ndarray,
        seqs: np.ndarray,
        codes: np.ndarray,
    ) -> Codes:
        """Codes over what :meth:`parts` gave (``seqs`` and ``codes`` kept as the base)."""
        import faiss

        index = faiss.deserialize_index(np.asarray(pq))
        if index.ntotal != len(seqs) or codes.shape != (len(seqs), index.d):
            raise ValueError("the codes do not match their PQ")
        self = cls.__new__(cls)
        self._setup(index, np.asarray(low), np.asarray(step), seqs, codes)
        return self

    def _setup(
        self,
        pq: Any,
        low: np.ndarray,
        step: np.ndarray,
        base_seqs: np.ndarray,
        base_bytes: np.ndarray | None,
    ) -> None:
        dim = pq.d
        self._pq = pq
        self._low, self._step = low, step
        self._base_seqs = base_seqs
        self._base_bytes = np.empty((0, dim), np.uint8) if base_bytes is None else base_bytes
        self._bytes = np.empty((_MIN_CAPACITY, dim), np.uint8)
        self._seqs = np.empty(_MIN_CAPACITY, np.int64)
        self.lock = threading.Lock()  # faiss may not be searched while it is changed
        self.dead = 0

    def __len__(self) -> int:
        return int(self._pq.ntotal)

    def add(self, seqs: np.ndarray, embeddings: np.ndarray) -> None:
        embeddings = np.ascontiguousarray(embeddings, np.float32)
        codes = np.clip(np.rint((embeddings - self._low) / self._step), 0, 255).astype(np.uint8)
        with self.lock:
            n, extra = self._pq.ntotal - len(self._base_seqs), len(seqs)
            if n + extra > len(self._seqs):
                size = max(2 * len(self._seqs), n + extra)
                self._seqs = np.resize(self._seqs, size)
                self._bytes = np.resize(self._bytes, (size, self._bytes.shape[1]))
            self._seqs[n : n + extra] = seqs
            self._bytes[n : n + extra] = codes
            self._pq.add(embeddings)

    def trim(self) -> None:
        """Give back the spare room the appends keep (after a load)."""
        with self.lock:
            n = self._pq.ntotal - len(self._base_seqs)
            self._seqs, self._bytes = self._seqs[:n].copy(), self._bytes[:n].copy()

    def parts(
        self,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """What a file keeps of these codes: the serialised PQ, the 8-bit codes' offset and
        step, and the seqs and 8-bit codes of every entry (the base's, then the tail's)."""
        import faiss

        with self.lock:
            n = self._pq.ntotal - len(self._base_seqs)
            pq = faiss.serialize_index(self._pq)
            return (
                pq,
                self._low,
                self._step,
                [self._base_seqs, self._seqs[:n]],
                [self._base_bytes, self._bytes[:n]],
            )

    def _entries(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The 8-bit codes and seqs of entries by position, from the base or the tail."""
        base = len(self._base_seqs)
        if not base:
            return self._bytes[positions], self._seqs[positions]
        in_base = positions < base
        codes = np.empty((len(positions), self._bytes.shape[1]), np.uint8)
        seqs = np.empty(len(positions), np.int64)
        codes[in_base], seqs[in_base] = (
            self._base_bytes[positions[in_base]],
            self._base_seqs[positions[in_base]],
        )
        tail = positions[~in_base] - base
        codes[~in_base], seqs[~in_base] = self._bytes[tail], self._seqs[tail]
        return codes, seqs

    def nearest(self, query: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The seqs of about the ``count`` entries of highest score, best first, and their
        scores by the 8-bit codes."""
        query = np.ascontiguousarray(query[None], np.float32)
        with self.lock:
            wanted = max(2 * count, FIRST_CANDIDATES * REFINE_FACTOR)
            _, positions = self._pq.search(query, min(wanted, self._pq.ntotal))
            positions = positions[0][positions[0] >= 0]
            codes, seqs = self._entries(positions)
        # A code c stands for low + c * step: its score is c . (query * step) + query . low.
        scores = codes @ (query[0] * self._step) + float(query[0] @ self._low)
        best = np.argsort(-scores, kind="stable")[:count]
        return seqs[best], scores[best]

    def shortlist(
        self,
        query: np.ndarray,
        min_cosine: float,
        rows: Callable[[np.ndarray], np.ndarray],
        enough: Callable[[np.ndarray], bool],
        limit: int,
    ) -> np.ndarray:
        """What to re-rank exactly: ``rows(seqs)`` (the caller's rows of the faces it keeps) of
        the best entries by the codes, more of them until ``enough(rows)`` holds, the last ones
        fall below the bar, or ``CANDIDATES_PER_RESULT`` per result (of ``limit``) were taken."""
        floor = min_cosine - CODE_MARGIN
        count = FIRST_CANDIDATES
        most = max(FIRST_CANDIDATES, CANDIDATES_PER_RESULT * limit)
        while True:
            seqs, approx = self.nearest(query, count)
            kept = rows(seqs[approx >= floor])
            everything = len(seqs) < count or count >= min(most, len(self))
            if everything or approx[-1] < floor or enough(kept):
                return kept
            count = min(max(4 * count, 2 * limit), most)
