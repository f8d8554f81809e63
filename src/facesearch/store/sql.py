"""The Store operations written once in SQL that SQLite and PostgreSQL both run.

A subclass supplies the connection handling (``_tx``, ``_read``), the schema migrations, the
cross-process write lock and how a vector goes into and comes out of a column. Statements use
``?`` placeholders; the PostgreSQL store rewrites them. Each record's SELECT and the mapping of
its rows are in rows.py.

Every write that touches faces bumps its collection's ``version`` in the same transaction and
stamps the faces it changed with it; deletions leave a tombstone. ``face_changes`` reads those
back, so every process's search index can catch up with writes made anywhere.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from facesearch.store.base import (
    CollectionRecord,
    FaceChanges,
    FaceRecord,
    IdempotencyRecord,
    UserRecord,
)
from facesearch.store.cursor import Cursor
from facesearch.store.jobs import JobsSQL
from facesearch.store.rows import (
    COLLECTION_SELECT,
    FACE_COLUMNS,
    IDEMPOTENCY_SELECT,
    USER_SELECT,
    collection_record,
    face_record,
    idempotency_record,
    user_record,
)

# ClientRequestTokens are remembered this long, then forgotten.
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
# How often a process deletes the forgotten ones (reads already skip them), rather than with
# every token it stores.
_IDEMPOTENCY_PRUNE_SECONDS = 60.0
# Stay under SQLite's bound-variable limit in IN (...) lists.
_CHUNK = 500
_NO_LIMIT = 2**62
# A catch-up finds up to this many changed faces through the version index, at a cost that grows
# with them alone; more are read by walking the seq index, as a whole load is.
_CHANGED_BY_VERSION = 50_000
# A user's seq from its collection and UserId (NULL for none): what faces.user_seq holds.
_USER_SEQ = "(SELECT seq FROM users WHERE collection_key = ? AND user_id = ?)"


def _in(values: Sequence[Any]) -> str:
    return f"({','.join('?' * len(values))})"


class SQLStore(JobsSQL, ABC):
    """A :class:`~facesearch.store.base.Store` over a SQL database (see the module docstring)."""

    # When this process last deleted forgotten ClientRequestTokens (monotonic seconds).
    _idempotency_pruned = -math.inf

    @abstractmethod
    def _tx(self, snapshot: bool = False) -> AbstractContextManager[Cursor]:
        """A transaction that commits on success; ``snapshot`` makes it one consistent read."""

    @abstractmethod
    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """Run one read statement outside any transaction; all its rows."""

    @abstractmethod
    def _vector(self, embedding: np.ndarray) -> Any:
        """An embedding as the driver writes it to the vector column."""

    @abstractmethod
    def _embedding(self, value: Any) -> np.ndarray:
        """One ``_EMBEDDING_COLUMN`` value as a float32 array."""

    @abstractmethod
    def _embeddings(self, values: list[Any]) -> np.ndarray:
        """Many ``_EMBEDDING_COLUMN`` values of one size as one (k, dim) float32 array."""

    @abstractmethod
    def write_lock(self, account_id: str) -> AbstractContextManager[None]: ...

    @functools.cached_property
    def _face_columns(self) -> str:
        return FACE_COLUMNS.format(embedding=self._EMBEDDING_COLUMN)

    @functools.cached_property
    def _face_sql(self) -> str:
        return f"SELECT {self._face_columns} FROM faces"

    @abstractmethod
    def close(self) -> None: ...

    @staticmethod
    def _bump(db: Cursor, collection: CollectionRecord, faces: int = 0, users: int = 0) -> int:
        """Count one change to the collection (and its faces and users); the new version."""
        db.execute(
            "UPDATE collections SET version = version + 1, face_count = face_count + ?,"
            " user_count = user_count + ? WHERE key = ? RETURNING version",
            (faces, users, collection.key),
        )
        row = db.fetchone()
        return row[0] if row else 0

    def secret(self) -> bytes:
        with self._tx() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('token-secret', ?) ON CONFLICT DO NOTHING",
                (secrets.token_bytes(32),),
            )
            db.execute("SELECT value FROM meta WHERE key = 'token-secret'")
            return bytes(db.fetchone()[0])

    def store_id(self) -> str:
        rows = self._read("SELECT value FROM meta WHERE key = 'store-id'")
        if rows:
            return bytes(rows[0][0]).decode()
        with self._tx() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('store-id', ?) ON CONFLICT DO NOTHING",
                (secrets.token_hex(16).encode(),),
            )
            db.execute("SELECT value FROM meta WHERE key = 'store-id'")
            return bytes(db.fetchone()[0]).decode()

    def record_index_progress(self, reader: str, versions: dict[int, int]) -> None:
        now = dt.datetime.now(dt.UTC).timestamp()
        with self._tx() as db:
            # Only collections that still exist (one may be deleted meanwhile).
            db.executemany(
                "INSERT INTO index_readers (collection_key, reader, version, seen_at)"
                " SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM collections WHERE key = ?)"
                " ON CONFLICT (collection_key, reader) DO UPDATE"
                " SET version = excluded.version, seen_at = excluded.seen_at",
                [(key, reader, version, now, key) for key, version in versions.items()],
            )

    def prune_tombstones(self, max_age_s: float) -> int:
        oldest = dt.datetime.now(dt.UTC).timestamp() - max_age_s
        with self._tx() as db:
            db.execute("DELETE FROM index_readers WHERE seen_at < ?", (oldest,))
            # The horizon and the tombstones it covers go in one transaction: a change feed
            # read sees both or neither.
            db.execute(
                "UPDATE collections SET pruned_version = r.horizon FROM (SELECT collection_key,"
                " MIN(version) AS horizon FROM index_readers GROUP BY collection_key) r"
                " WHERE collections.key = r.collection_key"
                " AND r.horizon > collections.pruned_version"
            )
            db.execute(
                "DELETE FROM face_tombstones WHERE version <= (SELECT pruned_version"
                " FROM collections WHERE key = face_tombstones.collection_key)"
            )
            return max(db.rowcount, 0)

    # Collections

    def create_collection(
        self,
        account_id: str,
        region: str,
        collection_id: str,
        arn: str,
        face_model_version: str,
        tags: dict[str, str],
    ) -> CollectionRecord | None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO collections (account_id, region, collection_id, arn,"
                " face_model_version, created_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING RETURNING key",
                (
                    account_id,
                    region,
                    collection_id,
                    arn,
                    face_model_version,
                    dt.datetime.now(dt.UTC).timestamp(),
                ),
            )
            row = db.fetchone()
            if row is None:
                return None
            (key,) = row
            db.executemany(
                "INSERT INTO tags (collection_key, key, value) VALUES (?, ?, ?)",
                [(key, k, v) for k, v in tags.items()],
            )
            db.execute(COLLECTION_SELECT + " WHERE c.key = ?", (key,))
            return collection_record(db.fetchone())

    def get_collection(
        self, account_id: str, region: str, collection_id: str
    ) -> CollectionRecord | None:
        rows = self._read(
            COLLECTION_SELECT + " WHERE c.account_id = ? AND c.region = ? AND c.collection_id = ?",
            (account_id, region, collection_id),
        )
        return collection_record(rows[0]) if rows else None

    def delete_collection(self, account_id: str, region: str, collection_id: str) -> bool:
        with self._tx() as db:
            db.execute(
                "DELETE FROM collections WHERE account_id = ? AND region = ? AND collection_id = ?",
                (account_id, region, collection_id),
            )
            return db.rowcount > 0

    def list_collections(
        self, account_id: str, region: str, after: str | None, limit: int
    ) -> list[CollectionRecord]:
        rows = self._read(
            COLLECTION_SELECT + " WHERE c.account_id = ? AND c.region = ? AND c.collection_id > ?"
            " ORDER BY c.collection_id LIMIT ?",
            (account_id, region, after or "", limit),
        )
        return [collection_record(row) for row in rows]

    def all_collections(self) -> list[CollectionRecord]:
        rows = self._read(COLLECTION_SELECT + " ORDER BY c.key")
        return [collection_record(row) for row in rows]

    def count(self, collection: CollectionRecord) -> tuple[int, int]:
        rows = self._read(
            "SELECT face_count, user_count FROM collections WHERE key = ?", (collection.key,)
        )
        if not rows:
            return 0, 0
        faces, users = rows[0]
        return faces, users

    def get_tags(self, collection: CollectionRecord) -> dict[str, str]:
        rows = self._read(
            "SELECT key, value FROM tags WHERE collection_key = ? ORDER BY key", (collection.key,)
        )
        return dict(rows)

    def update_tags(
        self, collection: CollectionRecord, add: dict[str, str], remove: Iterable[str]
    ) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT INTO tags (collection_key, key, value) VALUES (?, ?, ?)"
                " ON CONFLICT (collection_key, key) DO UPDATE SET value = excluded.value",
                [(collection.key, k, v) for k, v in add.items()],
            )
            db.executemany(
                "DELETE FROM tags WHERE collection_key = ? AND key = ?",
                [(collection.key, k) for k in remove],
            )

    # Faces

    def _faces(self, rows: Iterable[Sequence[Any]]) -> list[FaceRecord]:
        """Rows of ``_face_columns`` (or of FACE_COLUMNS without vectors) as records."""
        embedding = self._embedding
        return [face_record(row, embedding) for row in rows]

    def add_faces(self, collection: CollectionRecord, faces: Sequence[FaceRecord]) -> None:
        with self._tx() as db:
            version = self._bump(db, collection, faces=len(faces))
            db.executemany(
                "INSERT INTO faces (collection_key, face_id, image_id, external_image_id,"
                " bounding_box, confidence, index_model_version, embedding, user_id, version,"
                " user_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, " + _USER_SEQ + ")",
                [
                    (
                        collection.key,
                        f.face_id,
                        f.image_id,
                        f.external_image_id,
                        json.dumps(f.bounding_box),
                        f.confidence,
                        f.index_model_version,
                        self._vector(f.embedding),
                        f.user_id,
                        version,
                        collection.key,
                        f.user_id,
                    )
                    for f in faces
                ],
            )

    def faces_of_image(
        self, collection: CollectionRecord, image_id: str, external_image_id: str
    ) -> list[FaceRecord]:
        rows = self._read(
            self._face_sql
            + " WHERE collection_key = ? AND image_id = ? AND external_image_id = ? ORDER BY seq",
            (collection.key, image_id, external_image_id),
        )
        return self._faces(rows)

    def get_faces(
        self, collection: CollectionRecord, face_ids: Iterable[str]
    ) -> dict[str, FaceRecord]:
        rows = self._rows_in(
            self._face_sql + " WHERE collection_key = ? AND face_id",
            list(dict.fromkeys(face_ids)),
            (collection.key,),
        )
        return {face.face_id: face for face in self._faces(rows)}

    def faces_by_seq(
        self, collection: CollectionRecord, seqs: Sequence[int]
    ) -> dict[int, FaceRecord]:
        rows = self._by_seq(self._face_columns, "faces", collection, seqs)
        return {face.seq: face for face in self._faces(rows)}

    def list_faces(
        self,
        collection: CollectionRecord,
        after_seq: int,
        limit: int,
        user_id: str | None = None,
        face_ids: Sequence[str] | None = None,
    ) -> list[FaceRecord]:
        # Lists never need the vectors: reading them would cost more than the rest together.
        sql = f"SELECT {FACE_COLUMNS.format(embedding='NULL')} FROM faces"
        sql += " WHERE collection_key = ? AND seq > ?"
        args: list[object] = [collection.key, after_seq]
        if user_id is not None:
            sql += " AND user_id = ?"
            args.append(user_id)
        if face_ids is not None:
            sql += f" AND face_id IN {_in(face_ids)}"
            args.extend(face_ids)
        sql += " ORDER BY seq LIMIT ?"
        args.append(limit)
        return self._faces(self._read(sql, args))

    def delete_faces(self, collection: CollectionRecord, face_ids: Sequence[str]) -> list[str]:
        deleted: list[tuple[str, int]] = []
        with self._tx() as db:
            for face_id in dict.fromkeys(face_ids):
                db.execute(
                    "DELETE FROM faces WHERE collection_key = ? AND face_id = ?"
                    " AND user_id IS NULL RETURNING seq",
                    (collection.key, face_id),
                )
                row = db.fetchone()
                if row is not None:
                    (seq,) = row
                    deleted.append((face_id, seq))
            if deleted:
                version = self._bump(db, collection, faces=-len(deleted))
                db.executemany(
                    "INSERT INTO face_tombstones (collection_key, version, seq) VALUES (?, ?, ?)",
                    [(collection.key, version, seq) for _, seq in deleted],
                )
        return [face_id for face_id, _ in deleted]

    # How a vector column is selected (the PostgreSQL store reads raw bytes).
    _EMBEDDING_COLUMN = "embedding"
    _PAGE_SQL = (
        "SELECT seq, user_seq, {embedding} FROM faces"
        " WHERE collection_key = ?{changed} AND seq > ? ORDER BY seq LIMIT ?"
    )

    def _page_query(
        self, collection: CollectionRecord, since: int, after_seq: int, limit: int | None
    ) -> tuple[str, tuple[Any, ...]]:
        """``_PAGE_SQL`` and its arguments. A whole load (``since`` < 0) does not filter on
        versions, so the database walks the seq index whatever its statistics say."""
        changed, versions = (" AND version > ?", (since,)) if since >= 0 else ("", ())
        sql = self._PAGE_SQL.format(embedding=self._EMBEDDING_COLUMN, changed=changed)
        return sql, (collection.key, *versions, after_seq, _NO_LIMIT if limit is None else limit)

    def _walk(
        self,
        db: Cursor,
        collection: CollectionRecord,
        since: int,
        after_seq: int,
        limit: int | None,
    ) -> list[Any]:
        """The rows of ``_PAGE_SQL``: the seq index walked from ``after_seq``."""
        db.execute(*self._page_query(collection, since, after_seq, limit))
        return db.fetchall()

    def _changed_seqs(
        self, db: Cursor, collection: CollectionRecord, since: int, after_seq: int
    ) -> list[int] | None:
        """The seqs after ``after_seq`` of the faces changed after version ``since``, found
        through the version index, or None when there are more than ``_CHANGED_BY_VERSION``.
        (``+seq`` keeps either database off the seq indexes, whose walk from ``after_seq``
        reads every face of the collection to find a few changed ones.)"""
        db.execute(
            "SELECT seq FROM faces WHERE collection_key = ? AND version > ? AND +seq > ? LIMIT ?",
            (collection.key, since, after_seq, _CHANGED_BY_VERSION + 1),
        )
        seqs = [seq for (seq,) in db.fetchall()]
        return sorted(seqs) if len(seqs) <= _CHANGED_BY_VERSION else None

    def _page_rows(
        self,
        db: Cursor,
        collection: CollectionRecord,
        since: int,
        after_seq: int,
        limit: int | None,
    ) -> list[Any]:
        """The rows (seq, user_seq, vector) of ``_face_page``."""
        changed = self._changed_seqs(db, collection, since, after_seq) if since >= 0 else None
        if changed is None:
            return self._walk(db, collection, since, after_seq, limit)
        wanted = changed[:limit]
        rows: list[Any] = []
        for start in range(0, len(wanted), _CHUNK):  # by the primary key, in this snapshot
            chunk = wanted[start : start + _CHUNK]
            db.execute(
                f"SELECT seq, user_seq, {self._EMBEDDING_COLUMN} FROM faces"
                f" WHERE seq IN {_in(chunk)} ORDER BY seq",
                chunk,
            )
            rows.extend(db.fetchall())
        return rows

    def _face_page(
        self,
        db: Cursor,
        collection: CollectionRecord,
        since: int,
        after_seq: int,
        limit: int | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Faces changed after version ``since`` and after ``after_seq``, in seq order: their
        seqs, their users' seqs (-1 for none) and their vectors."""
        # Rows of (seq, user_seq, vector), read column by column: the hot path of a load.
        rows = self._page_rows(db, collection, since, after_seq, limit)
        return (
            np.array([r[0] for r in rows], np.int64),
            np.array([-1 if r[1] is None else r[1] for r in rows], np.int64),
            self._embeddings([r[2] for r in rows]),
        )

    def face_changes(
        self,
        collection: CollectionRecord,
        after_version: int,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> FaceChanges:
        with self._tx(snapshot=True) as db:
            db.execute(
                "SELECT version, pruned_version FROM collections WHERE key = ?",
                (collection.key,),
            )
            row = db.fetchone()
            version, pruned = row if row else (after_version, 0)
            # Version 0 reads every face: those from before versions were kept have 0 too.
            seqs, user_seqs, embeddings = self._face_page(
                db, collection, after_version or -1, after_seq, limit
            )
            deleted: list[int] = []
            if after_version and not after_seq:  # every page's deletions come with the first
                db.execute(
                    "SELECT seq FROM face_tombstones WHERE collection_key = ? AND version > ?",
                    (collection.key, after_version),
                )
                deleted = [seq for (seq,) in db.fetchall()]
        return FaceChanges(
            version=version,
            seqs=seqs,
            user_seqs=user_seqs,
            embeddings=embeddings,
            deleted=np.array(deleted, np.int64),
            pruned=pruned,
        )

    def embeddings(
        self, collection: CollectionRecord, seqs: Sequence[int]
    ) -> dict[int, np.ndarray]:
        rows = self._by_seq(f"seq, {self._EMBEDDING_COLUMN}", "faces", collection, seqs)
        if not rows:
            return {}
        vectors = self._embeddings([vector for _, vector in rows])
        return {seq: vector for (seq, _), vector in zip(rows, vectors, strict=True)}

    def user_embeddings(
        self, collection: CollectionRecord, user_ids: Sequence[str]
    ) -> dict[str, np.ndarray]:
        rows = self._rows_in(
            f"SELECT user_id, {self._EMBEDDING_COLUMN} FROM faces"
            " WHERE collection_key = ? AND user_id",
            list(user_ids),
            (collection.key,),
        )
        grouped: dict[str, list[Any]] = {}
        for user_id, value in rows:
            grouped.setdefault(user_id, []).append(value)
        return {user_id: self._embeddings(values) for user_id, values in grouped.items()}

    def _by_seq(
        self, columns: str, table: str, collection: CollectionRecord, seqs: Sequence[int]
    ) -> list[Any]:
        """Rows of ``table`` by seq (its primary key: unique across collections, so looked up by
        it alone, which both databases do by the key) that belong to the collection: their
        ``columns``, without the collection_key they are checked by."""
        rows = self._rows_in(
            f"SELECT collection_key, {columns} FROM {table} WHERE seq", [int(s) for s in seqs]
        )
        return [row[1:] for row in rows if row[0] == collection.key]

    def _rows_in(self, sql: str, values: Sequence[Any], args: Sequence[Any] = ()) -> list[Any]:
        """The rows of ``sql`` (ending in the column to match) ``IN`` ``values``, read a chunk
        of values at a time; ``args`` are the placeholders before it."""
        found: list[Any] = []
        for start in range(0, len(values), _CHUNK):
            chunk = values[start : start + _CHUNK]
            found.extend(self._read(f"{sql} IN {_in(chunk)}", (*args, *chunk)))
        return found

    def search_model(
        self, collection: CollectionRecord, model: bytes | None = None
    ) -> bytes | None:
        if model is not None:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO search_models (collection_key, model) VALUES (?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (collection.key, model),
                )
        rows = self._read(
            "SELECT model FROM search_models WHERE collection_key = ?", (collection.key,)
        )
        if not rows:
            return None
        ((model,),) = rows
        return bytes(model)

    # Users

    def create_users(self, collection: CollectionRecord, user_ids: Sequence[str]) -> list[str]:
        created = []
        with self._tx() as db:
            for user_id in user_ids:
                db.execute(
                    "INSERT INTO users (collection_key, user_id) VALUES (?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (collection.key, user_id),
                )
                if db.rowcount:
                    created.append(user_id)
            if created:
                self._bump(db, collection, users=len(created))
        return created

    def get_user(self, collection: CollectionRecord, user_id: str) -> UserRecord | None:
        rows = self._read(
            USER_SELECT + " WHERE u.collection_key = ? AND u.user_id = ?",
            (collection.key, user_id),
        )
        return user_record(rows[0]) if rows else None

    def user_ids(self, collection: CollectionRecord, seqs: Sequence[int]) -> dict[int, str]:
        return dict(self._by_seq("seq, user_id", "users", collection, seqs))

    def delete_user(self, collection: CollectionRecord, user_id: str) -> bool:
        with self._tx() as db:
            db.execute(
                "DELETE FROM users WHERE collection_key = ? AND user_id = ?",
                (collection.key, user_id),
            )
            if not db.rowcount:
                return False
            version = self._bump(db, collection, users=-1)
            db.execute(
                "UPDATE faces SET user_id = NULL, user_seq = NULL, version = ?"
                " WHERE collection_key = ? AND user_id = ?",
                (version, collection.key, user_id),
            )
            return True

    def list_users(
        self, collection: CollectionRecord, after_seq: int, limit: int
    ) -> list[UserRecord]:
        rows = self._read(
            USER_SELECT + " WHERE u.collection_key = ? AND u.seq > ? ORDER BY u.seq LIMIT ?",
            (collection.key, after_seq, limit),
        )
        return [user_record(row) for row in rows]

    def set_face_user(
        self, collection: CollectionRecord, face_ids: Sequence[str], user_id: str | None
    ) -> None:
        if not face_ids:
            return
        with self._tx() as db:
            version = self._bump(db, collection)
            db.executemany(
                f"UPDATE faces SET user_id = ?, user_seq = {_USER_SEQ}, version = ?"
                " WHERE collection_key = ? AND face_id = ?",
                [
                    (user_id, collection.key, user_id, version, collection.key, face_id)
                    for face_id in face_ids
                ],
            )

    # Idempotency

    def get_idempotency(
        self, account_id: str, region: str, operation: str, token: str
    ) -> IdempotencyRecord | None:
        oldest = dt.datetime.now(dt.UTC).timestamp() - IDEMPOTENCY_TTL_SECONDS
        rows = self._read(
            IDEMPOTENCY_SELECT + " WHERE account_id = ? AND region = ?"
            " AND operation = ? AND token = ? AND created_at >= ?",
            (account_id, region, operation, token, oldest),
        )
        return idempotency_record(rows[0]) if rows else None

    def put_idempotency(
        self,
        account_id: str,
        region: str,
        operation: str,
        token: str,
        record: IdempotencyRecord,
    ) -> None:
        now = dt.datetime.now(dt.UTC).timestamp()
        prune = time.monotonic() - self._idempotency_pruned >= _IDEMPOTENCY_PRUNE_SECONDS
        with self._tx() as db:
            if prune:
                db.execute(
                    "DELETE FROM idempotency WHERE created_at < ?",
                    (now - IDEMPOTENCY_TTL_SECONDS,),
                )
            db.execute(
                "INSERT INTO idempotency (account_id, region, operation, token, request_hash,"
                " response, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (account_id, region, operation, token)"
                " DO UPDATE SET request_hash = excluded.request_hash,"
                " response = excluded.response, created_at = excluded.created_at",
                (
                    account_id,
                    region,
                    operation,
                    token,
                    record.request_hash,
                    json.dumps(record.response),
                    now,
                ),
            )
        if prune:
            self._idempotency_pruned = time.monotonic()

    # Signed-out console sessions

    def revoke_session(self, session_id: str, expires_at: float) -> None:
        now = dt.datetime.now(dt.UTC).timestamp()
        with self._tx() as db:
            db.execute("DELETE FROM revoked_sessions WHERE expires_at < ?", (now,))
            db.execute(
                "INSERT INTO revoked_sessions (session_id, expires_at) VALUES (?, ?)"
                " ON CONFLICT DO NOTHING",
                (session_id, expires_at),
            )

    def session_revoked(self, session_id: str) -> bool:
        rows = self._read("SELECT 1 FROM revoked_sessions WHERE session_id = ?", (session_id,))
        return bool(rows)


def split_statements(script: str) -> Iterator[str]:
    """The statements of a migration script (no ``;`` inside any of ours)."""
    return (s.strip() for s in script.split(";") if s.strip())
