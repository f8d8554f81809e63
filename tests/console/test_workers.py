"""The console on ``facesearch serve --workers 2`` over one PostgreSQL store: uvicorn hands each
connection to either process, and a signed-in browser must not notice which."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server.test_serve import clean_env
from support.serve import free_port, stop_serve, wait_for_url

from console.test_console import post

pytestmark = pytest.mark.slow

FACESEARCH = Path(sys.executable).with_name("facesearch")
KEY_ID, SECRET = "AKIDCONSOLEWORKERS", "console-workers-secret"
CALLS = 20


@pytest.fixture
def two_workers(postgres: Any, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The URL of ``facesearch serve --workers 2`` on a new database, and its access log."""
    url = f"http://127.0.0.1:{free_port()}"
    command = [
        str(FACESEARCH),
        "serve",
        "--port",
        url.rsplit(":", 1)[1],
        "--store",
        postgres.new_database(),
        "--workers",
        "2",
        "--threads",
        "1",
    ]
    env = clean_env(FACESEARCH_ACCESS_KEY_ID=KEY_ID, FACESEARCH_SECRET_ACCESS_KEY=SECRET)
    log, access_log = tmp_path / "serve.log", tmp_path / "access.log"
    with open(log, "w") as stderr, open(access_log, "w") as stdout:
        process = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr)
    try:
        wait_for_url(url + "/health", process, 180, f"facesearch serve ({log})")
        yield url, access_log
    finally:
        stop_serve(process)


def served_by_worker(url: str) -> dict[str, int]:
    """Successful console ListCollections calls counted by each worker, keyed by the time the
    worker took to load its models (a figure of its own): /metrics lands on either worker, so
    it is read until both have answered."""
    counts: dict[str, int] = {}
    for _ in range(200):
        with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
            text = response.read().decode()
        worker = re.search(r"^facesearch_model_load_seconds (\S+)$", text, re.M)
        calls = re.search(
            r'^facesearch_requests_total\{code="OK",operation="ListCollections"\} (\S+)$',
            text,
            re.M,
        )
        assert worker
        counts[worker[1]] = int(float(calls[1])) if calls else 0
        if len(counts) == 2:
            break
    return counts


def test_a_console_session_works_on_every_worker(two_workers: tuple[str, Path]) -> None:
    url, access_log = two_workers
    status, headers, who = post(
        url, "api/session", {"AccessKeyId": KEY_ID, "SecretAccessKey": SECRET}, {}
    )
    assert status == 200, who
    session = {"Cookie": headers["set-cookie"].split(";")[0], "X-CSRF-Token": who["CsrfToken"]}
    target = "RekognitionService.{}".format
    status, _, created = post(
        url,
        "api",
        {"CollectionId": "door"},
        {**session, "X-Amz-Target": target("CreateCollection")},
    )
    assert status == 200, created
    # Which worker accepts a connection is the kernel's choice and may favour one for a while:
    # call until both have served the session (every call must succeed either way).
    calls = 0
    while calls < 10 * CALLS:
        for _ in range(CALLS):
            status, _, listed = post(
                url, "api", {}, {**session, "X-Amz-Target": target("ListCollections")}
            )
            assert status == 200 and listed["CollectionIds"] == ["door"], listed
        calls += CALLS
        counts = served_by_worker(url)
        if len(counts) == 2 and all(counts.values()):
            break
    assert len(counts) == 2 and all(counts.values()) and sum(counts.values()) == calls, counts
    # Each worker writes its access-log lines, as the one process of a plain serve does.
    logged = [json.loads(line) for line in access_log.read_text().splitlines()]
    assert [line["operation"] for line in logged].count("ListCollections") == calls
    assert {line["access_key_id"] for line in logged} == {KEY_ID}

    # Signed out on one worker, the cookie is refused by both.
    assert post(url, "api/sign-out", {}, session)[0] == 200
    for _ in range(6):
        status, _, error = post(
            url, "api", {}, {**session, "X-Amz-Target": target("ListCollections")}
        )
        assert status == 403 and error["__type"] == "MissingAuthenticationTokenException"
