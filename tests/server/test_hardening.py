"""The server under hostile and greedy clients: nested bodies, slow and endless headers, stalled
uploads, rate limits and a bounded image queue, scoped keys, metrics, the access log and TLS."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
import trustme
import urllib3
from prometheus_client.parser import text_string_to_metric_families

from facesearch.contract import validate
from facesearch.server import asgi as asgi_module
from facesearch.server import http as http_module
from facesearch.server.app import App
from facesearch.server.auth import AccessKey, Verifier, load_keys
from facesearch.server.throttle import RateLimiter

from .conftest import ALICE, BOB, FakeService, error_type, rekognition, serve, signed_post

DOOR = AccessKey(
    "AKIDDOOR",
    "door-secret",
    ALICE.account_id,
    operations=frozenset({"DescribeCollection", "ListCollections"}),
    collection_ids=("door-*",),
)


def _host_port(endpoint: str) -> tuple[str, int]:
    host, port = endpoint.removeprefix("http://").split(":")
    return host, int(port)


def _health_ms(endpoint: str) -> float:
    started = time.perf_counter()
    assert urllib3.request("GET", endpoint + "/health", timeout=2).status == 200
    return (time.perf_counter() - started) * 1000


def _read_all(sock: socket.socket, timeout: float) -> bytes:
    """What the server sends until it closes the connection (or ``timeout`` passes)."""
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except TimeoutError:
        pass
    return b"".join(chunks)


def test_a_deeply_nested_body_is_a_serialization_error(endpoint: str) -> None:
    for body in (b'{"a":' * 2000, b"[" * 100_000, b'{"CollectionId":' + b"[" * 5000):
        status, headers, payload = signed_post(endpoint, body)
        assert status == 400, payload
        assert error_type(payload) == "SerializationException"
        assert headers["x-amzn-errortype"] == "SerializationException"
    assert rekognition(endpoint).list_collections()["CollectionIds"] == []


def test_slow_headers_are_cut_off_while_health_stays_fast(
    endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_module, "HEADER_TIMEOUT", 1.0)
    slow = []
    for _ in range(30):
        sock = socket.create_connection(_host_port(endpoint))
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        slow.append(sock)
    idle = socket.create_connection(_host_port(endpoint))  # never sends a byte
    try:
        assert max(_health_ms(endpoint) for _ in range(5)) < 1000
        for sock in slow:
            sock.sendall(b"b")  # one more byte, still inside the deadline
        answers = [_read_all(sock, 5) for sock in [*slow, idle]]
    finally:
        for sock in [*slow, idle]:
            sock.close()
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["__type"] == "RequestTimeoutException"


def test_an_endless_header_is_refused_early(endpoint: str) -> None:
    sock = socket.create_connection(_host_port(endpoint))
    sent = 0
    try:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Pad: ")
        block = b"p" * (1 << 20)
        with pytest.raises(OSError):  # the server closes the connection: the send fails
            for _ in range(64):
                sock.sendall(block)
                sent += len(block)
        answer = _read_all(sock, 5)
    finally:
        sock.close()
    # Refused within a few blocks (kernel buffers hold some), not after the 64 MiB.
    assert sent < 16 << 20
    assert answer.startswith(b"HTTP/1.1 431 ") or answer == b""
    assert _health_ms(endpoint) < 1000


def test_too_many_headers_are_refused(endpoint: str) -> None:
    with socket.create_connection(_host_port(endpoint)) as sock:
        lines = b"".join(b"X-H%d: v\r\n" % i for i in range(http_module.MAX_HEADERS + 5))
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")
        answer = _read_all(sock, 5)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]


def test_a_stalled_upload_times_out(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asgi_module, "BODY_IDLE_TIMEOUT", 1.0)
    with socket.create_connection(_host_port(endpoint)) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n"
            b'X-Amz-Target: RekognitionService.ListCollections\r\n\r\n{"a":'
        )
        started = time.monotonic()
        answer = _read_all(sock, 10)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
    assert b"RequestTimeoutException" in answer
    assert time.monotonic() - started < 5


class _SlowImages(FakeService):
    """DetectFaces takes a while, so that image calls pile up."""

    def call(
        self, operation: str, params: dict[str, Any], *, account_id: str, region: str | None
    ) -> dict[str, Any]:
        if operation == "DetectFaces":
            validate(operation, params)
            time.sleep(0.5)
            return {"FaceDetails": []}
        return super().call(operation, params, account_id=account_id, region=region)


def test_image_calls_past_the_queue_are_throttled_at_once() -> None:
    app = App(_SlowImages(), Verifier({ALICE.access_key_id: ALICE}), threads=1, max_queue=1)
    outcomes: list[str] = []
    with serve(app) as endpoint:
        client = rekognition(endpoint)

        def detect() -> None:
            try:
                client.detect_faces(Image={"Bytes": b"\xff\xd8\xff"})
                outcomes.append("OK")
            except botocore.exceptions.ClientError as error:
                outcomes.append(error.response["Error"]["Code"])

        threads = [threading.Thread(target=detect) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Light calls are not held up by the image queue.
        assert client.list_collections()["CollectionIds"] == []
        metrics = _metrics(endpoint)
    assert outcomes.count("OK") >= 2
    assert outcomes.count("ThrottlingException") >= 1
    assert set(outcomes) <= {"OK", "ThrottlingException"}
    # Every refusal is counted, those boto3's one retry got through included.
    rejected = metrics["facesearch_rejected_requests_total"]
    assert rejected[(("reason", "queue_full"),)] >= outcomes.count("ThrottlingException")


def test_a_key_over_its_rate_is_refused_and_boto3_retries_through() -> None:
    app = App(FakeService(), Verifier({ALICE.access_key_id: ALICE}), max_tps=5)
    app.rates = RateLimiter(5, clock=lambda: 100.0)  # time stands still: no refill
    with serve(app) as endpoint:
        plain = rekognition(endpoint)
        codes = []
        for _ in range(8):
            try:
                plain.list_collections()
                codes.append("OK")
            except botocore.exceptions.ClientError as error:
                assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
                codes.append(error.response["Error"]["Code"])
        assert codes == ["OK"] * 5 + ["ProvisionedThroughputExceededException"] * 3

        app.rates = RateLimiter(2)
        for mode in ("legacy", "standard", "adaptive"):
            retrying = rekognition(endpoint, retries={"mode": mode, "max_attempts": 10})
            calls = [
                threading.Thread(target=lambda c=retrying: [c.list_collections() for _ in range(3)])
                for _ in range(2)
            ]
            for call in calls:
                call.start()
            for call in calls:
                call.join()
        requests = _metrics(endpoint)["facesearch_requests_total"]
        refused = _metrics(endpoint)["facesearch_rejected_requests_total"]
    # 18 calls at 2 a second from two threads: some were refused, and retried until they passed.
    assert requests[(("code", "OK"), ("operation", "ListCollections"))] == 5 + 18
    assert refused[(("reason", "rate"),)] > 3


def test_scoped_keys_are_denied_what_they_may_not_do(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[door]\naws_access_key_id = AKIDDOOR\naws_secret_access_key = door-secret\n"
        f"account_id = {ALICE.account_id}\n"
        "operations = DescribeCollection, ListCollections\ncollection_ids = door-*\n"
        "max_tps = 50\n"
    )
    loaded = load_keys(credentials, environ={})["AKIDDOOR"]
    assert loaded == AccessKey(**{**DOOR.__dict__, "max_tps": 50.0})
    service = FakeService()
    app = App(service, Verifier({k.access_key_id: k for k in (ALICE, DOOR)}))
    with serve(app) as endpoint:
        rekognition(endpoint).create_collection(CollectionId="door-front")
        rekognition(endpoint).create_collection(CollectionId="payroll")
        door = rekognition(endpoint, DOOR)
        assert door.describe_collection(CollectionId="door-front")["FaceCount"] == 0
        for call in (
            lambda: door.describe_collection(CollectionId="payroll"),
            lambda: door.create_collection(CollectionId="door-back"),
        ):
            with pytest.raises(botocore.exceptions.ClientError) as denied:
                call()
            assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
            assert "AKIDDOOR is not authorized to perform: rekognition:" in str(denied.value)
    assert [c[0] for c in service.calls].count("CreateCollection") == 2  # the denied one not run


@pytest.mark.parametrize(
    "text",
    [
        "operations = SearchEverything",
        "max_tps = 0",
        "max_tps = fast",
    ],
)
def test_a_bad_scope_in_the_credentials_file_is_named(tmp_path: Path, text: str) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[door]\naws_access_key_id = AKIDDOOR\naws_secret_access_key = s\n{text}\n"
    )
    with pytest.raises(ValueError, match=r"\[door\]"):
        load_keys(credentials, environ={})


def _metrics(endpoint: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """``/metrics`` parsed by prometheus_client: sample name -> sorted labels -> value."""
    text = urllib3.request("GET", endpoint + "/metrics", timeout=5).data.decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def test_metrics_count_the_calls_made_and_the_access_log_names_them(
    endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = rekognition(endpoint)
    with caplog.at_level(logging.INFO, logger="facesearch.access"):
        client.create_collection(CollectionId="counted")
        client.describe_collection(CollectionId="counted")
        with pytest.raises(botocore.exceptions.ClientError):
            client.describe_collection(CollectionId="missing")
        response = client.list_collections()
    metrics = _metrics(endpoint)
    requests = metrics["facesearch_requests_total"]
    assert requests[(("code", "OK"), ("operation", "DescribeCollection"))] == 1
    assert (
        requests[(("code", "ResourceNotFoundException"), ("operation", "DescribeCollection"))] == 1
    )
    assert requests[(("code", "OK"), ("operation", "CreateCollection"))] == 1
    latency = metrics["facesearch_request_duration_seconds_count"]
    assert latency[(("operation", "DescribeCollection"),)] == 2
    faces = metrics["facesearch_collection_faces"]
    assert faces[(("account_id", ALICE.account_id), ("collection_id", "counted"))] == 0
    assert "facesearch_image_queue_depth" in metrics

    lines = [json.loads(record.getMessage()) for record in caplog.records]
    assert [line["operation"] for line in lines] == [
        "CreateCollection",
        "DescribeCollection",
        "DescribeCollection",
        "ListCollections",
    ]
    assert lines[2]["status"] == 400 and lines[2]["error_code"] == "ResourceNotFoundException"
    assert lines[-1]["request_id"] == response["ResponseMetadata"]["RequestId"]
    assert {line["access_key_id"] for line in lines} == {ALICE.access_key_id}
    assert all(ALICE.secret_access_key not in record.getMessage() for record in caplog.records)


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_endpoint(certificate_authority: trustme.CA, tmp_path: Path) -> Iterator[str]:
    cert = certificate_authority.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(cert_file)
    cert.private_key_pem.write_to_path(key_file)
    app = App(FakeService(), Verifier({k.access_key_id: k for k in (ALICE, BOB)}))
    with serve(app, ssl_certfile=str(cert_file), ssl_keyfile=str(key_file)) as url:
        yield url.replace("http://", "https://")


def test_tls_with_boto3_and_the_aws_cli(
    tls_endpoint: str, certificate_authority: trustme.CA, tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    certificate_authority.cert_pem.write_to_path(ca_file)
    client = rekognition(tls_endpoint, verify=str(ca_file))
    client.create_collection(CollectionId="over-tls")
    with pytest.raises(botocore.exceptions.SSLError):
        rekognition(tls_endpoint).list_collections()  # the test CA is not trusted by default
    aws = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "aws"
    env = {
        "AWS_ACCESS_KEY_ID": ALICE.access_key_id,
        "AWS_SECRET_ACCESS_KEY": ALICE.secret_access_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [
            *(str(aws), "rekognition", "list-collections", "--endpoint-url", tls_endpoint),
            *("--ca-bundle", str(ca_file), "--output", "json"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["CollectionIds"] == ["over-tls"]


@pytest.mark.parametrize(
    "client, public, status",
    [("127.0.0.1", False, 200), ("10.1.2.3", False, 403), ("10.1.2.3", True, 200)],
)
def test_metrics_answer_other_addresses_only_when_public(
    client: str, public: bool, status: int
) -> None:
    app = App(FakeService(), Verifier({ALICE.access_key_id: ALICE}), public_metrics=public)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/metrics",
        "headers": [],
        "client": (client, 50000),
    }
    try:
        asyncio.run(app(scope, receive, send))
    finally:
        app.close()
    assert sent[0]["status"] == status
    if status == 200:
        assert b"# TYPE facesearch_requests_total counter" in sent[1]["body"]
