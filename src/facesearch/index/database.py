"""The in-database search mode (``--search database``): every search runs inside PostgreSQL.

The process holds no vectors and no index: it starts at once whatever its collections hold, and
any number of processes cost the database's memory once. Each search is one statement
(store/database_search.py): exact over a small collection's faces, and over a large one's HNSW
candidates re-ranked by their exact cosines. When a collection reaches ``HNSW_MIN_FACES`` its
index is built: within the search that finds it missing while the collection is small (a few
seconds, once), in the background for a larger one (a collection loaded in bulk, or found at
start), which is searched exactly meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from facesearch.index.collection import Hit, UserHit
from facesearch.store import CollectionRecord, Store
from facesearch.store.database_search import (
    HNSW_MIN_FACES,
    DatabaseSearchSQL,
    NearestFaces,
)

log = logging.getLogger("facesearch.index")

# An index missing below this many faces is built within the search that finds it missing.
INLINE_BUILD_FACES = 50_000
# How long a collection's size and index state are trusted before they are read again.
STATE_SECONDS = 10.0
# Candidates asked of the index at first, and by how much more when every one passed the bar
# but too few results were found.
FIRST_CANDIDATES = 100
GROWTH = 4


@dataclass(frozen=True)
class _State:
    faces: int
    indexed: bool
    read_at: float


class DatabaseCollectionSearch:
    """One collection's search inside the database (the CollectionSearch of this mode)."""

    def __init__(self, store: DatabaseSearchSQL, collection: CollectionRecord, state: _State):
        self._store = store
        self._collection = collection
        self._state = state

    def search_faces(
        self, query: np.ndarray, min_cosine: float, limit: int, exclude: int | None = None
    ) -> list[Hit]:
        """The ``limit`` faces most similar to ``query`` with cosine >= ``min_cosine``, but
        the face whose seq is ``exclude``."""
        found = self._nearest(
            query, min_cosine, limit, users_only=False, exclude_seq=exclude, exclude_user=None
        )
        return [Hit(int(s), float(c)) for s, c in zip(found.seqs, found.cosines, strict=True)]

    def search_users(
        self, query: np.ndarray, min_cosine: float, limit: int, exclude: int | None = None
    ) -> list[UserHit]:
        """Users ranked by their best-matching face, but the user whose seq is ``exclude``."""
        found = self._nearest(
            query, min_cosine, limit, users_only=True, exclude_seq=None, exclude_user=exclude
        )
        return [
            UserHit(int(u), float(c)) for u, c in zip(found.user_seqs, found.cosines, strict=True)
        ]

    def _nearest(
        self,
        query: np.ndarray,
        min_cosine: float,
        limit: int,
        *,
        users_only: bool,
        exclude_seq: int | None,
        exclude_user: int | None,
    ) -> NearestFaces:
        def nearest(candidates: int | None) -> NearestFaces:
            return self._store.nearest_faces(
                self._collection,
                query,
                min_cosine,
                limit,
                candidates=candidates,
                users_only=users_only,
                exclude_seq=exclude_seq,
                exclude_user=exclude_user,
            )

        if not self._state.indexed:
            return nearest(None)
        # Few pass the bar of a usual search: ask for few first, as many again only when
        # every one passed (a low threshold, a large limit).
        candidates = FIRST_CANDIDATES
        while True:
            found = nearest(candidates)
            # Some candidates fell below the bar (or the scan ran out): the rest would too.
            if len(found.seqs) >= limit or found.passing < candidates:
                return found
            if candidates >= self._state.faces:
                return found
            candidates *= GROWTH


class DatabaseSearches:
    """The in-database search of every collection (the Searches of this mode): nothing to load,
    and an HNSW index built in the database for each collection of ``HNSW_MIN_FACES`` faces."""

    # How often the indexes of collections deleted elsewhere are looked for and dropped.
    SWEEP_SECONDS = 60.0

    def __init__(self, store: Store) -> None:
        if not isinstance(store, DatabaseSearchSQL):
            raise ValueError(
                "the in-database search (--search database) needs a PostgreSQL store "
                "(--store postgresql://...)"
            )
        self._store = store
        self._states: dict[int, _State] = {}
        self._lock = threading.Lock()
        self._pending: set[int] = set()
        # Background work (builds, drops) runs one piece at a time, on daemon threads: a process
        # that exits mid-build leaves an invalid index, which the next build replaces.
        self._one_at_a_time = threading.Lock()
        self._swept = time.monotonic()

    @property
    def loading(self) -> bool:
        """Never: there is nothing to load."""
        return False

    def get(self, collection: CollectionRecord) -> DatabaseCollectionSearch:
        """The collection's search (always current: it reads the database)."""
        if time.monotonic() - self._swept > self.SWEEP_SECONDS:
            self.sweep()
        state = self._state(collection)
        if not state.indexed and state.faces >= HNSW_MIN_FACES:
            if state.faces < INLINE_BUILD_FACES:
                try:
                    self.build(collection)
                except Exception:  # this search runs exactly; a later one tries again
                    log.exception("building the HNSW index of a collection failed")
                state = self._state(collection, fresh=True)
            else:
                self._in_background(collection.key, lambda: self.build(collection))
        return DatabaseCollectionSearch(self._store, collection, state)

    def _state(self, collection: CollectionRecord, fresh: bool = False) -> _State:
        now = time.monotonic()
        state = self._states.get(collection.key)
        if fresh or state is None or now - state.read_at > STATE_SECONDS:
            faces, indexed = self._store.search_index_state(collection)
            state = _State(faces, indexed, now)
            self._states[collection.key] = state
        return state

    def build(self, collection: CollectionRecord) -> bool:
        """Build the collection's HNSW index now, unless it exists; False if another process
        is building it."""
        started = time.perf_counter()
        built = self._store.build_search_index(collection)
        if built:  # else another process builds it: the state's next read finds it built
            self._states.pop(collection.key, None)
            log.info(
                "HNSW index of collection %s ready (%.1f s)",
                collection.collection_id,
                time.perf_counter() - started,
            )
        return built

    def _in_background(self, key: int, work: Callable[[], object]) -> None:
        """Run ``work`` on the background thread unless work for ``key`` waits there already."""
        with self._lock:
            if key in self._pending:
                return
            self._pending.add(key)

        def run() -> None:
            try:
                with self._one_at_a_time:
                    work()
            except Exception:  # the next call tries again
                log.exception("in-database search upkeep failed")
            finally:
                with self._lock:
                    self._pending.discard(key)

        threading.Thread(target=run, name="facesearch-hnsw", daemon=True).start()

    def drop(self, collection: CollectionRecord) -> None:
        """A collection deleted here: its index goes (in the background)."""
        self._states.pop(collection.key, None)
        self.sweep()

    def sweep(self) -> None:
        """Drop the indexes of collections that no longer exist (deleted by any process)."""
        self._swept = time.monotonic()
        self._in_background(-1, self._store.drop_stale_search_indexes)

    def preload(self) -> None:
        """Nothing to load: only the indexes of collections deleted meanwhile are dropped."""
        self.sweep()

    def close(self) -> None:
        """Nothing to save: the indexes are the database's."""
