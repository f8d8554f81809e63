"""What the service searches with, whichever search mode serves it.

:class:`Searches` gives each collection's :class:`CollectionSearch`. Two implementations: the
in-process indexes (indexes.py: :class:`SearchIndexes`, the default) and the search inside
PostgreSQL (database.py: :class:`DatabaseSearches`, in which the process holds no index).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from facesearch.index.collection import Hit, UserHit
from facesearch.store import CollectionRecord

SEARCH_MODES = ("index", "database")


class CollectionSearch(Protocol):
    """Search over one collection's faces, with exact similarities."""

    def search_faces(
        self, query: np.ndarray, min_cosine: float, limit: int, exclude: int | None = None
    ) -> list[Hit]:
        """The ``limit`` faces most similar to ``query`` with cosine >= ``min_cosine``, best
        first, but the face whose seq is ``exclude``."""
        ...

    def search_users(
        self, query: np.ndarray, min_cosine: float, limit: int, exclude: int | None = None
    ) -> list[UserHit]:
        """The ``limit`` users whose best face is most similar to ``query`` (cosine >=
        ``min_cosine``), best first, but the user whose seq is ``exclude``."""
        ...


class Searches(Protocol):
    """One process's way into every collection's search."""

    @property
    def loading(self) -> bool:
        """Whether the process is still getting ready to search the collections found at start."""
        ...

    def get(self, collection: CollectionRecord) -> CollectionSearch:
        """The collection's search, current to at least ``collection.version``."""
        ...

    def drop(self, collection: CollectionRecord) -> None:
        """Forget a collection this process deleted."""
        ...

    def preload(self) -> None:
        """Get ready to search every collection, in the background."""
        ...

    def close(self) -> None:
        """Finish what is under way in the background (a clean shutdown)."""
        ...
