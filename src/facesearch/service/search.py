"""Searching a collection: SearchFaces, SearchFacesByImage, SearchUsers, SearchUsersByImage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from facesearch.errors import invalid_parameter, not_found
from facesearch.service.context import Context
from facesearch.service.details import bounding_box, face_detail, quality_reasons, stored_face
from facesearch.service.faces import MAX_FACES_PER_IMAGE
from facesearch.service.registry import operation
from facesearch.service.scoring import collection_model, min_cosine, similarity, user_cosines
from facesearch.service.users import get_user, user_vectors
from facesearch.stages import stage
from facesearch.store import CollectionRecord

if TYPE_CHECKING:
    from facesearch.vision.face import Face

DEFAULT_THRESHOLD = 80.0
# Rekognition documents no default for MaxFaces/MaxUsers: the model's maxima, bounded by the
# threshold, so a default search misses nothing that matched.
DEFAULT_MAX_FACES = 4096
DEFAULT_MAX_USERS = 500
# A user whose best face falls this far (in cosine) below the bar is still scored in full: its
# mean face can lift the user's score (scoring.user_cosines) above the bar.
USER_CANDIDATE_MARGIN = 0.05


def face_matches(
    ctx: Context,
    collection: CollectionRecord,
    query: np.ndarray,
    params: dict[str, Any],
    exclude: int | None = None,
) -> list[dict[str, Any]]:
    """Faces matching ``query``, highest first, but the face whose seq is ``exclude``."""
    threshold = params.get("FaceMatchThreshold", DEFAULT_THRESHOLD)
    model = collection_model(collection)
    index = ctx.state.index(collection)
    with stage("search"):
        hits = index.search_faces(
            query, min_cosine(threshold, model), params.get("MaxFaces", DEFAULT_MAX_FACES), exclude
        )
    records = ctx.store.faces_by_seq(collection, [h.seq for h in hits])
    return [
        {"Similarity": similarity(h.cosine, model), "Face": stored_face(records[h.seq])}
        for h in hits
        if h.seq in records  # deleted between the search and this read
    ]


def _searched_collection(ctx: Context, collection_id: str) -> CollectionRecord:
    collection = ctx.collection(collection_id)
    collection_model(collection)  # a version this build knows, or a clear error
    return collection


@operation("SearchFaces")
def search_faces(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    collection = _searched_collection(ctx, params["CollectionId"])
    face_id = params["FaceId"]
    record = ctx.store.get_faces(collection, [face_id]).get(face_id)
    if record is None:
        raise not_found(f"The face id: {face_id} does not exist in the collection")
    return {
        "SearchedFaceId": face_id,
        "FaceMatches": face_matches(ctx, collection, record.embedding, params, record.seq),
        "FaceModelVersion": collection.face_model_version,
    }


def _largest_face(
    ctx: Context, collection: CollectionRecord, params: dict[str, Any], others: bool = True
) -> tuple[Face | None, list[Face]]:
    """The largest face of the request's image and (if ``others``) every other, largest first,
    analysed with the collection's face model (only the largest is embedded)."""
    faces = ctx.analyze(
        params["Image"],
        face_model=collection_model(collection),
        max_faces=None if others else 1,
    ).faces
    return (faces[0], faces[1:]) if faces else (None, [])


@operation("SearchFacesByImage")
def search_faces_by_image(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    collection = _searched_collection(ctx, params["CollectionId"])
    face, _ = _largest_face(ctx, collection, params, others=False)
    if face is None:
        raise invalid_parameter("There are no faces in the image. Should be at least 1.")
    reasons = quality_reasons(face, params.get("QualityFilter", "NONE"))
    if reasons:
        raise invalid_parameter(
            f"The largest face did not pass the quality filter ({', '.join(reasons)})."
        )
    return {
        "SearchedFaceBoundingBox": bounding_box(face.box),
        "SearchedFaceConfidence": face.confidence,
        "FaceMatches": face_matches(ctx, collection, face.embedding, params),
        "FaceModelVersion": collection.face_model_version,
    }


def _search_users(
    ctx: Context,
    collection: CollectionRecord,
    queries: np.ndarray,
    params: dict[str, Any],
    exclude: int | None = None,
) -> list[dict[str, Any]]:
    """Users matching any of ``queries`` (k, d), highest first, but the user whose seq is
    ``exclude``. The index finds the ``limit`` best candidates by their best face; each is then
    scored on all its faces (scoring.user_cosines). So where more than ``limit`` users pass, the
    last places come from the best-face ranking's top ``limit``, re-ranked."""
    threshold = params.get("UserMatchThreshold", DEFAULT_THRESHOLD)
    limit = params.get("MaxUsers", DEFAULT_MAX_USERS)
    model = collection_model(collection)
    bar = min_cosine(threshold, model)
    index = ctx.state.index(collection)
    candidates: set[int] = set()
    with stage("search"):
        for query in queries:
            hits = index.search_users(query, bar - USER_CANDIDATE_MARGIN, limit, exclude)
            candidates.update(hit.user_seq for hit in hits)
        names = ctx.store.user_ids(collection, sorted(candidates))  # deleted ones drop out here
        faces = ctx.store.user_embeddings(collection, list(names.values()))
        user_ids = list(faces)
        scores = user_cosines(queries, [faces[user_id] for user_id in user_ids])
    order = [i for i in np.argsort(-scores, kind="stable") if scores[i] >= bar][:limit]
    similarities = model.calibration.similarity(scores[order])
    # Only users with a face can match, so every match is ACTIVE.
    return [
        {"Similarity": float(s), "User": {"UserId": user_ids[i], "UserStatus": "ACTIVE"}}
        for i, s in zip(order, np.atleast_1d(similarities), strict=True)
    ]


@operation("SearchUsers")
def search_users(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    collection = _searched_collection(ctx, params["CollectionId"])
    face_id, user_id = params.get("FaceId"), params.get("UserId")
    if (face_id is None) == (user_id is None):
        raise invalid_parameter("Specify exactly one of FaceId and UserId.")
    response: dict[str, Any] = {"FaceModelVersion": collection.face_model_version}
    if face_id is not None:
        record = ctx.store.get_faces(collection, [face_id]).get(face_id)
        if record is None:
            raise not_found(f"The face id: {face_id} does not exist in the collection")
        response["UserMatches"] = _search_users(ctx, collection, record.embedding[None], params)
        response["SearchedFace"] = {"FaceId": face_id}
    else:
        user = get_user(ctx, collection, params["UserId"])
        vectors = user_vectors(ctx, collection, user.user_id)
        response["UserMatches"] = _search_users(ctx, collection, vectors, params, user.seq)
        response["SearchedUser"] = {"UserId": user.user_id}
    return response


@operation("SearchUsersByImage")
def search_users_by_image(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    collection = _searched_collection(ctx, params["CollectionId"])
    face, others = _largest_face(ctx, collection, params)
    quality_filter = params.get("QualityFilter", "NONE")
    response: dict[str, Any] = {
        "UserMatches": [],
        "FaceModelVersion": collection.face_model_version,
    }
    # Of the 100 largest faces (the searched one among them), the others are not the largest;
    # the faces past them are more than Rekognition looks at.
    unsearched = [
        {
            "FaceDetails": face_detail(other, None),
            "Reasons": [
                "FACE_NOT_LARGEST" if rank <= MAX_FACES_PER_IMAGE else "EXCEEDS_MAX_FACES",
                *quality_reasons(other, quality_filter),
            ],
        }
        for rank, other in enumerate(others, start=2)
    ]
    if face is not None:
        reasons = quality_reasons(face, quality_filter)
        if reasons:
            # The largest face is below the bar: nothing is searched, and it says why.
            unsearched.insert(0, {"FaceDetails": face_detail(face, None), "Reasons": reasons})
        else:
            response["UserMatches"] = _search_users(ctx, collection, face.embedding[None], params)
            response["SearchedFace"] = {"FaceDetail": face_detail(face, None)}
    response["UnsearchedFaces"] = unsearched
    return response
