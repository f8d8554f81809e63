"""One process's search indexes, each caught up from the store's change feed before it is used.

:class:`SearchIndexes` keeps one :class:`CollectionIndex` per collection and brings it up to the
collection's ``version`` from :meth:`Store.face_changes`: every process that shares a store
applies every acknowledged write, whichever process made it.

With an index folder, each collection's index is also kept on local disk (persisted.py): a
process starts from the file, mapped, and reads from the store only what changed since the
file's version. The file is written again (by one process at a time, in the background) once
enough has changed, and the process then swaps its index for one over the new file, so that what
it holds in its own memory stays small and the rest is shared with the machine's other
processes. Each process also records in the store the version it can catch up from, and prunes
the tombstones every live reader is past (:meth:`Store.prune_tombstones`).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from facesearch.index import persisted
from facesearch.index.collection import CollectionIndex, VectorSource
from facesearch.store import CollectionRecord, Store

log = logging.getLogger("facesearch.index")

# Faces read from the store per page while an index loads: bounds the memory a load needs.
LOAD_PAGE = 50_000
# A collection's file is written again once this many faces changed since it (or a tenth of
# the collection, if more): the changes a start reads from the store, and what each process
# holds in its own memory beside the shared file, stay about that small.
SAVE_MIN_CHANGES = 1_000
SAVE_SHARE = 0.1


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
    collection: CollectionRecord | None = None


class SearchIndexes:
    """One process's search indexes, one per collection, each brought up to the collection's
    version before it is used. Loading one collection never blocks calls on another.
    ``index_dir``: where the collections' indexes are kept on local disk (None: nowhere)."""

    # How often the indexes of collections deleted elsewhere are looked for and dropped, and
    # this process's progress recorded (and tombstones pruned, in the background).
    SWEEP_SECONDS = 60.0
    # A process not heard from for this long no longer holds back the pruning of tombstones;
    # if it comes back, an index older than what was pruned loads in full.
    READER_TTL_SECONDS = 24 * 3600.0

    def __init__(
        self,
        store: Store,
        index_dir: Path | None = None,
        compressed_min_faces: int | None = None,
    ) -> None:
        self._store = store
        self._dir = index_dir
        self._compressed_min_faces = compressed_min_faces
        self._entries: dict[int, _Entry] = {}
        self._lock = threading.Lock()
        self._preloading = threading.Event()
        self._preloading.set()
        self._swept = time.monotonic()
        self._reader = uuid.uuid4().hex  # this process, in the store's index_readers
        self._store_id: str | None = None
        self._saver = ThreadPoolExecutor(1, thread_name_prefix="facesearch-save")
        self._saving: set[int] = set()
        self._retry_at = 0.0  # no saves before this (monotonic) time: the last one failed
        self._closed = False

    def _identity(self, collection: CollectionRecord) -> persisted.Identity:
        if self._store_id is None:
            self._store_id = self._store.store_id()
        return persisted.Identity(self._store_id, collection.key, collection.face_model_version)

    def _source(self, collection: CollectionRecord) -> VectorSource:
        store = self._store
        return VectorSource(
            changes=lambda version, after: store.face_changes(
                collection, version, after, LOAD_PAGE
            ),
            embeddings=lambda seqs: store.embeddings(collection, seqs.tolist()),
            search_model=lambda model: store.search_model(collection, model),
        )

    def get(self, collection: CollectionRecord) -> CollectionIndex:
        """The collection's index, current to at least ``collection.version``."""
        if time.monotonic() - self._swept > self.SWEEP_SECONDS:
            self.sweep()
            # A write to the store, which may wait for other writers: never on a caller's time.
            with contextlib.suppress(RuntimeError):  # shut down meanwhile
                self._saver.submit(self.record_progress)
        with self._lock:
            entry = self._entries.setdefault(collection.key, _Entry())
        index = entry.index
        if index is not None and index.version >= collection.version:
            return index
        with entry.lock:
            entry.collection = collection
            if entry.index is None:
                entry.index = self._open(collection)
                _release_free_memory()
            if entry.index.version < collection.version:
                entry.index.catch_up()
            index = entry.index
        self._maybe_save(collection, index)
        return index

    def _open(self, collection: CollectionRecord) -> CollectionIndex:
        """The collection's index from its file, caught up, else loaded from the store."""
        source = self._source(collection)
        if self._dir is not None:
            identity = self._identity(collection)
            data = persisted.read(self._dir / identity.name, identity)
            if data is not None and self._fits(collection, data):
                try:
                    index = CollectionIndex.from_data(source, data, self._compressed_min_faces)
                    index.catch_up(from_file=True)
                    return index
                except ValueError as error:
                    log.warning("search index of %s not usable (%s)", identity.name, error)
        index = CollectionIndex(source, self._compressed_min_faces)
        index.load()
        return index

    def _fits(self, collection: CollectionRecord, data: persisted.IndexData) -> bool:
        """Whether a file's codes were made with the collection's search model."""
        if data.codes is None:
            return True
        model = self._store.search_model(collection)
        if data.codes.model_digest != persisted.model_digest(model):
            log.warning("search index of collection %d has another search model", collection.key)
            return False
        return True

    def _maybe_save(self, collection: CollectionRecord, index: CollectionIndex) -> None:
        """Write the collection's file in the background if enough changed since its last."""
        if self._dir is None or self._closed or time.monotonic() < self._retry_at:
            return
        due = max(SAVE_MIN_CHANGES, SAVE_SHARE * len(index))
        if index.unsaved < due and (index.base_version or not index.unsaved):
            return
        with self._lock:
            if collection.key in self._saving:
                return
            self._saving.add(collection.key)
        try:
            self._saver.submit(self._save_logged, collection)
        except RuntimeError:  # shut down meanwhile
            with self._lock:
                self._saving.discard(collection.key)

    def _save_logged(self, collection: CollectionRecord) -> None:
        try:
            self.save(collection)
        except Exception:  # a failed save only means the next start reads more from the store
            log.exception("saving the search index of collection %d failed", collection.key)
            self._retry_at = time.monotonic() + self.SWEEP_SECONDS  # e.g. a full disk
        finally:
            with self._lock:
                self._saving.discard(collection.key)

    def save(self, collection: CollectionRecord, rebase: bool = True) -> bool:
        """Write the collection's index to its file (unless another process is writing it, or
        has written one at least as new), then (``rebase``) swap this process's index for one
        over the file; whether it did. Searches go on meanwhile on the index as it was."""
        assert self._dir is not None
        with self._lock:
            entry = self._entries.get(collection.key)
        if entry is None or entry.index is None:
            return False
        identity = self._identity(collection)
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._dir / identity.name
        held = persisted.lock(self._dir, identity)
        if held is None:
            return False
        try:
            data = persisted.read(path, identity)
            if (
                data is None
                or not self._fits(collection, data)
                or (data.version < entry.index.version)
            ):
                persisted.write(self._dir, identity, entry.index.data())
                # Mapped from the file just written (under the lock: no other one yet), with
                # no need to check what this process wrote itself.
                data = persisted.read(path, identity, verify=False)
            with self._lock:
                if self._entries.get(collection.key) is not entry:  # dropped meanwhile
                    persisted.remove(path)
                    return False
        finally:
            held.close()
        if rebase and data is not None:
            self._rebase(entry, collection, data)
        return True

    def _rebase(
        self, entry: _Entry, collection: CollectionRecord, data: persisted.IndexData
    ) -> None:
        """Swap the entry's index for one over ``data`` (the collection's file), caught up."""
        fresh = CollectionIndex.from_data(
            self._source(collection), data, self._compressed_min_faces
        )
        fresh.catch_up(from_file=True)
        with entry.lock:
            if entry.index is None:
                return
            if fresh.version < entry.index.version:
                fresh.catch_up()
            entry.index = fresh
        _release_free_memory()

    def drop(self, collection: CollectionRecord) -> None:
        """Forget the collection's index (it was deleted) and remove its file."""
        with self._lock:
            self._entries.pop(collection.key, None)
        if self._dir is not None:
            persisted.remove(self._dir / self._identity(collection).name)

    def sweep(self) -> None:
        """Drop the indexes (and files) of collections that no longer exist (deleted by any
        process)."""
        self._swept = time.monotonic()
        files: dict[int, Path] = {}
        if self._dir is not None and self._dir.is_dir():
            if self._store_id is None:
                self._store_id = self._store.store_id()
            # Listed before the collections are read: a file of a collection created meanwhile
            # is not taken for one of a deleted collection.
            files = persisted.collection_keys(self._dir, self._store_id)
        live = {collection.key for collection in self._store.all_collections()}
        with self._lock:
            for key in [key for key in self._entries if key not in live]:
                del self._entries[key]
        for key, path in files.items():
            if key not in live:
                persisted.remove(path)

    def record_progress(self) -> None:
        """Record in the store the version of each collection this process can catch up from
        (its file's, while the index has one), then prune the tombstones every process that
        recorded one is past."""
        with self._lock:
            progress = {
                key: min(entry.index.version, entry.index.base_version or entry.index.version)
                for key, entry in self._entries.items()
                if entry.index is not None
            }
        try:
            if progress:
                self._store.record_index_progress(self._reader, progress)
            pruned = self._store.prune_tombstones(self.READER_TTL_SECONDS)
            if pruned:
                log.info("pruned %d tombstones of deleted faces", pruned)
        except Exception:  # the store may be down or busy: pruning waits for the next time
            log.exception("recording the search indexes' progress failed")

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

    def close(self) -> None:
        """Finish the saves under way and write the files of indexes changed since theirs
        (a clean shutdown: the next start reads less from the store)."""
        self._closed = True
        self._saver.shutdown(wait=True)
        if self._dir is None:
            return
        with self._lock:
            pending = [
                entry.collection
                for entry in self._entries.values()
                if entry.index is not None and entry.index.unsaved and entry.collection
            ]
        for collection in pending:
            try:
                self.save(collection, rebase=False)
            except Exception:
                log.exception("saving the search index of collection %d failed", collection.key)
