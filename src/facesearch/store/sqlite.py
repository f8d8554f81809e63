"""The embedded store: one SQLite database in WAL mode inside the data directory.

Each operation is one transaction with ``synchronous=FULL``, so a write that returned has reached
the disk: a process killed at any point leaves either the whole IndexFaces or none of it.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from facesearch.defaults import DEFAULT_REGION
from facesearch.store import jobs
from facesearch.store.base import ReadReplicas, StoreBusyError
from facesearch.store.cursor import Cursor
from facesearch.store.sql import SQLStore, split_statements

# How long a writer waits for another process's write (and SQLite for its database lock).
WRITE_WAIT_S = 30.0

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
    # lists page, and the trained search model of each large collection (facesearch.index).
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
    # Signed-out console sessions, refused by every process until their cookies lapse.
    """
    CREATE TABLE revoked_sessions (session_id TEXT PRIMARY KEY, expires_at REAL NOT NULL)
    """,
    # Stored-video jobs and their results (store/jobs.py).
    jobs.SQLITE_MIGRATION,
    # Collections and ClientRequestTokens belong to a region, as in Rekognition. SQLite cannot
    # change a table's UNIQUE constraint: both tables are rebuilt (with foreign keys off, so that
    # dropping the old collections table deletes no faces), keeping the collections' keys and
    # their AUTOINCREMENT counter (a deleted collection's key is never reused). A collection's
    # region is the one its ARN names.
    f"""
    CREATE TABLE collections_in_regions (
        key INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id TEXT NOT NULL,
        region TEXT NOT NULL,
        collection_id TEXT NOT NULL,
        arn TEXT NOT NULL,
        face_model_version TEXT NOT NULL,
        created_at REAL NOT NULL,
        version INTEGER NOT NULL DEFAULT 0,
        face_count INTEGER NOT NULL DEFAULT 0,
        user_count INTEGER NOT NULL DEFAULT 0,
        UNIQUE (account_id, region, collection_id)
    );
    INSERT INTO collections_in_regions (key, account_id, region, collection_id, arn,
        face_model_version, created_at, version, face_count, user_count)
        SELECT key, account_id,
            CASE WHEN arn LIKE 'arn:aws:rekognition:_%:%'
                THEN substr(arn, 21, instr(substr(arn, 21), ':') - 1)
                ELSE '{DEFAULT_REGION}' END,
            collection_id, arn, face_model_version, created_at, version, face_count, user_count
        FROM collections;
    DELETE FROM sqlite_sequence WHERE name = 'collections_in_regions';
    INSERT INTO sqlite_sequence (name, seq)
        SELECT 'collections_in_regions', seq FROM sqlite_sequence WHERE name = 'collections';
    DROP TABLE collections;
    ALTER TABLE collections_in_regions RENAME TO collections;
    CREATE TABLE idempotency_in_regions (
        account_id TEXT NOT NULL,
        region TEXT NOT NULL,
        operation TEXT NOT NULL,
        token TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        response TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (account_id, region, operation, token)
    );
    INSERT INTO idempotency_in_regions
        SELECT account_id, '{DEFAULT_REGION}', operation, token, request_hash, response, created_at
        FROM idempotency;
    DROP TABLE idempotency;
    ALTER TABLE idempotency_in_regions RENAME TO idempotency;
    CREATE INDEX idempotency_by_age ON idempotency (created_at)
    """,
    # Tombstone pruning: how far each process's search index can catch up from, and how far
    # each collection's tombstones are gone (facesearch.index).
    """
    ALTER TABLE collections ADD COLUMN pruned_version INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE index_readers (
        collection_key INTEGER NOT NULL REFERENCES collections(key) ON DELETE CASCADE,
        reader TEXT NOT NULL,
        version INTEGER NOT NULL,
        seen_at REAL NOT NULL,
        PRIMARY KEY (collection_key, reader)
    );
    CREATE INDEX index_readers_by_age ON index_readers (seen_at)
    """,
)


class SQLiteStore(SQLStore):
    """The embedded :class:`~facesearch.store.base.Store`: ``<data_dir>/facesearch.db``.

    Several processes may open one data directory (a server and CLI commands, or CLI commands
    at once): SQLite's WAL lets readers run beside a writer, each process's search index catches
    up from the store's change feed like a PostgreSQL one, and writers take turns on a file lock
    (``write_lock``), waiting up to WRITE_WAIT_S.
    """

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        path = Path(data_dir)
        path.mkdir(parents=True, exist_ok=True)
        self._write_file = open(path / "facesearch.lock", "a+")  # noqa: SIM115 (held until close)
        self.path = path / "facesearch.db"
        # One connection shared by every thread, serialised by a lock: SQLite writes one at a time
        # anyway, and the hot path (search) runs on the in-memory index, not here.
        self._db = sqlite3.connect(
            self.path, timeout=WRITE_WAIT_S, check_same_thread=False, isolation_level=None
        )
        self._lock = threading.RLock()
        self._writes = threading.RLock()
        self._write_depth = 0  # how deep this process's write lock is held
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._migrate()
        self._db.execute("PRAGMA foreign_keys=ON")

    def _migrate(self) -> None:
        # Foreign keys stay off while tables are rebuilt (SQLite ignores the pragma inside a
        # transaction); the migrated rows are checked against them before the commit.
        with self._tx() as db:
            current = db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(_MIGRATIONS[current:], start=current + 1):
                for statement in split_statements(script):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")
            broken = db.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"a migration of {self.path} broke foreign keys: {broken[:5]}")

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path.parent)!r})"

    @contextmanager
    def _tx(self, snapshot: bool = False) -> Iterator[Cursor]:
        # One connection under one lock: every transaction is already a consistent snapshot.
        with self._lock:
            try:
                self._db.execute("BEGIN" if snapshot else "BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                if "locked" not in str(error):
                    raise
                raise StoreBusyError(
                    f"the data directory {self.path.parent} is busy: another process has held "
                    f"its database for over {WRITE_WAIT_S:.0f} s; try again"
                ) from None
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
        # Threads queue on the process's lock, then processes on the data directory's file lock.
        with self._writes:
            if self._write_depth:
                self._write_depth += 1
                try:
                    yield
                finally:
                    self._write_depth -= 1
                return
            deadline = time.monotonic() + WRITE_WAIT_S
            while True:
                try:
                    fcntl.flock(self._write_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StoreBusyError(
                            f"the data directory {self.path.parent} is busy: another process "
                            f"has been writing to it for over {WRITE_WAIT_S:.0f} s; try again"
                        ) from None
                    time.sleep(0.005)
            self._write_depth = 1
            try:
                yield
            finally:
                self._write_depth = 0
                fcntl.flock(self._write_file, fcntl.LOCK_UN)

    def _vector(self, embedding: np.ndarray) -> Any:
        return np.ascontiguousarray(embedding, dtype=np.float32).tobytes()

    def _embedding(self, value: Any) -> np.ndarray:
        return np.frombuffer(value, dtype=np.float32)

    def _embeddings(self, values: list[Any]) -> np.ndarray:
        if not values:
            return np.empty((0, 0), np.float32)
        return np.frombuffer(b"".join(values), np.float32).reshape(len(values), -1)

    def read_replicas(self) -> ReadReplicas:
        return ReadReplicas()  # one file, no replicas

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._write_file.close()
