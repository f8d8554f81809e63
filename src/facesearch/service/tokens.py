"""Opaque pagination tokens: signed, bound to the caller, the operation and the collection.

A token is base64(JSON payload + HMAC). A forged, altered or foreign token, or one for a collection
that was deleted (and maybe re-created) since, gives InvalidPaginationTokenException.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from facesearch.errors import RekognitionError

_MAC_BYTES = 16


def _invalid() -> RekognitionError:
    return RekognitionError(
        "InvalidPaginationTokenException", "Invalid pagination token: it is malformed or expired."
    )


class TokenCodec:
    """Makes and reads pagination tokens with a per-store secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, payload: bytes, scope: str) -> bytes:
        return hmac.new(self._secret, scope.encode() + b"\0" + payload, hashlib.sha256).digest()[
            :_MAC_BYTES
        ]

    def encode(self, scope: str, position: Any) -> str:
        """A token for ``position`` valid only in ``scope`` (account, operation, collection)."""
        payload = json.dumps(position, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(self._mac(payload, scope) + payload).decode()

    def decode(self, scope: str, token: str) -> Any:
        """The position inside a token made by :meth:`encode` for the same scope."""
        try:
            raw = base64.urlsafe_b64decode(token.encode())
        except (ValueError, UnicodeEncodeError):
            raise _invalid() from None
        mac, payload = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
        if len(mac) < _MAC_BYTES or not hmac.compare_digest(mac, self._mac(payload, scope)):
            raise _invalid()
        return json.loads(payload)
