"""One collection's search index: its faces as numpy arrays, searched for faces or for users.

A face is its store ``seq`` (increasing as faces are added) and its user's seq, held in numpy
arrays rather than Python objects: the service turns the seqs of the results back into faces
and UserIds through the store. Readers take an immutable snapshot of those arrays; a writer
builds the next one: new faces are written past the end of every snapshot's view (_Growing), and
deletions only mark rows dead (compacted once a quarter of them are), so a write costs
O(changed faces) plus, for a (dis)association or deletion, one copy of the per-face user and
alive arrays.

Candidates come from the exact vectors (exact.py) below ``COMPRESSED_MIN_FACES`` faces and from
the compressed codes (compressed.py) from then on; every similarity returned is exact.
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
from facesearch.store import FaceChanges

log = logging.getLogger("facesearch.index")

# Exact search up to here (about 3 ms a query at 200,000 faces on 2 cores), compressed from here.
COMPRESSED_MIN_FACES = 200_000
NO_USER = -1
# The least room a per-face array grows by.
_MIN_ROOM = 64
# Pages of this many faces or more are merged while the next one is read on another thread.
_PREFETCH_MIN_FACES = 1_000


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


class _Growing:
    """One per-face array with room to grow at the end, as exact.Columns for the vectors: a
    snapshot holds a view of the first n; appends write past every view, and anything else
    writes a new buffer, so a reader of an older snapshot never sees its array change."""

    def __init__(self, dtype: type) -> None:
        self._buffer: np.ndarray = np.empty(0, dtype)

    def append(self, n: int, values: np.ndarray) -> np.ndarray:
        """The first ``n`` values followed by ``values``: the new view."""
        end = n + len(values)
        if end > len(self._buffer):  # a quarter more: amortised O(1), little room left spare
            grown = np.empty(max(n + n // 4, end, _MIN_ROOM), self._buffer.dtype)
            grown[:n] = self._buffer[:n]
            self._buffer = grown
        self._buffer[n:end] = values
        return self._buffer[:end]

    def replace(self, values: np.ndarray, room: bool = True) -> np.ndarray:
        """``values`` in a new buffer, with room for appends unless ``room`` is False (after a
        load, whose size holds until the next write): the new view."""
        n = len(values)
        self._buffer = np.empty(n + (max(n // 8, _MIN_ROOM) if room else 0), self._buffer.dtype)
        self._buffer[:n] = values
        return self._buffer[:n]


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
        self._seqs, self._users, self._alive = _growing()
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
        self._snap, self._columns = _EMPTY, exact.Columns()
        self._seqs, self._users, self._alive = _growing()
        self.version = 0
        self._catch_up()
        if self._codes is not None:
            self._codes.trim()
        snap = self._snap  # give back the room the appends kept
        self._snap = _Snapshot(
            self._seqs.replace(snap.seqs, room=False),
            self._users.replace(snap.users, room=False),
            self._alive.replace(snap.alive, room=False),
            snap.dead,
            snap.vectors,
        )

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
        # Changed faces: known ones get their user now; new ones are appended.
        known = _rows_of(snap.seqs, changes.seqs, missing=-1)
        present = known >= 0
        if len(changes.deleted) or present.any():
            users, alive = self._users.replace(users), self._alive.replace(alive)
        if len(changes.deleted):
            rows = _rows_of(snap.seqs, changes.deleted)
            rows = rows[alive[rows]]
            alive[rows] = False
            users[rows] = NO_USER
            dead += len(rows)
            if self._codes is not None:
                self._codes.dead += len(rows)
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
            vectors = self._columns.append(n, embeddings)
        all_seqs = self._seqs.append(n, seqs)
        users = self._users.append(n, user_seqs)
        alive = self._alive.append(n, np.ones(extra, bool))
        if n and seqs.min() < snap.seqs[-1]:
            # Faces committed out of seq order (seen only across processes): keep seqs sorted.
            order = np.argsort(all_seqs, kind="stable")
            all_seqs = self._seqs.replace(all_seqs[order])
            users = self._users.replace(users[order])
            alive = self._alive.replace(alive[order])
            if vectors is not None:
                vectors = self._columns.replace(vectors[:, order])
        self._snap = _Snapshot(all_seqs, users, alive, snap.dead, vectors)

    def _compact(self) -> None:
        snap = self._snap
        keep = snap.alive
        kept = int(keep.sum())
        vectors = None
        if snap.vectors is not None:
            vectors = self._columns.replace(snap.vectors[:, keep])
        self._snap = _Snapshot(
            self._seqs.replace(snap.seqs[keep]),
            self._users.replace(snap.users[keep]),
            self._alive.replace(np.ones(kept, bool)),
            0,
            vectors,
        )

    def _compress(self) -> None:
        """Encode the exact index's vectors with the collection's shared model (trained here
        if the store has none yet: the first model stored wins) and free the vectors."""
        snap = self._snap
        vectors = snap.vectors[:, snap.alive].T  # type: ignore[index]
        model = self._source.search_model(None)
        if model is None:
            step = max(1, len(vectors) // TRAINING_FACES)
            model = self._source.search_model(train(vectors[::step]))
        assert model is not None
        codes = Codes(model, vectors.shape[1])
        codes.add(snap.seqs[snap.alive], vectors)
        self._codes = codes
        self._columns = exact.Columns()
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
        exact cosines. Exact: every row. Compressed: the codes' shortlist (``enough`` and
        ``limit`` say how long: Codes.shortlist), re-ranked with the stored vectors."""
        if snap.vectors is not None:
            rows, scores = exact.candidates(snap.vectors, query, min_cosine)
            kept = keep(rows)
            return rows[kept], scores[kept]
        codes = self._codes
        assert codes is not None

        def kept_rows(seqs: np.ndarray) -> np.ndarray:
            rows = _rows_of(snap.seqs, seqs)
            kept: np.ndarray = rows[keep(rows)]
            return kept

        rows = codes.shortlist(query, min_cosine, kept_rows, enough, limit)
        stored = self._source.embeddings(snap.seqs[rows])
        rows = np.array([r for r in rows if int(snap.seqs[r]) in stored], np.int64)
        if not len(rows):
            return rows, np.empty(0, np.float32)
        cosines = np.stack([stored[int(snap.seqs[r])] for r in rows]) @ query
        passing = cosines >= min_cosine
        return rows[passing], cosines[passing]

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


def _growing() -> tuple[_Growing, _Growing, _Growing]:
    """Empty buffers for a snapshot's seqs, users and alive flags."""
    return _Growing(np.int64), _Growing(np.int64), _Growing(np.bool_)


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
