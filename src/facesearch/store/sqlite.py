"""The embedded store: one SQLite database in WAL mode inside the data directory.

Each operation is one transaction with ``synchronous=FULL``, so a write that returned has reached
the disk: a process killed at any point leaves either the whole IndexFaces or none of it.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from facesearch.store.sql import Cursor, SQLStore, split_statements

# Migration N brings a database from user_version N to N + 1; a database is never rolled back.
_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
    CREATE TABLE IF NOT EXISTS collections (
        key INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id TEXT NOT NULL,
        collection_id TEXT NOT NULL,
        arn TEXT NOT NULL,
        face_model_version TEXT NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (account_id, collection_id)
    );
    CREATE TABLE IF NOT EXISTS tags (
        collection_key INTEGER NOT NULL REFERENCES collections(key) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (collection_key, key)
    );
    CREATE TABLE IF NOT EXISTS users (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        collection_key INTEGER NOT NULL REFERENCES collections(key) ON DELETE CASCADE,
        user_id TEXT NOT NULL,
        UNIQUE (collection_key, user_id)
    );
    CREATE TABLE IF NOT EXISTS faces (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        collection_key INTEGER NOT NULL REFERENCES collections(key) ON DELETE CASCADE,
        face_id TEXT NOT NULL,
        image_id TEXT NOT NULL,
        external_image_id TEXT,
        bounding_box TEXT NOT NULL,
        confidence REAL NOT NULL,
        index_model_version TEXT NOT NULL,
        embedding BLOB NOT NULL,
        user_id TEXT,
        UNIQUE (collection_key, face_id)
    );
    CREATE INDEX IF NOT EXISTS faces_by_image
        ON faces (collection_key, image_id, external_image_id);
    CREATE INDEX IF NOT EXISTS faces_by_user ON faces (collection_key, user_id);
    CREATE TABLE IF NOT EXISTS idempotency (
        account_id TEXT NOT NULL,
        operation TEXT NOT NULL,
        token TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        response TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (account_id, operation, token)
    )
    """,
    # The change feed (versions, tombstones, faces' user seqs), kept counts, indexes that let
    # lists page, and the trained search model of each large collection (store/index.py).
    """
    ALTER TABLE collections ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE collections ADD COLUMN face_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE collections ADD COLUMN user_count INTEGER NOT NULL DEFAULT 0;
    UPDATE collections SET
        face_count = (SELECT COUNT(*) FROM faces WHERE collection_key = collections.key),
        user_count = (SELECT COUNT(*) FROM users WHERE collection_key = collections.key);
    ALTER TABLE faces ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE faces ADD COLUMN user_seq INTEGER;
    UPDATE faces SET user_seq = (SELECT seq FROM users
        WHERE users.collection_key = faces.collection_key AND users.user_id = faces.user_id);
    CREATE INDEX faces_by_seq ON faces (collection_key, seq);
    CREATE INDEX faces_by_version ON faces (collection_key, version);
    CREATE INDEX users_by_seq ON users (collection_key, seq);
    CREATE INDEX idempotency_by_age ON idempotency (created_at);
    CREATE TABLE face_tombstones (
        collection_key INTEGER NOT NULL REFERENCES collections(key) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        seq INTEGER NOT NULL
    );
    CREATE INDEX face_tombstones_by_version ON face_tombstones (collection_key, version);
    CREATE TABLE search_models (
        collection_key INTEGER PRIMARY KEY REFERENCES collections(key) ON DELETE CASCADE,
        model BLOB NOT NULL
    )
    """,
)


class StoreInUseError(RuntimeError):
    """Another process (or another open store in this one) holds the data directory."""


class SQLiteStore(SQLStore):
    """The embedded :class:`~facesearch.store.base.Store`: ``<data_dir>/facesearch.db``."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        path = Path(data_dir)
        path.mkdir(parents=True, exist_ok=True)
        # One process per data directory: the search index lives in that process's memory and
        # catches up only with writes it is told of, so a second writer here is refused.
        self._owner = open(path / "facesearch.lock", "a+")  # noqa: SIM115 (held until close)
        try:
            fcntl.flock(self._owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._owner.close()
            raise StoreInUseError(
                f"the data directory {path} is in use by another facesearch process (a server?); "
                "talk to that process (e.g. --endpoint-url) or use another data directory; "
                "several processes share a PostgreSQL store (--store postgresql://...)"
            ) from None
        self.path = path / "facesearch.db"
        # One connection shared by every thread, serialised by a lock: SQLite writes one at a time
        # anyway, and the hot path (search) runs on the in-memory index, not here.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._writes = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        with self._tx() as db:
            current = db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(_MIGRATIONS[current:], start=current + 1):
                for statement in split_statements(script):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path.parent)!r})"

    @contextmanager
    def _tx(self, snapshot: bool = False) -> Iterator[Cursor]:
        # One connection under one lock: every transaction is already a consistent snapshot.
        with self._lock:
            self._db.execute("BEGIN" if snapshot else "BEGIN IMMEDIATE")
            try:
                yield self._db.cursor()
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    @contextmanager
    def write_lock(self, account_id: str) -> Iterator[None]:
        # The directory lock keeps other processes out, so a lock in this process suffices.
        with self._writes:
            yield

    def _vector(self, embedding: np.ndarray) -> Any:
        return np.ascontiguousarray(embedding, dtype=np.float32).tobytes()

    def _embedding(self, value: Any) -> np.ndarray:
        return np.frombuffer(value, dtype=np.float32)

    def _embeddings(self, values: list[Any]) -> np.ndarray:
        if not values:
            return np.empty((0, 0), np.float32)
        return np.frombuffer(b"".join(values), np.float32).reshape(len(values), -1)

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._owner.close()  # releases the directory
