"""The ASGI application: Rekognition's JSON 1.1 API over HTTP, in front of the service layer.

``POST /`` carries every operation (``X-Amz-Target`` names it); ``GET /health`` reports whether
the models and the store are ready. Service calls are blocking, so they run in thread pools: one
for operations that take an image (CPU-heavy: detection and embedding) and one for the rest, so a
queue of IndexFaces calls never holds up a DescribeCollection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any, Protocol

from botocore.model import Shape

from facesearch.console import Console
from facesearch.contract import operation_model
from facesearch.errors import RekognitionError
from facesearch.server.auth import AuthError, Caller, Verifier
from facesearch.server.protocol import (
    CONTENT_TYPE,
    ProtocolError,
    decode_request,
    encode_error,
    encode_response,
    operation_from_target,
)

log = logging.getLogger("facesearch.server")

# Fits CompareFaces, the largest request: two 5 MiB images, base64-encoded (4/3), plus JSON.
MAX_BODY_BYTES = 16 * 1024 * 1024
# An oversized body is read and dropped up to this size so that the client, still sending, gets
# the 413 answer instead of a reset connection; past it the connection is closed.
_DRAIN_LIMIT_BYTES = 64 * 1024 * 1024

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]
# What one call comes to: HTTP status, JSON 1.1 body, error code (None on success).
Outcome = tuple[int, bytes, str | None]


class Service(Protocol):
    """What the server needs of the service layer (facesearch.service.RekognitionService)."""

    def call(
        self, operation: str, params: dict[str, Any], *, account_id: str, region: str | None
    ) -> dict[str, Any]: ...

    def health(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class BodyTooLarge(Exception):
    """A request body over the limit; ``drained`` if it was read to its end (else close)."""

    def __init__(self, drained: bool) -> None:
        self.drained = drained


class App:
    """The ASGI app. ``threads`` sizes each of the two thread pools."""

    def __init__(
        self,
        service: Service,
        verifier: Verifier,
        *,
        threads: int = 4,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.service = service
        self.verifier = verifier
        self.max_body_bytes = max_body_bytes
        self._image_pool = ThreadPoolExecutor(threads, thread_name_prefix="facesearch-image")
        self._light_pool = ThreadPoolExecutor(threads, thread_name_prefix="facesearch-call")
        self.console = Console(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    def close(self) -> None:
        """Wait for running calls to finish, then close the service."""
        self._image_pool.shutdown(wait=True)
        self._light_pool.shutdown(wait=True)
        self.service.close()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # uvicorn has finished the in-flight requests by now; the pools may still hold
                # calls whose clients went away, and their writes must land before closing.
                await asyncio.get_running_loop().run_in_executor(None, self.close)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = str(uuid.uuid4())
        method, path = scope["method"], scope["path"]
        if path == "/health" and method in ("GET", "HEAD"):
            await self._health(request_id, send)
            return
        if path == "/console" or path.startswith("/console/"):
            await self.console(scope, receive, send)
            return
        if path != "/" or method != "POST":
            await _send_error(
                send,
                request_id,
                404,
                "UnknownOperationException",
                "Operations are served by POST / with an X-Amz-Target header.",
            )
            return
        try:
            body = await self.read_body(scope, receive)
        except BodyTooLarge as error:
            await _send_error(
                send,
                request_id,
                413,
                "RequestEntityTooLargeException",
                f"Request body is larger than {self.max_body_bytes} bytes.",
                close=not error.drained,
            )
            return
        headers = [
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]
        ]
        target = next((value for name, value in headers if name.lower() == "x-amz-target"), None)
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = scope["query_string"].decode("latin-1")

        def signer() -> Caller:
            return self.verifier.verify(method, raw_path, query, headers, body)

        outcome = await self.call(request_id, signer, target, body)
        await _send(send, request_id, *outcome)

    async def call(
        self, request_id: str, authenticate: Callable[[], Caller], target: str | None, body: bytes
    ) -> Outcome:
        """Run one JSON 1.1 request in a worker thread: (status, body, error code or None).

        ``authenticate`` says who is calling (SigV4 for the API, the session for the console)
        and raises :class:`AuthError` otherwise; everything after it is the same for both.
        """
        pool = self._image_pool if _takes_image(target) else self._light_pool
        return await asyncio.get_running_loop().run_in_executor(
            pool, self._handle, request_id, authenticate, target, body
        )

    def _handle(
        self,
        request_id: str,
        authenticate: Callable[[], Caller],
        target: str | None,
        body: bytes,
    ) -> Outcome:
        try:
            caller = authenticate()
            operation = operation_from_target(target)
            params = decode_request(operation, body)
            result = self.service.call(
                operation, params, account_id=caller.key.account_id, region=caller.region
            )
            return 200, encode_response(operation, result), None
        except (AuthError, ProtocolError, RekognitionError) as error:
            if error.http_status >= 500:
                log.warning("request %s: %s: %s", request_id, error.code, error.message)
            return error.http_status, encode_error(error.code, error.message), error.code
        except Exception:
            # The details stay in the server's log; the client learns only the request id.
            log.exception("request %s: unexpected error", request_id)
            return (
                500,
                encode_error("InternalServerError", "Internal server error."),
                "InternalServerError",
            )

    async def _health(self, request_id: str, send: Send) -> None:
        try:
            report = await asyncio.get_running_loop().run_in_executor(
                self._light_pool, self.service.health
            )
        except Exception as error:
            log.exception("health check failed")
            report = {"service": f"error: {type(error).__name__}"}
        ready = all(value == "ready" for value in report.values())
        payload = json.dumps({"status": "ready" if ready else "not ready", **report}).encode()
        await _send(send, request_id, 200 if ready else 503, payload, None, "application/json")

    async def read_body(self, scope: Scope, receive: Receive) -> bytes:
        """The request body, or :class:`BodyTooLarge` past ``max_body_bytes``."""
        declared = next((v for k, v in scope["headers"] if k.lower() == b"content-length"), None)
        too_large = (
            declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes
        )
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            more = message.get("more_body", False)
            if size > self.max_body_bytes:
                too_large = True
            if too_large:
                chunks.clear()
                if size > _DRAIN_LIMIT_BYTES:
                    raise BodyTooLarge(drained=False)
            else:
                chunks.append(chunk)
        if too_large:
            raise BodyTooLarge(drained=True)
        return b"".join(chunks)


@cache
def _takes_image(target: str | None) -> bool:
    """Whether the targeted operation carries a blob (an image) and so runs the vision models."""
    try:
        shape = operation_model(operation_from_target(target)).input_shape
    except ProtocolError:
        return False
    return shape is not None and _has_blob(shape)


def _has_blob(shape: Shape) -> bool:
    kind = shape.type_name
    if kind == "blob":
        return True
    if kind == "structure":
        return any(_has_blob(member) for member in shape.members.values())
    if kind == "list":
        return _has_blob(shape.member)
    return kind == "map" and _has_blob(shape.value)


async def _send_error(
    send: Send, request_id: str, status: int, code: str, message: str, *, close: bool = False
) -> None:
    await _send(send, request_id, status, encode_error(code, message), code, close=close)


async def _send(
    send: Send,
    request_id: str,
    status: int,
    payload: bytes,
    error_code: str | None,
    content_type: str = CONTENT_TYPE,
    *,
    close: bool = False,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(payload)).encode()),
        (b"x-amzn-requestid", request_id.encode()),
    ]
    if error_code:
        headers.append((b"x-amzn-errortype", error_code.encode()))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
