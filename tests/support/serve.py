"""Servers the tests start: a free loopback port, waiting for a URL to answer, an ASGI app
served in a thread, and ``facesearch serve`` as a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from facesearch.server.http import PROTOCOL


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_url(url: str, process: subprocess.Popen[bytes], timeout: float, what: str) -> None:
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


def start_serve(
    data_dir: Path,
    key_id: str,
    secret: str,
    log_path: Path,
    timeout: float = 120,
    store: str | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """``facesearch serve`` on a free port over ``data_dir`` (and the PostgreSQL ``store``, if
    one is given), output to ``log_path``; returns the process and its URL once /health says
    ready."""
    port = free_port()
    env = {**os.environ, "FACESEARCH_ACCESS_KEY_ID": key_id, "FACESEARCH_SECRET_ACCESS_KEY": secret}
    command = [
        sys.executable, "-m", "facesearch.main", "serve", "--port", str(port),
        "--data-dir", str(data_dir), "--log-level", "warning",
    ]  # fmt: skip
    if store is not None:
        command += ["--store", store]
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
