"""Where collections, faces, users and their vectors are kept.

``Store`` (base.py) is the narrow interface the service uses. ``SQLiteStore`` (sqlite.py, the
embedded default) and ``PostgresStore`` (postgres.py, shared by many processes) both implement it
with the SQL in sql.py (rows.py maps rows to records). The in-memory search indexes (the
``facesearch.index`` package) are built and kept current from a store's change feed; the store
never imports them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from facesearch.store.base import (
    CollectionRecord,
    FaceChanges,
    FaceRecord,
    IdempotencyRecord,
    ReadReplicas,
    ReplicaStatus,
    Store,
    StoreBusyError,
    StoreUnavailableError,
    UserRecord,
)
from facesearch.store.sqlite import SQLiteStore

POSTGRESQL_SCHEMES = ("postgresql://", "postgres://")


def open_store(
    url: str | None, data_dir: str | os.PathLike[str], replicas: Sequence[str] | None = None
) -> Store:
    """The store ``url`` names (``postgresql://USER:PASS@HOST:PORT/DB``), else the one in
    ``$FACESEARCH_STORE``, else the embedded SQLite store in ``data_dir``. A PostgreSQL store
    may read from streaming ``replicas`` of its database (default: those in
    ``$FACESEARCH_STORE_REPLICAS``, separated by spaces)."""
    url = url or os.environ.get("FACESEARCH_STORE") or None
    if url is None or not url.startswith(POSTGRESQL_SCHEMES):
        if replicas:
            raise ValueError("read replicas need a postgresql:// store")
        if url is None:
            return SQLiteStore(Path(data_dir))
        raise ValueError("a store is a postgresql:// URL (or none, for the embedded store)")
    if replicas is None:
        replicas = os.environ.get("FACESEARCH_STORE_REPLICAS", "").split()
    if not all(replica.startswith(POSTGRESQL_SCHEMES) for replica in replicas):
        raise ValueError("a read replica is a postgresql:// URL")
    from facesearch.store.postgres import PostgresStore

    return PostgresStore(url, replicas=replicas)


__all__ = [
    "CollectionRecord",
    "FaceChanges",
    "FaceRecord",
    "IdempotencyRecord",
    "ReadReplicas",
    "ReplicaStatus",
    "SQLiteStore",
    "Store",
    "StoreBusyError",
    "StoreUnavailableError",
    "UserRecord",
    "open_store",
]
