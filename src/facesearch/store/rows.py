"""How each record is read: the columns a SELECT lists and the function that turns one row of
them into the record, side by side, so that a column is added or moved in one place.

Rows are plain tuples from either driver (no row factory: the change feed's pages and the
re-ranking reads are hot paths); each mapping unpacks a row by name, so a SELECT that lists a
column more or less fails at once rather than shifting every field after it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from facesearch.store.base import CollectionRecord, FaceRecord, IdempotencyRecord, UserRecord

# What list_faces returns for a face's vector: lists never read them.
NO_VECTOR = np.empty(0, np.float32)

COLLECTION_SELECT = (
    "SELECT c.key, c.account_id, c.region, c.collection_id, c.arn, c.face_model_version,"
    " c.created_at, c.version FROM collections c"
)


def collection_record(row: Sequence[Any]) -> CollectionRecord:
    """A row of ``COLLECTION_SELECT``."""
    key, account_id, region, collection_id, arn, face_model_version, created_at, version = row
    return CollectionRecord(
        key=key,
        account_id=account_id,
        region=region,
        collection_id=collection_id,
        arn=arn,
        face_model_version=face_model_version,
        created_at=dt.datetime.fromtimestamp(created_at, dt.UTC),
        version=version,
    )


# ``{embedding}``: how the store selects a vector column, or NULL for none.
FACE_COLUMNS = (
    "face_id, image_id, external_image_id, bounding_box, confidence, index_model_version,"
    " {embedding}, user_id, seq"
)


def face_record(row: Sequence[Any], embedding: Callable[[Any], np.ndarray]) -> FaceRecord:
    """A row of ``FACE_COLUMNS``; ``embedding`` reads its vector column."""
    (
        face_id,
        image_id,
        external_image_id,
        bounding_box,
        confidence,
        index_model_version,
        vector,
        user_id,
        seq,
    ) = row
    return FaceRecord(
        face_id=face_id,
        image_id=image_id,
        external_image_id=external_image_id,
        bounding_box=json.loads(bounding_box),
        confidence=confidence,
        index_model_version=index_model_version,
        embedding=NO_VECTOR if vector is None else embedding(vector),
        user_id=user_id,
        seq=seq,
    )


USER_SELECT = (
    "SELECT u.user_id, (SELECT COUNT(*) FROM faces f"
    " WHERE f.collection_key = u.collection_key AND f.user_id = u.user_id), u.seq FROM users u"
)


def user_record(row: Sequence[Any]) -> UserRecord:
    """A row of ``USER_SELECT``."""
    user_id, face_count, seq = row
    return UserRecord(user_id=user_id, face_count=face_count, seq=seq)


IDEMPOTENCY_SELECT = "SELECT request_hash, response FROM idempotency"


def idempotency_record(row: Sequence[Any]) -> IdempotencyRecord:
    """A row of ``IDEMPOTENCY_SELECT``."""
    request_hash, response = row
    return IdempotencyRecord(request_hash=request_hash, response=json.loads(response))
