"""Stored-video jobs and their results, kept in the store so that any process may run them.

A job is created WAITING by StartFaceSearch / StartFaceDetection; a worker (in a server process,
or the embedded runner) claims it, becoming its ``owner``, and keeps ``heartbeat_at`` fresh while
it works, writing results as it goes; the job ends SUCCEEDED or FAILED. A job whose owner stopped
beating (its process was killed) is claimed again and started over, its earlier results dropped;
after ``max_attempts`` claims it ends FAILED instead, so no job stays in progress forever.

Every write is one transaction and checks the owner, so a worker that was presumed dead and
replaced can never overwrite its successor's work. The SQL is shared by SQLite and PostgreSQL
(``JobsSQL`` is mixed into sql.SQLStore); PostgreSQL claims with ``FOR UPDATE SKIP LOCKED`` so
that processes claiming at once take different jobs, SQLite within its single write transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from abc import abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from facesearch.store.cursor import Cursor

# A job, its results and its ClientRequestToken are kept this long (Rekognition: 7 days).
JOB_TTL_SECONDS = 7 * 24 * 3600

# Internal states; WAITING reads as IN_PROGRESS through the API, as Rekognition's queued jobs do.
WAITING = "WAITING"
IN_PROGRESS = "IN_PROGRESS"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
STATES = (WAITING, IN_PROGRESS, SUCCEEDED, FAILED)

# Results sorted by when they were seen (insertion order) or by person, then when.
BY_TIMESTAMP = "TIMESTAMP"
BY_INDEX = "INDEX"

_COLUMNS = (
    "key, job_id, account_id, api, status, params, region, client_token, request_hash,"
    " created_at, heartbeat_at, owner, attempts, progress, status_message, video_metadata,"
    " frames, finished_at"
)


def _tables(key: str, real: str, prefix: str) -> str:
    return f"""
    CREATE TABLE {prefix}jobs (
        key {key},
        job_id TEXT NOT NULL UNIQUE,
        account_id TEXT NOT NULL,
        api TEXT NOT NULL,
        status TEXT NOT NULL,
        params TEXT NOT NULL,
        region TEXT NOT NULL,
        client_token TEXT,
        request_hash TEXT NOT NULL,
        created_at {real} NOT NULL,
        heartbeat_at {real},
        owner TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        progress {real} NOT NULL DEFAULT 0,
        status_message TEXT,
        video_metadata TEXT,
        frames BIGINT NOT NULL DEFAULT 0,
        finished_at {real}
    );
    CREATE UNIQUE INDEX jobs_by_token ON {prefix}jobs (account_id, api, client_token);
    CREATE INDEX jobs_by_status ON {prefix}jobs (status, created_at);
    CREATE INDEX jobs_by_account ON {prefix}jobs (account_id, status);
    CREATE INDEX jobs_by_age ON {prefix}jobs (created_at);
    CREATE TABLE {prefix}job_results (
        job_key BIGINT NOT NULL REFERENCES {prefix}jobs(key) ON DELETE CASCADE,
        rank BIGINT NOT NULL,
        person_index BIGINT NOT NULL,
        payload TEXT NOT NULL,
        PRIMARY KEY (job_key, rank)
    );
    CREATE INDEX job_results_by_index ON {prefix}job_results (job_key, person_index, rank)
    """


# The migration each store appends to its own list (sqlite.py, postgres.py).
SQLITE_MIGRATION = _tables("INTEGER PRIMARY KEY AUTOINCREMENT", "REAL", "")


def postgres_migration(schema: str) -> str:
    """The jobs tables in PostgreSQL's ``schema``."""
    return _tables(
        "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "DOUBLE PRECISION", schema + "."
    )


@dataclass(frozen=True)
class JobRecord:
    """A stored-video job. ``params`` is its Start request (without ClientRequestToken); ``api``
    the Start operation's name; ``status`` one of STATES."""

    key: int
    job_id: str
    account_id: str
    api: str
    status: str
    params: dict[str, Any]
    region: str
    client_token: str | None
    request_hash: str
    created_at: float
    heartbeat_at: float | None = None
    owner: str | None = None
    attempts: int = 0
    progress: float = 0.0
    status_message: str | None = None
    video_metadata: dict[str, Any] | None = None
    frames: int = 0
    finished_at: float | None = None


@dataclass(frozen=True)
class JobResult:
    """One entry of a job's results: its place in either order and its response shape."""

    rank: int
    person_index: int
    payload: dict[str, Any]


def _job(row: Sequence[Any]) -> JobRecord:
    return JobRecord(
        key=row[0],
        job_id=row[1],
        account_id=row[2],
        api=row[3],
        status=row[4],
        params=json.loads(row[5]),
        region=row[6],
        client_token=row[7],
        request_hash=row[8],
        created_at=row[9],
        heartbeat_at=row[10],
        owner=row[11],
        attempts=row[12],
        progress=row[13],
        status_message=row[14],
        video_metadata=None if row[15] is None else json.loads(row[15]),
        frames=row[16],
        finished_at=row[17],
    )


def _now() -> float:
    return dt.datetime.now(dt.UTC).timestamp()


class JobStore(Protocol):
    """The store's jobs (see the module docstring). Times are Unix seconds."""

    def create_job(self, job: JobRecord, max_in_progress: int) -> JobRecord | None:
        """Store a new job, unless the account has ``max_in_progress`` jobs waiting or in
        progress in the job's region (None). If the account already has a live job of the same
        api and ``client_token``, that job is returned instead and nothing is stored."""
        ...

    def get_job(self, account_id: str, job_id: str) -> JobRecord | None:
        """A job of the account, if it was created within JOB_TTL_SECONDS."""
        ...

    def claim_job(
        self,
        owner: str,
        stale_before: float,
        max_attempts: int,
        gave_up: Callable[[JobRecord], object] | None = None,
    ) -> JobRecord | None:
        """Take the oldest waiting job, or one in progress whose heartbeat is older than
        ``stale_before``, for ``owner``: IN_PROGRESS, attempts + 1, results dropped. A stale job
        already claimed ``max_attempts`` times is failed instead, and handed to ``gave_up``
        once that is stored (to publish its completion). None when none is left."""
        ...

    def has_claimable_job(self, stale_before: float) -> bool:
        """Whether :meth:`claim_job` would find a job now."""
        ...

    def heartbeat_job(
        self,
        job: JobRecord,
        owner: str,
        progress: float,
        frames: int,
        video_metadata: dict[str, Any] | None = None,
    ) -> bool:
        """Record the owner's progress; False if ``owner`` no longer holds the job."""
        ...

    def add_job_results(self, job: JobRecord, owner: str, results: Sequence[JobResult]) -> bool:
        """Append results; False (nothing written) if ``owner`` no longer holds the job."""
        ...

    def finish_job(
        self,
        job: JobRecord,
        owner: str | None,
        status: str,
        status_message: str | None = None,
    ) -> JobRecord | None:
        """End a job SUCCEEDED or FAILED (``owner`` None: whoever holds it, or none, as long as
        it has not ended); the ended job, or None if it was not ``owner``'s or already ended."""
        ...

    def release_job(self, job: JobRecord, owner: str) -> None:
        """Hand a job back (its owner is stopping): waiting again, this claim not counted."""
        ...

    def job_results(
        self, job: JobRecord, order: str, after: Sequence[int], limit: int
    ) -> list[JobResult]:
        """Up to ``limit`` results after the position ``after`` (``[rank]`` for BY_TIMESTAMP,
        ``[person_index, rank]`` for BY_INDEX)."""
        ...

    def job_counts(self) -> dict[str, int]:
        """The number of jobs in each state (every account), for monitoring."""
        ...

    def expire_jobs(self, before: float) -> int:
        """Delete the jobs (and results) created before ``before``; how many were."""
        ...


class JobsSQL:
    """:class:`JobStore` over the SQL of sql.SQLStore (which supplies ``_tx`` and ``_read``)."""

    # PostgreSQL adds " FOR UPDATE SKIP LOCKED": concurrent claimers skip each other's rows.
    _CLAIM_LOCK = ""

    @abstractmethod
    def _tx(self, snapshot: bool = False) -> AbstractContextManager[Cursor]: ...

    @abstractmethod
    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[Any]: ...

    def create_job(self, job: JobRecord, max_in_progress: int) -> JobRecord | None:
        now = _now()
        with self._tx() as db:
            db.execute("DELETE FROM jobs WHERE created_at < ?", (now - JOB_TTL_SECONDS,))
            if job.client_token is not None:
                db.execute(
                    f"SELECT {_COLUMNS} FROM jobs WHERE account_id = ? AND api = ?"
                    " AND client_token = ?",
                    (job.account_id, job.api, job.client_token),
                )
                row = db.fetchone()
                if row is not None:
                    return _job(row)
            db.execute(
                "SELECT COUNT(*) FROM jobs WHERE account_id = ? AND region = ?"
                " AND status IN (?, ?)",
                (job.account_id, job.region, WAITING, IN_PROGRESS),
            )
            if db.fetchone()[0] >= max_in_progress:
                return None
            db.execute(
                "INSERT INTO jobs (job_id, account_id, api, status, params, region, client_token,"
                " request_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING key",
                (
                    job.job_id,
                    job.account_id,
                    job.api,
                    WAITING,
                    json.dumps(job.params),
                    job.region,
                    job.client_token,
                    job.request_hash,
                    now,
                ),
            )
            key = db.fetchone()[0]
            db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE key = ?", (key,))
            return _job(db.fetchone())

    def get_job(self, account_id: str, job_id: str) -> JobRecord | None:
        rows = self._read(
            f"SELECT {_COLUMNS} FROM jobs WHERE account_id = ? AND job_id = ? AND created_at >= ?",
            (account_id, job_id, _now() - JOB_TTL_SECONDS),
        )
        return _job(rows[0]) if rows else None

    _CLAIMABLE = "(status = ? OR (status = ? AND heartbeat_at < ?)) AND created_at >= ?"

    def _claimable_args(self, stale_before: float) -> tuple[Any, ...]:
        return (WAITING, IN_PROGRESS, stale_before, _now() - JOB_TTL_SECONDS)

    def claim_job(
        self,
        owner: str,
        stale_before: float,
        max_attempts: int,
        gave_up: Callable[[JobRecord], object] | None = None,
    ) -> JobRecord | None:
        while True:
            failed = None
            with self._tx() as db:
                db.execute(
                    f"SELECT key, status, attempts FROM jobs WHERE {self._CLAIMABLE}"
                    f" ORDER BY created_at, key LIMIT 1{self._CLAIM_LOCK}",
                    self._claimable_args(stale_before),
                )
                row = db.fetchone()
                if row is None:
                    return None
                key, status, attempts = row
                now = _now()
                if status == IN_PROGRESS and attempts >= max_attempts:
                    # Its process died this many times: the video may be what kills it.
                    db.execute(
                        "UPDATE jobs SET status = ?, status_message = ?, finished_at = ?,"
                        " owner = NULL WHERE key = ?",
                        (FAILED, _gave_up(attempts), now, key),
                    )
                    db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE key = ?", (key,))
                    failed = _job(db.fetchone())
                else:
                    db.execute("DELETE FROM job_results WHERE job_key = ?", (key,))
                    db.execute(
                        "UPDATE jobs SET status = ?, owner = ?, heartbeat_at = ?,"
                        " attempts = attempts + 1, progress = 0, frames = 0 WHERE key = ?",
                        (IN_PROGRESS, owner, now, key),
                    )
                    db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE key = ?", (key,))
                    return _job(db.fetchone())
            if gave_up is not None and failed is not None:
                gave_up(failed)

    def has_claimable_job(self, stale_before: float) -> bool:
        rows = self._read(
            f"SELECT 1 FROM jobs WHERE {self._CLAIMABLE} LIMIT 1",
            self._claimable_args(stale_before),
        )
        return bool(rows)

    def heartbeat_job(
        self,
        job: JobRecord,
        owner: str,
        progress: float,
        frames: int,
        video_metadata: dict[str, Any] | None = None,
    ) -> bool:
        with self._tx() as db:
            metadata = None if video_metadata is None else json.dumps(video_metadata)
            db.execute(
                "UPDATE jobs SET heartbeat_at = ?, progress = ?, frames = ?,"
                " video_metadata = COALESCE(?, video_metadata)"
                " WHERE key = ? AND owner = ? AND status = ?",
                (_now(), progress, frames, metadata, job.key, owner, IN_PROGRESS),
            )
            return db.rowcount > 0

    def add_job_results(self, job: JobRecord, owner: str, results: Sequence[JobResult]) -> bool:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET heartbeat_at = ? WHERE key = ? AND owner = ? AND status = ?",
                (_now(), job.key, owner, IN_PROGRESS),
            )
            if db.rowcount == 0:
                return False
            db.executemany(
                "INSERT INTO job_results (job_key, rank, person_index, payload)"
                " VALUES (?, ?, ?, ?)",
                [(job.key, r.rank, r.person_index, json.dumps(r.payload)) for r in results],
            )
            return True

    def finish_job(
        self,
        job: JobRecord,
        owner: str | None,
        status: str,
        status_message: str | None = None,
    ) -> JobRecord | None:
        if status not in (SUCCEEDED, FAILED):
            raise ValueError(f"a job ends SUCCEEDED or FAILED, not {status}")
        with self._tx() as db:
            sql = (
                "UPDATE jobs SET status = ?, status_message = ?, finished_at = ?, owner = NULL,"
                " progress = CASE WHEN ? = 'SUCCEEDED' THEN 1 ELSE progress END"
                " WHERE key = ? AND status IN (?, ?)"
            )
            args: list[Any] = [status, status_message, _now(), status, job.key, WAITING]
            args.append(IN_PROGRESS)
            if owner is not None:
                sql += " AND owner = ?"
                args.append(owner)
            db.execute(sql, args)
            if db.rowcount == 0:
                return None
            db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE key = ?", (job.key,))
            return _job(db.fetchone())

    def release_job(self, job: JobRecord, owner: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = ?, owner = NULL, attempts = attempts - 1, progress = 0,"
                " frames = 0 WHERE key = ? AND owner = ? AND status = ?",
                (WAITING, job.key, owner, IN_PROGRESS),
            )
            if db.rowcount:
                db.execute("DELETE FROM job_results WHERE job_key = ?", (job.key,))

    def job_results(
        self, job: JobRecord, order: str, after: Sequence[int], limit: int
    ) -> list[JobResult]:
        if order == BY_INDEX:
            index, rank = after
            rows = self._read(
                "SELECT rank, person_index, payload FROM job_results WHERE job_key = ?"
                " AND (person_index > ? OR (person_index = ? AND rank > ?))"
                " ORDER BY person_index, rank LIMIT ?",
                (job.key, index, index, rank, limit),
            )
        else:
            rows = self._read(
                "SELECT rank, person_index, payload FROM job_results WHERE job_key = ?"
                " AND rank > ? ORDER BY rank LIMIT ?",
                (job.key, after[0], limit),
            )
        return [JobResult(row[0], row[1], json.loads(row[2])) for row in rows]

    def job_counts(self) -> dict[str, int]:
        rows = self._read(
            "SELECT status, COUNT(*) FROM jobs WHERE created_at >= ? GROUP BY status",
            (_now() - JOB_TTL_SECONDS,),
        )
        return {state: 0 for state in STATES} | {row[0]: row[1] for row in rows}

    def expire_jobs(self, before: float) -> int:
        with self._tx() as db:
            db.execute("DELETE FROM jobs WHERE created_at < ?", (before,))
            return db.rowcount


def _gave_up(attempts: int) -> str:
    return (
        f"The job was interrupted {attempts} times: the process analysing the video ended "
        "before it finished (killed, or out of memory). Not trying again."
    )
