"""What the app and the console share of ASGI: its callables' types, and request bodies read
within limits of size and time (``read_body``), refused with a Rekognition-style error otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]
Headers = list[tuple[bytes, bytes]]
# What one call comes to: HTTP status, JSON 1.1 body, error code (None on success) and
# facesearch's extension headers (a running video job's progress).
Outcome = tuple[int, bytes, str | None, Headers]

# Fits CompareFaces, the largest request: two 5 MiB images, base64-encoded (4/3), plus JSON.
MAX_BODY_BYTES = 16 * 1024 * 1024
# An oversized body is read and dropped up to this size so that the client, still sending, gets
# the 413 answer instead of a reset connection; past it the connection is closed.
_DRAIN_LIMIT_BYTES = 64 * 1024 * 1024
# A client that stops sending its body mid-way is cut off after this many seconds of silence,
# and any body must arrive within BODY_TIMEOUT (16 MiB in 60 s is 280 kB/s: a slow phone link).
BODY_IDLE_TIMEOUT = 10.0
BODY_TIMEOUT = 60.0


class BodyRefused(Exception):
    """A request body not read: the error to answer with, and whether to close the connection
    (when the rest of the body was not read, the connection cannot carry another request)."""

    status, code = 400, "SerializationException"

    def __init__(self, message: str, *, close: bool) -> None:
        super().__init__(message)
        self.message = message
        self.close = close


class BodyTooLarge(BodyRefused):
    """A request body over the limit."""

    status, code = 413, "RequestEntityTooLargeException"


class BodyTimeout(BodyRefused):
    """A request body that stalled (``BODY_IDLE_TIMEOUT``) or took too long (``BODY_TIMEOUT``)."""

    status, code = 408, "RequestTimeoutException"


async def read_body(scope: Scope, receive: Receive, max_bytes: int) -> bytes:
    """The request body; :class:`BodyRefused` past ``max_bytes``, or when the client stalls for
    ``BODY_IDLE_TIMEOUT`` seconds or takes over ``BODY_TIMEOUT`` in all."""
    declared = next((v for k, v in scope["headers"] if k.lower() == b"content-length"), None)
    too_large = declared is not None and declared.isdigit() and int(declared) > max_bytes
    too_large_message = f"Request body is larger than {max_bytes} bytes."
    chunks: list[bytes] = []
    size = 0
    more = True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BODY_TIMEOUT
    while more:
        try:
            async with asyncio.timeout(min(BODY_IDLE_TIMEOUT, deadline - loop.time())):
                message = await receive()
        except TimeoutError:
            raise BodyTimeout("Request body took too long to send.", close=True) from None
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        more = message.get("more_body", False)
        if size > max_bytes:
            too_large = True
        if too_large:
            chunks.clear()
            if size > _DRAIN_LIMIT_BYTES:
                raise BodyTooLarge(too_large_message, close=True)
        else:
            chunks.append(chunk)
    if too_large:
        raise BodyTooLarge(too_large_message, close=False)
    return b"".join(chunks)
