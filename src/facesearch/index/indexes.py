"""One process's search indexes, each caught up from the store's change feed before it is used.

:class:`SearchIndexes` keeps one :class:`CollectionIndex` per collection and brings it up to the
collection's ``version`` from :meth:`Store.face_changes`: every process that shares a store
applies every acknowledged write, whichever process made it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
from dataclasses import dataclass, field

from facesearch.index.collection import CollectionIndex, VectorSource
from facesearch.store import CollectionRecord, Store

log = logging.getLogger("facesearch.index")

# Faces read from the store per page while an index loads: bounds the memory a load needs.
LOAD_PAGE = 50_000


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
                        embeddings=lambda seqs: store.embeddings(collection, seqs.tolist()),
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
