"""Console sessions that live in their cookie, not in a process, and what they keep in the store.

A cookie is base64url JSON of the access key id, the region, a random session id, when it was
issued and when it lapses, then an HMAC-SHA256 over it and the key's secret. The signing key is
derived from the store's secret (:class:`SessionStore`), so every process that shares the store
(``--workers N``, several machines on one PostgreSQL) accepts the cookies of the others and a
restart signs nobody out; the secret in the MAC means a key removed from the configuration, or
given a new secret, ends its sessions. The CSRF token is an HMAC of the session id, so any
process can check it too. Signing out is the one thing written: the session id, in the store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace

from facesearch.server.auth import AccessKey
from facesearch.store import Store

# A session unused for this long is gone; using it pushes the limit back.
IDLE_SECONDS = 12 * 3600
# The cookie is re-issued when that pushes its limit back this much, not on every call.
REFRESH_SECONDS = 5 * 60
# However much it is used, a session ends this long after signing in.
MAX_LIFETIME_SECONDS = 7 * 24 * 3600
# What the signing key is derived for: any other use of the store's secret gets another key.
KEY_PURPOSE = "facesearch console session"
# Ours are about 200 characters; the cap also keeps json.loads off deeply nested junk.
_MAX_COOKIE_CHARS = 800


@dataclass(frozen=True)
class Session:
    """One signed-in browser, as its cookie says: whose key, which region, which session, when
    it was issued and when it lapses (Unix seconds)."""

    access_key_id: str
    region: str
    session_id: str
    issued: int
    expires: int


class SessionStore:
    """What the console keeps in the facesearch store, shared by every process on it: the key
    that signs the cookies and the sessions signed out. Its calls block (the store's do)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def signing_key(self) -> bytes:
        """The cookies' signing key: derived from the store's secret, so the same in every
        process on the store and across restarts, and unlike any other key made from it."""
        return hmac.new(self._store.secret(), KEY_PURPOSE.encode(), hashlib.sha256).digest()

    def revoke(self, session_id: str, expires_at: float) -> None:
        """Refuse a session from now on, in every process, until ``expires_at`` (Unix time)."""
        self._store.revoke_session(session_id, expires_at)

    def revoked(self, session_id: str) -> bool:
        """Whether a session was signed out (by any process)."""
        return self._store.session_revoked(session_id)


class Sessions:
    """Makes, signs and reads session cookies and their CSRF tokens with one signing key;
    ``clock`` gives Unix time."""

    def __init__(self, signing_key: bytes, clock: Callable[[], float]) -> None:
        self._key = signing_key
        self._clock = clock

    def start(self, key: AccessKey, region: str) -> Session:
        """A new session for ``key``, lapsing after ``IDLE_SECONDS`` unused."""
        now = int(self._clock())
        return Session(
            key.access_key_id, region, secrets.token_urlsafe(16), now, now + IDLE_SECONDS
        )

    def cookie(self, session: Session, key: AccessKey) -> str:
        """The cookie value that carries ``session``, signed for ``key``."""
        fields = {
            "k": session.access_key_id,
            "r": session.region,
            "s": session.session_id,
            "i": session.issued,
            "e": session.expires,
        }
        payload = _b64(json.dumps(fields, separators=(",", ":")).encode())
        return f"{payload}.{_b64(self._mac(payload, key))}"

    def read(self, cookie: str | None, keys: Callable[[str], AccessKey | None]) -> Session | None:
        """The session of a cookie value: None unless it is ours, unaltered, unexpired and of a
        key ``keys`` still knows with the same secret (sign-outs are the caller's to check)."""
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
        key = keys(session.access_key_id)
        if key is None or not hmac.compare_digest(given, self._mac(payload, key)):
            return None
        return session if session.expires > self._clock() else None

    def extended(self, session: Session) -> Session | None:
        """The session with its idle limit pushed back, when that is worth a new cookie."""
        now = int(self._clock())
        expires = min(now + IDLE_SECONDS, session.issued + MAX_LIFETIME_SECONDS)
        if expires - session.expires < REFRESH_SECONDS:
            return None
        return replace(session, expires=expires)

    def csrf_token(self, session: Session) -> str:
        """The token every POST of ``session`` must carry (only the signing key makes it)."""
        digest = hmac.new(self._key, b"csrf\0" + session.session_id.encode(), hashlib.sha256)
        return _b64(digest.digest())

    def check_csrf(self, session: Session, token: str) -> bool:
        """Whether ``token`` is ``session``'s CSRF token (in constant time)."""
        return hmac.compare_digest(token.encode(), self.csrf_token(session).encode())

    def _mac(self, payload: str, key: AccessKey) -> bytes:
        message = payload.encode() + b"\0" + key.secret_access_key.encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    # Strict: no stray characters a lenient decoder would skip.
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
