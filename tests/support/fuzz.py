"""A live server to fuzz (tests/server/test_fuzz.py with a fixed budget, benchmarks/fuzz.py
with a larger one): its seeded collections, signed requests, and what makes an answer wrong.
The request generators are in support.strategies."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from support.clients import HttpResponse, rekognition_client, send_http
from support.serve import free_port

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "RekognitionService."


@dataclass
class FuzzTarget:
    """A live server to fuzz, and values that lead requests past "not found" into deeper code.

    ``known`` maps a member name (CollectionId, FaceId, UserId, ResourceArn, NextToken, ...) to
    values that exist on the server; ``images`` are real photos, ``huge_image`` is one byte over
    Rekognition's 5 MiB image limit.
    """

    url: str
    key_id: str
    secret: str
    known: dict[str, list[Any]]
    images: list[bytes] = field(repr=False)
    huge_image: bytes = field(default=b"", repr=False)

    def signed(
        self,
        body: bytes,
        target: str | None,
        extra: Sequence[tuple[str, str]] = (),
        region: str = "us-east-1",
    ) -> list[tuple[str, str]]:
        """The headers of a POST / carrying ``body``, SigV4-signed by botocore's signer."""
        headers = {"Content-Type": JSON_CONTENT_TYPE, **dict(extra)}
        if target is not None:
            headers["X-Amz-Target"] = target
        request = AWSRequest(method="POST", url=self.url + "/", data=body, headers=headers)
        credentials = Credentials(self.key_id, self.secret)
        SigV4Auth(credentials, "rekognition", region).add_auth(request)
        return list(request.headers.items())

    def client(self) -> Any:
        """A boto3 Rekognition client for the server."""
        return rekognition_client(self.url, self.key_id, self.secret)

    def restore(self) -> None:
        """(Re)create the collections "fuzz" (two faces, one of them associated with the user
        "fuzz-user") and "fuzz-empty" unless they are intact, and point ``known`` at them.

        Fuzzed DeleteCollection, DeleteFaces and DeleteUser calls take them away; each fuzz test
        calls this first so that its examples reach past "not found".
        """
        client = self.client()
        if self._intact(client):
            return
        for collection in ("fuzz", "fuzz-empty"):
            with suppress(client.exceptions.ResourceNotFoundException):
                client.delete_collection(CollectionId=collection)
            client.create_collection(CollectionId=collection)
        face_ids = []
        for image in self.images[:2]:
            indexed = client.index_faces(
                CollectionId="fuzz", Image={"Bytes": image}, ExternalImageId="seed", MaxFaces=1
            )
            face_ids.append(indexed["FaceRecords"][0]["Face"]["FaceId"])
        client.create_user(CollectionId="fuzz", UserId="fuzz-user")
        client.associate_faces(CollectionId="fuzz", UserId="fuzz-user", FaceIds=face_ids[:1])
        arn = client.describe_collection(CollectionId="fuzz")["CollectionARN"]
        token = client.list_faces(CollectionId="fuzz", MaxResults=1)["NextToken"]
        stranger = "11111111-2222-3333-4444-555555555555"
        self.known.update(
            CollectionId=["fuzz", "fuzz-empty", "missing"],
            # A list's items go by the list's member name: FaceIds holds FaceId strings.
            FaceId=[*face_ids, stranger],
            FaceIds=[*face_ids, stranger],
            UserId=["fuzz-user", "nobody"],
            ResourceArn=[arn, arn.replace("fuzz", "missing")],
            NextToken=[token, token[:-2], "A" * 255],
            ExternalImageId=["seed"],
            TagKeys=["team"],
        )

    def _intact(self, client: Any) -> bool:
        seeded = self.known.get("FaceIds", [])[:2]
        if not seeded:
            return False
        try:
            faces = client.list_faces(CollectionId="fuzz", FaceIds=seeded)["Faces"]
            user_faces = client.list_faces(CollectionId="fuzz", UserId="fuzz-user")["Faces"]
            client.describe_collection(CollectionId="fuzz-empty")
        except client.exceptions.ClientError:
            return False  # a collection is gone
        return len(faces) == 2 and seeded[0] in {face["FaceId"] for face in user_faces}

    def post(self, operation: str, body: bytes) -> HttpResponse:
        """A properly signed call of ``operation`` with a raw body."""
        return send_http(self.url, "POST", "/", self.signed(body, TARGET_PREFIX + operation), body)


def response_problems(response: HttpResponse, method: str = "POST") -> list[str]:
    """What is wrong with a response to any request, however bad: [] when nothing is.

    Never a 5xx; a 200 carries a JSON object; any other status is a 4xx whose JSON body has
    string ``__type`` and ``Message`` and whose X-Amzn-ErrorType header names the same code.
    """
    if response.status >= 500:
        return [f"HTTP {response.status}: {response.body[:300]!r}"]
    if method == "HEAD":
        return []  # no body to check
    try:
        document = json.loads(response.body)
    except ValueError:
        return [f"HTTP {response.status} body is not JSON: {response.body[:300]!r}"]
    if not isinstance(document, dict):
        return [f"HTTP {response.status} body is not a JSON object: {response.body[:300]!r}"]
    if response.status == 200:
        return []
    problems = []
    if not 400 <= response.status < 500:
        problems.append(f"HTTP {response.status} is neither 200 nor 4xx")
    code, message = document.get("__type"), document.get("Message")
    if not (isinstance(code, str) and code and isinstance(message, str)):
        problems.append(f"error body lacks __type or Message: {response.body[:300]!r}")
    if response.header("x-amzn-errortype") != code:
        problems.append(f"X-Amzn-ErrorType {response.header('x-amzn-errortype')!r} != {code!r}")
    return problems


def error_code(response: HttpResponse) -> str:
    """The error code of a response ("OK" for a 200, "?" when unreadable), for tallies."""
    if response.status == 200:
        return "OK"
    try:
        return str(json.loads(response.body).get("__type", "?"))
    except (ValueError, AttributeError):
        return "?"


def fuzz_service(data_dir: Path) -> Any:
    """The real service over ``data_dir``, with S3 pointed at a closed port so that S3Object
    images fail at once, through the real fetcher's error handling, instead of reaching AWS."""
    from facesearch.service import RekognitionService
    from facesearch.service.s3 import S3ImageFetcher, S3Settings

    service = RekognitionService(data_dir)
    settings = S3Settings(
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        access_key_id="fuzz",
        secret_access_key="fuzz",
        connect_timeout=0.5,
        read_timeout=0.5,
        total_timeout=1.0,
        max_attempts=1,
    )
    service.register_image_fetcher("S3Object", S3ImageFetcher(settings))
    return service


# Two people (enrolled) and a group photo: the images the fuzzer sends, whole or mangled.
_FUZZ_PHOTOS = (
    "people/barack_obama/1.jpg",
    "people/joe_biden/1.jpg",
    "group/face_recognition_two_people.jpg",
)


def fuzz_target(url: str, key_id: str, secret: str, photos: Path) -> FuzzTarget:
    """A FuzzTarget for the server at ``url``, its collections, faces and user created."""
    images = [(photos / name).read_bytes() for name in _FUZZ_PHOTOS]
    # One byte over Rekognition's 5 MiB image limit, JPEG-looking so that size is the problem.
    huge = images[0] + b"\0" * (5 * 1024 * 1024 + 1 - len(images[0]))
    target = FuzzTarget(url, key_id, secret, {}, images, huge)
    target.restore()
    return target
