"""Image.S3Object: the same answers as Image.Bytes, Rekognition's errors, no leaked S3 keys."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

import facesearch
from facesearch.errors import RekognitionError
from facesearch.service.s3 import S3ImageFetcher, S3Settings

from .conftest import (
    BUCKET,
    PHOTOS,
    S3_ACCESS_KEY_ID,
    S3_SECRET_ACCESS_KEY,
    Store,
    s3_image,
)


def same(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer without its per-call metadata."""
    return {k: v for k, v in answer.items() if k != "ResponseMetadata"}


def image_bytes(store: Store, key: str) -> dict[str, bytes]:
    return {"Bytes": (store.photos_dir / PHOTOS[key]).read_bytes()}


def error_code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return error.value.response["Error"]["Code"]


@pytest.fixture
def staff(client, s3_env: Store):
    """A collection with users obama and biden, enrolled from bytes."""
    client.create_collection(CollectionId="staff")
    for user, key in (("obama", "obama.jpg"), ("biden", "biden.jpg")):
        client.create_user(CollectionId="staff", UserId=user)
        face = client.index_faces(CollectionId="staff", Image=image_bytes(s3_env, key))
        face_id = face["FaceRecords"][0]["Face"]["FaceId"]
        client.associate_faces(CollectionId="staff", UserId=user, FaceIds=[face_id])
    return client


# --- the same answer as by bytes --------------------------------------------------------------


def test_search_users_by_image_from_s3_matches_bytes(staff, s3_env: Store) -> None:
    by_s3 = staff.search_users_by_image(CollectionId="staff", Image=s3_image("group.jpg"))
    by_bytes = staff.search_users_by_image(
        CollectionId="staff", Image=image_bytes(s3_env, "group.jpg")
    )
    assert same(by_s3) == same(by_bytes)
    assert by_s3["UserMatches"][0]["User"]["UserId"] in {"obama", "biden"}


def test_search_faces_by_image_from_s3_matches_bytes(staff, s3_env: Store) -> None:
    by_s3 = staff.search_faces_by_image(CollectionId="staff", Image=s3_image("obama.jpg"))
    by_bytes = staff.search_faces_by_image(
        CollectionId="staff", Image=image_bytes(s3_env, "obama.jpg")
    )
    assert same(by_s3) == same(by_bytes)
    assert by_s3["FaceMatches"]


def test_index_faces_from_s3_matches_bytes(client, s3_env: Store) -> None:
    for collection in ("from-s3", "from-bytes"):
        client.create_collection(CollectionId=collection)
    by_s3 = client.index_faces(CollectionId="from-s3", Image=s3_image("group.jpg"))
    by_bytes = client.index_faces(CollectionId="from-bytes", Image=image_bytes(s3_env, "group.jpg"))

    def without_ids(answer: dict[str, Any]) -> dict[str, Any]:
        for record in answer["FaceRecords"]:
            record["Face"].pop("FaceId")
        return same(answer)

    assert len(by_s3["FaceRecords"]) >= 2
    # ImageId is derived from the bytes: the same object gets the same id either way.
    assert without_ids(by_s3) == without_ids(by_bytes)


def test_detect_faces_from_s3_matches_bytes(client, s3_env: Store) -> None:
    by_s3 = client.detect_faces(Image=s3_image("group.jpg"), Attributes=["ALL"])
    by_bytes = client.detect_faces(Image=image_bytes(s3_env, "group.jpg"), Attributes=["ALL"])
    assert same(by_s3) == same(by_bytes)
    assert len(by_s3["FaceDetails"]) >= 2


def test_compare_faces_with_one_side_from_s3(client, s3_env: Store) -> None:
    target = image_bytes(s3_env, "group.jpg")
    by_s3 = client.compare_faces(SourceImage=s3_image("obama.jpg"), TargetImage=target)
    by_bytes = client.compare_faces(
        SourceImage=image_bytes(s3_env, "obama.jpg"), TargetImage=target
    )
    assert same(by_s3) == same(by_bytes)
    assert by_s3["FaceMatches"]
    both = client.compare_faces(
        SourceImage=image_bytes(s3_env, "obama.jpg"), TargetImage=s3_image("group.jpg")
    )
    assert same(both) == same(by_bytes)


def test_version_reads_that_version(staff, s3_env: Store) -> None:
    first, second = s3_env.versions["versioned.jpg"]

    def who(version: str | None) -> str:
        answer = staff.search_users_by_image(
            CollectionId="staff", Image=s3_image("versioned.jpg", version)
        )
        return answer["UserMatches"][0]["User"]["UserId"]

    assert who(first) == "obama"
    assert who(second) == "biden"
    assert who(None) == "biden"  # no Version: the latest


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        s3_image("obama.jpg", bucket="no-such-bucket"),
        s3_image("no/such/key.jpg"),
        s3_image("obama.jpg", version="3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY"),
    ],
    ids=["missing bucket", "missing key", "missing version"],
)
def test_unreadable_object_is_invalid_s3_object(client, image: dict) -> None:
    with pytest.raises(client.exceptions.InvalidS3ObjectException) as error:
        client.detect_faces(Image=image)
    assert "Unable to get object metadata from S3" in error.value.response["Error"]["Message"]


def test_access_denied_is_invalid_s3_object(s3_env: Store, tmp_path, monkeypatch) -> None:
    # An IAM user that may read only allowed/*; moto enforces its policy inside enforcing_iam().
    iam = boto3.client(
        "iam",
        endpoint_url=s3_env.endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_ACCESS_KEY_ID,
        aws_secret_access_key=S3_SECRET_ACCESS_KEY,
    )
    user = f"reader-{time.monotonic_ns()}"
    iam.create_user(UserName=user)
    statement = {
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{BUCKET}/allowed/*",
    }
    iam.put_user_policy(
        UserName=user,
        PolicyName="allowed-prefix-only",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )
    key = iam.create_access_key(UserName=user)["AccessKey"]
    monkeypatch.setenv("FACESEARCH_S3_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("FACESEARCH_S3_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    client = facesearch.client(data_dir=tmp_path / "data")
    try:
        with s3_env.enforcing_iam():
            assert client.detect_faces(Image=s3_image("allowed/obama.jpg"))["FaceDetails"]
            with pytest.raises(client.exceptions.InvalidS3ObjectException) as denied:
                client.detect_faces(Image=s3_image("obama.jpg"))
    finally:
        client.close()
    message = denied.value.response["Error"]["Message"]
    assert "AccessDenied" in message
    assert key["AccessKeyId"] not in message and key["SecretAccessKey"] not in message


def test_object_over_15_mb_is_too_large(client) -> None:
    with pytest.raises(client.exceptions.ImageTooLargeException):
        client.detect_faces(Image=s3_image("too-large.jpg"))


def test_non_image_object_is_invalid_format(client) -> None:
    with pytest.raises(client.exceptions.InvalidImageFormatException):
        client.detect_faces(Image=s3_image("not-an-image.jpg"))


@pytest.mark.parametrize(
    "s3object",
    [
        {"Bucket": "bad/bucket", "Name": "obama.jpg"},
        {"Bucket": "b" * 256, "Name": "obama.jpg"},
        {"Bucket": BUCKET, "Name": "k" * 1025},
    ],
    ids=["bucket pattern", "bucket too long", "name too long"],
)
def test_names_breaking_the_model_are_invalid_parameters(client, s3object: dict) -> None:
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.detect_faces(Image={"S3Object": s3object})


def test_no_s3_credentials_in_responses_or_logs(staff, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="facesearch")
    seen: list[str] = []
    images = [
        s3_image("group.jpg"),
        s3_image("obama.jpg", bucket="no-such-bucket"),
        s3_image("no/such/key.jpg"),
        s3_image("obama.jpg", version="3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY"),
        s3_image("too-large.jpg"),
        s3_image("not-an-image.jpg"),
    ]
    for image in images:
        for call, params in (
            (staff.detect_faces, {}),
            (staff.search_users_by_image, {"CollectionId": "staff"}),
        ):
            try:
                seen.append(repr(call(Image=image, **params)))
            except ClientError as error:
                seen.append(repr(error.response) + str(error))
    assert len(seen) == 2 * len(images)
    assert any("Unable to get object metadata" in text for text in seen)
    assert "cannot read S3 object" in caplog.text  # the failures were logged
    for text in [*seen, caplog.text]:
        assert S3_ACCESS_KEY_ID not in text
        assert S3_SECRET_ACCESS_KEY not in text


# --- the fetcher's bounds ---------------------------------------------------------------------


class _Body:
    """A streaming body that never ends, optionally slowly; counts what was read."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.read_bytes = 0
        self.closed = False

    def read(self, amount: int) -> bytes:
        time.sleep(self.delay)
        self.read_bytes += amount
        return b"x" * amount

    def close(self) -> None:
        self.closed = True


class _Client:
    def __init__(self, body: _Body) -> None:
        self.body = body
        self.requests: list[dict] = []

    def get_object(self, **request: Any) -> dict:
        self.requests.append(request)
        return {"Body": self.body}  # no ContentLength: chunked, or a store that omits it


def _fetcher_with(client: _Client, **settings: Any) -> S3ImageFetcher:
    fetcher = S3ImageFetcher(S3Settings(**settings), max_bytes=1000)
    fetcher._client = client  # stand in for boto3's client
    return fetcher


def test_read_stops_one_byte_past_the_limit() -> None:
    body = _Body()
    fetcher = _fetcher_with(_Client(body))
    with pytest.raises(RekognitionError) as error:
        fetcher({"Bucket": BUCKET, "Name": "endless", "Version": "v1"})
    assert error.value.code == "ImageTooLargeException"
    assert body.read_bytes == 1001 and body.closed
    assert fetcher._client.requests == [{"Bucket": BUCKET, "Key": "endless", "VersionId": "v1"}]


def test_trickling_store_hits_the_total_timeout() -> None:
    body = _Body(delay=0.05)
    fetcher = S3ImageFetcher(S3Settings(total_timeout=0.2), max_bytes=10**9)
    fetcher._client = _Client(body)
    started = time.monotonic()
    with pytest.raises(RekognitionError) as error:
        fetcher({"Bucket": BUCKET, "Name": "slow"})
    assert error.value.code == "InvalidS3ObjectException"
    assert time.monotonic() - started < 2 and body.closed


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A loopback port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def test_store_that_never_answers_times_out(silent_endpoint: str) -> None:
    fetcher = S3ImageFetcher(
        S3Settings(
            endpoint_url=silent_endpoint,
            access_key_id=S3_ACCESS_KEY_ID,
            secret_access_key=S3_SECRET_ACCESS_KEY,
            read_timeout=0.3,
            max_attempts=1,
        )
    )
    started = time.monotonic()
    with pytest.raises(RekognitionError) as error:
        fetcher({"Bucket": BUCKET, "Name": "obama.jpg"})
    assert error.value.code == "InvalidS3ObjectException"
    assert "ReadTimeoutError" in error.value.message
    assert time.monotonic() - started < 5


# --- configuration ----------------------------------------------------------------------------


def test_settings_from_environment() -> None:
    settings = S3Settings.from_env(
        {
            "FACESEARCH_S3_ENDPOINT_URL": "http://minio:9000",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "FACESEARCH_S3_ACCESS_KEY_ID": S3_ACCESS_KEY_ID,
            "FACESEARCH_S3_SECRET_ACCESS_KEY": S3_SECRET_ACCESS_KEY,
            "FACESEARCH_S3_READ_TIMEOUT": "2.5",
            # The keys clients use to call facesearch are not the S3 keys.
            "FACESEARCH_ACCESS_KEY_ID": "AKIDCALLER",
            "FACESEARCH_SECRET_ACCESS_KEY": "caller-secret",
        }
    )
    assert settings.endpoint_url == "http://minio:9000"
    assert settings.region == "eu-west-1"
    assert settings.access_key_id == S3_ACCESS_KEY_ID
    assert settings.addressing_style == "path"  # a custom endpoint
    assert settings.read_timeout == 2.5 and settings.connect_timeout == 5.0
    assert S3_SECRET_ACCESS_KEY not in repr(settings) and S3_ACCESS_KEY_ID not in repr(settings)
    plain = S3Settings.from_env({"FACESEARCH_S3_REGION": "ap-south-1", "AWS_REGION": "x"})
    assert (plain.region, plain.endpoint_url, plain.addressing_style) == ("ap-south-1", None, None)
    assert S3Settings.from_env({}).region == "us-east-1"
    with pytest.raises(ValueError, match="set both"):
        S3Settings.from_env({"FACESEARCH_S3_ACCESS_KEY_ID": S3_ACCESS_KEY_ID})
    with pytest.raises(ValueError, match="FACESEARCH_S3_CONNECT_TIMEOUT"):
        S3Settings.from_env({"FACESEARCH_S3_CONNECT_TIMEOUT": "never"})


def test_misconfigured_s3_is_an_error_only_when_used(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FACESEARCH_S3_ACCESS_KEY_ID", S3_ACCESS_KEY_ID)  # no secret
    client = facesearch.client(data_dir=tmp_path / "data")
    try:
        client.create_collection(CollectionId="fine")
        with pytest.raises(client.exceptions.InvalidS3ObjectException) as error:
            client.detect_faces(Image=s3_image("obama.jpg"))
    finally:
        client.close()
    assert "not configured" in error.value.response["Error"]["Message"]
