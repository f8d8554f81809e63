"""The server's keys: who may sign requests, for which account, with what scope and rate.

:class:`Verifier` checks each request's SigV4 signature (:mod:`facesearch.wire.sigv4`) against
the configured keys. Each access key belongs to an account id; the service keeps one account's
collections invisible to another's.

Keys come from ``FACESEARCH_ACCESS_KEY_ID`` / ``FACESEARCH_SECRET_ACCESS_KEY`` (account
``FACESEARCH_ACCOUNT_ID``, default ``000000000000``) and from a credentials file in the INI form of
``~/.aws/credentials``, one section per key::

    [alice]
    aws_access_key_id = AKIDALICE
    aws_secret_access_key = alice-secret
    account_id = 111111111111

A key may be scoped and rate-limited, as an IAM policy and a service quota would::

    [door-camera]
    aws_access_key_id = AKIDDOOR
    aws_secret_access_key = door-secret
    operations = SearchUsersByImage, SearchFacesByImage
    collection_ids = door-*, staff
    max_tps = 5

``operations`` lists the operations the key may call, ``collection_ids`` the collections it may
name (shell-style patterns); anything else gets AccessDeniedException. ``max_tps`` is its
request rate (else the server's ``--max-tps``).
"""

from __future__ import annotations

import configparser
import datetime as dt
import fnmatch
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facesearch.contract import OPERATIONS
from facesearch.defaults import ACCOUNT_ID, DEFAULT_ACCOUNT_ID
from facesearch.errors import RekognitionError
from facesearch.wire import sigv4
from facesearch.wire.keys import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY
from facesearch.wire.sigv4 import AuthError

_INVALID_TOKEN = "The security token included in the request is invalid."


@dataclass(frozen=True)
class AccessKey:
    """One configured key pair and the account it acts for."""

    access_key_id: str
    secret_access_key: str
    account_id: str = DEFAULT_ACCOUNT_ID
    # None: every operation, every collection, the server's rate.
    operations: frozenset[str] | None = None
    collection_ids: tuple[str, ...] | None = None
    max_tps: float | None = None

    def __post_init__(self) -> None:
        if not self.access_key_id or not self.secret_access_key:
            raise ValueError("an access key needs both an id and a secret")
        if not ACCOUNT_ID.fullmatch(self.account_id):
            raise ValueError(
                f"account id {self.account_id!r} of {self.access_key_id} is not 12 digits"
            )
        unknown = sorted((self.operations or frozenset()) - set(OPERATIONS))
        if unknown:
            raise ValueError(f"{self.access_key_id}: unknown operations {', '.join(unknown)}")
        if self.max_tps is not None and not self.max_tps > 0:
            raise ValueError(f"{self.access_key_id}: max_tps must be a positive number")

    def authorize(self, operation: str, params: Mapping[str, object], resource: str) -> None:
        """Raise AccessDeniedException unless this key may call ``operation`` with ``params``
        (``resource`` is the ARN named in the message, as IAM's denials do)."""
        collection_id = params.get("CollectionId")
        allowed = (self.operations is None or operation in self.operations) and (
            self.collection_ids is None
            or not isinstance(collection_id, str)
            or any(fnmatch.fnmatchcase(collection_id, p) for p in self.collection_ids)
        )
        if not allowed:
            raise RekognitionError(
                "AccessDeniedException",
                f"User: {self.access_key_id} is not authorized to perform: "
                f"rekognition:{operation} on resource: {resource}",
            )

    def __repr__(self) -> str:
        # Keeps the secret out of logs and tracebacks.
        return f"AccessKey({self.access_key_id!r}, account_id={self.account_id!r})"


def local_key() -> AccessKey:
    """The documented local-only key used on loopback when nothing is configured."""
    return AccessKey(LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, DEFAULT_ACCOUNT_ID)


def load_keys(
    credentials_file: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, AccessKey]:
    """The configured keys by access key id: from the environment and the credentials file.

    ``credentials_file`` defaults to ``FACESEARCH_CREDENTIALS_FILE``. Raises ValueError on a
    half-configured environment, a malformed file or an access key id given twice.
    """
    env = os.environ if environ is None else environ
    keys: list[AccessKey] = []
    key_id, secret = env.get("FACESEARCH_ACCESS_KEY_ID"), env.get("FACESEARCH_SECRET_ACCESS_KEY")
    if key_id or secret:
        if not (key_id and secret):
            raise ValueError("set both FACESEARCH_ACCESS_KEY_ID and FACESEARCH_SECRET_ACCESS_KEY")
        keys.append(AccessKey(key_id, secret, env.get("FACESEARCH_ACCOUNT_ID", DEFAULT_ACCOUNT_ID)))
    path = credentials_file or env.get("FACESEARCH_CREDENTIALS_FILE")
    if path:
        keys.extend(_read_credentials_file(Path(path)))
    by_id: dict[str, AccessKey] = {}
    for key in keys:
        if key.access_key_id in by_id:
            raise ValueError(f"access key id {key.access_key_id} is configured twice")
        by_id[key.access_key_id] = key
    return by_id


def _read_credentials_file(path: Path) -> Iterable[AccessKey]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error) as error:
        raise ValueError(f"cannot read credentials file {path}: {error}") from None
    for name in parser.sections():
        section = parser[name]
        try:
            yield AccessKey(
                section["aws_access_key_id"],
                section["aws_secret_access_key"],
                section.get("account_id", DEFAULT_ACCOUNT_ID),
                operations=_optional(frozenset, _names(section.get("operations"))),
                collection_ids=_optional(tuple, _names(section.get("collection_ids"))),
                max_tps=float(section["max_tps"]) if "max_tps" in section else None,
            )
        except KeyError as missing:
            raise ValueError(f"{path} [{name}] lacks {missing}") from None
        except ValueError as error:
            raise ValueError(f"{path} [{name}]: {error}") from None


def _names(value: str | None) -> list[str] | None:
    """A comma-separated list from the credentials file, or None when absent."""
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


def _optional(kind: Callable[[list[str]], Any], names: list[str] | None) -> Any:
    return None if names is None else kind(names)


@dataclass(frozen=True)
class Caller:
    """A verified request's signer and the region its signature is scoped to (ARNs carry it)."""

    key: AccessKey
    region: str


class Verifier:
    """Checks the SigV4 signature of received requests against a set of keys."""

    def __init__(
        self,
        keys: Mapping[str, AccessKey],
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._keys = dict(keys)
        self._clock = clock

    def key(self, access_key_id: str) -> AccessKey | None:
        """The configured key with this id, if any."""
        return self._keys.get(access_key_id)

    def verify(
        self,
        method: str,
        raw_path: str,
        query: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
    ) -> Caller:
        """Who signed this request, and for which region; raises :class:`AuthError` otherwise.

        ``headers`` are (name, value) pairs as received, repeated names included.
        """
        received = sigv4.received_headers(headers)
        authorization = sigv4.parse_authorization(received)
        key = self._keys.get(authorization.access_key_id)
        if key is None or "x-amz-security-token" in received:
            # No session tokens are issued here, so a request carrying one cannot be valid.
            raise AuthError("UnrecognizedClientException", _INVALID_TOKEN)
        timestamp = sigv4.check_date(received, authorization, self._clock)
        sigv4.check_signature(
            authorization, key.secret_access_key, timestamp, method, raw_path, query, received, body
        )
        return Caller(key, authorization.region)
