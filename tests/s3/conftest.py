"""A real S3-protocol server on loopback (moto's standalone server) holding the test photos."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from support.moto import moto_server

import facesearch

# Distinctive fake keys for the S3 store: the leak checks look for exactly these strings.
S3_ACCESS_KEY_ID = "AKIAS3LEAKCHECKFACESEARCH"
S3_SECRET_ACCESS_KEY = "s3-secret-Zq9xLEAKCHECK-never-in-any-response"
BUCKET = "facesearch-photos"
PHOTOS = {
    "obama.jpg": "people/barack_obama/3.jpg",
    "biden.jpg": "people/joe_biden/1.jpg",
    "group.jpg": "group/face_recognition_obama_and_biden.jpg",
    "not-an-image.jpg": "invalid/csv_text.jpg",
    "allowed/obama.jpg": "people/barack_obama/3.jpg",
}
# The 15 MB limit of S3 images, plus one byte.
TOO_LARGE_BYTES = 15 * 1024 * 1024 + 1


@dataclass
class Store:
    """The running S3 server and what the bucket holds."""

    endpoint: str
    photos_dir: Path
    # key -> [VersionId of the first upload, of the second]
    versions: dict[str, list[str]] = field(default_factory=dict)

    def s3(self, key_id: str = S3_ACCESS_KEY_ID, secret: str = S3_SECRET_ACCESS_KEY):
        """A boto3 S3 client for the test server."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )

    def moto_api(self, path: str, body: bytes = b"") -> dict:
        request = urllib.request.Request(
            self.endpoint + path, data=body, method="POST", headers={"Content-Type": "text/plain"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")

    @contextmanager
    def enforcing_iam(self) -> Iterator[None]:
        """moto checks IAM policies on every request inside the block, and stops after it."""
        self.moto_api("/moto-api/reset-auth", b"0")
        try:
            yield
        finally:
            self.moto_api("/moto-api/reset-auth", b"inf")


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``moto_server`` on a free loopback port for the whole session."""
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def store(s3_endpoint: str, photos_dir: Path) -> Store:
    """A versioned bucket holding real photos, a non-image and an over-limit object.

    ``versioned.jpg`` was uploaded twice: Obama first, then Biden.
    """
    store = Store(s3_endpoint, photos_dir)
    s3 = store.s3()
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    for key, relative in PHOTOS.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=(photos_dir / relative).read_bytes())
    store.versions["versioned.jpg"] = [
        s3.put_object(Bucket=BUCKET, Key="versioned.jpg", Body=(photos_dir / path).read_bytes())[
            "VersionId"
        ]
        for path in (PHOTOS["obama.jpg"], PHOTOS["biden.jpg"])
    ]
    s3.put_object(Bucket=BUCKET, Key="too-large.jpg", Body=b"\0" * TOO_LARGE_BYTES)
    return store


@pytest.fixture
def s3_env(store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    """The service's S3 settings pointed at the test store, with the fake keys."""
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FACESEARCH_S3_ENDPOINT_URL", store.endpoint)
    monkeypatch.setenv("FACESEARCH_S3_REGION", "us-east-1")
    monkeypatch.setenv("FACESEARCH_S3_ACCESS_KEY_ID", S3_ACCESS_KEY_ID)
    monkeypatch.setenv("FACESEARCH_S3_SECRET_ACCESS_KEY", S3_SECRET_ACCESS_KEY)
    return store


@pytest.fixture
def client(s3_env: Store, tmp_path: Path):
    """An in-process client whose service reads S3 from the test store."""
    rekognition = facesearch.client(data_dir=tmp_path / "data")
    yield rekognition
    rekognition.close()


def s3_image(key: str, version: str | None = None, bucket: str = BUCKET) -> dict:
    """An ``Image`` parameter naming an S3 object."""
    s3object = {"Bucket": bucket, "Name": key}
    if version:
        s3object["Version"] = version
    return {"S3Object": s3object}
