"""The Rekognition face-collection operations, in-process.

``RekognitionService.call(operation, params, account_id=...)`` is the one entry every front end
(library client, HTTP server, CLI) ends in: it validates the request against the service model,
runs the operation's handler and returns the response dict, or raises a RekognitionError.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facesearch import contract
from facesearch.defaults import DEFAULT_ACCOUNT_ID, REGION_NAME
from facesearch.errors import RekognitionError
from facesearch.service import collections, detect, faces, search, users  # noqa: F401 (registers)
from facesearch.service.context import Context, State
from facesearch.service.registry import HANDLERS
from facesearch.service.s3 import S3ImageFetcher
from facesearch.store import Store, StoreBusyError, StoreUnavailableError, open_store

if TYPE_CHECKING:
    from facesearch.vision.analyzer import Analyzer

def default_data_dir() -> Path:
    """``FACESEARCH_DATA_DIR``, else ``~/.local/share/facesearch``."""
    configured = os.environ.get("FACESEARCH_DATA_DIR")
    return Path(configured) if configured else Path.home() / ".local" / "share" / "facesearch"


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
        analyzer_factory: Callable[[], Analyzer] = _default_analyzer,
        preload: bool = False,
    ) -> None:
        """``store`` is a Store, a ``postgresql://`` URL, or None for ``$FACESEARCH_STORE`` or
        else the embedded store in ``data_dir``. ``preload`` loads every collection's search
        index in the background now (a server does) rather than on its first search."""
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        if store is None or isinstance(store, str):
            store = open_store(store, self.data_dir)
        self.state = State(store=store, analyzer_factory=analyzer_factory)
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

        ``region`` is the one the caller addressed (a server reads it from the signature); new
        collection ARNs carry it. A name that is not region-shaped falls back to the default.
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

    def close(self) -> None:
        """Close the store; acknowledged writes are already on disk."""
        self.state.store.close()
