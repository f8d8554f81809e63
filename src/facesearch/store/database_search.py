"""Searching a collection inside PostgreSQL, with pgvector: the SQL of the in-database search.

A collection of ``HNSW_MIN_FACES`` faces or more gets an HNSW index of its own, a partial index
over its rows (``WHERE collection_key = K``) on the vectors cast to half precision
(``halfvec_ip_ops``: the vectors are unit-norm, so inner product is cosine). A search takes its
candidates from that index, with pgvector's iterative scan filling the candidates when the
other conditions (faces with a user, not the searched face or user) drop some, then re-ranks
them by the exact cosine of the stored float32 vectors in the same statement: every similarity
returned is exact. A smaller collection, or one whose index is not built yet, is searched
exactly: every face's cosine, in SQL.

Nothing here is held in the process: the API processes of the in-database mode
(index/database.py) keep no vectors at all. The index is built once, by whichever process gets
to it first (``CREATE INDEX CONCURRENTLY``: writes go on meanwhile), and dropped when its
collection is gone.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np

from facesearch.store.base import CollectionRecord
from facesearch.store.cursor import Cursor

# Collections below this many faces are searched exactly (about 7 ms at 10,000 faces in SQL).
HNSW_MIN_FACES = 10_000
# The graph's build parameters (pgvector's defaults) and the least ef_search of a query: at a
# million faces the exact top user came first for 0.89 / 0.94 / 0.97 of the probes at 100 / 200
# / 400, for 24 / 30 / 70 ms a search (benchmarks/scale.py, docs/scale-out.md).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
EF_SEARCH = 200
# pgvector's bound on ef_search; iterative scans go past it, up to max_scan_tuples.
_MAX_EF_SEARCH = 1000
_MIN_SCAN_TUPLES = 20_000
# How a build may use the database server: its memory for the graph (a graph that does not fit
# is built far slower), and parallel workers.
BUILD_MEMORY = "1GB"
BUILD_WORKERS = 2
# The first key of the build locks (two-key advisory locks), apart from postgres.py's.
_BUILD_LOCK_SPACE = 0x0FAC5EB
_INDEX_NAME = "faces_hnsw_{key}"
_INDEX_PATTERN = re.compile(r"faces_hnsw_(\d+)")


@dataclass(frozen=True)
class NearestFaces:
    """A search's candidates, best first: the faces' seqs, their users' seqs (-1 for none)
    and exact cosines, and how many of the candidates taken passed the bar (``passing``):
    when that is every candidate asked for, more may pass beyond them."""

    seqs: np.ndarray
    user_seqs: np.ndarray
    cosines: np.ndarray
    passing: int


class DatabaseSearchSQL:
    """The in-database search's statements, over PostgresStore's connections."""

    @abstractmethod
    def _tx(self, snapshot: bool = False) -> AbstractContextManager[Cursor]: ...

    @abstractmethod
    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[Any]: ...

    @abstractmethod
    def _maintenance(self) -> AbstractContextManager[Cursor]:
        """A connection outside any transaction (CREATE INDEX CONCURRENTLY needs one)."""

    def search_index_state(self, collection: CollectionRecord) -> tuple[int, bool]:
        """The collection's number of faces, and whether its HNSW index is built and valid."""
        rows = self._read(
            "SELECT c.face_count, EXISTS (SELECT 1 FROM pg_index i"
            " JOIN pg_class r ON r.oid = i.indexrelid"
            " WHERE r.relname = ? AND r.relnamespace = current_schema()::regnamespace"
            " AND i.indisvalid AND i.indisready) FROM collections c WHERE c.key = ?",
            (_INDEX_NAME.format(key=collection.key), collection.key),
        )
        if not rows:
            return 0, False
        faces, indexed = rows[0]
        return int(faces), bool(indexed)

    def build_search_index(self, collection: CollectionRecord) -> bool:
        """Build the collection's HNSW index (minutes at a million faces), unless it exists;
        False if another process is building it or the collection has no faces yet (they fix
        the vectors' size). Writes and searches go on meanwhile."""
        name = _INDEX_NAME.format(key=int(collection.key))
        rows = self._read(
            "SELECT vector_dims(embedding) FROM faces WHERE collection_key = ? LIMIT 1",
            (collection.key,),
        )
        if not rows:
            return False
        ((dim,),) = rows
        with self._maintenance() as db:
            db.execute("SELECT pg_try_advisory_lock(?, ?)", (_BUILD_LOCK_SPACE, collection.key))
            if not db.fetchone()[0]:
                return False
            try:
                # A build that died (its process killed) leaves an invalid index: start again.
                db.execute(
                    "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class r"
                    " ON r.oid = i.indexrelid WHERE r.relname = ?"
                    " AND r.relnamespace = current_schema()::regnamespace",
                    (name,),
                )
                row = db.fetchone()
                if row is not None and row[0]:
                    db.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
                db.execute(f"SET maintenance_work_mem = '{BUILD_MEMORY}'")
                db.execute(f"SET max_parallel_maintenance_workers = {int(BUILD_WORKERS)}")
                db.execute(
                    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON faces USING hnsw"
                    f" ((embedding::halfvec({int(dim)})) halfvec_ip_ops)"
                    f" WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
                    f" WHERE collection_key = {int(collection.key)}"
                )
            finally:
                db.execute("RESET maintenance_work_mem")
                db.execute("RESET max_parallel_maintenance_workers")
                db.execute("SELECT pg_advisory_unlock(?, ?)", (_BUILD_LOCK_SPACE, collection.key))
        return True

    def drop_stale_search_indexes(self) -> list[int]:
        """Drop the HNSW indexes of collections that no longer exist; their keys."""
        rows = self._read(
            "SELECT relname FROM pg_class WHERE relkind = 'i'"
            " AND relnamespace = current_schema()::regnamespace AND relname ~ ?",
            (_INDEX_PATTERN.pattern.join("^$"),),
        )
        keys = [int(m.group(1)) for (name,) in rows if (m := _INDEX_PATTERN.fullmatch(name))]
        if not keys:
            return []
        live = {key for (key,) in self._read("SELECT key FROM collections")}
        stale = [key for key in keys if key not in live]
        with self._maintenance() as db:
            for key in stale:
                db.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_INDEX_NAME.format(key=key)}")
        return stale

    def nearest_faces(
        self,
        collection: CollectionRecord,
        query: np.ndarray,
        min_cosine: float,
        limit: int,
        *,
        candidates: int | None,
        users_only: bool = False,
        exclude_seq: int | None = None,
        exclude_user: int | None = None,
    ) -> NearestFaces:
        """The ``limit`` faces most similar to ``query`` (cosine >= ``min_cosine``), or with
        ``users_only`` each user's best face, ``limit`` users: from the ``candidates`` nearest
        of the HNSW index, or from every face (exactly) when ``candidates`` is None."""
        key = int(collection.key)
        filters = ""
        if users_only:
            filters += " AND user_seq IS NOT NULL"
        if exclude_seq is not None:
            filters += f" AND seq <> {int(exclude_seq)}"
        if exclude_user is not None:
            filters += f" AND user_seq <> {int(exclude_user)}"
        vector = np.ascontiguousarray(query, np.float32)
        if candidates is None:
            args: tuple[Any, ...] = (vector,)
            scored = (
                "SELECT seq, user_seq, -(embedding <#> ?) AS cosine FROM faces"
                f" WHERE collection_key = {key}{filters}"
            )
        else:
            dim = len(vector)
            # The ORDER BY is the index's expression, so the planner walks the graph.
            args = (vector, vector)
            scored = (
                "SELECT seq, user_seq, -(embedding <#> ?) AS cosine FROM ("
                " SELECT seq, user_seq, embedding FROM faces"
                f" WHERE collection_key = {key}{filters}"
                f" ORDER BY embedding::halfvec({dim}) <#> ?::halfvec({dim})"
                f" LIMIT {int(candidates)}) AS near"
            )
        if users_only:
            sql = (
                "SELECT -1, user_seq, cosine, passing FROM ("
                " SELECT DISTINCT ON (user_seq) user_seq, cosine, count(*) OVER () AS passing"
                f" FROM ({scored}) AS scored WHERE cosine >= ? ORDER BY user_seq, cosine DESC"
                ") AS best ORDER BY cosine DESC, user_seq LIMIT ?"
            )
        else:
            sql = (
                "SELECT seq, user_seq, cosine, count(*) OVER () FROM"
                f" ({scored}) AS scored WHERE cosine >= ? ORDER BY cosine DESC, seq LIMIT ?"
            )
        with self._tx(snapshot=True) as db:
            if candidates is not None:
                db.execute(
                    "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),"
                    " set_config('hnsw.ef_search', ?, true),"
                    " set_config('hnsw.max_scan_tuples', ?, true)",
                    (
                        str(min(_MAX_EF_SEARCH, max(EF_SEARCH, candidates))),
                        str(max(_MIN_SCAN_TUPLES, 2 * candidates)),
                    ),
                )
            db.execute(sql, (*args, float(min_cosine), int(limit)))
            rows = db.fetchall()
        return NearestFaces(
            seqs=np.array([r[0] for r in rows], np.int64),
            user_seqs=np.array([-1 if r[1] is None else r[1] for r in rows], np.int64),
            cosines=np.array([r[2] for r in rows], np.float32),
            passing=int(rows[0][3]) if rows else 0,
        )
