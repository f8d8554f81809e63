"""The web console at ``/console``: static files, sign-in sessions and a JSON 1.1 pass-through.

The browser signs in with an access key and its secret; the server checks them against the
configured keys and answers with a session cookie (HttpOnly, SameSite=Strict, Secure under TLS)
and a CSRF token that every later POST must echo in ``X-CSRF-Token``. ``POST /console/api`` takes
the same ``X-Amz-Target`` header and JSON body as ``POST /`` and runs them through the server's
``call``, so the console gets the API's validation, errors and account isolation; only the
authentication differs (the session instead of SigV4). All the console needs of the server is
:class:`Host`; all it keeps is in its :class:`SessionStore`. ``GET /console/api/info`` tells the
page, before signing in, what it cannot know itself (info.py): the model's formats and the
service's defaults, and the local key when that is the one key the server takes.

The session lives in its cookie (sessions.py), so every process sharing the store accepts it. A
session lapses after ``IDLE_SECONDS`` unused (each use past ``REFRESH_SECONDS`` re-issues the
cookie with the limit pushed back) and ``MAX_LIFETIME_SECONDS`` after signing in however much it
is used. Signing out records the session id in the store, where every process looks for it on
every call, until the cookie would have lapsed anyway.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import mimetypes
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from facesearch.defaults import DEFAULT_REGION, REGION_NAME
from facesearch.server.asgi import BodyRefused, Outcome, Receive, Scope, Send
from facesearch.server.auth import AccessKey, Caller
from facesearch.server.console.info import console_info
from facesearch.server.console.responses import (
    COOKIE,
    Headers,
    header,
    respond,
    same_origin,
    send_error,
    send_json,
    session_cookie,
    set_cookie,
)
from facesearch.server.console.sessions import (
    IDLE_SECONDS,
    MAX_LIFETIME_SECONDS,
    REFRESH_SECONDS,
    Session,
    Sessions,
    SessionStore,
)
from facesearch.store import StoreUnavailableError
from facesearch.wire.sigv4 import AuthError

__all__ = [
    "COOKIE",
    "IDLE_SECONDS",
    "MAX_LIFETIME_SECONDS",
    "REFRESH_SECONDS",
    "Console",
    "Host",
    "SessionStore",
]

STATIC = Path(__file__).parent / "static"

_INVALID_TOKEN = "The security token included in the request is invalid."
# Signing in is a form, not a signed request: say which of its fields can be wrong (not which one
# is, which would tell a guesser whether the key id exists).
_WRONG_KEY = "The access key ID or the secret access key is wrong."


class Host(Protocol):
    """What the console needs of the server it is part of (:class:`facesearch.server.app.App`)."""

    def access_key(self, access_key_id: str) -> AccessKey | None:
        """The configured key of that id, if any (asked at every use: keys can be removed)."""

    async def read_body(self, scope: Scope, receive: Receive) -> bytes:
        """The request body within the server's limits; :class:`BodyRefused` otherwise."""

    async def call(
        self, request_id: str, authenticate: Callable[[], Caller], target: str | None, body: bytes
    ) -> Outcome:
        """One JSON 1.1 request as ``POST /`` runs it, for the caller ``authenticate`` names."""


@dataclass(frozen=True)
class _File:
    body: bytes
    content_type: str
    etag: str


class Console:
    """The ASGI handler of ``/console`` and everything under it, in ``host`` and over ``store``.

    ``clock`` gives Unix time: the cookies it signs are read by other processes and after a
    restart.
    """

    def __init__(
        self, host: Host, store: SessionStore, clock: Callable[[], float] = time.time
    ) -> None:
        self._host = host
        self._store = store
        self._clock = clock
        self._sessions: Sessions | None = None
        self._files = _load_static(STATIC)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        if path == "/console":
            # The page's relative URLs (app.js, style.css) need the trailing slash.
            await respond(send, 308, b"", "text/plain", [(b"location", b"/console/")])
            return
        name = path.removeprefix("/console/")
        if name == "api" or name.startswith("api/"):
            try:
                await self._api(scope, receive, send, name, method)
            except StoreUnavailableError:
                # The signing key and the sign-outs are in the store; nothing was written.
                await send_error(send, 500, "InternalServerError", "The store is unavailable.")
        elif method in ("GET", "HEAD"):
            # uvicorn leaves out the body of a HEAD answer itself.
            await self._static(scope, send, name or "index.html")
        else:
            await send_error(send, 405, "MethodNotAllowedException", "Method not allowed.")

    async def _static(self, scope: Scope, send: Send, name: str) -> None:
        file = self._files.get(name)
        if file is None:
            await send_error(send, 404, "ResourceNotFoundException", "No such console page.")
            return
        headers = [(b"etag", file.etag.encode()), (b"cache-control", b"no-cache")]
        if header(scope, b"if-none-match") == file.etag:
            await respond(send, 304, b"", file.content_type, headers)
            return
        await respond(send, 200, file.body, file.content_type, headers)

    async def _api(
        self, scope: Scope, receive: Receive, send: Send, name: str, method: str
    ) -> None:
        if name == "api/info" and method == "GET":
            await send_json(send, 200, console_info(self._host.access_key, scope.get("client")))
            return
        sessions = await self._load_sessions()
        cookie = session_cookie(scope)
        if name == "api/session" and method == "GET":
            session = await self._session(cookie)
            if session is None:
                await send_error(send, 403, "MissingAuthenticationTokenException", "Not signed in.")
            else:
                await send_json(send, 200, self._describe(session), self._refresh(scope, session))
            return
        if method != "POST" or name not in ("api", "api/session", "api/sign-out"):
            await send_error(send, 404, "UnknownOperationException", "No such console call.")
            return
        if not same_origin(scope):
            await send_error(send, 403, "AccessDeniedException", "Cross-origin request refused.")
            return
        try:
            body = await self._host.read_body(scope, receive)
        except BodyRefused as error:
            await send_error(send, error.status, error.code, error.message, close=error.close)
            return
        if name == "api/session":
            await self._sign_in(scope, send, body)
            return
        session = await self._session(cookie)
        if session is None:
            await send_error(send, 403, "MissingAuthenticationTokenException", "Not signed in.")
            return
        if not sessions.check_csrf(session, header(scope, b"x-csrf-token")):
            await send_error(send, 403, "AccessDeniedException", "Missing or wrong CSRF token.")
            return
        if name == "api/sign-out":
            # Every copy of the cookie, this one and any other, is refused from now on.
            await asyncio.to_thread(
                self._store.revoke, session.session_id, session.issued + MAX_LIFETIME_SECONDS
            )
            await send_json(send, 200, {}, set_cookie(scope, "", 0))
            return

        def authenticate() -> Caller:
            # Checked again at call time: a key removed from the configuration stops working.
            key = self._host.access_key(session.access_key_id)
            if key is None:
                raise AuthError("UnrecognizedClientException", _INVALID_TOKEN)
            return Caller(key, session.region)

        request_id = str(uuid.uuid4())
        target = header(scope, b"x-amz-target") or None
        status, payload, code, extra = await self._host.call(request_id, authenticate, target, body)
        headers = [
            (b"x-amzn-requestid", request_id.encode()),
            *extra,
            *self._refresh(scope, session),
        ]
        if code:
            headers.append((b"x-amzn-errortype", code.encode()))
        await respond(send, status, payload, "application/x-amz-json-1.1", headers)

    async def _sign_in(self, scope: Scope, send: Send, body: bytes) -> None:
        try:
            form = json.loads(body)
            key_id, secret = str(form["AccessKeyId"]), str(form["SecretAccessKey"])
            region = str(form.get("Region") or DEFAULT_REGION)
        except (ValueError, TypeError, KeyError, RecursionError):
            await send_error(
                send, 400, "SerializationException", "Expected AccessKeyId and SecretAccessKey."
            )
            return
        if not REGION_NAME.fullmatch(region):
            await send_error(send, 400, "InvalidParameterException", "Region is not a region name.")
            return
        key = self._host.access_key(key_id)
        # A digest of the wrong length costs the same time as a right one: compare digests.
        given = hashlib.sha256(secret.encode()).digest()
        expected = hashlib.sha256((key.secret_access_key if key else "").encode()).digest()
        if key is None or not hmac.compare_digest(given, expected):
            await send_error(send, 400, "UnrecognizedClientException", _WRONG_KEY)
            return
        sessions = await self._load_sessions()
        session = sessions.start(key, region)
        cookie = set_cookie(scope, sessions.cookie(session, key), IDLE_SECONDS)
        await send_json(send, 200, self._describe(session), cookie)

    async def _session(self, cookie: str | None) -> Session | None:
        """The cookie's session, unless it is not ours, altered, lapsed, of a key no longer
        configured with the same secret, or signed out."""
        sessions = await self._load_sessions()
        session = sessions.read(cookie, self._host.access_key)
        if session is None:
            return None
        if await asyncio.to_thread(self._store.revoked, session.session_id):
            return None
        return session

    def _refresh(self, scope: Scope, session: Session) -> Headers:
        """A Set-Cookie header that pushes the session's idle limit back, when that is worth it."""
        assert self._sessions is not None, "_load_sessions first"
        key = self._host.access_key(session.access_key_id)
        extended = self._sessions.extended(session)
        if key is None or extended is None:
            return []
        value = self._sessions.cookie(extended, key)
        return set_cookie(scope, value, extended.expires - int(self._clock()))

    async def _load_sessions(self) -> Sessions:
        """The sessions' signer, its key fetched from the store once (blocking: on a thread)."""
        if self._sessions is None:
            key = await asyncio.to_thread(self._store.signing_key)
            self._sessions = Sessions(key, self._clock)
        return self._sessions

    def _describe(self, session: Session) -> dict[str, str]:
        assert self._sessions is not None, "_load_sessions first"
        key = self._host.access_key(session.access_key_id)
        return {
            "AccessKeyId": session.access_key_id,
            "AccountId": key.account_id if key else "",
            "Region": session.region,
            "CsrfToken": self._sessions.csrf_token(session),
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
