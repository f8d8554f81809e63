"""The embedded store: one SQLite database in WAL mode inside the data directory.

Each operation is one transaction with ``synchronous=FULL``, so a write that returned has reached
the disk: a process killed at any point leaves either the whole IndexFaces or none of it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from facesearch.store.base import CollectionRecord, FaceRecord, IdempotencyRecord, UserRecord

_SCHEMA = """
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
CREATE INDEX IF NOT EXISTS faces_by_image ON faces (collection_key, image_id, external_image_id);
CREATE INDEX IF NOT EXISTS faces_by_user ON faces (collection_key, user_id);
CREATE TABLE IF NOT EXISTS idempotency (
    account_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    token TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (account_id, operation, token)
);
"""

_USER_SQL = (
    "SELECT u.user_id, (SELECT COUNT(*) FROM faces f"
    " WHERE f.collection_key = u.collection_key AND f.user_id = u.user_id), u.seq FROM users u"
)

class StoreInUseError(RuntimeError):
    """Another process (or another open store in this one) holds the data directory."""


# ClientRequestTokens are remembered this long, then forgotten.
IDEMPOTENCY_TTL_SECONDS = 24 * 3600


class SQLiteStore:
    """The embedded :class:`~facesearch.store.base.Store`: ``<data_dir>/facesearch.db``."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        path = Path(data_dir)
        path.mkdir(parents=True, exist_ok=True)
        # One process per data directory: the search index lives in that process's memory, so a
        # second process writing here would leave the first one's index silently stale.
        self._owner = open(path / "facesearch.lock", "a+")  # noqa: SIM115 (held until close)
        try:
            fcntl.flock(self._owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._owner.close()
            raise StoreInUseError(
                f"the data directory {path} is in use by another facesearch process (a server?); "
                "talk to that process (e.g. --endpoint-url) or use another data directory"
            ) from None
        self.path = path / "facesearch.db"
        # One connection shared by every thread, serialised by a lock: SQLite writes one at a time
        # anyway, and the hot path (search) runs on the in-memory index, not here.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            self._db.executescript(_SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, args: Sequence[object] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._owner.close()  # releases the directory

    def secret(self) -> bytes:
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'token-secret'").fetchone()
            if row:
                return bytes(row[0])
            value = secrets.token_bytes(32)
            db.execute("INSERT INTO meta (key, value) VALUES ('token-secret', ?)", (value,))
            return value

    # Collections

    _COLLECTION_SQL = (
        "SELECT c.key, c.account_id, c.collection_id, c.arn, c.face_model_version, c.created_at"
        " FROM collections c"
    )

    @staticmethod
    def _collection(row: tuple) -> CollectionRecord:
        return CollectionRecord(
            key=row[0],
            account_id=row[1],
            collection_id=row[2],
            arn=row[3],
            face_model_version=row[4],
            created_at=dt.datetime.fromtimestamp(row[5], dt.UTC),
        )

    def create_collection(
        self,
        account_id: str,
        collection_id: str,
        arn: str,
        face_model_version: str,
        tags: dict[str, str],
    ) -> CollectionRecord | None:
        with self._tx() as db:
            try:
                cursor = db.execute(
                    "INSERT INTO collections (account_id, collection_id, arn, face_model_version,"
                    " created_at) VALUES (?, ?, ?, ?, ?)",
                    (
                        account_id,
                        collection_id,
                        arn,
                        face_model_version,
                        dt.datetime.now(dt.UTC).timestamp(),
                    ),
                )
            except sqlite3.IntegrityError:
                return None
            key = cursor.lastrowid
            db.executemany(
                "INSERT INTO tags (collection_key, key, value) VALUES (?, ?, ?)",
                [(key, k, v) for k, v in tags.items()],
            )
            row = db.execute(self._COLLECTION_SQL + " WHERE c.key = ?", (key,)).fetchone()
        return self._collection(row)

    def get_collection(self, account_id: str, collection_id: str) -> CollectionRecord | None:
        rows = self._read(
            self._COLLECTION_SQL + " WHERE c.account_id = ? AND c.collection_id = ?",
            (account_id, collection_id),
        )
        return self._collection(rows[0]) if rows else None

    def delete_collection(self, account_id: str, collection_id: str) -> bool:
        with self._tx() as db:
            cursor = db.execute(
                "DELETE FROM collections WHERE account_id = ? AND collection_id = ?",
                (account_id, collection_id),
            )
            return cursor.rowcount > 0

    def list_collections(
        self, account_id: str, after: str | None, limit: int
    ) -> list[CollectionRecord]:
        rows = self._read(
            self._COLLECTION_SQL
            + " WHERE c.account_id = ? AND c.collection_id > ? ORDER BY c.collection_id LIMIT ?",
            (account_id, after or "", limit),
        )
        return [self._collection(row) for row in rows]

    def count(self, collection: CollectionRecord) -> tuple[int, int]:
        faces = self._read("SELECT COUNT(*) FROM faces WHERE collection_key = ?", (collection.key,))
        users = self._read("SELECT COUNT(*) FROM users WHERE collection_key = ?", (collection.key,))
        return faces[0][0], users[0][0]

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

    _FACE_SQL = (
        "SELECT face_id, image_id, external_image_id, bounding_box, confidence,"
        " index_model_version, embedding, user_id, seq FROM faces"
    )

    @staticmethod
    def _face(row: tuple) -> FaceRecord:
        return FaceRecord(
            face_id=row[0],
            image_id=row[1],
            external_image_id=row[2],
            bounding_box=json.loads(row[3]),
            confidence=row[4],
            index_model_version=row[5],
            embedding=np.frombuffer(row[6], dtype=np.float32),
            user_id=row[7],
            seq=row[8],
        )

    def add_faces(self, collection: CollectionRecord, faces: Sequence[FaceRecord]) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT INTO faces (collection_key, face_id, image_id, external_image_id,"
                " bounding_box, confidence, index_model_version, embedding, user_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        collection.key,
                        f.face_id,
                        f.image_id,
                        f.external_image_id,
                        json.dumps(f.bounding_box),
                        f.confidence,
                        f.index_model_version,
                        np.ascontiguousarray(f.embedding, dtype=np.float32).tobytes(),
                        f.user_id,
                    )
                    for f in faces
                ],
            )

    def faces_of_image(
        self, collection: CollectionRecord, image_id: str, external_image_id: str
    ) -> list[FaceRecord]:
        rows = self._read(
            self._FACE_SQL
            + " WHERE collection_key = ? AND image_id = ? AND external_image_id = ? ORDER BY seq",
            (collection.key, image_id, external_image_id),
        )
        return [self._face(row) for row in rows]

    def get_faces(
        self, collection: CollectionRecord, face_ids: Iterable[str]
    ) -> dict[str, FaceRecord]:
        ids = list(dict.fromkeys(face_ids))
        found: dict[str, FaceRecord] = {}
        for start in range(0, len(ids), 500):  # stay under SQLite's bound-variable limit
            chunk = ids[start : start + 500]
            rows = self._read(
                self._FACE_SQL
                + f" WHERE collection_key = ? AND face_id IN ({','.join('?' * len(chunk))})",
                (collection.key, *chunk),
            )
            found.update((row[0], self._face(row)) for row in rows)
        return found

    def list_faces(
        self,
        collection: CollectionRecord,
        after_seq: int,
        limit: int,
        user_id: str | None = None,
        face_ids: Sequence[str] | None = None,
    ) -> list[FaceRecord]:
        sql = self._FACE_SQL + " WHERE collection_key = ? AND seq > ?"
        args: list[object] = [collection.key, after_seq]
        if user_id is not None:
            sql += " AND user_id = ?"
            args.append(user_id)
        if face_ids is not None:
            sql += f" AND face_id IN ({','.join('?' * len(face_ids))})"
            args.extend(face_ids)
        sql += " ORDER BY seq LIMIT ?"
        args.append(limit)
        return [self._face(row) for row in self._read(sql, args)]

    def delete_faces(self, collection: CollectionRecord, face_ids: Sequence[str]) -> list[str]:
        deleted: list[str] = []
        with self._tx() as db:
            for face_id in dict.fromkeys(face_ids):
                cursor = db.execute(
                    "DELETE FROM faces WHERE collection_key = ? AND face_id = ?"
                    " AND user_id IS NULL",
                    (collection.key, face_id),
                )
                if cursor.rowcount:
                    deleted.append(face_id)
        return deleted

    def all_faces(self, collection: CollectionRecord) -> list[FaceRecord]:
        rows = self._read(
            self._FACE_SQL + " WHERE collection_key = ? ORDER BY seq", (collection.key,)
        )
        return [self._face(row) for row in rows]

    # Users

    def create_users(self, collection: CollectionRecord, user_ids: Sequence[str]) -> list[str]:
        created = []
        with self._tx() as db:
            for user_id in user_ids:
                cursor = db.execute(
                    "INSERT INTO users (collection_key, user_id) VALUES (?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (collection.key, user_id),
                )
                if cursor.rowcount:
                    created.append(user_id)
        return created

    def get_user(self, collection: CollectionRecord, user_id: str) -> UserRecord | None:
        rows = self._read(
            _USER_SQL + " WHERE u.collection_key = ? AND u.user_id = ?",
            (collection.key, user_id),
        )
        return UserRecord(*rows[0]) if rows else None

    def delete_user(self, collection: CollectionRecord, user_id: str) -> bool:
        with self._tx() as db:
            cursor = db.execute(
                "DELETE FROM users WHERE collection_key = ? AND user_id = ?",
                (collection.key, user_id),
            )
            if not cursor.rowcount:
                return False
            db.execute(
                "UPDATE faces SET user_id = NULL WHERE collection_key = ? AND user_id = ?",
                (collection.key, user_id),
            )
            return True

    def list_users(
        self, collection: CollectionRecord, after_seq: int, limit: int
    ) -> list[UserRecord]:
        rows = self._read(
            _USER_SQL + " WHERE u.collection_key = ? AND u.seq > ? ORDER BY u.seq LIMIT ?",
            (collection.key, after_seq, limit),
        )
        return [UserRecord(*row) for row in rows]

    def set_face_user(
        self, collection: CollectionRecord, face_ids: Sequence[str], user_id: str | None
    ) -> None:
        with self._tx() as db:
            db.executemany(
                "UPDATE faces SET user_id = ? WHERE collection_key = ? AND face_id = ?",
                [(user_id, collection.key, face_id) for face_id in face_ids],
            )

    # Idempotency

    def get_idempotency(
        self, account_id: str, operation: str, token: str
    ) -> IdempotencyRecord | None:
        oldest = dt.datetime.now(dt.UTC).timestamp() - IDEMPOTENCY_TTL_SECONDS
        rows = self._read(
            "SELECT request_hash, response FROM idempotency WHERE account_id = ?"
            " AND operation = ? AND token = ? AND created_at >= ?",
            (account_id, operation, token, oldest),
        )
        return IdempotencyRecord(rows[0][0], json.loads(rows[0][1])) if rows else None

    def put_idempotency(
        self, account_id: str, operation: str, token: str, record: IdempotencyRecord
    ) -> None:
        now = dt.datetime.now(dt.UTC).timestamp()
        with self._tx() as db:
            db.execute(
                "DELETE FROM idempotency WHERE created_at < ?", (now - IDEMPOTENCY_TTL_SECONDS,)
            )
            db.execute(
                "INSERT OR REPLACE INTO idempotency (account_id, operation, token, request_hash,"
                " response, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    account_id,
                    operation,
                    token,
                    record.request_hash,
                    json.dumps(record.response),
                    now,
                ),
            )
