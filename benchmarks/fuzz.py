"""Fuzz the server for longer than the test suite does, with the same generators.

Runs the real service behind the server in this process (a temporary data directory; S3 pointed at
a closed port) and sends, round after round with fresh seeds, the four kinds of request of
tests/server/test_fuzz.py: well-typed and ill-typed bodies for every operation, raw bodies, and odd
headers, methods and paths. Prints the count of answers by HTTP status and by error code, then
every request answered with a 5xx (or with a malformed error) and the server-side exception behind
it. Exits 1 if there was any, or if the server no longer answers /health and a boto3 call after.
The generators are tests/support/'s, so tests/ goes on the path:

    PYTHONPATH=tests .venv/bin/python benchmarks/fuzz.py [--examples N] [--seconds S] [--seed N]
        [--photos DIR]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import seed as with_seed
from hypothesis import strategies as st
from support.clients import HttpResponse, send_http
from support.fuzz import FuzzTarget, error_code, fuzz_service, fuzz_target, response_problems
from support.serve import serve_app
from support.strategies import RawRequest, odd_requests, raw_bodies, request_bodies

from facesearch.contract import OPERATIONS
from facesearch.server.app import App
from facesearch.server.auth import AccessKey, Verifier

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = REPO.parent / "shared" / "datasets" / "faces"
KEY = AccessKey("AKIDFUZZ", "fuzz-secret")
ROUND = 25  # examples per kind of request and seed: short rounds keep --seconds accurate


@dataclass
class Finding:
    """A request answered with a 5xx or a malformed response, and what the server logged."""

    kind: str
    request: RawRequest
    status: int
    problems: list[str]
    cause: str


class Tally:
    """Counts of answers, and the smallest request behind each kind of bad answer."""

    def __init__(self) -> None:
        self.sent = 0
        self.by_status: Counter[int] = Counter()
        self.by_code: Counter[str] = Counter()
        self.by_kind: Counter[str] = Counter()
        self.findings: dict[tuple[str, str, int], Finding] = {}
        self.causes: dict[str, str] = {}  # request id -> exception the server logged

    def record(self, kind: str, request: RawRequest, response: HttpResponse) -> None:
        self.sent += 1
        self.by_status[response.status] += 1
        self.by_code[error_code(response)] += 1
        self.by_kind[kind] += 1
        problems = response_problems(response, request.method)
        if not problems:
            return
        cause = self.causes.get(response.header("x-amzn-requestid") or "", "")
        key = (kind, cause or problems[0][:80], response.status)
        known = self.findings.get(key)
        if known is None or len(request.body) < len(known.request.body):
            self.findings[key] = Finding(kind, request, response.status, problems, cause)


class CauseRecorder(logging.Handler):
    """Keeps the exception behind each unexpected error, by request id, out of the console."""

    def __init__(self, causes: dict[str, str]) -> None:
        super().__init__()
        self.causes = causes

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None and record.args:
            error = record.exc_info[1]
            self.causes[str(record.args[0])] = f"{type(error).__name__}: {error}"[:300]


def kinds(target: FuzzTarget, tally: Tally) -> dict[str, Callable[[st.DataObject], None]]:
    """Each kind of request, as a function that draws one and records its answer."""

    def body_sender(operation: str, ill_typed: bool) -> Callable[[st.DataObject], None]:
        kind = f"{'ill' if ill_typed else 'well'}-typed {operation}"

        def send(data: st.DataObject) -> None:
            body = data.draw(request_bodies(operation, target, ill_typed))
            post(kind, operation, body)

        return send

    def post(kind: str, operation: str, body: bytes) -> None:
        request = RawRequest(
            "POST", "/", target.signed(body, f"RekognitionService.{operation}"), body, operation
        )
        tally.record(kind, request, target.post(operation, body))

    def raw(data: st.DataObject) -> None:
        post("raw body", data.draw(st.sampled_from(OPERATIONS)), data.draw(raw_bodies(target)))

    def headers(data: st.DataObject) -> None:
        request = data.draw(odd_requests(target))
        response = send_http(
            target.url, request.method, request.path, request.headers, request.body
        )
        tally.record("headers", request, response)

    senders = {
        f"{'ill' if ill else 'well'}-typed {op}": body_sender(op, ill)
        for op in OPERATIONS
        for ill in (False, True)
    }
    return {**senders, "raw body": raw, "headers": headers}


def fuzz(target: FuzzTarget, tally: Tally, examples: int, seconds: float, seed: int) -> None:
    """Rounds of ROUND examples of every kind, each round with a new seed, until every kind has
    had ``examples`` or ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    jobs = kinds(target, tally)
    for round_number in range((examples + ROUND - 1) // ROUND):
        for name, send in jobs.items():
            if time.monotonic() > deadline:
                return
            if name.startswith(("well", "ill")):
                target.restore()  # bring back what earlier rounds deleted
            test = given(data=st.data())(send)
            test = settings(
                max_examples=min(ROUND, examples - round_number * ROUND),
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )(test)
            with_seed(seed * 1_000_003 + round_number)(test)()


def still_serves(target: FuzzTarget) -> list[str]:
    """What no longer works after the fuzzing: /health, a boto3 call."""
    problems = []
    try:
        with urllib.request.urlopen(target.url + "/health", timeout=10) as response:
            if response.status != 200:
                problems.append(f"/health answers {response.status}")
        target.restore()
        target.client().describe_collection(CollectionId="fuzz")
    except Exception as error:
        problems.append(f"{type(error).__name__}: {error}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=500, help="per kind of request")
    parser.add_argument("--seconds", type=float, default=600, help="stop after this long")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument(
        "--photos",
        type=Path,
        default=Path(os.environ.get("FACESEARCH_TEST_PHOTOS", DEFAULT_PHOTOS)),
    )
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}; cpus: {os.cpu_count()}; seed {args.seed}")

    tally = Tally()
    server_log = logging.getLogger("facesearch.server")
    server_log.addHandler(CauseRecorder(tally.causes))
    server_log.propagate = False
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="facesearch-fuzz-") as data_dir:
        service = fuzz_service(Path(data_dir))
        app = App(service, Verifier({KEY.access_key_id: KEY}), threads=2)
        with serve_app(app) as url:
            target = fuzz_target(url, KEY.access_key_id, KEY.secret_access_key, args.photos)
            fuzz(target, tally, args.examples, args.seconds, args.seed)
            broken = still_serves(target)
    elapsed = time.monotonic() - started

    print(f"\n{tally.sent} requests in {elapsed:.0f} s; load average after: {os.getloadavg()}")
    print("by HTTP status: " + ", ".join(f"{s}: {n}" for s, n in sorted(tally.by_status.items())))
    print("by error code:")
    for code, count in tally.by_code.most_common():
        print(f"  {count:7d}  {code}")
    for finding in sorted(tally.findings.values(), key=lambda f: f.kind):
        request = finding.request
        print(f"\nHTTP {finding.status} for {finding.kind} ({request.case}): {finding.problems}")
        print(f"  cause:   {finding.cause or '(nothing logged)'}")
        print(f"  request: {request.method} {request.path} {request.headers}")
        print(f"  body ({len(request.body)} bytes): {request.body[:500]!r}")
    for problem in broken:
        print(f"\nafter fuzzing: {problem}")
    print(f"\n{len(tally.findings)} distinct bad answers" + (", server broken" if broken else ""))
    return 1 if tally.findings or broken else 0


if __name__ == "__main__":
    sys.exit(main())
