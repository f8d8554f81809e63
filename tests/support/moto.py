"""moto_server on loopback: the real S3 (and SNS, SQS) protocol server of the S3 and video
tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from support.serve import free_port, wait_for_url


def _program() -> str:
    beside = Path(sys.executable).with_name("moto_server")
    found = str(beside) if beside.exists() else shutil.which("moto_server")
    if not found:
        pytest.fail("moto_server not found: install the dev dependencies (moto[server])")
    return found


@contextmanager
def moto_server(log_path: Path) -> Iterator[str]:
    """``moto_server`` on a free loopback port, its output in ``log_path``; yields its endpoint
    and stops it afterwards."""
    port = free_port()
    log = log_path.open("wb")
    process = subprocess.Popen(
        [_program(), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        what = f"moto_server (log: {log_path})"
        wait_for_url(endpoint + "/moto-api/data.json", process, 30, what)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
