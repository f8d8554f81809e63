"""``facesearch serve``: startup rules, graceful shutdown, durability across restarts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from facesearch.server.app import App
from facesearch.server.auth import AccessKey, Verifier
from facesearch.wire.keys import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, is_loopback

from .conftest import ALICE, FakeService, rekognition, serve

FACESEARCH = Path(sys.executable).with_name("facesearch")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACESEARCH_")}
    return {**env, **extra}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")


@pytest.mark.parametrize(
    "options, message",
    [
        (["--host", "0.0.0.0"], "refusing to listen on 0.0.0.0 without access keys"),
        (["--tls-cert", "{cert}", "--tls-key", "{cert}"], "cannot use --tls-cert {cert}"),
    ],
    ids=["public address without keys", "unusable certificate"],
)
def test_refuses_to_start(tmp_path: Path, options: list[str], message: str) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate")
    result = subprocess.run(
        [sys.executable, "-m", "facesearch.main", "serve"]
        + [option.format(cert=cert) for option in options],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert message.format(cert=cert) in result.stderr


def test_a_port_in_use_is_named_without_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = ["serve", "--port", str(port), "--data-dir", str(tmp_path)]
        result = subprocess.run(
            [sys.executable, "-m", "facesearch.main", *command],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "--port" in result.stderr and "Traceback" not in result.stderr


def test_closing_an_app_twice_closes_it_once() -> None:
    # A server whose socket fails after the lifespan began closes the app from both sides.
    closes: list[None] = []

    class Counted(FakeService):
        def close(self) -> None:
            closes.append(None)

    app = App(Counted(), Verifier({ALICE.access_key_id: ALICE}))
    app.close()
    app.close()
    assert len(closes) == 1


class SlowService(FakeService):
    """A service whose CreateCollection blocks until released, to test shutdown mid-call."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.release = threading.Event()

    def call(
        self, operation: str, params: dict[str, Any], *, account_id: str, region: str | None
    ) -> dict[str, Any]:
        if operation == "CreateCollection":
            self.started.set()
            self.release.wait(30)
        return super().call(operation, params, account_id=account_id, region=region)


def test_shutdown_finishes_in_flight_calls_before_closing_the_service() -> None:
    service = SlowService()
    outcome: dict[str, Any] = {}
    with serve(App(service, Verifier({ALICE.access_key_id: ALICE}))) as url:
        client = rekognition(url)

        def create() -> None:
            outcome["answer"] = client.create_collection(CollectionId="slow")

        caller = threading.Thread(target=create)
        caller.start()
        assert service.started.wait(30)
        # Leaving the block sets uvicorn's should_exit, as SIGTERM does, with the call in flight.
        threading.Timer(0.5, service.release.set).start()
    caller.join(30)
    assert outcome["answer"]["StatusCode"] == 200
    assert service.closed and service.collections


def wait_ready(url: str, process: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"server exited: {process.stderr.read() if process.stderr else ''}"
            )
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("server did not become ready")


@pytest.mark.slow
def test_serve_with_local_credentials_survives_sigterm_and_restart(tmp_path: Path, photos) -> None:
    pytest.importorskip("facesearch.service")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(FACESEARCH), "serve", "--port", str(port), "--data-dir", str(tmp_path)]
    command += ["--shutdown-timeout", "2"]
    local = AccessKey(LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY)
    image = (photos / "people/barack_obama/1.jpg").read_bytes()
    for round_ in range(2):
        process = subprocess.Popen(
            command, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            wait_ready(url, process)
            client = rekognition(url, local)
            if round_ == 0:
                client.create_collection(CollectionId="kept")
                client.index_faces(CollectionId="kept", Image={"Bytes": image}, MaxFaces=1)
                process.send_signal(signal.SIGTERM)
                assert process.wait(60) == 0
            else:
                assert client.describe_collection(CollectionId="kept")["FaceCount"] == 1
                # An upload that stalls half-way does not hold the shutdown past its deadline
                # (the body's own idle timeout is 10 s).
                with socket.create_connection(("127.0.0.1", port)) as stalled:
                    stalled.sendall(
                        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n{"
                    )
                    time.sleep(0.5)
                    stopping = time.monotonic()
                    process.send_signal(signal.SIGTERM)
                    assert process.wait(60) == 0
                    assert time.monotonic() - stopping < 8
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert f"AWS_ACCESS_KEY_ID={LOCAL_ACCESS_KEY_ID}" in (process.stderr.read() or "")
        # One JSON access-log line per call on standard output.
        logged = [json.loads(line) for line in (process.stdout.read() or "").splitlines()]
        expected = ["CreateCollection", "IndexFaces"] if round_ == 0 else ["DescribeCollection"]
        assert [line["operation"] for line in logged] == expected
