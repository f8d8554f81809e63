"""Users: CreateUser, DeleteUser, ListUsers, AssociateFaces, DisassociateFaces."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from facesearch.errors import RekognitionError, not_found
from facesearch.service.context import Context
from facesearch.service.registry import Handler, operation, paginate
from facesearch.service.scoring import collection_model, similarity, user_cosines
from facesearch.store import CollectionRecord, FaceRecord, IdempotencyRecord, UserRecord

LIST_USERS_PAGE = 100
MAX_FACES_PER_USER = 100
# AssociateFaces' default bar for a face joining a user that already has faces.
ASSOCIATE_THRESHOLD = 75.0


def idempotent(handler: Handler) -> Handler:
    """Run a ClientRequestToken operation once per token: a repeat gets the first answer back.

    The same token with other arguments is IdempotentParameterMismatchException. The handler runs
    under the write lock, so two calls with one token cannot both run it.
    """

    @functools.wraps(handler)
    def run(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        token = params.get("ClientRequestToken")
        arguments = {k: v for k, v in params.items() if k != "ClientRequestToken"}
        request_hash = hashlib.sha256(json.dumps(arguments, sort_keys=True).encode()).hexdigest()
        with ctx.write_lock():
            if token is None:
                return handler(ctx, params)
            seen = ctx.store.get_idempotency(ctx.account_id, ctx.region, ctx.operation, token)
            if seen is not None:
                if seen.request_hash != request_hash:
                    raise RekognitionError(
                        "IdempotentParameterMismatchException",
                        f"The ClientRequestToken: {token} you have supplied is already in use.",
                    )
                return seen.response
            response = handler(ctx, params)
            record = IdempotencyRecord(request_hash, response)
            ctx.store.put_idempotency(ctx.account_id, ctx.region, ctx.operation, token, record)
            return response

    return run


def user_status(face_count: int) -> str:
    """CREATED until a face is associated, then ACTIVE (associations here are synchronous)."""
    return "ACTIVE" if face_count else "CREATED"


def user_vectors(ctx: Context, collection: CollectionRecord, user_id: str) -> np.ndarray:
    """The stored vectors of a user's faces, (k, d)."""
    faces = ctx.store.list_faces(collection, 0, MAX_FACES_PER_USER, user_id=user_id)
    vectors = ctx.store.embeddings(collection, [face.seq for face in faces])
    if not vectors:
        return np.empty((0, 0), np.float32)
    return np.stack(list(vectors.values()))


def get_user(ctx: Context, collection: CollectionRecord, user_id: str) -> UserRecord:
    user = ctx.store.get_user(collection, user_id)
    if user is None:
        raise not_found(
            f"The user id: {user_id} does not exist in collection {collection.collection_id}"
        )
    return user


@operation("CreateUser")
@idempotent
def create_user(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    collection = ctx.collection(params["CollectionId"])
    if not ctx.store.create_users(collection, [params["UserId"]]):
        raise RekognitionError(
            "ConflictException",
            f"A User with the same Id: {params['UserId']} already exists within the collection.",
        )
    return {}


@operation("DeleteUser")
@idempotent
def delete_user(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    collection = ctx.collection(params["CollectionId"])
    user = get_user(ctx, collection, params["UserId"])
    ctx.store.delete_user(collection, user.user_id)
    return {}


@operation("ListUsers")
def list_users(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    collection = ctx.collection(params["CollectionId"])
    page, token = paginate(
        ctx,
        params,
        scope=str(collection.key),
        default_size=LIST_USERS_PAGE,
        start=0,
        fetch=lambda after, limit: ctx.store.list_users(collection, after, limit),
        position=lambda user: user.seq,
    )
    response: dict[str, Any] = {
        "Users": [{"UserId": u.user_id, "UserStatus": user_status(u.face_count)} for u in page]
    }
    if token:
        response["NextToken"] = token
    return response


@dataclass
class _Change:
    """The faces an (Dis)AssociateFaces call names, sorted out: the ones that may change, the
    reasons for the others."""

    collection: CollectionRecord
    user: UserRecord
    candidates: list[FaceRecord]
    failures: list[dict[str, Any]]

    def fail(self, face_id: str, reason: str, user_id: str | None = None, **extra: Any) -> None:
        self.failures.append(
            {
                "FaceId": face_id,
                "UserId": user_id or self.user.user_id,
                **extra,
                "Reasons": [reason],
            }
        )


def _sort_out(ctx: Context, params: dict[str, Any]) -> _Change:
    """Find the collection, the user and the named faces; unknown faces and faces of another
    user fail, faces of no user or of this user are candidates."""
    collection = ctx.collection(params["CollectionId"])
    user = get_user(ctx, collection, params["UserId"])
    face_ids = list(dict.fromkeys(params["FaceIds"]))
    found = ctx.store.get_faces(collection, face_ids)
    change = _Change(collection, user, [], [])
    for face_id in face_ids:
        record = found.get(face_id)
        if record is None:
            change.fail(face_id, "FACE_NOT_FOUND")
        elif record.user_id not in (None, user.user_id):
            change.fail(face_id, "ASSOCIATED_TO_A_DIFFERENT_USER", record.user_id)
        else:
            change.candidates.append(record)
    return change


@operation("AssociateFaces")
@idempotent
def associate_faces(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    change = _sort_out(ctx, params)
    user = change.user
    model = collection_model(change.collection)
    threshold = params.get("UserMatchThreshold", ASSOCIATE_THRESHOLD)
    # Already this user's: in neither list, as Rekognition does.
    joining = [record for record in change.candidates if record.user_id != user.user_id]
    # The bar applies once the user has a face (the face's score against the user): only then
    # are its vectors read.
    scored = user.face_count > 0 and bool(joining)
    vectors = user_vectors(ctx, change.collection, user.user_id) if scored else None
    accepted: list[str] = []
    for record in joining:
        if vectors is not None and len(vectors):
            score = similarity(float(user_cosines(record.embedding[None], [vectors])[0]), model)
            if score < threshold:
                change.fail(record.face_id, "LOW_MATCH_CONFIDENCE", Confidence=score)
                continue
        accepted.append(record.face_id)
    if user.face_count + len(accepted) > MAX_FACES_PER_USER:
        raise RekognitionError(
            "ServiceQuotaExceededException",
            f"A user can have at most {MAX_FACES_PER_USER} faces; user {user.user_id} "
            f"has {user.face_count}.",
        )
    ctx.store.set_face_user(change.collection, accepted, user.user_id)
    return {
        "AssociatedFaces": [{"FaceId": f} for f in accepted],
        "UnsuccessfulFaceAssociations": change.failures,
        "UserStatus": user_status(user.face_count + len(accepted)),
    }


@operation("DisassociateFaces")
@idempotent
def disassociate_faces(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    change = _sort_out(ctx, params)
    # A face of no user counts as disassociated too, so a retried call succeeds.
    done = [record.face_id for record in change.candidates]
    removed = sum(record.user_id is not None for record in change.candidates)
    ctx.store.set_face_user(change.collection, done, None)
    return {
        "DisassociatedFaces": [{"FaceId": f} for f in done],
        "UnsuccessfulFaceDisassociations": change.failures,
        "UserStatus": user_status(change.user.face_count - removed),
    }
