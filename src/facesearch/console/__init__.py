"""The web console at ``/console``: static files, sign-in sessions and a JSON 1.1 pass-through.

The browser signs in with an access key and its secret; the server checks them against the
configured keys and answers with a session cookie (HttpOnly, SameSite=Strict, Secure under TLS)
and a CSRF token that every later POST must echo in ``X-CSRF-Token``. ``POST /console/api`` takes
the same ``X-Amz-Target`` header and JSON body as ``POST /`` and runs them through
:meth:`App.call`, so the console gets the API's validation, errors and account isolation; only the
authentication differs (the session instead of SigV4).

Sessions live in this process's memory: a restart signs everybody out, and a server of several
``--workers`` processes needs its console users pinned to one of them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import mimetypes
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from facesearch.server.auth import AuthError, Caller

if TYPE_CHECKING:
    from facesearch.server.app import App

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]

COOKIE = "facesearch_console"
# A session unused for this long is gone; using it pushes the limit back.
IDLE_SECONDS = 12 * 3600
# Past this many sessions the least recently used goes, so memory stays bounded.
MAX_SESSIONS = 10_000
STATIC = Path(__file__).parent / "static"

_INVALID_TOKEN = "The security token included in the request is invalid."
_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+){1,3}")
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


@dataclass
class Session:
    """One signed-in browser: whose key, which region, its CSRF token, when it lapses."""

    access_key_id: str
    region: str
    csrf_token: str
    expires: float


@dataclass(frozen=True)
class _File:
    body: bytes
    content_type: str
    etag: str


class Console:
    """The ASGI handler of ``/console`` and everything under it, for one :class:`App`."""

    def __init__(self, app: App, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._files = _load_static(STATIC)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        if path == "/console":
            # The page's relative URLs (app.js, style.css) need the trailing slash.
            await _respond(send, 308, b"", "text/plain", [(b"location", b"/console/")])
            return
        name = path.removeprefix("/console/")
        if name == "api" or name.startswith("api/"):
            await self._api(scope, receive, send, name, method)
        elif method in ("GET", "HEAD"):
            # uvicorn leaves out the body of a HEAD answer itself.
            await self._static(scope, send, name or "index.html")
        else:
            await _error(send, 405, "MethodNotAllowedException", "Method not allowed.")

    async def _static(self, scope: Scope, send: Send, name: str) -> None:
        file = self._files.get(name)
        if file is None:
            await _error(send, 404, "ResourceNotFoundException", "No such console page.")
            return
        headers = [(b"etag", file.etag.encode()), (b"cache-control", b"no-cache")]
        if _header(scope, b"if-none-match") == file.etag:
            await _respond(send, 304, b"", file.content_type, headers)
            return
        await _respond(send, 200, file.body, file.content_type, headers)

    async def _api(
        self, scope: Scope, receive: Receive, send: Send, name: str, method: str
    ) -> None:
        session_token = _cookie(scope, COOKIE)
        if name == "api/session" and method == "GET":
            session = self._session(session_token)
            if session is None:
                await _error(send, 403, "MissingAuthenticationTokenException", "Not signed in.")
            else:
                await _json(send, 200, self._describe(session))
            return
        if method != "POST" or name not in ("api", "api/session", "api/sign-out"):
            await _error(send, 404, "UnknownOperationException", "No such console call.")
            return
        if not _same_origin(scope):
            await _error(send, 403, "AccessDeniedException", "Cross-origin request refused.")
            return
        from facesearch.server.app import BodyRefused  # app.py imports this module

        try:
            body = await self.app.read_body(scope, receive)
        except BodyRefused as error:
            await _error(send, error.status, error.code, error.message, close=error.close)
            return
        if name == "api/session":
            await self._sign_in(scope, send, body)
            return
        session = self._session(session_token)
        if session is None:
            await _error(send, 403, "MissingAuthenticationTokenException", "Not signed in.")
            return
        if not hmac.compare_digest(
            _header(scope, b"x-csrf-token").encode(), session.csrf_token.encode()
        ):
            await _error(send, 403, "AccessDeniedException", "Missing or wrong CSRF token.")
            return
        if name == "api/sign-out":
            self._sessions.pop(session_token or "", None)
            await _json(send, 200, {}, [(b"set-cookie", _set_cookie(scope, "", 0))])
            return

        def authenticate() -> Caller:
            # Checked again at call time: a key removed from the configuration stops working.
            key = self.app.verifier.key(session.access_key_id)
            if key is None:
                raise AuthError("UnrecognizedClientException", _INVALID_TOKEN)
            return Caller(key, session.region)

        request_id = str(uuid.uuid4())
        target = _header(scope, b"x-amz-target") or None
        status, payload, code = await self.app.call(request_id, authenticate, target, body)
        headers = [(b"x-amzn-requestid", request_id.encode())]
        if code:
            headers.append((b"x-amzn-errortype", code.encode()))
        await _respond(send, status, payload, "application/x-amz-json-1.1", headers)

    async def _sign_in(self, scope: Scope, send: Send, body: bytes) -> None:
        try:
            form = json.loads(body)
            key_id, secret = str(form["AccessKeyId"]), str(form["SecretAccessKey"])
            region = str(form.get("Region") or "us-east-1")
        except (ValueError, TypeError, KeyError):
            await _error(
                send, 400, "SerializationException", "Expected AccessKeyId and SecretAccessKey."
            )
            return
        if not _REGION.fullmatch(region):
            await _error(send, 400, "InvalidParameterException", "Region is not a region name.")
            return
        key = self.app.verifier.key(key_id)
        # A digest of the wrong length costs the same time as a right one: compare digests.
        given = hashlib.sha256(secret.encode()).digest()
        expected = hashlib.sha256((key.secret_access_key if key else "").encode()).digest()
        if key is None or not hmac.compare_digest(given, expected):
            await _error(send, 400, "UnrecognizedClientException", _INVALID_TOKEN)
            return
        self._expire()
        token = secrets.token_urlsafe(32)
        session = Session(
            key.access_key_id, region, secrets.token_urlsafe(32), self._clock() + IDLE_SECONDS
        )
        self._sessions[token] = session
        cookie = _set_cookie(scope, token, IDLE_SECONDS)
        await _json(send, 200, self._describe(session), [(b"set-cookie", cookie)])

    def _session(self, token: str | None) -> Session | None:
        """The live session of a cookie value, its idle limit pushed back; None if there is none."""
        session = self._sessions.get(token or "")
        now = self._clock()
        if session is None or session.expires <= now:
            self._sessions.pop(token or "", None)
            return None
        session.expires = now + IDLE_SECONDS
        # Re-inserting keeps the dict in least-recently-used order for _expire.
        self._sessions[token or ""] = self._sessions.pop(token or "")
        return session

    def _expire(self) -> None:
        now = self._clock()
        for token in [t for t, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[token]
        while len(self._sessions) >= MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]

    def _describe(self, session: Session) -> dict[str, str]:
        key = self.app.verifier.key(session.access_key_id)
        return {
            "AccessKeyId": session.access_key_id,
            "AccountId": key.account_id if key else "",
            "Region": session.region,
            "CsrfToken": session.csrf_token,
        }


def _load_static(directory: Path) -> dict[str, _File]:
    """The console's files by name, read once: the set of servable paths is fixed at start."""
    files = {}
    for path in sorted(directory.iterdir()):
        if path.is_file():
            body = path.read_bytes()
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if kind.startswith("text/") or kind.endswith("javascript"):
                kind += "; charset=utf-8"
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            files[path.name] = _File(body, kind, etag)
    return files


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def _cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == b"cookie":
            for part in value.decode("latin-1").split(";"):
                cookie_name, _, cookie_value = part.strip().partition("=")
                if cookie_name == name and cookie_value:
                    return cookie_value
    return None


def _same_origin(scope: Scope) -> bool:
    """False for a request whose Origin names another host than the one it was sent to."""
    origin = _header(scope, b"origin")
    if not origin:
        return True
    return urlsplit(origin).netloc.lower() == _header(scope, b"host").lower()


def _set_cookie(scope: Scope, value: str, max_age: int) -> bytes:
    secure = "; Secure" if scope.get("scheme") == "https" else ""
    return (
        f"{COOKIE}={value}; Max-Age={max_age}; Path=/console; HttpOnly; SameSite=Strict{secure}"
    ).encode()


async def _json(
    send: Send, status: int, document: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await _respond(send, status, json.dumps(document).encode(), "application/json", headers)


async def _error(send: Send, status: int, code: str, message: str, *, close: bool = False) -> None:
    headers = [(b"x-amzn-errortype", code.encode())]
    if close:
        headers.append((b"connection", b"close"))
    body = json.dumps({"__type": code, "Message": message}).encode()
    await _respond(send, status, body, "application/x-amz-json-1.1", headers)


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
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
