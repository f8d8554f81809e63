"""Faces in a collection: IndexFaces, ListFaces, DeleteFaces."""

from __future__ import annotations

import uuid
from typing import Any

from facesearch.service.context import Context
from facesearch.service.details import (
    bounding_box,
    face_detail,
    quality_reasons,
    stored_face,
    wants_attributes,
)
from facesearch.service.registry import operation, paginate
from facesearch.service.scoring import collection_model
from facesearch.store import FaceRecord
from facesearch.vision.face import Face

LIST_FACES_PAGE = 1000
MAX_FACES_PER_IMAGE = 100


@operation("IndexFaces")
def index_faces(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    collection = ctx.collection(params["CollectionId"])
    model = collection_model(collection)
    attributes = params.get("DetectionAttributes")
    image = ctx.load_image(params["Image"])
    analysed = image.analyze(ctx.state.analyzer, wants_attributes(attributes), model)
    quality_filter = params.get("QualityFilter", "AUTO")
    max_faces = min(params.get("MaxFaces", MAX_FACES_PER_IMAGE), MAX_FACES_PER_IMAGE)

    # Faces come largest first: the quality bar drops faces first, then MaxFaces the smallest.
    accepted: list[Face] = []
    unindexed: list[dict[str, Any]] = []
    for face in analysed.faces:
        reasons = quality_reasons(face, quality_filter)
        if not reasons and len(accepted) >= max_faces:
            reasons = ["EXCEEDS_MAX_FACES"]
        if reasons:
            unindexed.append({"Reasons": reasons, "FaceDetail": face_detail(face, attributes)})
        else:
            accepted.append(face)

    external_id = params.get("ExternalImageId")
    image_id = image.image_id
    version = collection.face_model_version
    # The embedding network runs here, not under the write lock where other writers wait.
    vectors = [face.embedding for face in accepted]
    boxes = [bounding_box(face.box) for face in accepted]
    with ctx.write_lock():
        collection = ctx.collection(collection.collection_id)  # still there?
        existing = (
            ctx.store.faces_of_image(collection, image_id, external_id) if external_id else []
        )
        if existing:
            # Same image, collection and ExternalImageId: Rekognition saves no duplicate.
            records = existing
        else:
            records = [
                FaceRecord(
                    face_id=str(uuid.uuid4()),
                    image_id=image_id,
                    external_image_id=external_id,
                    bounding_box=box,
                    confidence=face.confidence,
                    index_model_version=version,
                    embedding=vector,
                )
                for face, vector, box in zip(accepted, vectors, boxes, strict=True)
            ]
            if records:
                ctx.store.add_faces(collection, records)
    details = {
        _box_key(box): face_detail(face, attributes)
        for face, box in zip(accepted, boxes, strict=True)
    }
    face_records = [
        {"Face": stored_face(r), "FaceDetail": details.get(_box_key(r.bounding_box), {})}
        for r in records
    ]
    response: dict[str, Any] = {
        "FaceRecords": face_records,
        "FaceModelVersion": version,
        "UnindexedFaces": unindexed,
    }
    return response


def _box_key(box: dict[str, float]) -> tuple[float, ...]:
    return tuple(round(box[k], 6) for k in ("Width", "Height", "Left", "Top"))


@operation("ListFaces")
def list_faces(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    collection = ctx.collection(params["CollectionId"])
    user_id, face_ids = params.get("UserId"), params.get("FaceIds")
    page, token = paginate(
        ctx,
        params,
        # A token is only good for the same collection and filters.
        scope=f"{collection.key}|{user_id}|{face_ids}",
        default_size=LIST_FACES_PAGE,
        start=0,
        fetch=lambda after, limit: ctx.store.list_faces(
            collection, after, limit, user_id, face_ids
        ),
        position=lambda record: record.seq,
    )
    response: dict[str, Any] = {
        "Faces": [stored_face(r, listing=True) for r in page],
        "FaceModelVersion": collection.face_model_version,
    }
    if token:
        response["NextToken"] = token
    return response


@operation("DeleteFaces")
def delete_faces(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    face_ids = list(dict.fromkeys(params["FaceIds"]))
    with ctx.write_lock():
        collection = ctx.collection(params["CollectionId"])
        found = ctx.store.get_faces(collection, face_ids)
        failures, deletable = [], []
        for face_id in face_ids:
            record = found.get(face_id)
            if record is None:
                failures.append({"FaceId": face_id, "Reasons": ["FACE_NOT_FOUND"]})
            elif record.user_id is not None:
                failures.append(
                    {
                        "FaceId": face_id,
                        "UserId": record.user_id,
                        "Reasons": ["ASSOCIATED_TO_AN_EXISTING_USER"],
                    }
                )
            else:
                deletable.append(face_id)
        deleted = ctx.store.delete_faces(collection, deletable)
    return {"DeletedFaces": deleted, "UnsuccessfulFaceDeletions": failures}
