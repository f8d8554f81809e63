"""AWS Signature Version 4 checking, with botocore's own signer, against configured keys.

The server recomputes each request's signature with :class:`botocore.auth.SigV4Auth` over the
request as received (the headers the client says it signed, the raw path and query, the body) and
compares it in constant time. Each access key belongs to an account id; the service keeps one
account's collections invisible to another's.

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
import hmac
import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from facesearch.errors import RekognitionError

SERVICE = "rekognition"
DEFAULT_ACCOUNT_ID = "000000000000"
# Used only when no key is configured and the server listens on loopback (documented, not secret).
LOCAL_ACCESS_KEY_ID = "facesearch-local"
LOCAL_SECRET_ACCESS_KEY = "facesearch-local-secret"
# AWS rejects requests signed more than 15 minutes away from its clock.
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)

_ALGORITHM = "AWS4-HMAC-SHA256"
_ACCOUNT_ID = re.compile(r"\d{12}")
_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)
_INVALID_TOKEN = "The security token included in the request is invalid."


class AuthError(Exception):
    """An authentication failure, with the code AWS's front end returns (all HTTP 400)."""

    http_status = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


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
        if not _ACCOUNT_ID.fullmatch(self.account_id):
            raise ValueError(
                f"account id {self.account_id!r} of {self.access_key_id} is not 12 digits"
            )
        from facesearch.contract import OPERATIONS

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


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


class _ReceivedSigV4(SigV4Auth):
    """botocore's signer, told which headers were signed instead of choosing them itself."""

    def __init__(self, credentials: Credentials, region: str, signed: HTTPHeaders) -> None:
        super().__init__(credentials, SERVICE, region)
        self._signed = signed

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        return self._signed


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
        received = HTTPHeaders()
        for name, value in headers:
            received.add_header(name.lower(), value)
        authorization = received.get("authorization")
        if not authorization:
            raise AuthError("MissingAuthenticationTokenException", "Missing Authentication Token")
        fields = _parse_authorization(authorization)
        key_id, scope_date, region, service, terminator = _parse_credential(fields["Credential"])
        if service != SERVICE or terminator != "aws4_request":
            raise AuthError(
                "InvalidSignatureException",
                f"Credential should be scoped to correct service: '{SERVICE}'.",
            )
        key = self._keys.get(key_id)
        if key is None or "x-amz-security-token" in received:
            # No session tokens are issued here, so a request carrying one cannot be valid.
            raise AuthError("UnrecognizedClientException", _INVALID_TOKEN)

        signed_names = fields["SignedHeaders"].split(";")
        timestamp = self._check_date(received, signed_names, scope_date)
        signed = HTTPHeaders()
        for name in signed_names:
            for value in received.get_all(name) or ():
                signed.add_header(name, value)
            if name not in received:
                raise AuthError("InvalidSignatureException", _SIGNATURE_MISMATCH)

        body_hash = sha256(body).hexdigest()
        # The signer trusts X-Amz-Content-SHA256 when present, so it must be the body's true hash.
        if received.get("x-amz-content-sha256", body_hash) != body_hash:
            raise AuthError(
                "InvalidSignatureException",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )
        request = AWSRequest(
            method=method, url=f"http://server{raw_path}{'?' if query else ''}{query}"
        )
        request.context["timestamp"] = timestamp
        # The signer takes the payload hash from this header when present: the hash just computed
        # (the header itself, if signed, is among the signed headers above).
        request.headers["X-Amz-Content-SHA256"] = body_hash
        signer = _ReceivedSigV4(
            Credentials(key.access_key_id, key.secret_access_key), region, signed
        )
        expected = signer.signature(
            signer.string_to_sign(request, signer.canonical_request(request)), request
        )
        if not hmac.compare_digest(expected, fields["Signature"]):
            raise AuthError("InvalidSignatureException", _SIGNATURE_MISMATCH)
        return Caller(key, region)

    def _check_date(self, received: HTTPHeaders, signed_names: list[str], scope_date: str) -> str:
        """The request's SigV4 timestamp, checked against the scope and the clock."""
        if "x-amz-date" in received:
            header = "x-amz-date"
            try:
                when = dt.datetime.strptime(received["x-amz-date"], SIGV4_TIMESTAMP)
            except ValueError:
                raise AuthError(
                    "IncompleteSignatureException", "Invalid X-Amz-Date header."
                ) from None
            when = when.replace(tzinfo=dt.UTC)
        elif "date" in received:
            header = "date"
            try:
                when = parsedate_to_datetime(received["date"]).astimezone(dt.UTC)
            except (TypeError, ValueError):
                raise AuthError("IncompleteSignatureException", "Invalid Date header.") from None
        else:
            raise AuthError(
                "IncompleteSignatureException",
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
                "header.",
            )
        if header not in signed_names:
            # An unsigned date could be replayed with a fresh value.
            raise AuthError("InvalidSignatureException", f"The '{header}' header must be signed.")
        timestamp = when.strftime(SIGV4_TIMESTAMP)
        if timestamp[:8] != scope_date:
            raise AuthError(
                "InvalidSignatureException",
                f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
                f"from HTTP: '{scope_date}' != '{timestamp[:8]}', from '{timestamp}'.",
            )
        now = self._clock()
        if when < now - MAX_CLOCK_SKEW:
            raise AuthError(
                "InvalidSignatureException",
                f"Signature expired: {timestamp} is now earlier than "
                f"{(now - MAX_CLOCK_SKEW).strftime(SIGV4_TIMESTAMP)} "
                f"({now.strftime(SIGV4_TIMESTAMP)} - 15 min.)",
            )
        if when > now + MAX_CLOCK_SKEW:
            raise AuthError(
                "InvalidSignatureException",
                f"Signature not yet current: {timestamp} is still later than "
                f"{(now + MAX_CLOCK_SKEW).strftime(SIGV4_TIMESTAMP)} "
                f"({now.strftime(SIGV4_TIMESTAMP)} + 15 min.)",
            )
        return timestamp


def _parse_authorization(value: str) -> dict[str, str]:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != _ALGORITHM:
        raise AuthError(
            "IncompleteSignatureException",
            f"Unsupported authorization algorithm; use {_ALGORITHM}.",
        )
    fields = {}
    for part in rest.split(","):
        name, _, field = part.strip().partition("=")
        fields[name] = field
    for required in ("Credential", "SignedHeaders", "Signature"):
        if not fields.get(required):
            raise AuthError(
                "IncompleteSignatureException",
                f"Authorization header requires '{required}' parameter.",
            )
    return fields


def _parse_credential(credential: str) -> tuple[str, str, str, str, str]:
    parts = credential.split("/")
    if len(parts) != 5 or not all(parts):
        raise AuthError(
            "IncompleteSignatureException",
            "Credential must have exactly 5 slash-delimited elements, "
            "e.g. keyid/date/region/service/term.",
        )
    return parts[0], parts[1], parts[2], parts[3], parts[4]
