"""The console's HTTP answers and what it reads of requests: security headers on every answer,
Rekognition-style JSON errors, the session cookie's attributes, the Origin check."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from facesearch.server.asgi import Scope, Send

Headers = list[tuple[bytes, bytes]]

COOKIE = "facesearch_console"
# Everything the page loads comes from this server; photos are blob: URLs made in the browser.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", _CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"camera=(self), microphone=(), geolocation=()"),
]


def header(scope: Scope, name: bytes) -> str:
    """A request header's value ('' when absent)."""
    headers: Headers = scope["headers"]
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def session_cookie(scope: Scope) -> str | None:
    """The value of the console's cookie in the request, if any."""
    headers: Headers = scope["headers"]
    for key, value in headers:
        if key.lower() == b"cookie":
            for part in value.decode("latin-1").split(";"):
                cookie_name, _, cookie_value = part.strip().partition("=")
                if cookie_name == COOKIE and cookie_value:
                    return cookie_value
    return None


def set_cookie(scope: Scope, value: str, max_age: int) -> Headers:
    """The Set-Cookie header for ``value``: HttpOnly, SameSite=Strict, Secure under TLS."""
    secure = "; Secure" if scope.get("scheme") == "https" else ""
    cookie = f"{COOKIE}={value}; Max-Age={max_age}; Path=/console; HttpOnly; SameSite=Strict"
    return [(b"set-cookie", (cookie + secure).encode())]


def same_origin(scope: Scope) -> bool:
    """False for a request whose Origin names another host than the one it was sent to."""
    origin = header(scope, b"origin")
    if not origin:
        return True
    return urlsplit(origin).netloc.lower() == header(scope, b"host").lower()


async def send_json(send: Send, status: int, document: Any, headers: Headers | None = None) -> None:
    """A JSON answer."""
    await respond(send, status, json.dumps(document).encode(), "application/json", headers)


async def send_error(
    send: Send, status: int, code: str, message: str, *, close: bool = False
) -> None:
    """A Rekognition-style error, as ``POST /`` answers them."""
    headers = [(b"x-amzn-errortype", code.encode())]
    if close:
        headers.append((b"connection", b"close"))
    body = json.dumps({"__type": code, "Message": message}).encode()
    await respond(send, status, body, "application/x-amz-json-1.1", headers)


async def respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    headers: Headers | None = None,
) -> None:
    """Any answer, with the security headers (and no-store unless a cache-control is given)."""
    all_headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *_SECURITY_HEADERS,
        *(headers or []),
    ]
    if not any(name == b"cache-control" for name, _ in all_headers):
        # Answers of the API carry collection data: no cache keeps them.
        all_headers.append((b"cache-control", b"no-store"))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})
