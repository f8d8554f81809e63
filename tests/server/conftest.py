"""Fixtures for the server tests: a fake service, an in-thread server, signed clients."""

from __future__ import annotations

import datetime as dt
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from support.clients import rekognition_client
from support.serve import serve_app as serve

from facesearch.contract import validate
from facesearch.errors import RekognitionError
from facesearch.server.app import App
from facesearch.server.auth import AccessKey, Verifier
from facesearch.store import ReadReplicas

ALICE = AccessKey("AKIDALICE", "alice-secret", "111111111111")
BOB = AccessKey("AKIDBOB", "bob-secret", "222222222222")
CREATED = dt.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=dt.UTC)


class FakeService:
    """Enough of RekognitionService to exercise the protocol: collections per account."""

    def __init__(self) -> None:
        self.collections: dict[tuple[str, str], dt.datetime] = {}
        self.calls: list[tuple[str, dict[str, Any], str]] = []
        self.health_report = {"models": "ready", "store": "ready"}
        self.closed = False

    def call(
        self, operation: str, params: dict[str, Any], *, account_id: str, region: str | None
    ) -> dict[str, Any]:
        validate(operation, params)
        self.calls.append((operation, params, account_id))
        collection = (account_id, params.get("CollectionId", ""))
        if operation == "CreateCollection":
            if params["CollectionId"] == "explode":
                raise RuntimeError("secret internal detail")
            self.collections[collection] = CREATED
            return {"StatusCode": 200, "CollectionArn": "arn", "FaceModelVersion": "7.0"}
        if operation == "DescribeCollection":
            if collection not in self.collections:
                raise RekognitionError("ResourceNotFoundException", "Collection not found.")
            return {"FaceCount": 0, "UserCount": 0, "CreationTimestamp": CREATED}
        if operation == "ListCollections":
            ids = sorted(c for a, c in self.collections if a == account_id)
            return {"CollectionIds": ids, "FaceModelVersions": ["7.0"] * len(ids)}
        return {}

    def health(self) -> dict[str, Any]:
        return dict(self.health_report)

    def collection_sizes(self) -> list[tuple[str, str, int, int]]:
        return [(account, collection, 0, 0) for account, collection in sorted(self.collections)]

    def read_replicas(self) -> ReadReplicas:
        return ReadReplicas()

    def close(self) -> None:
        self.closed = True


def rekognition(
    endpoint: str,
    key: AccessKey = ALICE,
    region: str = "us-east-1",
    verify: str | None = None,
    **config: Any,
):
    """A real boto3 Rekognition client for ``endpoint``, without retries unless ``config`` says
    (``verify``: a CA bundle for HTTPS)."""
    config.setdefault("retries", {"max_attempts": 1, "mode": "standard"})
    return rekognition_client(
        endpoint, key.access_key_id, key.secret_access_key, region, verify, **config
    )


def signed_post(
    endpoint: str,
    body: bytes,
    target: str = "RekognitionService.ListCollections",
    key: AccessKey = ALICE,
    tamper: Callable[[AWSRequest], None] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """POST a raw body signed by botocore's signer: (status, lower-cased headers, body)."""
    request = AWSRequest(
        method="POST",
        url=endpoint + "/",
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target},
    )
    SigV4Auth(
        Credentials(key.access_key_id, key.secret_access_key), "rekognition", "us-east-1"
    ).add_auth(request)
    if tamper:
        tamper(request)
    prepared = request.prepare()
    raw = urllib.request.Request(
        prepared.url, data=prepared.body, headers=dict(prepared.headers), method="POST"
    )
    try:
        with urllib.request.urlopen(raw, timeout=30) as response:
            return response.status, _lower(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, _lower(error.headers.items()), error.read()


def _lower(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


def error_type(body: bytes) -> str:
    """The ``__type`` of an error body."""
    return json.loads(body)["__type"]


@pytest.fixture
def fake_service() -> FakeService:
    return FakeService()


@pytest.fixture
def fake_app(fake_service: FakeService) -> App:
    return App(fake_service, Verifier({k.access_key_id: k for k in (ALICE, BOB)}), threads=2)


@pytest.fixture
def endpoint(fake_app: App) -> Iterator[str]:
    with serve(fake_app) as url:
        yield url


@pytest.fixture
def photos(request: pytest.FixtureRequest) -> Path:
    """The test photo set: the shared ``photos_dir`` fixture where it exists, else its default."""
    try:
        path = Path(request.getfixturevalue("photos_dir"))
    except pytest.FixtureLookupError:
        default = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "faces"
        path = Path(os.environ.get("FACESEARCH_TEST_PHOTOS", default))
    if not (path / "people").is_dir():
        pytest.skip(f"test photos not found at {path}")
    return path
