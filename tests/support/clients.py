"""Ways to call a server: a real boto3 Rekognition client, and one raw HTTP request with
exactly the headers given."""

from __future__ import annotations

import http.client
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config


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
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
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
