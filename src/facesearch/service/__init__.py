"""The Rekognition face-collection operations, in-process.

``RekognitionService.call(operation, params, account_id=...)`` is the one entry every front end
(library client, HTTP server, CLI) ends in: it validates the request against the service model,
runs the operation's handler and returns the response dict, or raises a RekognitionError.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facesearch import contract
from facesearch.defaults import DEFAULT_ACCOUNT_ID, REGION_NAME
from facesearch.errors import RekognitionError
from facesearch.index import SEARCH_MODES
from facesearch.service import (  # noqa: F401 (registers)
    collections,
    detect,
    faces,
    search,
    users,
    video,
)
from facesearch.service.context import Context, State
from facesearch.service.registry import HANDLERS
from facesearch.service.s3 import S3ImageFetcher
from facesearch.service.video_runner import VideoJobs
from facesearch.store import (
    ReadReplicas,
    SQLiteStore,
    Store,
    StoreBusyError,
    StoreUnavailableError,
    open_store,
)

if TYPE_CHECKING:
    from facesearch.vision.analyzer import Analyzer


def default_data_dir() -> Path:
    """``FACESEARCH_DATA_DIR``, else ``~/.local/share/facesearch``."""
    configured = os.environ.get("FACESEARCH_DATA_DIR")
    return Path(configured) if configured else Path.home() / ".local" / "share" / "facesearch"


def default_index_dir(store: Store) -> Path:
    """Where a process keeps the search indexes of ``store`` on local disk, when neither
    ``index_dir`` nor ``$FACESEARCH_INDEX_DIR`` says: ``indexes`` in the embedded store's data
    directory, else a folder of the store's own under the user's cache directory
    (``$XDG_CACHE_HOME`` or ``~/.cache``) ``/facesearch/indexes``."""
    if isinstance(store, SQLiteStore):
        return store.path.parent / "indexes"
    cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(cache).expanduser() / "facesearch" / "indexes" / store.store_id()


def _default_analyzer() -> Analyzer:
    from facesearch.vision import get_analyzer

    return get_analyzer()


class RekognitionService:
    """Every supported Rekognition operation over one store. Thread-safe."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        store: Store | str | None = None,
        store_replicas: Sequence[str] | None = None,
        analyzer_factory: Callable[[], Analyzer] = _default_analyzer,
        preload: bool = False,
        video_runner: bool = True,
        search_mode: str | None = None,
        index_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """``store`` is a Store, a ``postgresql://`` URL, or None for ``$FACESEARCH_STORE`` or
        else the embedded store in ``data_dir``; a URL's store may read from ``store_replicas``
        (streaming replicas, default ``$FACESEARCH_STORE_REPLICAS``). ``preload`` loads every
        collection's search index in the background now (a server does) rather than on its
        first search.
        ``video_runner``: a stored-video job started here, while this process runs no video
        workers (:meth:`start_video_workers`), is run by a runner process this one starts
        (service/video_runner.py); False leaves it for another process. ``search_mode`` is
        where searches run: ``"index"`` (each process's in-memory indexes, the default) or
        ``"database"`` (inside PostgreSQL: the process holds no index); None for
        ``$FACESEARCH_SEARCH`` or else ``"index"``. ``index_dir``: where the search indexes are
        kept on local disk, shared by the processes of the machine (default
        ``$FACESEARCH_INDEX_DIR``, else :func:`default_index_dir`)."""
        mode = search_mode or os.environ.get("FACESEARCH_SEARCH") or "index"
        if mode not in SEARCH_MODES:
            raise ValueError(f"a search mode is one of {', '.join(SEARCH_MODES)}, not {mode!r}")
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        store_url = None
        opened = store is None or isinstance(store, str)
        if store is None or isinstance(store, str):
            store_url = store or os.environ.get("FACESEARCH_STORE") or None
            store = open_store(store, self.data_dir, store_replicas)
        index_dir = index_dir or os.environ.get("FACESEARCH_INDEX_DIR") or None
        self.state = State(
            store=store,
            analyzer_factory=analyzer_factory,
            search_mode=mode,
            index_dir=(
                None
                if mode == "database"
                else Path(index_dir)
                if index_dir
                else default_index_dir(store)
            ),
        )
        if mode == "database":
            try:  # a store that cannot search inside itself is refused now, not at a search
                self.state.indexes  # noqa: B018
            except ValueError:
                if opened:
                    store.close()
                raise
        # A runner opens the same store: a URL, or the embedded store's directory.
        runner_dir = store.path.parent if isinstance(store, SQLiteStore) else self.data_dir
        knows_store = store_url is not None or isinstance(store, SQLiteStore)
        self.video_jobs = VideoJobs(
            self.state, runner_dir, store_url, spawn=video_runner and knows_store
        )
        self.state.video_jobs = self.video_jobs
        if preload:
            self.state.indexes.preload()
        # Reads its settings and builds its boto3 client on the first S3Object request only.
        self.register_image_fetcher("S3Object", S3ImageFetcher())

    def call(
        self,
        operation: str,
        params: dict[str, Any],
        *,
        account_id: str = DEFAULT_ACCOUNT_ID,
        region: str | None = None,
    ) -> dict[str, Any]:
        """Run one operation for ``account_id``; raises RekognitionError as Rekognition would.

        ``region`` is the one the caller addressed (a server reads it from the signature): as in
        Rekognition, each region has its own collections and jobs, and their ARNs name it. A name
        that is not region-shaped falls back to the default (``$FACESEARCH_REGION``).
        """
        contract.validate(operation, params)
        handler = HANDLERS[operation]
        if region is None or not REGION_NAME.fullmatch(region):
            region = self.state.region
        try:
            return handler(Context(self.state, account_id, operation, region), dict(params))
        except StoreBusyError as error:
            # Nothing was written; Rekognition's answer to "too many at once": retry later.
            raise RekognitionError("ThrottlingException", str(error)) from None
        except StoreUnavailableError as error:
            # Nothing was written (each store write is one transaction): the caller may retry.
            raise RekognitionError("InternalServerError", str(error)) from None

    def register_image_fetcher(self, kind: str, fetch: Callable[[dict[str, Any]], bytes]) -> None:
        """Let ``Image.<kind>`` (e.g. S3Object) be read by ``fetch``."""
        self.state.image_fetchers[kind] = fetch

    def health(self) -> dict[str, str]:
        """Whether the models, the store and the search indexes are ready:
        ``{"models": ..., "store": ..., "indexes": ...}``."""
        status = {}
        try:
            self.state.analyzer.check_ready()
            status["models"] = "ready"
        except (RekognitionError, OSError, RuntimeError) as exc:
            status["models"] = f"not ready: {exc}"
        try:
            self.state.store.secret()
            status["store"] = "ready"
        except Exception as exc:  # any store failure means "not ready", reported, not raised
            status["store"] = f"not ready: {exc}"
        status["indexes"] = "loading" if self.state.indexes.loading else "ready"
        return status

    def collection_sizes(self) -> list[tuple[str, str, int, int]]:
        """(account id, collection id, faces, users) of every collection, for monitoring."""
        store = self.state.store
        return [(c.account_id, c.collection_id, *store.count(c)) for c in store.all_collections()]

    def read_replicas(self) -> ReadReplicas:
        """Where the store's reads went and its read replicas' lag, for monitoring."""
        return self.state.store.read_replicas()

    def start_video_workers(self, count: int = 1) -> None:
        """Run stored-video jobs (this process's and other processes') on ``count`` background
        threads, at a lower priority than the calls beside them, until :meth:`close`."""
        self.video_jobs.start_workers(count)

    def close(self) -> None:
        """Stop the video workers (a job in progress waits for another process), write the
        search indexes changed since their files, then close the store; acknowledged writes are
        already on disk."""
        self.video_jobs.close()
        if "indexes" in self.state.__dict__:  # the cached property was used: save what changed
            self.state.indexes.close()
        self.state.store.close()
