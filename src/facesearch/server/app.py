"""The ASGI application: Rekognition's JSON 1.1 API over HTTP, in front of the service layer.

``POST /`` carries every operation (``X-Amz-Target`` names it); ``GET /health`` reports whether
the models and the store are ready, ``GET /metrics`` the server's figures, ``/console`` the web
console. Service calls are blocking, so they run on threads: operations that take an image
(CPU-heavy: detection and embedding) in their own lane, small requests first (lanes.py), bounded
in depth; the rest in a pool of their own, so IndexFaces calls never hold up a
DescribeCollection. Every call, from the API or the console, goes through :meth:`App.call`:
authentication, the key's rate and scope, the service, metrics and one access-log line.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from botocore.model import Shape

from facesearch.contract import operation_model
from facesearch.errors import RekognitionError
from facesearch.server import asgi
from facesearch.server.asgi import (
    MAX_BODY_BYTES,
    BodyRefused,
    Headers,
    Outcome,
    Receive,
    Scope,
    Send,
)
from facesearch.server.auth import AccessKey, Caller, Verifier
from facesearch.server.console import Console, SessionStore
from facesearch.server.lanes import ImageLane
from facesearch.server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from facesearch.server.metrics import Metrics
from facesearch.server.throttle import DEFAULT_MAX_QUEUE, RateLimiter
from facesearch.service.video import extension_headers
from facesearch.shapes import reaches
from facesearch.store import ReadReplicas
from facesearch.wire.json11 import (
    CONTENT_TYPE,
    ProtocolError,
    decode_request,
    encode_error,
    encode_response,
    operation_from_target,
)
from facesearch.wire.keys import is_loopback
from facesearch.wire.sigv4 import AuthError

log = logging.getLogger("facesearch.server")
# One JSON line per request; ``facesearch serve`` writes it to standard output.
access_log = logging.getLogger("facesearch.access")


class Service(Protocol):
    """What the server needs of the service layer (facesearch.service.RekognitionService)."""

    def call(
        self, operation: str, params: dict[str, Any], *, account_id: str, region: str | None
    ) -> dict[str, Any]: ...

    def health(self) -> dict[str, Any]: ...

    def collection_sizes(self) -> list[tuple[str, str, int, int]]: ...

    def read_replicas(self) -> ReadReplicas: ...

    def close(self) -> None: ...


@dataclass
class _Exchange:
    """What the access log and the metrics learn of one call as it runs."""

    operation: str = "-"
    access_key_id: str | None = None


class App:
    """The ASGI app. ``threads`` sizes each of the two thread pools; image operations beyond
    ``threads + max_queue`` at once are refused with ThrottlingException; ``max_tps`` is each
    access key's request rate unless the key sets its own (None: unlimited). ``/metrics``
    answers loopback clients only unless ``public_metrics``. ``/console`` is served with
    ``sessions``, where the console keeps its signing key and sign-outs, and 404 without."""

    def __init__(
        self,
        service: Service,
        verifier: Verifier,
        *,
        threads: int = 4,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_queue: int = DEFAULT_MAX_QUEUE,
        max_tps: float | None = None,
        public_metrics: bool = False,
        sessions: SessionStore | None = None,
    ) -> None:
        self.service = service
        self.public_metrics = public_metrics
        self.verifier = verifier
        self.max_body_bytes = max_body_bytes
        self._image_lane = ImageLane(threads)
        self._closed = False
        self._light_pool = ThreadPoolExecutor(threads, thread_name_prefix="facesearch-call")
        # Counted on the event loop's thread only: no lock needed.
        self._image_calls = 0
        self._image_capacity = threads + max_queue
        self.rates = RateLimiter(max_tps)
        self.metrics = Metrics(service.collection_sizes, lambda: self._image_calls)
        self.metrics.watch_store_replicas(service.read_replicas)
        self.console = Console(self, sessions) if sessions is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    def close(self) -> None:
        """Wait for running calls to finish, then close the service (once: a server that fails
        to start after its lifespan began closes the app from both sides)."""
        if self._closed:
            return
        self._closed = True
        self._image_lane.shutdown()
        self._light_pool.shutdown(wait=True)
        self.metrics.close()
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
        if path == "/metrics" and method in ("GET", "HEAD"):
            client = (scope.get("client") or ("",))[0]
            if not (self.public_metrics or is_loopback(client)):
                # Its labels name every account's collections: not for anyone who asks.
                await _send_error(
                    send, request_id, 403, "AccessDeniedException", "Metrics are for loopback."
                )
                return
            payload = await asyncio.get_running_loop().run_in_executor(
                self._light_pool, self.metrics.render
            )
            await _send(send, request_id, 200, payload, None, METRICS_CONTENT_TYPE)
            return
        if self.console is not None and (path == "/console" or path.startswith("/console/")):
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
        started = time.perf_counter()
        try:
            body = await self.read_body(scope, receive)
        except BodyRefused as error:
            await _send_error(
                send, request_id, error.status, error.code, error.message, close=error.close
            )
            _access_log(request_id, _Exchange(), error.status, error.code, started)
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
        status, payload, code, extra = outcome
        await _send(send, request_id, status, payload, code, extra=extra)

    async def call(
        self, request_id: str, authenticate: Callable[[], Caller], target: str | None, body: bytes
    ) -> Outcome:
        """Run one JSON 1.1 request in a worker thread: (status, body, error code or None).

        ``authenticate`` says who is calling (SigV4 for the API, the session for the console)
        and raises :class:`AuthError` otherwise; everything after it is the same for both.
        """
        started = time.perf_counter()
        exchange = _Exchange()
        if not _takes_image(target):
            outcome = await asyncio.get_running_loop().run_in_executor(
                self._light_pool, self._handle, request_id, exchange, authenticate, target, body
            )
        elif self._image_calls >= self._image_capacity:
            # Refused before any work: a flood of image calls never queues without bound.
            self.metrics.rejections.labels("queue_full").inc()
            exchange.operation = operation_from_target(target)
            error = RekognitionError(
                "ThrottlingException", "Slow down; sudden increase in rate of requests."
            )
            outcome = error.http_status, encode_error(error.code, error.message), error.code, []
        else:
            self._image_calls += 1
            try:
                outcome = await asyncio.wrap_future(
                    self._image_lane.submit(
                        len(body),
                        functools.partial(
                            self._handle, request_id, exchange, authenticate, target, body
                        ),
                    )
                )
            finally:
                self._image_calls -= 1
        status, _, code, _ = outcome
        if exchange.operation != "-":
            self.metrics.observe(exchange.operation, code, time.perf_counter() - started)
        _access_log(request_id, exchange, status, code, started)
        return outcome

    def _handle(
        self,
        request_id: str,
        exchange: _Exchange,
        authenticate: Callable[[], Caller],
        target: str | None,
        body: bytes,
    ) -> Outcome:
        try:
            caller = authenticate()
            key = caller.key
            exchange.access_key_id = key.access_key_id
            operation = operation_from_target(target)
            exchange.operation = operation
            try:
                self.rates.admit(key)
            except RekognitionError:
                self.metrics.rejections.labels("rate").inc()
                raise
            params = decode_request(operation, body)
            key.authorize(operation, params, _resource(caller, params))
            result = self.service.call(
                operation, params, account_id=key.account_id, region=caller.region
            )
            extra = [
                (name.encode(), value.encode()) for name, value in extension_headers(result).items()
            ]
            return 200, encode_response(operation, result), None, extra
        except (AuthError, ProtocolError, RekognitionError) as error:
            if error.http_status >= 500:
                log.warning("request %s: %s: %s", request_id, error.code, error.message)
            return error.http_status, encode_error(error.code, error.message), error.code, []
        except Exception:
            # The details stay in the server's log; the client learns only the request id.
            log.exception("request %s: unexpected error", request_id)
            return (
                500,
                encode_error("InternalServerError", "Internal server error."),
                "InternalServerError",
                [],
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
        """The request body within ``max_body_bytes`` and the time limits (asgi.read_body)."""
        return await asgi.read_body(scope, receive, self.max_body_bytes)

    def access_key(self, access_key_id: str) -> AccessKey | None:
        """The configured key of that id, if any."""
        return self.verifier.key(access_key_id)


def _resource(caller: Caller, params: dict[str, Any]) -> str:
    """The ARN an AccessDeniedException names: the collection, or ``*`` as IAM's is."""
    collection_id = params.get("CollectionId")
    if not isinstance(collection_id, str):
        return "*"
    return f"arn:aws:rekognition:{caller.region}:{caller.key.account_id}:collection/{collection_id}"


def _access_log(
    request_id: str, exchange: _Exchange, status: int, code: str | None, started: float
) -> None:
    """One JSON line per call: never a secret, a parameter or image data."""
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(
            json.dumps(
                {
                    "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
                    "request_id": request_id,
                    "access_key_id": exchange.access_key_id,
                    "operation": exchange.operation,
                    "status": status,
                    "error_code": code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                }
            )
        )


@cache
def _takes_image(target: str | None) -> bool:
    """Whether the targeted operation carries a blob (an image) and so runs the vision models."""
    try:
        shape = operation_model(operation_from_target(target)).input_shape
    except ProtocolError:
        return False
    return reaches(shape, _is_blob)


def _is_blob(shape: Shape) -> bool:
    return shape.type_name == "blob"


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
    extra: Headers | None = None,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(payload)).encode()),
        (b"x-amzn-requestid", request_id.encode()),
        *(extra or []),
    ]
    if error_code:
        headers.append((b"x-amzn-errortype", error_code.encode()))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
