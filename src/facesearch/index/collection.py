"""One collection's search index: its faces as numpy arrays, searched for faces or for users.

A face is its store ``seq`` (increasing as faces are added) and its user's seq, held in numpy
arrays rather than Python objects: the service turns the seqs of the results back into faces
and UserIds through the store. Readers take an immutable snapshot of those arrays; a writer
builds the next one: new faces are written past the end of every snapshot's view (_Growing), and
deletions only mark rows dead (compacted once a quarter of them are), so a write costs
O(changed faces) plus, for a (dis)association or deletion, one copy of the per-face user and
alive arrays.

Candidates come from the exact vectors (exact.py) below ``COMPRESSED_MIN_FACES`` faces and from
the compressed codes (compressed.py) from then on, and from the exact ones again below
``EXACT_AGAIN_BELOW`` of it; every similarity returned is exact.

An index may start from a file (persisted.py) rather than the store: its seqs and vectors or codes
stay mapped from the file (the *base*, shared by the processes of a machine) and what is added
afterwards goes to a *tail* in memory; users and alive flags are this process's own copies.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from facesearch.index import exact
from facesearch.index.compressed import TRAINING_FACES, Codes, train
from facesearch.index.persisted import CodesData, IndexData, model_digest
from facesearch.store import FaceChanges

log = logging.getLogger("facesearch.index")

# Exact search up to here (about 3 ms a query at 200,000 faces on 2 cores), compressed from here.
COMPRESSED_MIN_FACES = 200_000
# A compressed collection that shrinks below this share of COMPRESSED_MIN_FACES goes back to
# exact: far enough below that a collection near the size does not switch back and forth.
EXACT_AGAIN_BELOW = 0.75
NO_USER = -1
_NO_SEQS = np.empty(0, np.int64)
# The least room a per-face array grows by.
_MIN_ROOM = 64
# Pages of this many faces or more are merged while the next one is read on another thread.
_PREFETCH_MIN_FACES = 1_000


class _Growing:
    """One per-face array with room to grow at the end, as exact.Columns for the vectors: a
    snapshot holds a view of the first n; an append to the view handed out last writes past
    every view, any other array is copied to a new buffer first, so a reader of an older
    snapshot never sees its array change."""

    def __init__(self) -> None:
        self._buffer: np.ndarray = _NO_SEQS
        self._view: np.ndarray = _NO_SEQS

    def append(self, current: np.ndarray, values: np.ndarray) -> np.ndarray:
        """``current`` followed by ``values``: the new view."""
        n, end = len(current), len(current) + len(values)
        if current is not self._view or end > len(self._buffer):
            # A quarter more: amortised O(1) appends, and little room left spare.
            grown = np.empty(max(n + n // 4, end, _MIN_ROOM), current.dtype)
            grown[:n] = current
            self._buffer = grown
        self._buffer[n:end] = values
        self._view = self._buffer[:end]
        return self._view


@dataclass(frozen=True)
class _Snapshot:
    """Rows in seq order: the first ``len(base_seqs)`` are the base's (mapped from a file, or
    none), the rest the tail's (in memory), and every tail seq is above every base seq."""

    base_seqs: np.ndarray  # (b,) int64, increasing: the store's face seq of each base row
    tail_seqs: np.ndarray  # (t,) int64, increasing
    users: np.ndarray  # (b + t,) int64: the seq of each face's user, NO_USER for none
    alive: np.ndarray  # (b + t,) bool: False for a deleted face not compacted away yet
    dead: int
    # (d, b) and (d, t) float32 columns while exact, else None.
    vectors: tuple[np.ndarray, np.ndarray] | None

    def __len__(self) -> int:
        return len(self.base_seqs) + len(self.tail_seqs)

    def seqs(self, rows: np.ndarray) -> np.ndarray:
        """The seqs of ``rows``."""
        base = len(self.base_seqs)
        if not base or not len(self.tail_seqs):
            found: np.ndarray = (self.base_seqs if base else self.tail_seqs)[rows]
            return found
        in_base = rows < base
        found = np.empty(len(rows), np.int64)
        found[in_base] = self.base_seqs[rows[in_base]]
        found[~in_base] = self.tail_seqs[rows[~in_base] - base]
        return found

    def all_seqs(self) -> np.ndarray:
        return np.concatenate([self.base_seqs, self.tail_seqs])

    def last_seq(self) -> int:
        return int(self.tail_seqs[-1] if len(self.tail_seqs) else self.base_seqs[-1])

    def rows_of(self, wanted: np.ndarray, missing: int | None = None) -> np.ndarray:
        """Rows of ``wanted`` seqs; absent ones are dropped, or ``missing``."""
        base = len(self.base_seqs)
        rows = np.searchsorted(self.base_seqs, wanted)
        beyond = rows == base
        if beyond.any() and len(self.tail_seqs):
            rows[beyond] = base + np.searchsorted(self.tail_seqs, wanted[beyond])
        found = rows < len(self)
        found[found] = self.seqs(rows[found]) == wanted[found]
        if missing is None:
            return rows[found]
        return np.where(found, rows, missing)

    def all_vectors(self) -> np.ndarray:
        assert self.vectors is not None
        base, tail = self.vectors
        return tail if not base.shape[1] else np.concatenate([base, tail], axis=1)


_EMPTY = _Snapshot(
    _NO_SEQS,
    _NO_SEQS,
    np.empty(0, np.int64),
    np.empty(0, bool),
    0,
    (np.empty((0, 0), np.float32), np.empty((0, 0), np.float32)),
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


class CollectionIndex:
    """Search over one collection's faces, built and updated from FaceChanges."""

    def __init__(self, source: VectorSource, compressed_min_faces: int | None = None) -> None:
        self._source = source
        self._compressed_min_faces = compressed_min_faces or COMPRESSED_MIN_FACES
        self._lock = threading.Lock()  # one writer at a time
        self._codes: Codes | None = None
        self._columns = exact.Columns()
        self._snap = _EMPTY
        self._tail_seqs, self._users, self._alive = _Growing(), _Growing(), _Growing()
        self.version = 0
        # The version of the file this index started from (0: none), and how many faces it
        # changed since (a whole load, or a change of kind, counts every face): when to save.
        self.base_version = 0
        self.unsaved = 0
        self._loading = False

    @classmethod
    def from_data(
        cls, source: VectorSource, data: IndexData, compressed_min_faces: int | None = None
    ) -> CollectionIndex:
        """An index at ``data.version`` over ``data`` (a file's mapped arrays, kept as its
        base), not caught up yet."""
        index = cls(source, compressed_min_faces)
        n = len(data.seqs)
        users = np.array(data.users)  # this process's copy: associations change it
        if data.codes is not None:
            parts = data.codes
            index._codes = Codes.from_parts(
                parts.pq, parts.low, parts.step, parts.seqs[0], parts.codes[0]
            )
            index._codes.dead = len(index._codes) - n
            vectors = None
        else:
            assert data.vectors is not None
            dim = data.vectors.shape[0]
            vectors = (data.vectors, np.empty((dim, 0), np.float32))
        index._snap = _Snapshot(data.seqs, _NO_SEQS, users, np.ones(n, bool), 0, vectors)
        index.version = index.base_version = data.version
        return index

    def data(self) -> IndexData:
        """What a file of this index holds now: its live faces (and any dead codes, which
        the file's seqs leave out), taken under the writer's lock. Arrays the index holds are
        shared with it, not copied, where they need no compacting."""
        with self._lock:
            snap, version, codes = self._snap, self.version, self._codes
            parts = codes.parts() if codes is not None else None
        alive = snap.alive
        everything = bool(alive.all())
        seqs = snap.all_seqs() if everything else snap.all_seqs()[alive]
        users = snap.users if everything else snap.users[alive]
        vectors = None
        if snap.vectors is not None:
            vectors = snap.all_vectors() if everything else snap.all_vectors()[:, alive]
        codes_data = None
        if parts is not None:
            pq, low, step, code_seqs, code_bytes = parts
            model = self._source.search_model(None)
            codes_data = CodesData(pq, low, step, code_seqs, code_bytes, model_digest(model))
        return IndexData(version, seqs, users, vectors, codes_data)

    def __len__(self) -> int:
        snap = self._snap
        return len(snap) - snap.dead

    @property
    def compressed(self) -> bool:
        """Whether candidates come from the compressed codes (True) or exact vectors (False)."""
        return self._codes is not None

    def load(self) -> None:
        """Fill the index from the store, page by page."""
        with self._lock:
            self._load()

    def catch_up(self, from_file: bool = False) -> None:
        """Apply what changed in the store since this index's version, page by page.
        ``from_file``: the index was just read from a file, which may be newer than the store
        (one restored from a backup): then it loads in full."""
        with self._lock:
            self._catch_up(from_file=from_file)

    def _load(self, exact_only: bool = False) -> None:
        self._codes = None
        self._snap, self._columns = _EMPTY, exact.Columns()
        self.version = 0
        self._loading = True
        try:
            self._catch_up(exact_only)
        finally:
            self._loading = False
        if self._codes is not None:
            self._codes.trim()
            if len(self) < self._compressed_min_faces * EXACT_AGAIN_BELOW:
                self._load(exact_only=True)  # a collection that shrank: exact again
        self.unsaved = max(len(self), 1)

    def _catch_up(self, exact_only: bool = False, from_file: bool = False) -> None:
        """Merge the changes since ``version`` page by page, then take the version of the first
        page: what changed during the read is applied (again, harmlessly) by the next one.
        An index older than the store's pruned tombstones cannot learn what they said: it
        loads in full."""
        since = self.version
        first = self._source.changes(since, 0)
        if since and (first.pruned > since or (from_file and first.version < since)):
            log.info("collection index at version %d cannot catch up: loading it", since)
            self._load()
            return
        if since and first.version <= since:
            return
        if self._codes is None and not len(self._snap) and len(first.seqs) and not exact_only:
            model = self._source.search_model(None)
            if model is not None:  # a large collection: encode as it loads
                self._codes = Codes(model, first.embeddings.shape[1])
        # The next page is read while a large one is merged (both mostly run without the GIL);
        # after a small one, as a catch-up of a few writes reads, here: no thread to start.
        with ThreadPoolExecutor(1, thread_name_prefix="facesearch-load") as reader:
            page: FaceChanges | None = first
            while page is not None:
                after = int(page.seqs[-1]) if len(page.seqs) else None
                following = (
                    reader.submit(self._source.changes, since, after)
                    if after is not None and len(page.seqs) >= _PREFETCH_MIN_FACES
                    else None
                )
                self._merge(page)
                if following is not None:
                    page = following.result()
                else:
                    page = self._source.changes(since, after) if after is not None else None
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
        # Changed faces: known ones get their user now; new ones are appended (_append).
        known = snap.rows_of(changes.seqs, missing=-1)
        present = known >= 0
        if len(changes.deleted) or present.any():
            users, alive = users.copy(), alive.copy()
        if len(changes.deleted):
            rows = snap.rows_of(changes.deleted)
            rows = rows[alive[rows]]
            alive[rows] = False
            users[rows] = NO_USER
            dead += len(rows)
            if self._codes is not None:
                self._codes.dead += len(rows)
        users[known[present]] = changes.user_seqs[present]
        self._snap = _Snapshot(snap.base_seqs, snap.tail_seqs, users, alive, dead, snap.vectors)
        self.unsaved += len(changes.seqs) + len(changes.deleted)
        fresh = ~present
        if fresh.any():
            self._append(changes.seqs[fresh], changes.user_seqs[fresh], changes.embeddings[fresh])
        if self._snap.dead * 4 > len(self._snap):
            self._compact()
        if self._codes is None and len(self) >= self._compressed_min_faces:
            self._compress()
        elif self._codes is not None and (
            self._codes.dead * 2 > len(self._codes)
            or (not self._loading and len(self) < self._compressed_min_faces * EXACT_AGAIN_BELOW)
        ):
            # Half the codes belong to deleted faces, or the collection shrank well below the
            # compressed size: load the live faces afresh (exact again if it shrank).
            self._load()

    def _append(self, seqs: np.ndarray, user_seqs: np.ndarray, embeddings: np.ndarray) -> None:
        snap = self._snap
        extra = len(seqs)
        vectors = None
        if self._codes is not None:
            self._codes.add(seqs, embeddings)
        else:
            assert snap.vectors is not None
            base, tail = snap.vectors
            dim = base.shape[0] if base.shape[1] else tail.shape[0]
            if len(snap) and dim != embeddings.shape[1]:
                raise ValueError(f"{embeddings.shape[1]}-d faces in a {dim}-d index")
            vectors = (base, self._columns.append(tail.shape[1], embeddings))
        tail_seqs = self._tail_seqs.append(snap.tail_seqs, seqs)
        users = self._users.append(snap.users, user_seqs)
        alive = self._alive.append(snap.alive, np.ones(extra, bool))
        if len(snap) and seqs.min() < snap.last_seq():
            # Faces committed out of seq order (seen only across processes): keep seqs sorted,
            # all of them in memory now.
            all_seqs = np.concatenate([snap.base_seqs, tail_seqs])
            order = np.argsort(all_seqs, kind="stable")
            tail_seqs, users, alive = all_seqs[order], users[order], alive[order]
            if vectors is not None:
                joined = _Snapshot(snap.base_seqs, tail_seqs, users, alive, 0, vectors)
                vectors = self._in_memory(joined.all_vectors()[:, order])
            self._snap = _Snapshot(_NO_SEQS, tail_seqs, users, alive, snap.dead, vectors)
            return
        self._snap = _Snapshot(snap.base_seqs, tail_seqs, users, alive, snap.dead, vectors)

    def _in_memory(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Columns held in this process's memory alone (no base)."""
        return np.empty((vectors.shape[0], 0), np.float32), self._columns.replace(vectors)

    def _compact(self) -> None:
        snap = self._snap
        keep = snap.alive
        kept = int(keep.sum())
        vectors = None
        if snap.vectors is not None:
            vectors = self._in_memory(snap.all_vectors()[:, keep])
        self._snap = _Snapshot(
            _NO_SEQS, snap.all_seqs()[keep], snap.users[keep], np.ones(kept, bool), 0, vectors
        )

    def _compress(self) -> None:
        """Encode the exact index's vectors with the collection's shared model (trained here
        if the store has none yet: the first model stored wins) and free the vectors."""
        snap = self._snap
        vectors = snap.all_vectors()[:, snap.alive].T
        model = self._source.search_model(None)
        if model is None:
            step = max(1, len(vectors) // TRAINING_FACES)
            model = self._source.search_model(train(vectors[::step]))
        assert model is not None
        codes = Codes(model, vectors.shape[1])
        codes.add(snap.all_seqs()[snap.alive], vectors)
        self._codes = codes
        self._columns = exact.Columns()
        self._snap = _Snapshot(
            snap.base_seqs, snap.tail_seqs, snap.users, snap.alive, snap.dead, None
        )
        self.unsaved = max(self.unsaved, len(self))
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
        exact cosines. Exact: every row. Compressed: the codes' shortlist (``enough`` and
        ``limit`` say how long: Codes.shortlist), re-ranked with the stored vectors."""
        if snap.vectors is not None:
            rows, scores = exact.candidates(snap.vectors, query, min_cosine)
            kept = keep(rows)
            return rows[kept], scores[kept]
        codes = self._codes
        assert codes is not None

        def kept_rows(seqs: np.ndarray) -> np.ndarray:
            rows = snap.rows_of(seqs)
            kept: np.ndarray = rows[keep(rows)]
            return kept

        rows = codes.shortlist(query, min_cosine, kept_rows, enough, limit)
        seqs = snap.seqs(rows)
        stored = self._source.embeddings(seqs)
        present = np.array([int(s) in stored for s in seqs], bool)
        rows, seqs = rows[present], seqs[present]
        if not len(rows):
            return rows.astype(np.int64), np.empty(0, np.float32)
        cosines = _cosines(np.stack([stored[int(s)] for s in seqs]), query)
        passing = cosines >= min_cosine
        return rows[passing], cosines[passing]

    def search_faces(
        self, query: np.ndarray, min_cosine: float, limit: int, exclude: int | None = None
    ) -> list[Hit]:
        """The ``limit`` faces most similar to ``query`` with cosine >= ``min_cosine``, but
        the face whose seq is ``exclude``."""
        snap = self._snap
        if not len(snap):
            return []
        rows, scores = self._candidates(
            snap,
            query,
            min_cosine,
            keep=lambda rows: snap.alive[rows] & (snap.seqs(rows) != exclude),
            enough=lambda rows: len(rows) >= limit,
            limit=limit,
        )
        best = _top(scores, limit)
        top, cosines = rows[best], scores[best]
        if snap.vectors is not None:
            # The same cosine for a face whichever columns it is held in (the file's, a tail,
            # a buffer with room to grow), as the compressed path gives.
            cosines = _cosines(_columns(snap, top).T, query)
            kept = cosines >= min_cosine
            top, cosines = top[kept], cosines[kept]
        seqs = snap.seqs(top)
        order = np.lexsort((seqs, -cosines))  # ties by seq: the same order in every process
        return [Hit(int(seqs[i]), float(cosines[i])) for i in order]

    def search_users(
        self, query: np.ndarray, min_cosine: float, limit: int, exclude: int | None = None
    ) -> list[UserHit]:
        """Users ranked by their best-matching face, but the user whose seq is ``exclude``: the
        candidates that the service then scores on all their faces (scoring.user_cosines)."""
        snap = self._snap
        if not len(snap):
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


def _columns(snap: _Snapshot, rows: np.ndarray) -> np.ndarray:
    """The exact vectors of ``rows`` as (d, k) columns, from the base or the tail."""
    assert snap.vectors is not None
    base, tail = snap.vectors
    b = base.shape[1]
    if not b:
        found: np.ndarray = tail[:, rows]
        return found
    in_base = rows < b
    found = np.empty((base.shape[0], len(rows)), np.float32)
    found[:, in_base] = base[:, rows[in_base]]
    found[:, ~in_base] = tail[:, rows[~in_base] - b]
    return found


def _cosines(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The cosines of (k, d) vectors with ``query``, summed row by row in float64 (einsum's
    own loop, not BLAS): the same value for a vector however many are computed with it and
    wherever it is held, rounded to float32."""
    sums = np.einsum("ij,j->i", vectors.astype(np.float64), query.astype(np.float64))
    cosines: np.ndarray = sums.astype(np.float32)
    return cosines


def _top(scores: np.ndarray, limit: int) -> np.ndarray:
    """Positions of the ``limit`` highest scores, best first."""
    order = np.arange(len(scores))
    if len(scores) > limit:
        order = np.argpartition(-scores, limit - 1)[:limit]
    return order[np.argsort(-scores[order], kind="stable")]
