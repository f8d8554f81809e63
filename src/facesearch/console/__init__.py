"""The web console at ``/console``: static files, sign-in sessions and a JSON 1.1 pass-through.

The browser signs in with an access key and its secret; the server checks them against the
configured keys and answers with a session cookie (HttpOnly, SameSite=Strict, Secure under TLS)
and a CSRF token that every later POST must echo in ``X-CSRF-Token``. ``POST /console/api`` takes
the same ``X-Amz-Target`` header and JSON body as ``POST /`` and runs them through
:meth:`App.call`, so the console gets the API's validation, errors and account isolation; only the
authentication differs (the session instead of SigV4).

The session lives in its cookie, not in a process: base64url JSON of the access key id, the
region, a random session id, when it was issued and when it lapses, then an HMAC-SHA256 over it
and the key's secret. The signing key is derived from the store's secret, so every process that
shares the store (``--workers N``, several machines on one PostgreSQL) accepts the cookies of the
others and a restart signs nobody out; the secret in the MAC means a key removed from the
configuration, or given a new secret, ends its sessions. The CSRF token is an HMAC of the session
id, so any process can check it too. A session lapses after ``IDLE_SECONDS`` unused (each use past
``REFRESH_SECONDS`` re-issues the cookie with the limit pushed back) and ``MAX_LIFETIME_SECONDS``
after signing in however much it is used. Signing out records the session id in the store, where
every process looks for it on every call, until the cookie would have lapsed anyway.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import mimetypes
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from facesearch.server.auth import AccessKey, AuthError, Caller
from facesearch.store import StoreUnavailableError

if TYPE_CHECKING:
    from facesearch.server.app import App

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]
Headers = list[tuple[bytes, bytes]]

COOKIE = "facesearch_console"
# A session unused for this long is gone; using it pushes the limit back.
IDLE_SECONDS = 12 * 3600
# The cookie is re-issued when that pushes its limit back this much, not on every call.
REFRESH_SECONDS = 5 * 60
# However much it is used, a session ends this long after signing in.
MAX_LIFETIME_SECONDS = 7 * 24 * 3600
STATIC = Path(__file__).parent / "static"

# What the signing key is derived for: any other use of the store's secret gets another key.
_KEY_PURPOSE = "facesearch console session"
# Ours are about 200 characters; the cap also keeps json.loads off deeply nested junk.
_MAX_COOKIE_CHARS = 800
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


@dataclass(frozen=True)
class Session:
    """One signed-in browser, as its cookie says: whose key, which region, which session, when
    it was issued and when it lapses (Unix seconds)."""

    access_key_id: str
    region: str
    session_id: str
    issued: int
    expires: int


@dataclass(frozen=True)
class _File:
    body: bytes
    content_type: str
    etag: str


class Console:
    """The ASGI handler of ``/console`` and everything under it, for one :class:`App`.

    ``clock`` gives Unix time: the cookies it signs are read by other processes and after a
    restart.
    """

    def __init__(self, app: App, clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self._clock = clock
        self._key: bytes | None = None
        self._files = _load_static(STATIC)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        if path == "/console":
            # The page's relative URLs (app.js, style.css) need the trailing slash.
            await _respond(send, 308, b"", "text/plain", [(b"location", b"/console/")])
            return
        name = path.removeprefix("/console/")
        if name == "api" or name.startswith("api/"):
            try:
                await self._api(scope, receive, send, name, method)
            except StoreUnavailableError:
                # The signing key and the sign-outs are in the store; nothing was written.
                await _error(send, 500, "InternalServerError", "The store is unavailable.")
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
        cookie = _cookie(scope, COOKIE)
        if name == "api/session" and method == "GET":
            session = await self._session(cookie)
            if session is None:
                await _error(send, 403, "MissingAuthenticationTokenException", "Not signed in.")
            else:
                await _json(send, 200, self._describe(session), self._refresh(scope, session))
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
        session = await self._session(cookie)
        if session is None:
            await _error(send, 403, "MissingAuthenticationTokenException", "Not signed in.")
            return
        if not hmac.compare_digest(
            _header(scope, b"x-csrf-token").encode(), self._csrf_token(session).encode()
        ):
            await _error(send, 403, "AccessDeniedException", "Missing or wrong CSRF token.")
            return
        if name == "api/sign-out":
            # Every copy of the cookie, this one and any other, is refused from now on.
            await asyncio.to_thread(
                self.app.service.revoke_session,
                session.session_id,
                session.issued + MAX_LIFETIME_SECONDS,
            )
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
        headers = [(b"x-amzn-requestid", request_id.encode()), *self._refresh(scope, session)]
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
        await self._load_key()
        now = int(self._clock())
        session = Session(
            key.access_key_id, region, secrets.token_urlsafe(16), now, now + IDLE_SECONDS
        )
        cookie = _set_cookie(scope, self._sign(session, key), IDLE_SECONDS)
        await _json(send, 200, self._describe(session), [(b"set-cookie", cookie)])

    async def _session(self, cookie: str | None) -> Session | None:
        """The session of a cookie value: None unless it is ours, unaltered, unexpired, of a key
        still configured with the same secret, and not signed out."""
        if not cookie or len(cookie) > _MAX_COOKIE_CHARS:
            return None
        payload, _, mac = cookie.partition(".")
        try:
            fields = json.loads(_unb64(payload))
            session = Session(
                str(fields["k"]),
                str(fields["r"]),
                str(fields["s"]),
                int(fields["i"]),
                int(fields["e"]),
            )
            given = _unb64(mac)
        except (ValueError, TypeError, KeyError, OverflowError):
            return None
        key = self.app.verifier.key(session.access_key_id)
        if key is None:
            return None
        await self._load_key()
        if not hmac.compare_digest(given, self._mac(payload, key)):
            return None
        if session.expires <= self._clock():
            return None
        if await asyncio.to_thread(self.app.service.session_revoked, session.session_id):
            return None
        return session

    def _refresh(self, scope: Scope, session: Session) -> Headers:
        """A Set-Cookie header that pushes the session's idle limit back, when that is worth it."""
        now = int(self._clock())
        expires = min(now + IDLE_SECONDS, session.issued + MAX_LIFETIME_SECONDS)
        key = self.app.verifier.key(session.access_key_id)
        if key is None or expires - session.expires < REFRESH_SECONDS:
            return []
        value = self._sign(replace(session, expires=expires), key)
        return [(b"set-cookie", _set_cookie(scope, value, expires - now))]

    async def _load_key(self) -> None:
        """Fetch the signing key from the store once (a blocking call: on a thread)."""
        if self._key is None:
            self._key = await asyncio.to_thread(self.app.service.derived_key, _KEY_PURPOSE)

    def _mac(self, payload: str, key: AccessKey) -> bytes:
        assert self._key is not None, "_load_key first"
        message = payload.encode() + b"\0" + key.secret_access_key.encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def _sign(self, session: Session, key: AccessKey) -> str:
        fields = {
            "k": session.access_key_id,
            "r": session.region,
            "s": session.session_id,
            "i": session.issued,
            "e": session.expires,
        }
        payload = _b64(json.dumps(fields, separators=(",", ":")).encode())
        return f"{payload}.{_b64(self._mac(payload, key))}"

    def _csrf_token(self, session: Session) -> str:
        # Only a process that holds the signing key can make it from the session id.
        assert self._key is not None, "_load_key first"
        digest = hmac.new(self._key, b"csrf\0" + session.session_id.encode(), hashlib.sha256)
        return _b64(digest.digest())

    def _describe(self, session: Session) -> dict[str, str]:
        key = self.app.verifier.key(session.access_key_id)
        return {
            "AccessKeyId": session.access_key_id,
            "AccountId": key.account_id if key else "",
            "Region": session.region,
            "CsrfToken": self._csrf_token(session),
        }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    # Strict: no stray characters a lenient decoder would skip.
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


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


async def _json(send: Send, status: int, document: Any, headers: Headers | None = None) -> None:
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
    headers: Headers | None = None,
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
