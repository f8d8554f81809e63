"""In-memory vector search over each collection's faces: a search engine beside the store.

The indexes read the store only through its protocol (``Store.face_changes``, ``embeddings``,
``search_model``, ``all_collections``) and hold nothing it does not: a process rebuilds them
from it. The store never imports them.

- collection.py: :class:`CollectionIndex`, one collection's faces as numpy arrays, searched for
  faces or users, with exact similarities.
- exact.py: the float32 vectors of a collection below the compressed size, one BLAS product.
- compressed.py: the PQ and 8-bit codes (faiss) of a larger one, and their shared trained model.
- indexes.py: :class:`SearchIndexes`, one process's indexes, caught up from the change feed.
- search.py: what the service searches with (:class:`Searches`), in either search mode.
- database.py: :class:`DatabaseSearches`, the mode that searches inside PostgreSQL and holds
  no index in the process.
"""

from __future__ import annotations

from facesearch.index.collection import NO_USER, CollectionIndex, Hit, UserHit, VectorSource
from facesearch.index.database import DatabaseSearches
from facesearch.index.indexes import SearchIndexes
from facesearch.index.search import SEARCH_MODES, CollectionSearch, Searches

__all__ = [
    "NO_USER",
    "SEARCH_MODES",
    "CollectionIndex",
    "CollectionSearch",
    "DatabaseSearches",
    "Hit",
    "SearchIndexes",
    "Searches",
    "UserHit",
    "VectorSource",
]
