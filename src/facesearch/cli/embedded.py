"""Where a command's requests go: the embedded store (default) or a server (``--endpoint-url``).

On the embedded store the client is still a real botocore client built by the AWS CLI (parameter
validation, idempotency tokens, pagination, response parsing and error classes are botocore's),
but its ``before-send`` event answers each request in process: the JSON 1.1 request body is
decoded, :class:`facesearch.service.RekognitionService` runs it, and the result is encoded back
as a server would, so nothing reaches the network and every output path is the AWS CLI's own.
"""

from __future__ import annotations

import sys
import uuid
from argparse import Namespace
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from awscli.utils import create_nested_client
from botocore import UNSIGNED
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.client import BaseClient, Config
from botocore.session import Session

from facesearch.defaults import DEFAULT_REGION
from facesearch.errors import RekognitionError
from facesearch.wire import json11
from facesearch.wire.keys import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, is_loopback

if TYPE_CHECKING:
    from botocore.compat import HTTPHeaders

    from facesearch.service import RekognitionService

# Never contacted: before-send answers first. An .invalid host guarantees that a request which
# somehow escaped would fail instead of reaching AWS.
EMBEDDED_ENDPOINT = "http://embedded.facesearch.invalid"

# Global options that only concern talking to a server: (dest in the parsed globals, value it has
# when the option is absent, as the user wrote it).
_SERVER_ONLY_OPTIONS = (
    ("profile", None, "--profile"),
    ("sign_request", True, "--no-sign-request"),
    ("verify_ssl", True, "--no-verify-ssl"),
    ("ca_bundle", None, "--ca-bundle"),
    ("read_timeout", None, "--cli-read-timeout"),
    ("connect_timeout", None, "--cli-connect-timeout"),
)


def ineffective_options(parsed_globals: Namespace) -> list[str]:
    """The options given that mean nothing where the command runs (read before awscli resolves
    them: it turns absent timeouts into defaults)."""
    if parsed_globals.endpoint_url:
        return [
            flag
            for dest, flag in (
                ("data_dir", "--data-dir"),
                ("store", "--store"),
                ("store_replica", "--store-replica"),
                ("index_dir", "--index-dir"),
            )
            if getattr(parsed_globals, dest, None)
        ]
    return [
        flag
        for dest, absent, flag in _SERVER_ONLY_OPTIONS
        if getattr(parsed_globals, dest, absent) != absent
    ]


def warn_ineffective(parsed_globals: Namespace) -> None:
    """Say plainly on stderr which given options have no effect, rather than ignore them."""
    for flag in ineffective_options(parsed_globals):
        if flag in ("--data-dir", "--store", "--store-replica", "--index-dir"):
            why = "the command talks to the server at --endpoint-url"
        else:
            why = "the command runs on the embedded store (give --endpoint-url to use a server)"
        sys.stderr.write(f"facesearch: warning: {flag} has no effect: {why}\n")


class Transport:
    """Makes the botocore client each command calls, embedded or remote."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._service: RekognitionService | None = None
        # Where a server's requests took their keys from, to explain an authentication error.
        self.signed_with: str | None = None

    def client(self, parsed_globals: Namespace) -> BaseClient:
        """A Rekognition client for this command line's target."""
        if parsed_globals.endpoint_url:
            return self._remote_client(parsed_globals)
        client = create_nested_client(
            self._session,
            "rekognition",
            region_name=parsed_globals.region or DEFAULT_REGION,
            endpoint_url=EMBEDDED_ENDPOINT,
            # Unsigned: no credentials are looked up or needed. One attempt: a retry would only
            # run the same call on the same store again (legacy mode: standard mode would tag
            # every error "reached max retries").
            config=Config(
                signature_version=UNSIGNED, retries={"mode": "legacy", "total_max_attempts": 1}
            ),
        )
        # --region picks the embedded store's collections of that region, as it picks AWS's;
        # without it, $FACESEARCH_REGION's (the library client's default), not the profile's.
        where = (
            parsed_globals.data_dir,
            parsed_globals.store,
            parsed_globals.store_replica,
            parsed_globals.region,
            parsed_globals.index_dir,
        )
        client.meta.events.register(
            "before-send.rekognition", lambda request, **_: self._answer(request, *where)
        )
        return client

    def _remote_client(self, parsed_globals: Namespace) -> BaseClient:
        region = parsed_globals.region or self._session.get_config_variable("region")
        endpoint = parsed_globals.endpoint_url
        credentials: dict[str, str] = {}
        found = self._session.get_credentials() if parsed_globals.sign_request else None
        if found is not None:
            self.signed_with = f"the AWS credentials found by botocore ({found.method})"
        elif parsed_globals.sign_request and is_loopback(urlsplit(endpoint).hostname or ""):
            # No AWS credentials anywhere: a loopback server without configured keys accepts
            # its documented local ones, so use those rather than fail.
            credentials = {
                "aws_access_key_id": LOCAL_ACCESS_KEY_ID,
                "aws_secret_access_key": LOCAL_SECRET_ACCESS_KEY,
            }
            self.signed_with = (
                f"facesearch's local key {LOCAL_ACCESS_KEY_ID}, as no AWS credentials were found"
            )
        return create_nested_client(
            self._session,
            "rekognition",
            # The region picks the server's collections of that region, as on AWS; where nothing
            # names one, default it rather than fail (SigV4 needs one).
            region_name=region or DEFAULT_REGION,
            endpoint_url=endpoint,
            verify=parsed_globals.verify_ssl,
            **credentials,
        )

    def close(self) -> None:
        """Close the embedded store, if a command opened it."""
        if self._service is not None:
            self._service.close()
            self._service = None

    def _answer(
        self,
        request: AWSPreparedRequest,
        data_dir: str | None,
        store: str | None,
        replicas: list[str] | None,
        region: str | None,
        index_dir: str | None,
    ) -> AWSResponse:
        extra: dict[str, str] = {}
        try:
            operation = json11.operation_from_target(_header(request, "X-Amz-Target"))
            params = json11.decode_request(operation, _body(request))
            # The default account: the one the library client and a server's local keys use.
            result = self._get_service(data_dir, store, replicas, index_dir).call(
                operation, params, region=region
            )
            from facesearch.service.video import extension_headers

            extra = extension_headers(result)
            status, body = 200, json11.encode_response(operation, result)
        except RekognitionError as error:
            status, body = error.http_status, json11.encode_error(error.code, error.message)
        except json11.ProtocolError as error:
            status, body = error.http_status, json11.encode_error(error.code, error.message)
        headers = {
            **extra,
            "Content-Type": json11.CONTENT_TYPE,
            "x-amzn-RequestId": str(uuid.uuid4()),
            "Content-Length": str(len(body)),
        }
        # AWSResponse takes any mapping of headers (botocore-stubs say an HTTPMessage).
        return AWSResponse(request.url, status, cast("HTTPHeaders", headers), _Raw(body))

    def _get_service(
        self,
        data_dir: str | None,
        store: str | None,
        replicas: list[str] | None,
        index_dir: str | None = None,
    ) -> RekognitionService:
        # Built on first use: help, skeletons and usage errors never load the models.
        if self._service is None:
            from facesearch.service import RekognitionService
            from facesearch.store import StoreUnavailableError

            try:
                self._service = RekognitionService(
                    data_dir, store=store, store_replicas=replicas, index_dir=index_dir
                )
            except StoreUnavailableError as error:
                raise RekognitionError("InternalServerError", str(error)) from None
            except ValueError as error:
                raise RekognitionError("InvalidParameterException", f"--store: {error}") from None
        return self._service


def _header(request: AWSPreparedRequest, name: str) -> str | None:
    value = request.headers.get(name)
    return value.decode() if isinstance(value, bytes) else value


def _body(request: AWSPreparedRequest) -> bytes:
    body: Any = request.body
    if body is None:
        return b""
    if hasattr(body, "read"):
        body = body.read()
    return body.encode() if isinstance(body, str) else bytes(body)


class _Raw:
    """The raw-stream side of an :class:`AWSResponse`, holding a body already in memory."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> list[bytes]:
        return [self._body]
