"""Fuzzing the server with the real service: whatever arrives, the answer is a clean 4xx or a 200.

Requests are generated from botocore's model (tests/support/strategies.py): for every operation,
well-typed bodies (values in and out of the model's lengths, ranges, patterns and enums, real and
mangled images, existing and missing ids) and ill-typed ones (wrong JSON types, nulls, unknown
members); then raw bodies no serialiser would send, and requests whose headers are the point. All
are SigV4-signed except where a header is what is fuzzed. The budget is fixed and the examples
derandomized, so a run is the same on every machine; benchmarks/fuzz.py runs the same generators
for longer.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.clients import HttpResponse, send_http
from support.fuzz import FuzzTarget, fuzz_service, fuzz_target, response_problems
from support.strategies import NASTY_BODIES, odd_requests, raw_bodies, request_bodies

from facesearch.contract import OPERATIONS
from facesearch.server.app import App
from facesearch.server.auth import Verifier

from .conftest import ALICE, rekognition, serve

pytestmark = pytest.mark.slow

# derandomize: the same examples on every run, so CI neither flakes nor drifts; no example
# database, so a failure seen once on a laptop does not change what CI runs.
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, photos_dir: Path) -> Iterator[FuzzTarget]:
    service = fuzz_service(tmp_path_factory.mktemp("fuzz-data"))
    app = App(service, Verifier({ALICE.access_key_id: ALICE}), threads=2)
    with serve(app) as url:
        yield fuzz_target(url, ALICE.access_key_id, ALICE.secret_access_key, photos_dir)


@pytest.fixture
def target(server: FuzzTarget) -> FuzzTarget:
    """The server with its collections, faces and user back (once per test, not per example)."""
    server.restore()
    return server


def cases(*rows: tuple[str, ...]) -> list[Any]:
    """Test parameters, each with its id."""
    return [pytest.param(*row, id="-".join(row)) for row in rows]


def check(response: HttpResponse, request: str, method: str = "POST") -> None:
    problems = response_problems(response, method)
    assert not problems, f"{request}: {problems}"


@pytest.mark.parametrize("operation", cases(*[(op,) for op in OPERATIONS]))
@settings(FUZZ, max_examples=80)
@given(data=st.data())
def test_well_typed_requests_get_a_200_or_a_clean_4xx(
    target: FuzzTarget, operation: str, data: st.DataObject
) -> None:
    body = data.draw(request_bodies(operation, target, ill_typed=False), label="body")
    check(target.post(operation, body), f"{operation} {body[:500]!r}")


@pytest.mark.parametrize("operation", OPERATIONS)
@settings(FUZZ, max_examples=50)
@given(data=st.data())
def test_ill_typed_requests_get_a_clean_4xx(
    target: FuzzTarget, operation: str, data: st.DataObject
) -> None:
    body = data.draw(request_bodies(operation, target, ill_typed=True), label="body")
    check(target.post(operation, body), f"{operation} {body[:500]!r}")


@pytest.mark.parametrize(
    ("operation", "name"),
    cases(*[(op, name) for op in ("ListFaces", "SearchFacesByImage") for name in NASTY_BODIES]),
)
def test_nasty_bodies_get_a_clean_4xx(target: FuzzTarget, operation: str, name: str) -> None:
    response = target.post(operation, NASTY_BODIES[name])
    check(response, f"{operation} {name}")


@settings(FUZZ, max_examples=500)
@given(data=st.data())
def test_raw_bodies_get_a_clean_4xx(target: FuzzTarget, data: st.DataObject) -> None:
    operation = data.draw(st.sampled_from(OPERATIONS), label="operation")
    body = data.draw(raw_bodies(target), label="body")
    check(target.post(operation, body), f"{operation} {body[:500]!r}")


@settings(FUZZ, max_examples=500)
@given(data=st.data())
def test_odd_headers_methods_and_paths_get_a_clean_4xx(
    target: FuzzTarget, data: st.DataObject
) -> None:
    request = data.draw(odd_requests(target), label="request")
    response = send_http(target.url, request.method, request.path, request.headers, request.body)
    check(response, f"{request.case}: {request}", request.method)


def test_oversized_body_gets_a_clean_413(target: FuzzTarget) -> None:
    body = b'{"CollectionId": "' + b"a" * (17 * 1024 * 1024) + b'"}'
    response = target.post("ListFaces", body)
    check(response, "ListFaces, 17 MiB body")
    assert response.status == 413


def test_server_still_serves_after_fuzzing(target: FuzzTarget, photos_dir: Path) -> None:
    # Last in this module: the fuzzing above left no wedged worker, lock or broken state.
    with urllib.request.urlopen(target.url + "/health", timeout=10) as response:
        assert response.status == 200
        assert json.load(response)["status"] == "ready"
    client = rekognition(target.url)
    assert "fuzz" in client.list_collections(MaxResults=4096)["CollectionIds"]
    client.create_collection(CollectionId="after-fuzz")
    probe = (photos_dir / "people/barack_obama/2.jpg").read_bytes()
    indexed = client.index_faces(CollectionId="after-fuzz", Image={"Bytes": probe}, MaxFaces=1)
    assert len(indexed["FaceRecords"]) == 1
    found = client.search_faces_by_image(CollectionId="after-fuzz", Image={"Bytes": probe})
    assert found["FaceMatches"][0]["Face"]["FaceId"] == indexed["FaceRecords"][0]["Face"]["FaceId"]
