"""Collections and tags through the library API."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from botocore.exceptions import ClientError, InvalidRegionError, ParamValidationError

from facesearch import contract


def code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return excinfo.value.response["Error"]["Code"]


def test_create_describe_list_delete(client) -> None:
    created = client.create_collection(CollectionId="staff")
    assert created["StatusCode"] == 200
    assert created["CollectionArn"].endswith(":collection/staff")
    assert created["CollectionArn"].startswith("arn:aws:rekognition:")
    described = client.describe_collection(CollectionId="staff")
    assert described["FaceCount"] == 0 and described["UserCount"] == 0
    assert described["FaceModelVersion"] == created["FaceModelVersion"]
    assert described["CollectionARN"] == created["CollectionArn"]
    assert isinstance(described["CreationTimestamp"], dt.datetime)
    listed = client.list_collections()
    assert listed["CollectionIds"] == ["staff"]
    assert listed["FaceModelVersions"] == [created["FaceModelVersion"]]
    assert client.delete_collection(CollectionId="staff")["StatusCode"] == 200
    assert client.list_collections()["CollectionIds"] == []


def test_collection_errors(client) -> None:
    client.create_collection(CollectionId="staff")
    with pytest.raises(client.exceptions.ResourceAlreadyExistsException):
        client.create_collection(CollectionId="staff")
    for call in (client.describe_collection, client.delete_collection, client.list_faces):
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            call(CollectionId="nobody")
    # Case-sensitive ids.
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_collection(CollectionId="Staff")


@pytest.mark.parametrize(
    "collection_id", ["has space", "slash/no", "x" * 256, "é"], ids=["space", "slash", "long", "é"]
)
def test_collection_id_constraints_are_enforced_server_side(client, collection_id: str) -> None:
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.create_collection(CollectionId=collection_id)


def test_client_side_validation_is_botocore_s(client) -> None:
    with pytest.raises(ParamValidationError):
        client.create_collection(CollectionId="")
    with pytest.raises(ParamValidationError):
        client.create_collection()


def test_pagination_and_tokens(client) -> None:
    ids = [f"c{i:02d}" for i in range(7)]
    for collection_id in ids:
        client.create_collection(CollectionId=collection_id)
    first = client.list_collections(MaxResults=3)
    assert first["CollectionIds"] == ids[:3] and "NextToken" in first
    pages = client.get_paginator("list_collections").paginate(PaginationConfig={"PageSize": 3})
    assert [c for page in pages for c in page["CollectionIds"]] == ids
    with pytest.raises(client.exceptions.InvalidPaginationTokenException):
        client.list_collections(NextToken="forged-token")
    token = first["NextToken"]
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(client.exceptions.InvalidPaginationTokenException):
        client.list_collections(NextToken=tampered)
    # A token of one operation is not accepted by another.
    client.create_user(CollectionId="c00", UserId="a")
    client.create_user(CollectionId="c00", UserId="b")
    users_token = client.list_users(CollectionId="c00", MaxResults=1)["NextToken"]
    with pytest.raises(client.exceptions.InvalidPaginationTokenException):
        client.list_collections(NextToken=users_token)


def test_stale_token_after_collection_recreated(client) -> None:
    client.create_collection(CollectionId="c")
    for user in "abc":
        client.create_user(CollectionId="c", UserId=user)
    token = client.list_users(CollectionId="c", MaxResults=1)["NextToken"]
    client.delete_collection(CollectionId="c")
    client.create_collection(CollectionId="c")
    with pytest.raises(client.exceptions.InvalidPaginationTokenException):
        client.list_users(CollectionId="c", NextToken=token)


def test_tags(client) -> None:
    arn = client.create_collection(CollectionId="staff", Tags={"team": "door"})["CollectionArn"]
    assert client.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"team": "door"}
    client.tag_resource(ResourceArn=arn, Tags={"site": "north", "team": "gate"})
    assert client.list_tags_for_resource(ResourceArn=arn)["Tags"] == {
        "site": "north",
        "team": "gate",
    }
    client.untag_resource(ResourceArn=arn, TagKeys=["team"])
    assert client.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"site": "north"}
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.tag_resource(ResourceArn=arn, Tags={"aws:reserved": "x"})
    with pytest.raises(client.exceptions.ServiceQuotaExceededException):
        client.tag_resource(ResourceArn=arn, Tags={f"k{i}": "v" for i in range(200)})
    missing = arn.replace("collection/staff", "collection/other")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.list_tags_for_resource(ResourceArn=missing)
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.list_tags_for_resource(ResourceArn="arn:aws:s3:::bucket-name-xx")


def test_accounts_are_isolated(tmp_path) -> None:
    from facesearch.inprocess import InProcessClient
    from facesearch.service import RekognitionService

    service = RekognitionService(tmp_path)
    alice = InProcessClient(service, account_id="111111111111")
    bob = InProcessClient(service, account_id="222222222222")
    arn = alice.create_collection(CollectionId="shared-name")["CollectionArn"]
    assert ":111111111111:" in arn
    assert bob.list_collections()["CollectionIds"] == []
    with pytest.raises(bob.exceptions.ResourceNotFoundException):
        bob.describe_collection(CollectionId="shared-name")
    with pytest.raises(bob.exceptions.ResourceNotFoundException):
        bob.list_tags_for_resource(ResourceArn=arn)
    bob.create_collection(CollectionId="shared-name")  # same name, other account: allowed
    service.close()


def test_regions_are_isolated(tmp_path, store: str | None) -> None:
    from facesearch.inprocess import InProcessClient
    from facesearch.service import RekognitionService

    service = RekognitionService(tmp_path, store=store)
    ireland = InProcessClient(service, region_name="eu-west-1")
    virginia = InProcessClient(service)  # the default region
    assert (ireland.meta.region_name, virginia.meta.region_name) == ("eu-west-1", "us-east-1")
    arn = ireland.create_collection(CollectionId="door")["CollectionArn"]
    assert arn.startswith("arn:aws:rekognition:eu-west-1:")
    assert ireland.describe_collection(CollectionId="door")["CollectionARN"] == arn
    assert virginia.list_collections()["CollectionIds"] == []
    with pytest.raises(virginia.exceptions.ResourceNotFoundException):
        virginia.describe_collection(CollectionId="door")
    with pytest.raises(virginia.exceptions.ResourceNotFoundException):
        virginia.list_tags_for_resource(ResourceArn=arn)  # another region's ARN
    # The same id in another region is another collection, with its own users and tokens.
    virginia.create_collection(CollectionId="door")
    token = "same-token-in-both-regions"
    for client in (ireland, virginia):
        client.create_user(CollectionId="door", UserId="ada", ClientRequestToken=token)
        assert [u["UserId"] for u in client.list_users(CollectionId="door")["Users"]] == ["ada"]
    virginia.delete_collection(CollectionId="door")
    assert ireland.list_collections()["CollectionIds"] == ["door"]
    with pytest.raises(InvalidRegionError):
        InProcessClient(service, region_name="not a region")
    service.close()


def test_data_survives_reopen(tmp_path) -> None:
    import facesearch

    first = facesearch.client(data_dir=tmp_path)
    first.create_collection(CollectionId="kept", Tags={"a": "b"})
    first.create_user(CollectionId="kept", UserId="u")
    first.close()
    second = facesearch.client(data_dir=tmp_path)
    assert second.list_collections()["CollectionIds"] == ["kept"]
    assert second.list_users(CollectionId="kept")["Users"] == [
        {"UserId": "u", "UserStatus": "CREATED"}
    ]
    second.close()


def test_several_clients_share_a_data_directory(tmp_path, monkeypatch, photo) -> None:
    """Two stores open on one data directory (as two processes would): each sees the other's
    writes at once, and a writer waits its turn, then gives up with ThrottlingException."""
    import facesearch
    from facesearch.store import sqlite

    first = facesearch.client(data_dir=tmp_path)
    second = facesearch.client(data_dir=tmp_path)
    first.create_collection(CollectionId="shared")
    face = first.index_faces(
        CollectionId="shared", Image={"Bytes": photo("people/barack_obama/1.jpg")}
    )["FaceRecords"][0]["Face"]["FaceId"]
    probe = {"Bytes": photo("people/barack_obama/2.jpg")}
    matches = second.search_faces_by_image(CollectionId="shared", Image=probe)["FaceMatches"]
    assert [m["Face"]["FaceId"] for m in matches] == [face]
    second.delete_faces(CollectionId="shared", FaceIds=[face])
    assert first.search_faces_by_image(CollectionId="shared", Image=probe)["FaceMatches"] == []

    monkeypatch.setattr(sqlite, "WRITE_WAIT_S", 0.2)
    busy = pytest.raises(second.exceptions.ThrottlingException, match="busy")
    with first.service.state.store.write_lock("000000000000"), busy:
        second.create_collection(CollectionId="blocked")
    second.create_collection(CollectionId="after")
    assert first.list_collections()["CollectionIds"] == ["after", "shared"]
    first.close()
    second.close()


def test_the_client_has_boto3_s_meta_and_every_method(client) -> None:
    boto3_client = boto3.client(
        "rekognition", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    assert set(boto3_client.meta.method_to_api_mapping) <= set(dir(client))
    assert client.meta.region_name == "us-east-1"
    assert client.meta.service_model.service_name == "rekognition"
    assert client.meta.method_to_api_mapping["detect_labels"] == "DetectLabels"
    # What facesearch does not implement answers as the server does, naming what it does.
    with pytest.raises(ClientError) as excinfo:
        client.detect_labels(Image={"Bytes": b"not read"})
    assert code(excinfo) == "UnknownOperationException"
    message = excinfo.value.response["Error"]["Message"]
    # As the server's (tests/server/test_protocol.py), but naming the method called: it is trusted.
    assert message.startswith(
        "The operation DetectLabels is not supported. facesearch implements: "
    )
    assert all(name in message for name in contract.OPERATIONS)
    assert client.can_paginate("list_faces") and not client.can_paginate("detect_labels")
