"""The real service behind the server, driven by boto3 and the aws CLI, checked against the library.

Every answer that comes over HTTP is compared with what ``RekognitionService.call`` returns for the
same request on the same state (reads) or on a twin collection (writes, ids aside).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore import xform_name

from facesearch.server.app import App
from facesearch.server.auth import Verifier
from facesearch.service import RekognitionService

from .conftest import ALICE, BOB, rekognition, serve

pytestmark = pytest.mark.slow

AWS_CLI = Path(sys.executable).with_name("aws")


@dataclass
class Live:
    url: str
    service: Any

    def library(self, operation: str, region: str = "us-east-1", **params: Any) -> dict[str, Any]:
        """The library's answer for Alice in ``region``, normalized like an HTTP answer."""
        return normalize(
            self.service.call(operation, params, account_id=ALICE.account_id, region=region)
        )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    service = RekognitionService(tmp_path_factory.mktemp("server-data"))
    app = App(service, Verifier({key.access_key_id: key for key in (ALICE, BOB)}), threads=2)
    with serve(app) as url:
        yield Live(url, service)


def normalize(value: Any) -> Any:
    """Drop ResponseMetadata; timestamps to the millisecond, as the wire carries them."""
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [normalize(item) for item in value]
    if isinstance(value, dt.datetime):
        return round(value.timestamp(), 3)
    return value


def without_ids(value: Any) -> Any:
    """A write's answer with the ids it minted (faces, images, ARNs) left out."""
    if isinstance(value, dict):
        return {
            k: without_ids(v)
            for k, v in value.items()
            if k not in ("FaceId", "ImageId", "CollectionArn", "ResponseMetadata")
        }
    if isinstance(value, list):
        return [without_ids(item) for item in value]
    return value


def test_every_operation_through_boto3_matches_the_library(live: Live, photos: Path) -> None:
    client = rekognition(live.url)
    obama = [(photos / f"people/barack_obama/{n}.jpg").read_bytes() for n in (1, 2, 3)]
    biden = (photos / "people/joe_biden/1.jpg").read_bytes()
    group = (photos / "group/face_recognition_two_people.jpg").read_bytes()

    def both(operation: str, twin: dict[str, Any], **params: Any) -> dict[str, Any]:
        """A write over HTTP on "e2e" and through the library on "twin"; answers must agree."""
        method = getattr(client, xform_name(operation))
        answer = method(**params)
        assert without_ids(normalize(answer)) == without_ids(live.library(operation, **twin))
        return answer

    both("CreateCollection", {"CollectionId": "twin"}, CollectionId="e2e")
    face_ids = {}
    for name, image in (("obama1", obama[0]), ("obama2", obama[1]), ("biden1", biden)):
        params = {"Image": {"Bytes": image}, "ExternalImageId": name, "MaxFaces": 1}
        indexed = both(
            "IndexFaces", {"CollectionId": "twin", **params}, CollectionId="e2e", **params
        )
        face_ids[name] = indexed["FaceRecords"][0]["Face"]["FaceId"]

    def same(operation: str, **params: Any) -> dict[str, Any]:
        """A read over HTTP equals the library's answer on the same state."""
        answer = normalize(getattr(client, xform_name(operation))(**params))
        assert answer == live.library(operation, **params)
        return answer

    arn = same("DescribeCollection", CollectionId="e2e")["CollectionARN"]
    assert same("ListCollections")["CollectionIds"] == ["e2e", "twin"]
    page = same("ListFaces", CollectionId="e2e", MaxResults=2)
    same("ListFaces", CollectionId="e2e", NextToken=page["NextToken"])

    client.create_user(CollectionId="e2e", UserId="obama")
    client.create_user(CollectionId="e2e", UserId="biden")
    associated = client.associate_faces(
        CollectionId="e2e", UserId="obama", FaceIds=[face_ids["obama1"], face_ids["obama2"]]
    )
    assert {face["FaceId"] for face in associated["AssociatedFaces"]} == {
        face_ids["obama1"],
        face_ids["obama2"],
    }
    client.associate_faces(CollectionId="e2e", UserId="biden", FaceIds=[face_ids["biden1"]])
    same("ListUsers", CollectionId="e2e")

    same("SearchFaces", CollectionId="e2e", FaceId=face_ids["obama1"])
    same("SearchFacesByImage", CollectionId="e2e", Image={"Bytes": obama[2]})
    same("SearchUsers", CollectionId="e2e", UserId="obama")
    same("SearchUsers", CollectionId="e2e", FaceId=face_ids["biden1"])
    found = same("SearchUsersByImage", CollectionId="e2e", Image={"Bytes": obama[2]})
    assert found["UserMatches"][0]["User"]["UserId"] == "obama"
    same("DetectFaces", Image={"Bytes": group}, Attributes=["ALL"])
    same("CompareFaces", SourceImage={"Bytes": obama[0]}, TargetImage={"Bytes": group})

    client.tag_resource(ResourceArn=arn, Tags={"team": "e2e", "keep": "no"})
    client.untag_resource(ResourceArn=arn, TagKeys=["keep"])
    assert same("ListTagsForResource", ResourceArn=arn)["Tags"] == {"team": "e2e"}

    disassociated = client.disassociate_faces(
        CollectionId="e2e", UserId="obama", FaceIds=[face_ids["obama2"]]
    )
    assert [face["FaceId"] for face in disassociated["DisassociatedFaces"]] == [face_ids["obama2"]]
    client.delete_user(CollectionId="e2e", UserId="biden")
    same("ListUsers", CollectionId="e2e")
    deleted = client.delete_faces(CollectionId="e2e", FaceIds=[face_ids["biden1"]])
    assert deleted["DeletedFaces"] == [face_ids["biden1"]]
    same("DescribeCollection", CollectionId="e2e")

    # Another account sees none of it.
    bob = rekognition(live.url, BOB)
    assert bob.list_collections()["CollectionIds"] == []
    with pytest.raises(bob.exceptions.ResourceNotFoundException):
        bob.search_users_by_image(CollectionId="e2e", Image={"Bytes": obama[2]})

    both("DeleteCollection", {"CollectionId": "twin"}, CollectionId="e2e")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_collection(CollectionId="e2e")


def test_image_errors_match_the_library(live: Live, photos: Path) -> None:
    client = rekognition(live.url)
    for path in ("invalid/truncated_jpeg.jpg", "noface/scikit_image_brick.png"):
        params = {"Image": {"Bytes": (photos / path).read_bytes()}}
        try:
            expected: Any = live.library("DetectFaces", **params)
        except Exception as error:  # a RekognitionError: the server must answer with its code
            with pytest.raises(getattr(client.exceptions, error.code)):  # type: ignore[attr-defined]
                client.detect_faces(**params)
        else:
            assert normalize(client.detect_faces(**params)) == expected


AWS_CLI_REGION = "eu-west-1"


def aws(live: Live, home: Path, *args: str, secret: str = ALICE.secret_access_key):
    """Run the real ``aws`` CLI against the server, with an isolated HOME."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": ALICE.access_key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": AWS_CLI_REGION,
        "AWS_MAX_ATTEMPTS": "1",
    }
    return subprocess.run(
        [str(AWS_CLI), "rekognition", *args, "--endpoint-url", live.url, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_aws_cli_search_users_by_image_matches_the_library(
    live: Live, photos: Path, tmp_path: Path
) -> None:
    if not AWS_CLI.exists():
        pytest.skip("aws CLI not installed in the venv")
    enrolled = photos / "people/barack_obama/1.jpg"
    probe = photos / "people/barack_obama/3.jpg"

    def ok(*args: str) -> dict[str, Any]:
        result = aws(live, tmp_path, *args)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout) if result.stdout.strip() else {}

    ok("create-collection", "--collection-id", "cli")
    indexed = ok(
        "index-faces", "--collection-id", "cli", "--image-bytes", f"fileb://{enrolled}",
        "--external-image-id", "obama1", "--max-faces", "1",
    )  # fmt: skip
    face_id = indexed["FaceRecords"][0]["Face"]["FaceId"]
    ok("create-user", "--collection-id", "cli", "--user-id", "obama")
    ok("associate-faces", "--collection-id", "cli", "--user-id", "obama", "--face-ids", face_id)
    found = ok(
        "search-users-by-image", "--collection-id", "cli", "--image-bytes", f"fileb://{probe}"
    )
    expected = live.library(
        "SearchUsersByImage",
        AWS_CLI_REGION,
        CollectionId="cli",
        Image={"Bytes": probe.read_bytes()},
    )
    assert found == json.loads(json.dumps(expected))
    assert found["UserMatches"][0]["User"]["UserId"] == "obama"

    missing = aws(live, tmp_path, "describe-collection", "--collection-id", "nope")
    assert missing.returncode != 0 and "ResourceNotFoundException" in missing.stderr
    forged = aws(live, tmp_path, "list-collections", secret="wrong")
    assert forged.returncode != 0 and "InvalidSignatureException" in forged.stderr
    ok("delete-collection", "--collection-id", "cli")


def test_collection_arns_carry_the_signed_region(live: Live) -> None:
    ireland = rekognition(live.url, ALICE, region="eu-west-1")
    arn = ireland.create_collection(CollectionId="dublin")["CollectionArn"]
    assert arn == f"arn:aws:rekognition:eu-west-1:{ALICE.account_id}:collection/dublin"
    assert ireland.describe_collection(CollectionId="dublin")["CollectionARN"] == arn
    assert ireland.list_tags_for_resource(ResourceArn=arn)["Tags"] == {}
    # As on AWS, the signature's region picks the collections: another region has its own.
    tokyo = rekognition(live.url, ALICE, region="ap-northeast-1")
    assert tokyo.list_collections()["CollectionIds"] == []
    with pytest.raises(tokyo.exceptions.ResourceNotFoundException):
        tokyo.describe_collection(CollectionId="dublin")
    with pytest.raises(tokyo.exceptions.ResourceNotFoundException):
        tokyo.tag_resource(ResourceArn=arn, Tags={"k": "v"})
    tokyo.create_collection(CollectionId="dublin")  # same id, other region: another collection
    tokyo.delete_collection(CollectionId="dublin")
    assert ireland.list_collections()["CollectionIds"] == ["dublin"]
    ireland.delete_collection(CollectionId="dublin")
