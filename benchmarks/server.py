"""What the HTTP server adds: the same calls through boto3 + ``facesearch serve`` and the library.

Builds a collection with users from the photo set (through the library), then times
DescribeCollection and SearchUsersByImage with 1, 4 and 16 concurrent callers, first through the
library API (``facesearch.client``, in this process), then through real boto3 clients against a
``facesearch serve`` subprocess on loopback over the same data directory (one process at a time
owns the embedded store). Prints requests per second, p50/p95 latency and the server's p50
overhead per call (target: under 5 ms for SearchUsersByImage). A second table sends the same
requests pre-signed over plain HTTP (http.client, one connection per caller): the boto3 client's own
work (serialising, base64, signing), which every call to AWS pays too, is left out, so what remains
is the server's share. "SearchUsersByImage/miss" sends the
same image to a missing collection, which the service answers before any image work: its overhead
is the protocol's cost for that image without the model's run-to-run noise. ``--smoke``: 1 and
2 concurrent callers only (SMOKE_CONCURRENCY); with small counts, figures meaningless.

    .venv/bin/python benchmarks/server.py [--photos DIR] [--probe PATH] [--describe N] [--search N]
        [--smoke]
"""

from __future__ import annotations

import argparse
import functools
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore import xform_name
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.serialize import create_serializer

import facesearch
from facesearch.contract import operation_model
from facesearch.defaults import DEFAULT_ACCOUNT_ID
from facesearch.service import RekognitionService

DEFAULT_PHOTOS = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "faces"
CONCURRENCY = (1, 4, 16)
SMOKE_CONCURRENCY = (1, 2)
KEY_ID, SECRET = "bench-key", "bench-secret"
COLLECTION = "bench"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run_concurrently(callers: list[Callable[[], Any]], total: int) -> tuple[float, list[float]]:
    """Split ``total`` calls over the callers (one thread each): (wall seconds, latencies)."""
    latencies: list[float] = []
    lock = threading.Lock()
    shares = [total // len(callers) + (i < total % len(callers)) for i in range(len(callers))]

    def work(call: Callable[[], Any], count: int) -> None:
        mine = []
        for _ in range(count):
            start = time.perf_counter()
            call()
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    threads = [
        threading.Thread(target=work, args=pair) for pair in zip(callers, shares, strict=True)
    ]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, latencies


def populate(data_dir: Path, photos: Path, identities: int) -> None:
    """A collection with one user per identity, each with the faces of up to 3 photos."""
    service = RekognitionService(data_dir)

    def call(operation: str, **params: Any) -> dict[str, Any]:
        return service.call(operation, params, account_id=DEFAULT_ACCOUNT_ID)

    call("CreateCollection", CollectionId=COLLECTION)
    people = sorted(p for p in (photos / "people").iterdir() if p.is_dir())[:identities]
    for person in people:
        face_ids = []
        for image in sorted(person.iterdir())[:3]:
            try:
                indexed = call(
                    "IndexFaces", CollectionId=COLLECTION, Image={"Bytes": image.read_bytes()},
                    MaxFaces=1,
                )  # fmt: skip
            except Exception as error:  # e.g. a file that is not JPEG/PNG: skip it
                print(f"  skipped {image.relative_to(photos)}: {error}")
                continue
            face_ids += [record["Face"]["FaceId"] for record in indexed["FaceRecords"]]
        if face_ids:
            call("CreateUser", CollectionId=COLLECTION, UserId=person.name)
            call("AssociateFaces", CollectionId=COLLECTION, UserId=person.name, FaceIds=face_ids)
    service.close()


Request = tuple[str, dict[str, Any], int]  # operation, parameters, calls per level
Caller = Callable[[str, dict[str, Any]], Any]


def measure(
    make_caller: Callable[[], Caller], requests: dict[str, Request]
) -> dict[tuple[str, int], tuple[float, float, float]]:
    """(label, concurrency) -> (requests/s, p50 ms, p95 ms), one caller per concurrent thread."""
    results = {}
    pool = [make_caller() for _ in range(max(CONCURRENCY))]
    for label, (operation, params, total) in requests.items():
        pool[0](operation, params)  # warm-up
        for concurrency in CONCURRENCY:
            callers = [functools.partial(c, operation, params) for c in pool[:concurrency]]
            wall, latencies = run_concurrently(callers, max(total, concurrency))
            results[label, concurrency] = (
                len(latencies) / wall,
                statistics.median(latencies) * 1000,
                percentile(latencies, 95) * 1000,
            )
    return results


def tolerant(call: Caller) -> Caller:
    """``call``, with the Rekognition errors of the deliberate misses swallowed."""

    def wrapped(operation: str, params: dict[str, Any]) -> Any:
        try:
            return call(operation, params)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            return None

    return wrapped


def raw_caller(url: str) -> Caller:
    """Sends each (operation, params) as an HTTP request serialised and signed once, up front."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port))
    signed: dict[str, tuple[bytes, dict[str, str]]] = {}

    def call(operation: str, params: dict[str, Any]) -> int:
        key = f"{operation}{sorted(params)}{params.get('CollectionId')}"
        if key not in signed:
            request = create_serializer("json").serialize_to_request(
                params, operation_model(operation)
            )
            aws = AWSRequest("POST", url + "/", data=request["body"], headers=request["headers"])
            SigV4Auth(Credentials(KEY_ID, SECRET), "rekognition", "us-east-1").add_auth(aws)
            signed[key] = (request["body"], dict(aws.headers.items()))
        body, headers = signed[key]
        for attempt in (1, 2):
            try:
                connection.request("POST", "/", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                return response.status
            except (http.client.RemoteDisconnected, ConnectionError):
                # The server closed an idle keep-alive connection: reconnect once, as boto3 does.
                connection.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    return call


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(data_dir: Path, threads: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "FACESEARCH_ACCESS_KEY_ID": KEY_ID, "FACESEARCH_SECRET_ACCESS_KEY": SECRET}
    command = [
        sys.executable, "-m", "facesearch.main", "serve", "--port", str(port),
        "--data-dir", str(data_dir), "--threads", str(threads), "--log-level", "warning",
    ]  # fmt: skip
    # The access log is written (its cost is the server's) but not shown.
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url + "/health", timeout=5):
                return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--photos",
        type=Path,
        default=Path(os.environ.get("FACESEARCH_TEST_PHOTOS", DEFAULT_PHOTOS)),
    )
    parser.add_argument(
        "--probe", default="people/barack_obama/3.jpg", help="search image, relative to --photos"
    )
    parser.add_argument("--identities", type=int, default=10, help="users in the collection")
    parser.add_argument(
        "--describe", type=int, default=400, help="DescribeCollection calls per level"
    )
    parser.add_argument("--search", type=int, default=48, help="SearchUsersByImage calls per level")
    parser.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--smoke", action="store_true", help="1 and 2 concurrent callers")
    args = parser.parse_args()
    if args.smoke:
        global CONCURRENCY
        CONCURRENCY = SMOKE_CONCURRENCY

    probe_path = args.photos / args.probe
    probe = probe_path.read_bytes()
    image = {"Bytes": probe}
    requests: dict[str, Request] = {
        "DescribeCollection": ("DescribeCollection", {"CollectionId": COLLECTION}, args.describe),
        "SearchUsersByImage": (
            "SearchUsersByImage", {"CollectionId": COLLECTION, "Image": image}, args.search,
        ),
        # The same request to a collection that does not exist: answered before any image work,
        # so the difference between the two columns is the protocol's cost for a full-size image.
        "SearchUsersByImage/miss": (
            "SearchUsersByImage", {"CollectionId": "missing", "Image": image}, args.describe,
        ),
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="facesearch-bench-") as tmp:
        data_dir = Path(tmp)
        print(f"populating {args.identities} users from {args.photos} ...")
        populate(data_dir, args.photos, args.identities)

        # The library API: facesearch.client, boto3-shaped, in this process.
        library_client = facesearch.client(data_dir)
        library = measure(
            lambda: tolerant(lambda op, p: getattr(library_client, xform_name(op))(**p)), requests
        )
        library_client.service.close()

        process, url = start_server(data_dir, args.threads)
        try:
            config = Config(retries={"max_attempts": 1}, max_pool_connections=1)

            def boto3_caller() -> Caller:
                client = boto3.client(
                    "rekognition", endpoint_url=url, region_name="us-east-1",
                    aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET, config=config,
                )  # fmt: skip
                return tolerant(lambda op, p: getattr(client, xform_name(op))(**p))

            server = measure(boto3_caller, requests)
            raw = measure(lambda: raw_caller(url), requests)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)

    print(f"\nprobe image: {args.probe}, {len(probe) / 1024:.0f} KiB")
    print(f"\nserver: 1 process, --threads {args.threads}; cpus: {os.cpu_count()}; loopback")
    header = f"{'operation':<24}{'clients':>8}  {'library rps':>11} {'p50':>8} {'p95':>8}"
    header += f"  {'server rps':>10} {'p50':>8} {'p95':>8}  {'p50 overhead':>12} {'ratio':>6}"
    for title, measured in (("boto3 client", server), ("pre-signed plain HTTP", raw)):
        print(f"\nserver through {title}")
        print(header)
        for (operation, concurrency), (rps, p50, p95) in library.items():
            s_rps, s_p50, s_p95 = measured[operation, concurrency]
            print(
                f"{operation:<24}{concurrency:>8}  {rps:>11.1f} {p50:>6.2f}ms {p95:>6.2f}ms"
                f"  {s_rps:>10.1f} {s_p50:>6.2f}ms {s_p95:>6.2f}ms  {s_p50 - p50:>10.2f}ms"
                f" {s_p50 / p50:>6.2f}"
            )


if __name__ == "__main__":
    main()
