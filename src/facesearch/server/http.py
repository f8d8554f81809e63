"""HTTP/1.1 connections with limits: uvicorn's httptools protocol, guarded against slow and
greedy clients before a request reaches the app.

uvicorn bounds neither the size of a request's headers nor the time a client may take to send
them: a client trickling one header byte a second, or sending an endless header (whose value
httptools' wrapper re-concatenates on every chunk, so each costs more than the last), holds a
connection and the event loop. Here a request's head must arrive within ``HEADER_TIMEOUT``
seconds, within ``MAX_HEADER_BYTES`` and ``MAX_HEADERS`` lines; otherwise the client gets a
Rekognition-style JSON error and the connection is closed. The body's own limits (size, time)
are the app's (:func:`facesearch.server.asgi.read_body`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# The import path uvicorn's ``http`` option takes (also in worker processes).
PROTOCOL = "facesearch.server.http:GuardedHttpToolsProtocol"

# A signed Rekognition request's head is under 2 KiB; browsers' cookies can add a few KiB.
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100
HEADER_TIMEOUT = 10.0


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bound on each request head's size, lines and time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # a new connection's first bytes are a request head
        self._head_bytes = 0
        self._head_lines = 0
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A connection that never sends a byte is held to the same deadline.
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # refused: what follows is not read
        in_head_before = self._in_head
        super().data_received(data)
        if in_head_before and self._in_head and not self.transport.is_closing():
            # Still no end of the head: count what it has taken so far (a chunk that completed
            # the head may carry body bytes, so only whole chunks before that are counted).
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEADER_BYTES:
                self._refuse(431, "RequestHeaderFieldsTooLarge", "Request headers are too large.")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._head_lines = 0
        if self._head_timer is None:
            self._arm_head_timer()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_lines += 1
        if self._head_lines > MAX_HEADERS:
            self._refuse(431, "RequestHeaderFieldsTooLarge", "Too many request headers.")
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        if self.transport.is_closing():
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self.transport.is_closing():
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self.transport.is_closing():
            super().on_message_complete()

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(HEADER_TIMEOUT, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head:
            self._refuse(408, "RequestTimeoutException", "Request headers took too long to send.")

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer with a JSON error and close, whatever the parser was in the middle of."""
        self._cancel_head_timer()
        if self.transport.is_closing():
            return
        body = json.dumps({"__type": code, "Message": message}).encode()
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/x-amz-json-1.1\r\n"
            b"x-amzn-errortype: %s\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, reason, code.encode(), len(body), body)
        )
        self.transport.close()
