"""Where collections, faces, users and their vectors are kept.

``Store`` (base.py) is the narrow interface the service uses; ``SQLiteStore`` (sqlite.py) is the
embedded default. The in-memory search index (index.py) is rebuilt from a store, never the other
way round.
"""

from facesearch.store.base import (
    CollectionRecord,
    FaceRecord,
    IdempotencyRecord,
    Store,
    UserRecord,
)
from facesearch.store.sqlite import SQLiteStore

__all__ = [
    "CollectionRecord",
    "FaceRecord",
    "IdempotencyRecord",
    "SQLiteStore",
    "Store",
    "UserRecord",
]
