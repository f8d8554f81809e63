"""Users: CreateUser, DeleteUser, ListUsers, AssociateFaces, DisassociateFaces."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from facesearch.errors import RekognitionError, not_found
from facesearch.service.context import Context
from facesearch.service.registry import operation, page_size
from facesearch.service.scoring import similarity
from facesearch.store import CollectionRecord, IdempotencyRecord, UserRecord

LIST_USERS_PAGE = 100
MAX_FACES_PER_USER = 100
# AssociateFaces' default bar for a face joining a user that already has faces.
ASSOCIATE_THRESHOLD = 75.0


def idempotent(
    ctx: Context, params: dict[str, Any], compute: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """Run ``compute`` once per ClientRequestToken: a repeat gets the first answer back.

    The same token with other arguments is IdempotentParameterMismatchException.
    """
    token = params.get("ClientRequestToken")
    if token is None:
        return compute()
    arguments = {k: v for k, v in params.items() if k != "ClientRequestToken"}
    request_hash = hashlib.sha256(json.dumps(arguments, sort_keys=True).encode()).hexdigest()
    with ctx.state.write_lock:
        seen = ctx.store.get_idempotency(ctx.account_id, ctx.operation, token)
        if seen is not None:
            if seen.request_hash != request_hash:
                raise RekognitionError(
                    "IdempotentParameterMismatchException",
                    f"The ClientRequestToken: {token} you have supplied is already in use.",
                )
            return seen.response
        response = compute()
        record = IdempotencyRecord(request_hash, response)
        ctx.store.put_idempotency(ctx.account_id, ctx.operation, token, record)
        return response


def user_status(user: UserRecord) -> str:
    """CREATED until a face is associated, then ACTIVE (associations here are synchronous)."""
    return "ACTIVE" if user.face_count else "CREATED"


def get_user(ctx: Context, collection: CollectionRecord, user_id: str) -> UserRecord:
    user = ctx.store.get_user(collection, user_id)
    if user is None:
        raise not_found(
            f"The user id: {user_id} does not exist in collection {collection.collection_id}"
        )
    return user


@operation("CreateUser")
def create_user(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        with ctx.state.write_lock:
            collection = ctx.collection(params["CollectionId"])
            if not ctx.store.create_users(collection, [params["UserId"]]):
                raise RekognitionError(
                    "ConflictException",
                    f"A User with the same Id: {params['UserId']} already exists within the "
                    "collection.",
                )
        return {}

    return idempotent(ctx, params, compute)


@operation("DeleteUser")
def delete_user(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        with ctx.state.write_lock:
            collection = ctx.collection(params["CollectionId"])
            user = get_user(ctx, collection, params["UserId"])
            index = ctx.state.index(collection)
            ctx.store.delete_user(collection, user.user_id)
            index.set_user(index.face_ids_of(user.user_id), None)
        return {}

    return idempotent(ctx, params, compute)


@operation("ListUsers")
def list_users(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    collection = ctx.collection(params["CollectionId"])
    scope = f"{ctx.account_id}|ListUsers|{collection.key}"
    after = ctx.state.tokens.decode(scope, params["NextToken"]) if "NextToken" in params else 0
    limit = page_size(params, LIST_USERS_PAGE)
    users = ctx.store.list_users(collection, after, limit + 1)
    page = users[:limit]
    response: dict[str, Any] = {
        "Users": [{"UserId": u.user_id, "UserStatus": user_status(u)} for u in page]
    }
    if len(users) > limit:
        response["NextToken"] = ctx.state.tokens.encode(scope, page[-1].seq)
    return response


@operation("AssociateFaces")
def associate_faces(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        with ctx.state.write_lock:
            collection = ctx.collection(params["CollectionId"])
            user = get_user(ctx, collection, params["UserId"])
            face_ids = list(dict.fromkeys(params["FaceIds"]))
            found = ctx.store.get_faces(collection, face_ids)
            index = ctx.state.index(collection)
            user_vectors = index.user_vectors(user.user_id)
            threshold = params.get("UserMatchThreshold", ASSOCIATE_THRESHOLD)
            accepted: list[str] = []
            failures: list[dict[str, Any]] = []
            for face_id in face_ids:
                record = found.get(face_id)
                if record is None:
                    failures.append(
                        {"FaceId": face_id, "UserId": user.user_id, "Reasons": ["FACE_NOT_FOUND"]}
                    )
                elif record.user_id == user.user_id:
                    continue  # already this user's: neither list, as Rekognition does
                elif record.user_id is not None:
                    failures.append(
                        {
                            "FaceId": face_id,
                            "UserId": record.user_id,
                            "Reasons": ["ASSOCIATED_TO_A_DIFFERENT_USER"],
                        }
                    )
                elif len(user_vectors):
                    # The bar applies once the user has a face: match against its best face.
                    score = similarity(float((user_vectors @ record.embedding).max()))
                    if score < threshold:
                        failures.append(
                            {
                                "FaceId": face_id,
                                "UserId": user.user_id,
                                "Confidence": score,
                                "Reasons": ["LOW_MATCH_CONFIDENCE"],
                            }
                        )
                    else:
                        accepted.append(face_id)
                else:
                    accepted.append(face_id)
            if user.face_count + len(accepted) > MAX_FACES_PER_USER:
                raise RekognitionError(
                    "ServiceQuotaExceededException",
                    f"A user can have at most {MAX_FACES_PER_USER} faces; user {user.user_id} "
                    f"has {user.face_count}.",
                )
            ctx.store.set_face_user(collection, accepted, user.user_id)
            index.set_user(accepted, user.user_id)
            now = UserRecord(user.user_id, user.face_count + len(accepted))
            return {
                "AssociatedFaces": [{"FaceId": f} for f in accepted],
                "UnsuccessfulFaceAssociations": failures,
                "UserStatus": user_status(now),
            }

    return idempotent(ctx, params, compute)


@operation("DisassociateFaces")
def disassociate_faces(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        with ctx.state.write_lock:
            collection = ctx.collection(params["CollectionId"])
            user = get_user(ctx, collection, params["UserId"])
            face_ids = list(dict.fromkeys(params["FaceIds"]))
            found = ctx.store.get_faces(collection, face_ids)
            done: list[str] = []
            failures: list[dict[str, Any]] = []
            for face_id in face_ids:
                record = found.get(face_id)
                if record is None:
                    failures.append(
                        {"FaceId": face_id, "UserId": user.user_id, "Reasons": ["FACE_NOT_FOUND"]}
                    )
                elif record.user_id not in (None, user.user_id):
                    failures.append(
                        {
                            "FaceId": face_id,
                            "UserId": record.user_id,
                            "Reasons": ["ASSOCIATED_TO_A_DIFFERENT_USER"],
                        }
                    )
                else:
                    # A face of no user counts as disassociated, so a retried call succeeds.
                    done.append(face_id)
            index = ctx.state.index(collection)
            ctx.store.set_face_user(collection, done, None)
            index.set_user(done, None)
            remaining = user.face_count - sum(1 for f in done if found[f].user_id == user.user_id)
            return {
                "DisassociatedFaces": [{"FaceId": f} for f in done],
                "UnsuccessfulFaceDisassociations": failures,
                "UserStatus": user_status(UserRecord(user.user_id, remaining)),
            }

    return idempotent(ctx, params, compute)
