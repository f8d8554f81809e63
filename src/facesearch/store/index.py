"""In-memory vector search over a collection's faces, kept current from the store.

A face is its store ``seq`` (increasing as faces are added) and its user's seq, held in numpy
arrays rather than Python objects: the store turns the seqs of the results back into faces and
UserIds. Readers take an immutable snapshot of those arrays; a writer builds the next one.
Deletions only mark rows dead (compacted once a quarter of them are), so a write costs O(changed
faces) plus, for a (dis)association, one copy of the per-face user array.

Two ways to find candidates, by collection size, and one way to rank them:

- Below ``COMPRESSED_MIN_FACES`` faces, exact: the vectors sit in one float32 matrix, one column
  per face, and a query is one BLAS product over all of them (columns, not rows: OpenBLAS's
  kernel for ``query @ matrix`` over a (dim, n) matrix runs about twice as fast here as over
  (n, dim)).
- From then on, compressed: each vector is kept as a 16-byte product-quantisation code (faiss's
  fast-scan PQ, 4 bits per sub-vector) and as 8-bit scalar codes (128 bytes), together about
  half of float32's memory. A query scans every PQ code (about 1 ms at a million faces on 2
  cores), re-scores the best of them with the 8-bit codes (within about 0.005 of the exact
  cosine), and only the candidates those scores put near or above the bar are re-ranked with the
  exact vectors read from the store. Every similarity returned is exact; only a face the PQ scan
  ranks far too low can be missed (``benchmarks/scale.py`` measures how often). Scanning every
  code, unlike an inverted file, does not depend on how the collection clusters (an IVF lost
  real matches among synthetic faces). The trained quantisers are kept in the store and shared by
  every process, so every process returns the same results.

:class:`SearchIndexes` keeps one index per collection and brings it up to the collection's
``version`` before each use, from :meth:`Store.face_changes`: every process that shares a store
applies every acknowledged write, whichever process made it.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from facesearch.store.base import CollectionRecord, FaceChanges, Store

log = logging.getLogger("facesearch.index")

# Exact search up to here (about 3 ms a query at 200,000 faces on 2 cores), compressed from here.
COMPRESSED_MIN_FACES = 200_000
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
_CODE_MARGIN = 0.02
# Faces read from the store per page while an index loads: bounds the memory a load needs.
LOAD_PAGE = 50_000
_MIN_CAPACITY = 64
NO_USER = -1


@dataclass(frozen=True)
class _Snapshot:
    seqs: np.ndarray  # (n,) int64, increasing: the store's face seq of each row
    users: np.ndarray  # (n,) int64: the seq of each face's user, NO_USER for none
    alive: np.ndarray  # (n,) bool: False for a deleted face not compacted away yet
    dead: int
    vectors: np.ndarray | None  # (d, n) float32 columns while exact, else None


_EMPTY = _Snapshot(
    np.empty(0, np.int64),
    np.empty(0, np.int64),
    np.empty(0, bool),
    0,
    np.empty((0, 0), np.float32),
)


@dataclass(frozen=True)
class Hit:
    """One search result: a face (its store seq) and its cosine similarity to the query."""

    seq: int
    cosine: float


@dataclass(frozen=True)
class UserHit:
    """One user search result: a user (its store seq) and its best face's cosine."""

    user_seq: int
    cosine: float


@dataclass(frozen=True)
class VectorSource:
    """What an index needs of its collection in the store: what changed since a version, page
    by page (``changes(after_version, after_seq)``; version 0 gives every face), the exact
    vectors to re-rank with, and the shared trained model."""

    changes: Callable[[int, int], FaceChanges]
    embeddings: Callable[[np.ndarray], dict[int, np.ndarray]]
    search_model: Callable[[bytes | None], bytes | None]


def _train(sample: np.ndarray) -> bytes:
    """Trained, empty codes for vectors like ``sample``: the fast-scan PQ (faiss's own
    serialisation) and the 8-bit codes' per-dimension ranges, in one blob."""
    import faiss  # only collections past COMPRESSED_MIN_FACES pay for loading it

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


class _Codes:
    """The compressed vectors: a fast-scan PQ (faiss) for the scan, 8-bit codes (numpy) to
    re-score its best candidates, and the seq of each entry. Entries are only appended; a
    deleted face's entry stays until the codes are rebuilt."""

    def __init__(self, model: bytes, dim: int) -> None:
        import faiss

        with np.load(io.BytesIO(model)) as parts:
            self._pq = faiss.deserialize_index(parts["pq"])
            low, high = parts["low"], parts["high"]
        if self._pq.d != dim:
            raise RuntimeError(f"the search model is for {self._pq.d}-d vectors, not {dim}-d")
        self._low = low.astype(np.float32)
        self._step = np.maximum(high - low, 1e-6).astype(np.float32) / 255
        self._bytes = np.empty((_MIN_CAPACITY, dim), np.uint8)
        self._seqs = np.empty(_MIN_CAPACITY, np.int64)
        self.lock = threading.Lock()  # faiss may not be searched while it is changed
        self.dead = 0

    def __len__(self) -> int:
        return self._pq.ntotal

    def add(self, seqs: np.ndarray, embeddings: np.ndarray) -> None:
        embeddings = np.ascontiguousarray(embeddings, np.float32)
        codes = np.clip(np.rint((embeddings - self._low) / self._step), 0, 255).astype(np.uint8)
        with self.lock:
            n, extra = self._pq.ntotal, len(seqs)
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
            n = self._pq.ntotal
            self._seqs, self._bytes = self._seqs[:n].copy(), self._bytes[:n].copy()

    def nearest(self, query: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The seqs of about the ``count`` entries of highest score, best first, and their
        scores by the 8-bit codes."""
        query = np.ascontiguousarray(query[None], np.float32)
        with self.lock:
            wanted = max(2 * count, FIRST_CANDIDATES * REFINE_FACTOR)
            _, positions = self._pq.search(query, min(wanted, self._pq.ntotal))
            positions = positions[0][positions[0] >= 0]
            codes, seqs = self._bytes[positions], self._seqs[positions]
        # A code c stands for low + c * step: its score is c . (query * step) + query . low.
        scores = codes @ (query[0] * self._step) + float(query[0] @ self._low)
        best = np.argsort(-scores, kind="stable")[:count]
        return seqs[best], scores[best]


class CollectionIndex:
    """Search over one collection's faces, built and updated from FaceChanges."""

    def __init__(self, source: VectorSource, compressed_min_faces: int | None = None) -> None:
        self._source = source
        self._compressed_min_faces = compressed_min_faces or COMPRESSED_MIN_FACES
        self._lock = threading.Lock()  # one writer at a time
        self._codes: _Codes | None = None
        self._buffer = np.empty((0, _MIN_CAPACITY), np.float32)
        self._snap = _EMPTY
        self.version = 0

    def __len__(self) -> int:
        snap = self._snap
        return len(snap.seqs) - snap.dead

    @property
    def compressed(self) -> bool:
        """Whether candidates come from the compressed codes (True) or exact vectors (False)."""
        return self._codes is not None

    def load(self) -> None:
        """Fill the index from the store, page by page."""
        with self._lock:
            self._load()

    def catch_up(self) -> None:
        """Apply what changed in the store since this index's version, page by page."""
        with self._lock:
            self._catch_up()

    def _load(self) -> None:
        self._codes = None
        self._snap, self._buffer = _EMPTY, np.empty((0, _MIN_CAPACITY), np.float32)
        self.version = 0
        self._catch_up()
        if self._codes is not None:
            self._codes.trim()

    def _catch_up(self) -> None:
        """Merge the changes since ``version`` page by page, then take the version of the first
        page: what changed during the read is applied (again, harmlessly) by the next one."""
        since = self.version
        first = self._source.changes(since, 0)
        if since and first.version <= since:
            return
        if self._codes is None and not len(self._snap.seqs) and len(first.seqs):
            model = self._source.search_model(None)
            if model is not None:  # a large collection: encode as it loads
                self._codes = _Codes(model, first.embeddings.shape[1])
        # The next page is read while this one is merged: both mostly run without the GIL.
        with ThreadPoolExecutor(1, thread_name_prefix="facesearch-load") as reader:
            page: FaceChanges | None = first
            while page is not None:
                following = (
                    reader.submit(self._source.changes, since, int(page.seqs[-1]))
                    if len(page.seqs)
                    else None
                )
                self._merge(page)
                page = following.result() if following is not None else None
        self.version = first.version

    def apply(self, changes: FaceChanges) -> None:
        """Bring the index to ``changes.version``: add new faces, update users, drop deleted."""
        with self._lock:
            if changes.version <= self.version:
                return
            self._merge(changes)
            self.version = changes.version

    def _merge(self, changes: FaceChanges) -> None:
        snap = self._snap
        users, alive, dead = snap.users, snap.alive, snap.dead
        if len(changes.deleted) or len(changes.seqs):
            users, alive = users.copy(), alive.copy()
        if len(changes.deleted):
            rows = _rows_of(snap.seqs, changes.deleted)
            rows = rows[alive[rows]]
            alive[rows] = False
            users[rows] = NO_USER
            dead += len(rows)
            if self._codes is not None:
                self._codes.dead += len(rows)
        # Changed faces: known ones get their user now; new ones are appended.
        known = _rows_of(snap.seqs, changes.seqs, missing=-1)
        present = known >= 0
        users[known[present]] = changes.user_seqs[present]
        self._snap = _Snapshot(snap.seqs, users, alive, dead, snap.vectors)
        fresh = ~present
        if fresh.any():
            self._append(changes.seqs[fresh], changes.user_seqs[fresh], changes.embeddings[fresh])
        if self._snap.dead * 4 > len(self._snap.seqs):
            self._compact()
        if self._codes is None and len(self) >= self._compressed_min_faces:
            self._compress()
        elif self._codes is not None and self._codes.dead * 2 > len(self._codes):
            # Half the codes belong to deleted faces: encode the live ones afresh.
            self._load()

    def _append(self, seqs: np.ndarray, user_seqs: np.ndarray, embeddings: np.ndarray) -> None:
        snap = self._snap
        n, extra = len(snap.seqs), len(seqs)
        vectors = None
        if self._codes is not None:
            self._codes.add(seqs, embeddings)
        else:
            if self._buffer.shape[0] != embeddings.shape[1]:  # the first faces fix the size
                self._buffer = np.empty(
                    (embeddings.shape[1], max(extra, _MIN_CAPACITY)), np.float32
                )
            elif n + extra > self._buffer.shape[1]:
                grown = np.empty((self._buffer.shape[0], max(2 * n, n + extra)), np.float32)
                grown[:, :n] = self._buffer[:, :n]
                self._buffer = grown
            self._buffer[:, n : n + extra] = embeddings.T
            vectors = self._buffer[:, : n + extra]
        all_seqs = np.concatenate([snap.seqs, seqs])
        users = np.concatenate([snap.users, user_seqs])
        alive = np.concatenate([snap.alive, np.ones(extra, bool)])
        if n and seqs.min() < snap.seqs[-1]:
            # Faces committed out of seq order (seen only across processes): keep seqs sorted.
            order = np.argsort(all_seqs, kind="stable")
            all_seqs, users, alive = all_seqs[order], users[order], alive[order]
            if vectors is not None:
                vectors = self._buffer[:, : n + extra] = vectors[:, order]
        self._snap = _Snapshot(all_seqs, users, alive, snap.dead, vectors)

    def _compact(self) -> None:
        snap = self._snap
        keep = snap.alive
        kept = int(keep.sum())
        vectors = None
        if snap.vectors is not None:
            buffer = np.empty((self._buffer.shape[0], max(kept, _MIN_CAPACITY)), np.float32)
            buffer[:, :kept] = snap.vectors[:, keep]
            self._buffer, vectors = buffer, buffer[:, :kept]
        self._snap = _Snapshot(snap.seqs[keep], snap.users[keep], np.ones(kept, bool), 0, vectors)

    def _compress(self) -> None:
        """Encode the exact index's vectors with the collection's shared model (trained here
        if the store has none yet: the first model stored wins) and free the vectors."""
        snap = self._snap
        vectors = snap.vectors[:, snap.alive].T  # type: ignore[index]
        model = self._source.search_model(None)
        if model is None:
            step = max(1, len(vectors) // TRAINING_FACES)
            model = self._source.search_model(_train(vectors[::step]))
        assert model is not None
        codes = _Codes(model, vectors.shape[1])
        codes.add(snap.seqs[snap.alive], vectors)
        self._codes = codes
        self._buffer = np.empty((0, _MIN_CAPACITY), np.float32)
        self._snap = _Snapshot(snap.seqs, snap.users, snap.alive, snap.dead, None)
        log.info("collection index compressed at %d faces", len(self))

    def _candidates(
        self,
        snap: _Snapshot,
        query: np.ndarray,
        min_cosine: float,
        keep: Callable[[np.ndarray], np.ndarray],
        enough: Callable[[np.ndarray], bool],
        limit: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows of faces that score ``min_cosine`` or more and pass ``keep(rows)``, with their
        exact cosines. Exact: every row. Compressed: the best by the codes, more of them until
        ``enough(rows)`` holds, the last ones fall below the bar, or ``CANDIDATES_PER_RESULT``
        per result (of ``limit``) were taken; then re-ranked with the stored vectors."""
        if snap.vectors is not None:
            scores = query @ snap.vectors
            rows = np.flatnonzero(scores >= min_cosine)
            rows = rows[keep(rows)]
            return rows, scores[rows]
        codes = self._codes
        assert codes is not None
        floor = min_cosine - _CODE_MARGIN
        count = FIRST_CANDIDATES
        most = max(FIRST_CANDIDATES, CANDIDATES_PER_RESULT * limit)
        while True:
            seqs, approx = codes.nearest(query, count)
            rows = _rows_of(snap.seqs, seqs[approx >= floor])
            rows = rows[keep(rows)]
            everything = len(seqs) < count or count >= min(most, len(codes))
            if everything or approx[-1] < floor or enough(rows):
                break
            count = min(max(4 * count, 2 * limit), most)
        stored = self._source.embeddings(snap.seqs[rows])
        rows = np.array([r for r in rows if int(snap.seqs[r]) in stored], np.int64)
        if not len(rows):
            return rows, np.empty(0, np.float32)
        exact = np.stack([stored[int(snap.seqs[r])] for r in rows]) @ query
        passing = exact >= min_cosine
        return rows[passing], exact[passing]

    def search_faces(
        self, query: np.ndarray, min_cosine: float, limit: int, exclude: int | None = None
    ) -> list[Hit]:
        """The ``limit`` faces most similar to ``query`` with cosine >= ``min_cosine``, but
        the face whose seq is ``exclude``."""
        snap = self._snap
        if not len(snap.seqs):
            return []
        rows, scores = self._candidates(
            snap,
            query,
            min_cosine,
            keep=lambda rows: snap.alive[rows] & (snap.seqs[rows] != exclude),
            enough=lambda rows: len(rows) >= limit,
            limit=limit,
        )
        return [Hit(int(snap.seqs[rows[i]]), float(scores[i])) for i in _top(scores, limit)]

    def search_users(
        self, query: np.ndarray, min_cosine: float, limit: int, exclude: int | None = None
    ) -> list[UserHit]:
        """Users ranked by their best-matching face, but the user whose seq is ``exclude``: the
        candidates that the service then scores on all their faces (scoring.user_cosines)."""
        snap = self._snap
        if not len(snap.seqs):
            return []
        rows, scores = self._candidates(
            snap,
            query,
            min_cosine,
            keep=lambda rows: (snap.users[rows] != NO_USER) & (snap.users[rows] != exclude),
            enough=lambda rows: len(np.unique(snap.users[rows])) >= limit,
            limit=limit,
        )
        # Take the best faces a few at a time until they hold ``limit`` users: each user's best
        # face is its first in score order.
        wanted = 4 * limit
        while True:
            top = _top(scores, wanted)
            _, first = np.unique(snap.users[rows[top]], return_index=True)
            if len(first) >= limit or len(top) == len(rows):
                break
            wanted *= 4
        best = top[np.sort(first)][:limit]
        return [UserHit(int(snap.users[rows[i]]), float(scores[i])) for i in best]


def _rows_of(seqs: np.ndarray, wanted: np.ndarray, missing: int | None = None) -> np.ndarray:
    """Rows of ``wanted`` seqs in the sorted ``seqs``; absent ones are dropped, or ``missing``."""
    rows = np.searchsorted(seqs, wanted)
    found = rows < len(seqs)
    found[found] = seqs[rows[found]] == wanted[found]
    if missing is None:
        return rows[found]
    return np.where(found, rows, missing)


def _top(scores: np.ndarray, limit: int) -> np.ndarray:
    """Positions of the ``limit`` highest scores, best first."""
    order = np.arange(len(scores))
    if len(scores) > limit:
        order = np.argpartition(-scores, limit - 1)[:limit]
    return order[np.argsort(-scores[order], kind="stable")]


def _release_free_memory() -> None:
    """Hand the memory a load freed back to the system. glibc keeps freed blocks in each
    thread's arena (the load reads on a thread of its own): without this, a loaded collection
    of a million faces holds twice its resident size."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    index: CollectionIndex | None = None


class SearchIndexes:
    """One process's search indexes, one per collection, each brought up to the collection's
    version before it is used. Loading one collection never blocks calls on another."""

    # How often the indexes of collections deleted elsewhere are looked for and dropped.
    SWEEP_SECONDS = 60.0

    def __init__(self, store: Store) -> None:
        self._store = store
        self._entries: dict[int, _Entry] = {}
        self._lock = threading.Lock()
        self._preloading = threading.Event()
        self._preloading.set()
        self._swept = time.monotonic()

    def get(self, collection: CollectionRecord) -> CollectionIndex:
        """The collection's index, current to at least ``collection.version``."""
        if time.monotonic() - self._swept > self.SWEEP_SECONDS:
            self.sweep()
        with self._lock:
            entry = self._entries.setdefault(collection.key, _Entry())
        index = entry.index
        if index is not None and index.version >= collection.version:
            return index
        with entry.lock:
            if entry.index is None:
                store = self._store
                index = CollectionIndex(
                    VectorSource(
                        changes=lambda version, after: store.face_changes(
                            collection, version, after, LOAD_PAGE
                        ),
                        embeddings=lambda seqs: store.embeddings(collection, seqs),
                        search_model=lambda model: store.search_model(collection, model),
                    )
                )
                index.load()
                _release_free_memory()
                entry.index = index
            if entry.index.version < collection.version:
                entry.index.catch_up()
            return entry.index

    def drop(self, collection: CollectionRecord) -> None:
        with self._lock:
            self._entries.pop(collection.key, None)

    def sweep(self) -> None:
        """Drop the indexes of collections that no longer exist (deleted by any process)."""
        self._swept = time.monotonic()
        live = {collection.key for collection in self._store.all_collections()}
        with self._lock:
            for key in [key for key in self._entries if key not in live]:
                del self._entries[key]

    @property
    def loading(self) -> bool:
        """Whether the indexes of the collections found at start are still being loaded."""
        return not self._preloading.is_set()

    def preload(self) -> None:
        """Load every collection's index in a background thread; a call on a collection not
        loaded yet loads it itself, and calls on loaded ones never wait."""
        self._preloading.clear()

        def load_all() -> None:
            try:
                for collection in self._store.all_collections():
                    self.get(collection)
            except Exception:  # a failed preload only means indexes load on first use
                log.exception("preloading the search indexes failed")
            finally:
                self._preloading.set()

        threading.Thread(target=load_all, name="facesearch-preload", daemon=True).start()
