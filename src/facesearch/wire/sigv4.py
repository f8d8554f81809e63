"""AWS Signature Version 4 checking of a received request, with botocore's own signer.

The signature is recomputed with :class:`botocore.auth.SigV4Auth` over the request as received
(the headers the client says it signed, the raw path and query, the body) and compared in
constant time. Which keys exist, and what they may do, is the server's business
(:mod:`facesearch.server.auth`): these functions take the secret of the key a request names.
Failures raise :class:`AuthError` with the code and message AWS's front end returns.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from hashlib import sha256

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from facesearch.model import SERVICE_NAME

# AWS rejects requests signed more than 15 minutes away from its clock.
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)

_ALGORITHM = "AWS4-HMAC-SHA256"
_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)


class AuthError(Exception):
    """An authentication failure, with the code AWS's front end returns (all HTTP 400)."""

    http_status = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Authorization:
    """What a request's ``Authorization`` header says: who signed, when, where, and what."""

    access_key_id: str
    scope_date: str
    region: str
    signed_headers: tuple[str, ...]
    signature: str


def received_headers(headers: Iterable[tuple[str, str]]) -> HTTPHeaders:
    """The (name, value) pairs as received, repeated names included, with lower-case names."""
    received = HTTPHeaders()
    for name, value in headers:
        received.add_header(name.lower(), value)
    return received


def parse_authorization(received: HTTPHeaders) -> Authorization:
    """The request's Authorization header, checked to be SigV4 scoped to Rekognition."""
    value = received.get("authorization")
    if not value:
        raise AuthError("MissingAuthenticationTokenException", "Missing Authentication Token")
    fields = _parse_fields(value)
    key_id, scope_date, region, service, terminator = _parse_credential(fields["Credential"])
    if service != SERVICE_NAME or terminator != "aws4_request":
        raise AuthError(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{SERVICE_NAME}'.",
        )
    return Authorization(
        key_id, scope_date, region, tuple(fields["SignedHeaders"].split(";")), fields["Signature"]
    )


def check_date(
    received: HTTPHeaders, authorization: Authorization, clock: Callable[[], dt.datetime]
) -> str:
    """The request's SigV4 timestamp, checked against the credential scope and ``clock``."""
    if "x-amz-date" in received:
        header = "x-amz-date"
        try:
            when = dt.datetime.strptime(received["x-amz-date"], SIGV4_TIMESTAMP)
        except ValueError:
            raise AuthError("IncompleteSignatureException", "Invalid X-Amz-Date header.") from None
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
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )
    if header not in authorization.signed_headers:
        # An unsigned date could be replayed with a fresh value.
        raise AuthError("InvalidSignatureException", f"The '{header}' header must be signed.")
    timestamp = when.strftime(SIGV4_TIMESTAMP)
    scope_date = authorization.scope_date
    if timestamp[:8] != scope_date:
        raise AuthError(
            "InvalidSignatureException",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{scope_date}' != '{timestamp[:8]}', from '{timestamp}'.",
        )
    now = clock()
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


def check_signature(
    authorization: Authorization,
    secret_access_key: str,
    timestamp: str,
    method: str,
    raw_path: str,
    query: str,
    received: HTTPHeaders,
    body: bytes,
) -> None:
    """Raise unless the request's signature is the one ``secret_access_key`` gives it."""
    signed = HTTPHeaders()
    for name in authorization.signed_headers:
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
    request = AWSRequest(method=method, url=f"http://server{raw_path}{'?' if query else ''}{query}")
    request.context["timestamp"] = timestamp
    # The signer takes the payload hash from this header when present: the hash just computed
    # (the header itself, if signed, is among the signed headers above).
    request.headers["X-Amz-Content-SHA256"] = body_hash
    signer = _ReceivedSigV4(
        Credentials(authorization.access_key_id, secret_access_key),
        authorization.region,
        signed,
    )
    expected = signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request
    )
    if not hmac.compare_digest(expected, authorization.signature):
        raise AuthError("InvalidSignatureException", _SIGNATURE_MISMATCH)


class _ReceivedSigV4(SigV4Auth):
    """botocore's signer, told which headers were signed instead of choosing them itself."""

    def __init__(self, credentials: Credentials, region: str, signed: HTTPHeaders) -> None:
        super().__init__(credentials, SERVICE_NAME, region)
        self._signed = signed

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        return self._signed


def _parse_fields(value: str) -> dict[str, str]:
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
