"""Collections and their tags: Create/Delete/Describe/ListCollections, Tag/Untag/ListTags."""

from __future__ import annotations

from typing import Any

from facesearch.errors import RekognitionError, invalid_parameter, not_found
from facesearch.service.context import Context
from facesearch.service.registry import operation, paginate
from facesearch.store import CollectionRecord

# Rekognition documents no default page size; these are ours.
LIST_COLLECTIONS_PAGE = 1000
MAX_TAGS = 200


@operation("CreateCollection")
def create_collection(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    collection_id = params["CollectionId"]
    version = ctx.state.analyzer.face_model_version
    arn = ctx.collection_arn(collection_id)
    with ctx.write_lock():
        record = ctx.store.create_collection(
            ctx.account_id, ctx.region, collection_id, arn, version, params.get("Tags") or {}
        )
    if record is None:
        raise RekognitionError(
            "ResourceAlreadyExistsException", f"The collection id: {collection_id} already exists."
        )
    return {"StatusCode": 200, "CollectionArn": arn, "FaceModelVersion": version}


@operation("DeleteCollection")
def delete_collection(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    with ctx.write_lock():
        collection = ctx.collection(params["CollectionId"])
        ctx.store.delete_collection(ctx.account_id, ctx.region, collection.collection_id)
        ctx.state.indexes.drop(collection)
    return {"StatusCode": 200}


@operation("DescribeCollection")
def describe_collection(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    collection = ctx.collection(params["CollectionId"])
    faces, users = ctx.store.count(collection)
    return {
        "FaceCount": faces,
        "FaceModelVersion": collection.face_model_version,
        "CollectionARN": collection.arn,
        "CreationTimestamp": collection.created_at,
        "UserCount": users,
    }


@operation("ListCollections")
def list_collections(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    page, token = paginate(
        ctx,
        params,
        scope="",
        default_size=LIST_COLLECTIONS_PAGE,
        start=None,
        fetch=lambda after, limit: ctx.store.list_collections(
            ctx.account_id, ctx.region, after, limit
        ),
        position=lambda record: record.collection_id,
    )
    response: dict[str, Any] = {
        "CollectionIds": [c.collection_id for c in page],
        "FaceModelVersions": [c.face_model_version for c in page],
    }
    if token:
        response["NextToken"] = token
    return response


def _collection_of_arn(ctx: Context, arn: str) -> CollectionRecord:
    prefix, _, collection_id = arn.partition(":collection/")
    parts = prefix.split(":")
    if len(parts) != 5 or parts[:3] != ["arn", "aws", "rekognition"] or not collection_id:
        raise invalid_parameter(f"Invalid parameter ResourceArn: {arn} is not a collection ARN")
    if parts[3] != ctx.region or parts[4] != ctx.account_id:
        raise not_found(f"The resource {arn} does not exist")
    record = ctx.store.get_collection(ctx.account_id, ctx.region, collection_id)
    if record is None or record.arn != arn:
        raise not_found(f"The resource {arn} does not exist")
    return record


@operation("TagResource")
def tag_resource(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    with ctx.write_lock():
        collection = _collection_of_arn(ctx, params["ResourceArn"])
        tags = params["Tags"]
        if len(ctx.store.get_tags(collection) | tags) > MAX_TAGS:
            raise RekognitionError(
                "ServiceQuotaExceededException", f"A resource can have at most {MAX_TAGS} tags."
            )
        ctx.store.update_tags(collection, tags, ())
    return {}


@operation("UntagResource")
def untag_resource(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    with ctx.write_lock():
        collection = _collection_of_arn(ctx, params["ResourceArn"])
        ctx.store.update_tags(collection, {}, params["TagKeys"])
    return {}


@operation("ListTagsForResource")
def list_tags_for_resource(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    collection = _collection_of_arn(ctx, params["ResourceArn"])
    return {"Tags": ctx.store.get_tags(collection)}
