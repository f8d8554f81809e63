"""The store interface: records and the operations the service needs, each one transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from facesearch.store.jobs import JobStore


@dataclass(frozen=True)
class CollectionRecord:
    """A collection of an account in a region (as in Rekognition, each region has its own
    collections). ``key`` is the store's internal id: a re-created collection gets a new one.

    ``version`` counts the changes to its faces (added, deleted, associated): every write that
    touches faces bumps it in the same transaction, so a search index that has caught up to a
    version has seen every acknowledged write up to it, whichever process made it.
    """

    key: int
    account_id: str
    region: str
    collection_id: str
    arn: str
    face_model_version: str
    created_at: dt.datetime
    version: int = 0


@dataclass(frozen=True)
class FaceRecord:
    """A stored face: metadata and embedding, never image pixels."""

    face_id: str
    image_id: str
    external_image_id: str | None
    bounding_box: dict[str, float]
    confidence: float
    index_model_version: str
    embedding: np.ndarray
    user_id: str | None = None
    seq: int = 0


@dataclass(frozen=True)
class UserRecord:
    user_id: str
    face_count: int
    seq: int = 0


@dataclass(frozen=True)
class FaceChanges:
    """The faces changed since a version, as they are now: what a search index applies to catch
    up. Changes since version 0 hold every face."""

    version: int  # the version the index reaches by applying these
    seqs: np.ndarray  # (k,) int64: faces added or (dis)associated, in seq order
    user_seqs: np.ndarray  # (k,) int64: the seq of each face's user (UserRecord.seq), -1 if none
    embeddings: np.ndarray  # (k, d) float32, unit-norm
    deleted: np.ndarray  # (m,) int64: seqs of faces deleted
    # The tombstones of versions up to here are pruned: an index older than this cannot learn
    # what was deleted from them and must load in full.
    pruned: int = 0


class StoreUnavailableError(RuntimeError):
    """The store cannot be reached (e.g. the database is down); the call may be retried."""


class StoreBusyError(StoreUnavailableError):
    """Another process held the store's write lock for longer than a writer waits."""


@dataclass(frozen=True)
class ReplicaStatus:
    """A read replica as this process sees it: whether it is used, how far behind the primary
    it is (None: not known now) and how many reads it answered."""

    where: str  # its URL without credentials
    up: bool
    lag_bytes: int | None  # WAL the primary has written that the replica has not replayed
    lag_seconds: float | None  # age of its last replayed commit, while it has WAL to replay
    reads: int


@dataclass(frozen=True)
class ReadReplicas:
    """Where this process's reads went: to each replica, or to the primary in their place
    (behind this process's own writes, or none up). Empty without replicas."""

    primary_reads: int = 0
    replicas: tuple[ReplicaStatus, ...] = ()


@dataclass(frozen=True)
class IdempotencyRecord:
    request_hash: str
    response: dict[str, Any]


class Store(JobStore, Protocol):
    """Persistent state of every account's collections and video jobs (store/jobs.py). Every
    method is atomic and thread-safe."""

    def close(self) -> None: ...

    def read_replicas(self) -> ReadReplicas:
        """The read replicas' state and the reads each answered (none for most stores)."""
        ...

    def write_lock(self, account_id: str) -> AbstractContextManager[None]:
        """Serialise an account's writes: held across the checks and the writes they guard, by
        every thread and every process that shares the store."""
        ...

    def secret(self) -> bytes:
        """A random key made once per store, used to sign pagination tokens (and, through keys
        derived from it, console sessions)."""
        ...

    def store_id(self) -> str:
        """A random id made once per store (not a secret): what a search index kept on local
        disk is checked against, so that one store's index is never taken for another's."""
        ...

    def record_index_progress(self, reader: str, versions: dict[int, int]) -> None:
        """Record that ``reader`` (one process) can catch up each collection (by key) from the
        version given: tombstones after it are kept for it (:meth:`prune_tombstones`)."""
        ...

    def prune_tombstones(self, max_age_s: float) -> int:
        """Forget readers not heard from for ``max_age_s``, then drop each collection's
        tombstones up to the oldest version its readers recorded (collections no reader
        recorded keep theirs), raising its ``pruned`` horizon; the number dropped."""
        ...

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
        """Create a collection; None if one with that id exists already."""
        ...

    def get_collection(
        self, account_id: str, region: str, collection_id: str
    ) -> CollectionRecord | None: ...

    def delete_collection(self, account_id: str, region: str, collection_id: str) -> bool: ...

    def list_collections(
        self, account_id: str, region: str, after: str | None, limit: int
    ) -> list[CollectionRecord]:
        """The account's collections in the region, ordered by id, those after ``after`` only."""
        ...

    def all_collections(self) -> list[CollectionRecord]:
        """Every collection of every account and region (to load their search indexes at start)."""
        ...

    def count(self, collection: CollectionRecord) -> tuple[int, int]:
        """The number of faces and of users in a collection."""
        ...

    def get_tags(self, collection: CollectionRecord) -> dict[str, str]: ...

    def update_tags(
        self, collection: CollectionRecord, add: dict[str, str], remove: Iterable[str]
    ) -> None: ...

    # Faces
    def add_faces(self, collection: CollectionRecord, faces: Sequence[FaceRecord]) -> None: ...

    def faces_of_image(
        self, collection: CollectionRecord, image_id: str, external_image_id: str
    ) -> list[FaceRecord]: ...

    def get_faces(
        self, collection: CollectionRecord, face_ids: Iterable[str]
    ) -> dict[str, FaceRecord]: ...

    def faces_by_seq(
        self, collection: CollectionRecord, seqs: Sequence[int]
    ) -> dict[int, FaceRecord]:
        """Faces by their seq (those still there)."""
        ...

    def list_faces(
        self,
        collection: CollectionRecord,
        after_seq: int,
        limit: int,
        user_id: str | None = None,
        face_ids: Sequence[str] | None = None,
    ) -> list[FaceRecord]:
        """Faces in indexing order (``seq``), those after ``after_seq`` only, without their
        vectors (``embedding`` is empty; :meth:`embeddings` reads them)."""
        ...

    def delete_faces(self, collection: CollectionRecord, face_ids: Sequence[str]) -> list[str]:
        """Delete faces that belong to no user; returns the ids deleted."""
        ...

    def face_changes(
        self,
        collection: CollectionRecord,
        after_version: int,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> FaceChanges:
        """What changed in the collection's faces after ``after_version``, read in one snapshot
        together with the version it reaches: the faces with their embeddings and users now
        (those after ``after_seq``, at most ``limit`` of them, in seq order), and the seqs
        deleted (with the first page, ``after_seq`` 0, only; none when ``after_version`` is 0:
        that reads every face)."""
        ...

    def embeddings(
        self, collection: CollectionRecord, seqs: Sequence[int]
    ) -> dict[int, np.ndarray]:
        """The stored vectors of faces by seq (those still there)."""
        ...

    def user_embeddings(
        self, collection: CollectionRecord, user_ids: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """The stored vectors of each user's faces, (k, d) per user id (users with faces only)."""
        ...

    def search_model(
        self, collection: CollectionRecord, model: bytes | None = None
    ) -> bytes | None:
        """The collection's trained search model; storing one keeps the first ever stored, so
        that every process searches with the same one."""
        ...

    # Users
    def create_users(self, collection: CollectionRecord, user_ids: Sequence[str]) -> list[str]:
        """Create users (one transaction); returns the ids that did not exist already."""
        ...

    def get_user(self, collection: CollectionRecord, user_id: str) -> UserRecord | None: ...

    def user_ids(self, collection: CollectionRecord, seqs: Sequence[int]) -> dict[int, str]:
        """UserIds by the users' seq (those still there)."""
        ...

    def delete_user(self, collection: CollectionRecord, user_id: str) -> bool:
        """Delete a user, disassociating its faces first; False if it did not exist."""
        ...

    def list_users(
        self, collection: CollectionRecord, after_seq: int, limit: int
    ) -> list[UserRecord]: ...

    def set_face_user(
        self, collection: CollectionRecord, face_ids: Sequence[str], user_id: str | None
    ) -> None:
        """Associate faces with a user (or disassociate them with None)."""
        ...

    # Idempotency of ClientRequestToken operations
    def get_idempotency(
        self, account_id: str, region: str, operation: str, token: str
    ) -> IdempotencyRecord | None: ...

    def put_idempotency(
        self,
        account_id: str,
        region: str,
        operation: str,
        token: str,
        record: IdempotencyRecord,
    ) -> None: ...

    # Signed-out console sessions
    def revoke_session(self, session_id: str, expires_at: float) -> None:
        """Remember a signed-out session until ``expires_at`` (Unix time), when its cookie
        lapses anyway; revocations already past theirs are forgotten."""
        ...

    def session_revoked(self, session_id: str) -> bool: ...
