"""Read replicas of the PostgreSQL store: which reads may go to a streaming standby, and which.

Writes, the reads under an account's write lock (the checks that guard a write) and the video
jobs always go to the primary. The reads that only answer a call (Describe/List/Search/Get and a
search index's catch-up) may go to a replica: one that is up, and that has replayed the WAL at
least as far as this process needs for the account read:

- **Its own writes.** After each write transaction under an account's write lock the primary's
  WAL insert position is noted for the account; a replica is used for the account's reads only
  once its replay position (``pg_last_wal_replay_lsn``) has reached it. So a read method marked
  below must read only what is written under a write lock: the collections' data is, while what
  is written outside one (the token key, search models, signed-out sessions, video jobs) is
  read from the primary.
- **Never older than before.** A search index's catch-up notes the WAL position it read at, so
  the next page, the next catch-up and the vectors a search re-ranks with never come from an
  older state than the one the index holds.

Other processes' writes are seen within the replica's lag, reported by :meth:`ReplicaSet.status`.
A replica that fails (its connection broken, or none to be had within ``REPLICA_WAIT_S`` because
it cannot be connected to) is marked down: the call that found it so is run again on the
primary, the next calls skip it, and a background thread
tries it again every ``POLL_S`` seconds, measuring every replica's lag as it goes (and once when
the set is made, so that a process's first reads may use them).
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Protocol, TypeVar, cast

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from facesearch.store.base import ReadReplicas, ReplicaStatus

log = logging.getLogger(__name__)

# Seconds a read waits for a replica's connection before it runs on the primary instead.
REPLICA_WAIT_S = 0.5
# Seconds between two measurements of the replicas' lag (and retries of those that are down).
POLL_S = 0.5
# WAL positions as byte offsets: pg_lsn minus '0/0' is a number, compared exactly.
_INSERT_LSN = "SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint"
_REPLAY_LSN = "SELECT (pg_last_wal_replay_lsn() - '0/0')::bigint"
# A standby's replay position and how old its last replayed commit is, in seconds: 0 when it has
# replayed all it received (an idle primary leaves an old timestamp, not a lag).
_REPLICA_STATE = (
    "SELECT pg_is_in_recovery(), (pg_last_wal_replay_lsn() - '0/0')::bigint,"
    " CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
    " ELSE EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp()) END,"
    " (SELECT system_identifier FROM pg_control_system())"
)
_SYSTEM_ID = "SELECT system_identifier FROM pg_control_system()"
# SQLSTATE classes of a connection lost or a server shutting down or starting up.
_GONE = ("08", "57")
# The floor of a write whose position could not be read back: no replica is that far.
_UNKNOWN = 2**63 - 1

R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])


def _why(error: Exception) -> str:
    """What went wrong, without the driver's message (it may name the user)."""
    sqlstate = getattr(error, "sqlstate", None)
    return type(error).__name__ + (f" (SQLSTATE {sqlstate})" if sqlstate else "")


def _gone(error: Exception, pool: ConnectionPool) -> bool:
    """Whether ``error`` on ``pool`` means its replica is down: the pool could not connect, a
    connection broke, or the server is going away (SQLSTATE classes 08 and 57). A pool that is
    merely busy, or a server that answered with another error, is up: only that read moves."""
    if isinstance(error, PoolTimeout):
        return bool(pool.get_stats().get("connections_errors", 0))
    sqlstate = getattr(error, "sqlstate", None)
    return sqlstate is None or sqlstate[:2] in _GONE


class _ReplicaFailed(Exception):
    """A replica failed a read; the read runs again on the primary."""

    def __init__(self, error: Exception, pool: ConnectionPool) -> None:
        super().__init__(_why(error))
        self.down = _gone(error, pool)


class _Replica:
    def __init__(self, url: str, where: str) -> None:
        self.url, self.where = url, where
        self.pool: ConnectionPool | None = None  # open while up
        self.replayed = 0  # how far it has replayed, at least (bytes of WAL)
        self.lag_bytes: int | None = None
        self.lag_seconds: float | None = None
        self.reads = 0
        self.why_down = "not connected yet"


class _Local(threading.local):
    replica: _Replica | None = None  # where this thread's current read goes (None: primary)
    account: str | None = None  # whose read it is
    reading = False
    held: str | None = None  # the account whose write lock this thread holds


class ReplicaSet:
    """The replicas of one PostgresStore, and where each read goes (see the module docstring).
    With no replica URLs every call runs on the primary, with no extra statement."""

    def __init__(
        self,
        primary: ConnectionPool,
        urls: Sequence[str],
        connect: Callable[[str], ConnectionPool],
        redact: Callable[[str], str],
    ) -> None:
        """``connect(url)`` opens a pool on a replica; ``redact(url)`` names it in messages."""
        self._primary = primary
        self._connect = connect
        self._replicas = [_Replica(url, redact(url)) for url in urls]
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._floors: dict[str, int] = {}  # per account: the least a replica must have replayed
        self._highest = 0  # the highest floor: what a read of every account needs
        self._local = _Local()
        self._primary_reads = 0
        self._closing: list[ConnectionPool] = []  # pools of replicas gone down, to close
        self._primary_lsn: int | None = None
        self._system_id: int | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        if self._replicas:
            # Measured once now, so that even a process's first reads may use the replicas.
            self._measure()
            self._poller = threading.Thread(
                target=self._poll, name="facesearch-replicas", daemon=True
            )
            self._poller.start()

    # Routing

    def read(self, account: str | None, call: Callable[[], R]) -> R:
        """Run ``call`` (store reads of ``account``'s data, None: of every account's) on a
        replica that has caught up far enough, else on the primary; under a write lock, always
        on the primary."""
        local = self._local
        if not self._replicas or local.reading:
            return call()  # no replicas, or within a read already routed
        local.account, local.reading = account, True
        try:
            if local.held is not None:
                return call()  # it may guard a write: the primary
            replica = local.replica = self._choose(self._floor(account))
            if replica is not None:
                try:
                    result = call()
                except _ReplicaFailed as failed:
                    if failed.down:
                        self._mark_down(replica, str(failed))
                    local.replica = None
                else:
                    self._count(replica)
                    return result
            self._count(None)
            return call()
        finally:
            local.replica, local.account, local.reading = None, None, False

    def _count(self, replica: _Replica | None) -> None:
        with self._lock:
            if replica is None:
                self._primary_reads += 1
            else:
                replica.reads += 1

    def hold(self, account_id: str | None) -> None:
        """This thread now holds ``account_id``'s write lock (None: no longer)."""
        self._local.held = account_id

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection for the statements of this thread's read: its replica's, else the
        primary's."""
        replica = self._local.replica
        pool = replica.pool if replica is not None else None
        if replica is None or pool is None:
            with self._primary.connection() as conn:
                yield conn
            return
        try:
            with pool.connection(timeout=REPLICA_WAIT_S) as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as error:
            raise _ReplicaFailed(error, pool) from error

    def committed(self, conn: psycopg.Connection[Any]) -> None:
        """A write transaction committed on ``conn``: this process's reads of the account whose
        write lock this thread holds wait for a replica to have replayed this far. What is
        written outside a write lock is never read from a replica (see the module docstring)."""
        account = self._local.held
        if not self._replicas or account is None:
            return
        try:
            lsn = _lsn(conn, _INSERT_LSN)
        except psycopg.Error:  # committed, so never an error: primary-only until measured
            lsn = _UNKNOWN
        self._raise(account, lsn)

    def observed(self, conn: psycopg.Connection[Any]) -> None:
        """A snapshot read (a search index's catch-up) ran on ``conn``: later reads of the same
        account never come from an older state."""
        account = self._local.account
        if self._replicas and self._local.reading and account is not None:
            query = _REPLAY_LSN if self._local.replica is not None else _INSERT_LSN
            self._raise(account, _lsn(conn, query))

    def _raise(self, account: str, lsn: int) -> None:
        with self._lock:
            if lsn > self._floors.get(account, 0):
                self._floors[account] = lsn
            self._highest = max(self._highest, lsn)

    def _known(self, lsn: int) -> None:
        """The primary has written up to ``lsn``: past every write whose position was not
        read back."""
        with self._lock:
            for account, floor in self._floors.items():
                if floor == _UNKNOWN:
                    self._floors[account] = lsn
            if self._highest == _UNKNOWN:
                self._highest = max([lsn, *self._floors.values()])

    def _floor(self, account: str | None) -> int:
        with self._lock:
            if account is None:
                return self._highest
            return self._floors.get(account, 0)

    def _choose(self, floor: int) -> _Replica | None:
        """An up replica that has replayed up to ``floor``, in turn; asks one that seemed behind
        for its position again before giving up on them all."""
        up = [r for r in self._replicas if r.pool is not None]
        if not up:
            return None
        start = next(self._turn) % len(up)
        ordered = up[start:] + up[:start]
        for replica in ordered:
            if replica.replayed >= floor:
                return replica
        replica = ordered[0]
        pool = replica.pool
        if pool is None:
            return None
        try:
            with pool.connection(timeout=REPLICA_WAIT_S) as conn:
                replica.replayed = max(replica.replayed, _lsn(conn, _REPLAY_LSN))
        except (psycopg.OperationalError, PoolTimeout) as error:
            if _gone(error, pool):
                self._mark_down(replica, _why(error))
            return None
        return replica if replica.replayed >= floor else None

    def _mark_down(self, replica: _Replica, why: str) -> None:
        pool, replica.pool = replica.pool, None
        if pool is None:
            return
        log.warning("read replica %s is down (%s): reading from the primary", replica.where, why)
        replica.why_down = why
        # After a restart a standby may briefly be behind what it had replayed: start over.
        replica.replayed = 0
        replica.lag_bytes = replica.lag_seconds = None
        # Closed by the poller: closing waits for the pool's threads.
        self._closing.append(pool)

    # The poller: lag, and retries of the replicas that are down

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._measure()
            self._stop.wait(POLL_S)
        for replica in self._replicas:
            if replica.pool is not None:
                self._closing.append(replica.pool)
                replica.pool = None
        self._close_pools()

    def _close_pools(self) -> None:
        while self._closing:
            with suppress(Exception):
                self._closing.pop().close(timeout=1)

    def _measure(self) -> None:
        self._close_pools()
        try:
            with self._primary.connection(timeout=REPLICA_WAIT_S) as conn:
                self._primary_lsn = _lsn(conn, _INSERT_LSN)
                if self._system_id is None:
                    self._system_id = _value(conn, _SYSTEM_ID)
        except (psycopg.Error, PoolTimeout):
            self._primary_lsn = None  # lags unknown until the primary answers again
        else:
            self._known(self._primary_lsn)
        for replica in self._replicas:
            if self._stop.is_set():
                return
            pool = replica.pool
            try:
                self._measure_one(replica)
            except (psycopg.Error, PoolTimeout) as error:
                if pool is None:
                    replica.why_down = _why(error)
                elif _gone(error, pool):
                    self._mark_down(replica, _why(error))

    def _measure_one(self, replica: _Replica) -> None:
        pool = replica.pool
        if pool is None:  # down: try a fresh connection before opening a pool again
            with psycopg.connect(replica.url, **_PROBE) as conn:
                state = conn.execute(_REPLICA_STATE).fetchone()
        else:
            with pool.connection(timeout=REPLICA_WAIT_S) as conn:
                state = conn.execute(_REPLICA_STATE).fetchone()
        assert state is not None
        in_recovery, replayed, seconds, system_id = state
        why = None
        if not in_recovery:
            why = "it is not a standby (promoted, or a primary)"
        elif self._system_id is not None and system_id != self._system_id:
            why = "it is a standby of another database cluster"
        if why is not None:
            if pool is not None:
                self._mark_down(replica, why)
            elif replica.why_down != why:
                log.warning("read replica %s is not used: %s", replica.where, why)
            replica.why_down = why
            return
        replica.replayed = max(replica.replayed, replayed or 0)
        primary = self._primary_lsn
        replica.lag_bytes = None if primary is None else max(0, primary - replica.replayed)
        replica.lag_seconds = None if seconds is None else max(0.0, float(seconds))
        if pool is None:
            replica.pool = self._connect(replica.url)
            log.info("read replica %s is up", replica.where)

    def status(self) -> ReadReplicas:
        """Each replica (up or not, its lag, the reads it answered) and the reads the primary
        answered in their place."""
        with self._lock:
            return ReadReplicas(
                primary_reads=self._primary_reads if self._replicas else 0,
                replicas=tuple(
                    ReplicaStatus(
                        where=r.where,
                        up=r.pool is not None,
                        lag_bytes=r.lag_bytes,
                        lag_seconds=r.lag_seconds,
                        reads=r.reads,
                    )
                    for r in self._replicas
                ),
            )

    def close(self) -> None:
        """Stop measuring and close the replicas' connections."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join()


# A down replica's retry: connection refused answers at once; an unreachable host waits this.
_PROBE: dict[str, Any] = {"connect_timeout": 2, "autocommit": True}


def _value(conn: psycopg.Connection[Any], query: str) -> Any:
    row = conn.execute(query).fetchone()
    return None if row is None else row[0]


def _lsn(conn: psycopg.Connection[Any], query: str) -> int:
    return int(_value(conn, query) or 0)


# The decorators that mark a store's read methods as reads a replica may answer.


class Routed(Protocol):
    """A store whose reads may go to replicas."""

    _replicas: ReplicaSet


def _reads(first: str, account: Callable[[Any], str | None]) -> Callable[[F], F]:
    """A read method whose first argument (named ``first``) tells whose data it reads."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def routed(self: Routed, *args: Any, **kwargs: Any) -> Any:
            whose = account(args[0] if args else kwargs.get(first))
            return self._replicas.read(whose, lambda: method(self, *args, **kwargs))

        return cast(F, routed)

    return decorate


by_account = _reads("account_id", lambda account_id: account_id)
"""A read of the account named by its first argument."""
by_collection = _reads("collection", lambda collection: collection.account_id)
"""A read of the collection that is its first argument."""
of_every_account = _reads("", lambda _: None)
"""A read of every account's data."""
