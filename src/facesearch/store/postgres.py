"""The shared store: PostgreSQL with pgvector, for many server processes on one or more machines.

Everything lives in the ``facesearch`` schema, created and migrated by whichever process starts
first (migrations run under an advisory lock, so processes starting together are safe). Vectors
are pgvector columns. Writes of one account are serialised across processes by an advisory lock
(``write_lock``); each process keeps its own search indexes current from the change feed in
sql.py, or, in the in-database search mode, searches here (database_search.py). If the
database goes away, calls fail within seconds with StoreUnavailableError and the pool
reconnects by itself once it is back. Reads may go to streaming replicas (replicas.py).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from facesearch.defaults import DEFAULT_REGION
from facesearch.store import jobs
from facesearch.store.base import CollectionRecord, ReadReplicas, StoreUnavailableError
from facesearch.store.cursor import Cursor
from facesearch.store.database_search import DatabaseSearchSQL
from facesearch.store.replicas import (
    REPLICA_WAIT_S,
    ReplicaSet,
    by_account,
    by_collection,
    of_every_account,
)
from facesearch.store.sql import SQLStore, split_statements

SCHEMA = "facesearch"
# Seconds: how long a call waits for a connection (or to connect) before it fails.
CONNECT_TIMEOUT_S = 3
# The first key of facesearch's advisory locks (two-key form), so they collide with no one else's.
_LOCK_SPACE = 0x0FAC5EA
_MIGRATION_LOCK = 0

# Migration N brings the schema from version N to N + 1; see sqlite.py for the same tables.
_MIGRATIONS = (
    f"""
    CREATE TABLE {SCHEMA}.meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL);
    CREATE TABLE {SCHEMA}.collections (
        key BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        account_id TEXT NOT NULL,
        collection_id TEXT NOT NULL,
        arn TEXT NOT NULL,
        face_model_version TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        version BIGINT NOT NULL DEFAULT 0,
        face_count BIGINT NOT NULL DEFAULT 0,
        user_count BIGINT NOT NULL DEFAULT 0,
        UNIQUE (account_id, collection_id)
    );
    CREATE TABLE {SCHEMA}.tags (
        collection_key BIGINT NOT NULL REFERENCES {SCHEMA}.collections(key) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (collection_key, key)
    );
    CREATE TABLE {SCHEMA}.users (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        collection_key BIGINT NOT NULL REFERENCES {SCHEMA}.collections(key) ON DELETE CASCADE,
        user_id TEXT NOT NULL,
        UNIQUE (collection_key, user_id)
    );
    CREATE INDEX users_by_seq ON {SCHEMA}.users (collection_key, seq);
    CREATE TABLE {SCHEMA}.faces (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        collection_key BIGINT NOT NULL REFERENCES {SCHEMA}.collections(key) ON DELETE CASCADE,
        face_id TEXT NOT NULL,
        image_id TEXT NOT NULL,
        external_image_id TEXT,
        bounding_box TEXT NOT NULL,
        confidence DOUBLE PRECISION NOT NULL,
        index_model_version TEXT NOT NULL,
        embedding vector NOT NULL,
        user_id TEXT,
        user_seq BIGINT,
        version BIGINT NOT NULL,
        UNIQUE (collection_key, face_id)
    );
    CREATE INDEX faces_by_image ON {SCHEMA}.faces (collection_key, image_id, external_image_id);
    CREATE INDEX faces_by_user ON {SCHEMA}.faces (collection_key, user_id);
    CREATE INDEX faces_by_seq ON {SCHEMA}.faces (collection_key, seq);
    CREATE INDEX faces_by_version ON {SCHEMA}.faces (collection_key, version);
    CREATE TABLE {SCHEMA}.face_tombstones (
        collection_key BIGINT NOT NULL REFERENCES {SCHEMA}.collections(key) ON DELETE CASCADE,
        version BIGINT NOT NULL,
        seq BIGINT NOT NULL
    );
    CREATE INDEX face_tombstones_by_version ON {SCHEMA}.face_tombstones (collection_key, version);
    CREATE TABLE {SCHEMA}.idempotency (
        account_id TEXT NOT NULL,
        operation TEXT NOT NULL,
        token TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        response TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (account_id, operation, token)
    );
    CREATE INDEX idempotency_by_age ON {SCHEMA}.idempotency (created_at);
    CREATE TABLE {SCHEMA}.search_models (
        collection_key BIGINT PRIMARY KEY REFERENCES {SCHEMA}.collections(key) ON DELETE CASCADE,
        model BYTEA NOT NULL
    )
    """,
    f"""
    CREATE TABLE {SCHEMA}.revoked_sessions (
        session_id TEXT PRIMARY KEY,
        expires_at DOUBLE PRECISION NOT NULL
    )
    """,
    # Stored-video jobs and their results (store/jobs.py).
    jobs.postgres_migration(SCHEMA),
    # Collections and ClientRequestTokens belong to a region, as in Rekognition: a collection's
    # is the one its ARN names.
    f"""
    ALTER TABLE {SCHEMA}.collections ADD COLUMN region TEXT;
    UPDATE {SCHEMA}.collections SET region = CASE
        WHEN arn LIKE 'arn:aws:rekognition:_%:%' THEN split_part(arn, ':', 4)
        ELSE '{DEFAULT_REGION}' END;
    ALTER TABLE {SCHEMA}.collections ALTER COLUMN region SET NOT NULL;
    ALTER TABLE {SCHEMA}.collections DROP CONSTRAINT collections_account_id_collection_id_key;
    ALTER TABLE {SCHEMA}.collections ADD UNIQUE (account_id, region, collection_id);
    ALTER TABLE {SCHEMA}.idempotency ADD COLUMN region TEXT NOT NULL DEFAULT '{DEFAULT_REGION}';
    ALTER TABLE {SCHEMA}.idempotency ALTER COLUMN region DROP DEFAULT;
    ALTER TABLE {SCHEMA}.idempotency DROP CONSTRAINT idempotency_pkey;
    ALTER TABLE {SCHEMA}.idempotency ADD PRIMARY KEY (account_id, region, operation, token)
    """,
    # Tombstone pruning (see sqlite.py).
    f"""
    ALTER TABLE {SCHEMA}.collections ADD COLUMN pruned_version BIGINT NOT NULL DEFAULT 0;
    CREATE TABLE {SCHEMA}.index_readers (
        collection_key BIGINT NOT NULL REFERENCES {SCHEMA}.collections(key) ON DELETE CASCADE,
        reader TEXT NOT NULL,
        version BIGINT NOT NULL,
        seen_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (collection_key, reader)
    );
    CREATE INDEX index_readers_by_age ON {SCHEMA}.index_readers (seen_at)
    """,
)


def redacted(url: str) -> str:
    """Where a store URL points, without its credentials (for messages and logs)."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "PostgreSQL (unparseable URL)"
    host, database = str(params.get("host", "localhost")), params.get("dbname", "")
    if host.startswith("/"):  # a Unix socket directory
        return f"postgresql:///{database}?host={host}"
    return f"postgresql://{host}:{params.get('port', '5432')}/{database}"


def _vectors(raw: bytes, count: int) -> np.ndarray:
    """``count`` vectors in pgvector's binary form, one after another, as (count, d) float32."""
    rows = np.frombuffer(raw, np.uint8).reshape(count, -1)
    return rows[:, 4:].copy().view(">f4").astype(np.float32)


@functools.cache
def _placeholders(sql: str) -> str:
    """The shared SQL's ``?`` placeholders as psycopg's ``%s``."""
    return sql.replace("?", "%s")


class _Cursor:
    """A psycopg cursor that takes the shared SQL's placeholders."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self._cursor.execute(_placeholders(sql), args)

    def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> Any:
        args = list(args)
        if args:
            self._cursor.executemany(_placeholders(sql), args)

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()


class PostgresStore(DatabaseSearchSQL, SQLStore):
    """The :class:`~facesearch.store.base.Store` in a PostgreSQL database (with pgvector)."""

    def __init__(
        self, url: str, *, max_connections: int = 16, replicas: Sequence[str] = ()
    ) -> None:
        """``replicas``: URLs of streaming replicas of the database that reads may go to."""
        self._where = redacted(url)
        self._local_locks: dict[str, threading.Lock] = {}
        self._held = threading.local()
        options: dict[str, Any] = {
            "options": f"-c search_path={SCHEMA},public",
            "connect_timeout": CONNECT_TIMEOUT_S,
        }
        with self._unavailable_as_error():
            with psycopg.connect(url, autocommit=True, **options) as conn:
                self._migrate(conn)
            self._pool = ConnectionPool(
                url,
                min_size=1,
                max_size=max_connections,
                kwargs={"autocommit": True, **options},
                configure=register_vector,
                check=ConnectionPool.check_connection,
                timeout=CONNECT_TIMEOUT_S,
                name="facesearch",
                open=True,
            )

        def replica_pool(replica_url: str) -> ConnectionPool:
            return ConnectionPool(
                replica_url,
                min_size=1,
                max_size=max_connections,
                # A replica that stops answering fails the read within seconds, not minutes.
                kwargs={
                    "autocommit": True,
                    "tcp_user_timeout": CONNECT_TIMEOUT_S * 1000,
                    **options,
                },
                configure=register_vector,
                # No check before each use: a read on a broken connection fails at once, and
                # the replica is marked down (and tried again) rather than waited for.
                timeout=REPLICA_WAIT_S,
                name="facesearch-replica",
                open=True,
            )

        self._replicas = ReplicaSet(self._pool, replicas, replica_pool, redacted)

    def __repr__(self) -> str:
        return f"PostgresStore({self._where!r})"

    @contextmanager
    def _unavailable_as_error(self) -> Iterator[None]:
        try:
            yield
        except (psycopg.OperationalError, PoolTimeout) as error:
            raise StoreUnavailableError(
                f"The store ({self._where}) is unavailable: {type(error).__name__}. Try again."
            ) from None

    @staticmethod
    def _migrate(conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_SPACE, _MIGRATION_LOCK))
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_version (version INT)")
            row = conn.execute(f"SELECT version FROM {SCHEMA}.schema_version").fetchone()
            current = row[0] if row else 0
            if current >= len(_MIGRATIONS):
                return  # current (or newer: a later release's schema is left as it is)
            for script in _MIGRATIONS[current:]:
                for statement in split_statements(script):
                    conn.execute(statement)
            conn.execute(f"DELETE FROM {SCHEMA}.schema_version")
            conn.execute(f"INSERT INTO {SCHEMA}.schema_version VALUES (%s)", (len(_MIGRATIONS),))

    @contextmanager
    def _connection(self, source: ConnectionPool | ReplicaSet) -> Iterator[psycopg.Connection[Any]]:
        """The primary's connection this thread's write lock holds, else one of ``source``'s:
        the checks and writes under the lock share it rather than each taking (and the pool
        checking) one of their own; the reads that guard a write are the primary's anyway."""
        held = getattr(self._held, "conn", None)
        if held is not None:
            yield held
            return
        with source.connection() as conn:
            yield conn

    @contextmanager
    def _tx(self, snapshot: bool = False) -> Iterator[Cursor]:
        if not snapshot:  # a write: on the primary, noting how far this process wrote
            with self._unavailable_as_error(), self._connection(self._pool) as conn:
                with conn.transaction():
                    yield _Cursor(conn.cursor(binary=True))
                self._replicas.committed(conn)
            return
        with (
            self._unavailable_as_error(),
            self._connection(self._replicas) as conn,
            conn.transaction(),
        ):
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield _Cursor(conn.cursor(binary=True))
            self._replicas.observed(conn)

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._unavailable_as_error(), self._connection(self._replicas) as conn:
            return conn.cursor(binary=True).execute(_placeholders(sql), args).fetchall()

    # The reads a replica may answer (replicas.py); every other statement runs on the primary.
    get_collection = by_account(SQLStore.get_collection)
    list_collections = by_account(SQLStore.list_collections)
    all_collections = of_every_account(SQLStore.all_collections)
    count = by_collection(SQLStore.count)
    get_tags = by_collection(SQLStore.get_tags)
    faces_of_image = by_collection(SQLStore.faces_of_image)
    get_faces = by_collection(SQLStore.get_faces)
    faces_by_seq = by_collection(SQLStore.faces_by_seq)
    list_faces = by_collection(SQLStore.list_faces)
    face_changes = by_collection(SQLStore.face_changes)
    embeddings = by_collection(SQLStore.embeddings)
    user_embeddings = by_collection(SQLStore.user_embeddings)
    get_user = by_collection(SQLStore.get_user)
    user_ids = by_collection(SQLStore.user_ids)
    list_users = by_collection(SQLStore.list_users)
    # The in-database search mode's searches (database_search.py); its builds use the primary.
    search_index_state = by_collection(DatabaseSearchSQL.search_index_state)
    nearest_faces = by_collection(DatabaseSearchSQL.nearest_faces)

    def read_replicas(self) -> ReadReplicas:
        return self._replicas.status()

    @contextmanager
    def _maintenance(self) -> Iterator[Cursor]:
        # The pool's connections are in autocommit mode: each statement runs on its own.
        with self._unavailable_as_error(), self._pool.connection() as conn:
            yield _Cursor(conn.cursor())

    @contextmanager
    def write_lock(self, account_id: str) -> Iterator[None]:
        depth = getattr(self._held, "depth", 0)
        if depth:  # this thread holds it already
            self._held.depth = depth + 1
            try:
                yield
            finally:
                self._held.depth = depth
            return
        # One thread per process queues on the database lock; the others wait here without
        # holding a pooled connection, so the holder always finds one for its writes.
        local = self._local_locks.setdefault(account_id, threading.Lock())
        with local, self._unavailable_as_error(), self._pool.connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (_LOCK_SPACE, account_id))
            self._held.depth, self._held.conn = 1, conn
            self._replicas.hold(account_id)
            try:
                yield
            finally:
                self._replicas.hold(None)
                self._held.depth, self._held.conn = 0, None
                conn.execute(
                    "SELECT pg_advisory_unlock(%s, hashtext(%s))", (_LOCK_SPACE, account_id)
                )

    def _vector(self, embedding: np.ndarray) -> Any:
        return np.ascontiguousarray(embedding, dtype=np.float32)

    # Processes claiming video jobs at once each take a different one (store/jobs.py).
    _CLAIM_LOCK = " FOR UPDATE SKIP LOCKED"

    # pgvector's binary form, read as raw bytes: int16 dimensions, int16 unused, then big-endian
    # float32s. Parsing bytes with numpy is far faster than one Vector object per row.
    _EMBEDDING_COLUMN = "vector_send(embedding)"

    def _walk(
        self,
        db: Cursor,
        collection: CollectionRecord,
        since: int,
        after_seq: int,
        limit: int | None,
    ) -> list[Any]:
        # Walk the seq index in order and stop at the limit, as the plan should be; right after
        # a bulk load the table's statistics can be stale enough to sort the whole collection.
        db.execute("SET LOCAL enable_sort = off")
        return super()._walk(db, collection, since, after_seq, limit)

    def _embedding(self, value: bytes) -> np.ndarray:
        return _vectors(value, 1).reshape(-1)

    def _embeddings(self, values: list[bytes]) -> np.ndarray:
        if not values:
            return np.empty((0, 0), np.float32)
        return _vectors(b"".join(values), len(values))

    def close(self) -> None:
        self._replicas.close()
        self._pool.close()
