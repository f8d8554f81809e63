"""Reading ``Image.S3Object`` images from AWS S3 or any S3-compatible store.

The S3 endpoint, region and credentials are the service's own (``FACESEARCH_S3_*``, else boto3's
usual chain), never the keys that clients use to call facesearch. The boto3 client is built on
the first S3 request, so a service that is never asked for an S3 image never needs credentials.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from facesearch.defaults import DEFAULT_REGION
from facesearch.errors import RekognitionError
from facesearch.service.context import S3_IMAGE_MAX_BYTES

log = logging.getLogger("facesearch.s3")

# Rekognition's own wording for every object it cannot read, whatever S3's reason.
UNREADABLE = (
    "Unable to get object metadata from S3. Check object key, region and/or access permissions."
)
_CHUNK = 256 * 1024
# S3 error codes are plain words; anything else is not echoed back.
_ERROR_CODE = re.compile(r"[A-Za-z0-9.]{1,64}")
_BUCKET = re.compile(r"[0-9A-Za-z.\-_]{3,255}")


@dataclass(frozen=True)
class S3Settings:
    """Where and as whom the service reads S3 objects, and how long it waits."""

    endpoint_url: str | None = None
    region: str = DEFAULT_REGION
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    addressing_style: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    # The whole download, so a store that trickles bytes cannot hold a worker for long.
    total_timeout: float = 30.0
    max_attempts: int = 2
    # Bucket names served from local folders instead of S3: (name, folder) pairs.
    local_buckets: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:
        # Settings end up in tracebacks and debug logs: never show the secrets.
        return (
            f"S3Settings(endpoint_url={self.endpoint_url!r}, region={self.region!r}, "
            f"profile={self.profile!r}, static_keys={self.access_key_id is not None})"
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> S3Settings:
        """Settings from ``FACESEARCH_S3_*`` variables (see docs/s3.md).

        Raises ValueError for a half-given key pair or a timeout that is not a positive number.
        """
        env = os.environ if environ is None else environ
        key_id = env.get("FACESEARCH_S3_ACCESS_KEY_ID") or None
        secret = env.get("FACESEARCH_S3_SECRET_ACCESS_KEY") or None
        if bool(key_id) != bool(secret):
            raise ValueError(
                "set both FACESEARCH_S3_ACCESS_KEY_ID and FACESEARCH_S3_SECRET_ACCESS_KEY"
            )
        endpoint = env.get("FACESEARCH_S3_ENDPOINT_URL") or None
        return cls(
            endpoint_url=endpoint,
            region=env.get("FACESEARCH_S3_REGION")
            or env.get("AWS_DEFAULT_REGION")
            or env.get("AWS_REGION")
            or DEFAULT_REGION,
            profile=env.get("FACESEARCH_S3_PROFILE") or None,
            access_key_id=key_id,
            secret_access_key=secret,
            session_token=env.get("FACESEARCH_S3_SESSION_TOKEN") or None,
            # Self-hosted stores (MinIO, Ceph, moto) rarely have wildcard DNS for
            # virtual-hosted buckets, so a custom endpoint defaults to path-style URLs.
            addressing_style=env.get("FACESEARCH_S3_ADDRESSING_STYLE")
            or ("path" if endpoint else None),
            connect_timeout=_seconds(env, "FACESEARCH_S3_CONNECT_TIMEOUT", cls.connect_timeout),
            read_timeout=_seconds(env, "FACESEARCH_S3_READ_TIMEOUT", cls.read_timeout),
            total_timeout=_seconds(env, "FACESEARCH_S3_TOTAL_TIMEOUT", cls.total_timeout),
            local_buckets=_local_buckets(env.get("FACESEARCH_LOCAL_BUCKETS", "")),
        )


def _local_buckets(raw: str) -> tuple[tuple[str, str], ...]:
    """``NAME=FOLDER`` entries separated by ``os.pathsep``; ValueError for a malformed one."""
    buckets = []
    for entry in filter(None, raw.split(os.pathsep)):
        name, _, folder = entry.partition("=")
        if not _BUCKET.fullmatch(name) or not folder or not os.path.isdir(folder):
            raise ValueError(f"FACESEARCH_LOCAL_BUCKETS: {entry!r} is not NAME=FOLDER")
        buckets.append((name, os.path.realpath(folder)))
    return tuple(buckets)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number of seconds, not {raw!r}")
    return value


class S3ImageFetcher:
    """``fetch(S3Object) -> bytes`` for :meth:`RekognitionService.register_image_fetcher`.

    Thread-safe: one boto3 client, built on first use and shared by every request.
    """

    def __init__(
        self, settings: S3Settings | None = None, *, max_bytes: int = S3_IMAGE_MAX_BYTES
    ) -> None:
        self._settings = settings
        self.max_bytes = max_bytes
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def settings(self) -> S3Settings:
        """The given settings, else those of the environment (read on first use)."""
        if self._settings is None:
            try:
                self._settings = S3Settings.from_env()
            except ValueError as error:
                log.error("S3 is misconfigured: %s", error)
                raise _not_configured() from None
        return self._settings

    def client(self) -> Any:
        """The shared boto3 S3 client, created on the first call."""
        with self._lock:
            if self._client is None:
                self._client = self._make_client(self.settings)
            return self._client

    @staticmethod
    def _make_client(settings: S3Settings) -> Any:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        config = Config(
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            retries={"max_attempts": settings.max_attempts, "mode": "standard"},
            # A setting's value, checked by botocore (the stubs want a literal).
            s3=cast(Any, {"addressing_style": settings.addressing_style or "auto"}),
        )
        try:
            session = boto3.session.Session(
                profile_name=settings.profile,
                aws_access_key_id=settings.access_key_id,
                aws_secret_access_key=settings.secret_access_key,
                aws_session_token=settings.session_token,
            )
            return session.client(
                "s3",
                endpoint_url=settings.endpoint_url,
                region_name=settings.region,
                config=config,
            )
        except BotoCoreError as error:  # e.g. an unknown profile or a malformed endpoint
            log.error("cannot create the S3 client: %s", type(error).__name__)
            raise _not_configured() from None

    def _local(self, request: dict[str, Any]) -> Path | None:
        """The file a request names in a local-folder bucket; None for an S3 bucket."""
        folder = dict(self.settings.local_buckets).get(request["Bucket"])
        if folder is None:
            return None
        return _local_file(folder, request)

    def __call__(self, s3object: dict[str, Any]) -> bytes:
        """The object's bytes; raises RekognitionError as Rekognition does for S3 images."""
        request, where = _request(s3object)
        local = self._local(request)
        if local is not None:
            with _s3_errors(where), local.open("rb") as file:
                data = file.read(self.max_bytes + 1)
            if len(data) > self.max_bytes:
                raise _too_large()
            return data
        client = self.client()
        deadline = time.monotonic() + self.settings.total_timeout
        with _s3_errors(where):
            response = client.get_object(**request)
            body = response["Body"]
            try:
                length = response.get("ContentLength")
                if length is not None and length > self.max_bytes:
                    log.info("S3 object %s is %d bytes: too large", where, length)
                    raise _too_large()
                return self._read(body, deadline, where)
            finally:
                body.close()

    def head(self, s3object: dict[str, Any]) -> int:
        """The object's size in bytes (it exists and can be read); InvalidS3ObjectException as
        for an image when it cannot be."""
        request, where = _request(s3object)
        local = self._local(request)
        with _s3_errors(where):
            if local is not None:
                return local.stat().st_size
            return int(self.client().head_object(**request)["ContentLength"])

    def local_video(
        self,
        s3object: dict[str, Any],
        max_bytes: int,
        too_large: Callable[[], RekognitionError],
    ) -> Path | None:
        """The file of an object in a local-folder bucket, to be analysed where it lies: a copy
        would read the whole video and take its size again on disk before the analysis starts.
        None for an S3 bucket (:meth:`download` it). ``too_large()`` past ``max_bytes`` (its
        size, not its bytes), InvalidS3ObjectException if it cannot be read."""
        request, where = _request(s3object)
        local = self._local(request)
        if local is None:
            return None
        with _s3_errors(where):
            size = local.stat().st_size
        if size > max_bytes:
            log.info("local object %s is %d bytes: too large", where, size)
            raise too_large()
        return local

    def download(
        self,
        s3object: dict[str, Any],
        file: BinaryIO,
        max_bytes: int,
        too_large: Callable[[], RekognitionError],
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Stream the object into ``file`` a chunk at a time (memory does not grow with its
        size); its size. ``too_large()`` is raised past ``max_bytes``, InvalidS3ObjectException
        as for an image when it cannot be read; ``progress(bytes so far)`` after each chunk.
        Each chunk must come within the read timeout; the whole takes as long as it needs."""
        request, where = _request(s3object)
        local = self._local(request)
        with _s3_errors(where):
            if local is not None:
                response: dict[str, Any] = {"Body": local.open("rb")}
            else:
                response = self.client().get_object(**request)
            body = response["Body"]
            try:
                length = response.get("ContentLength")
                if length is not None and length > max_bytes:
                    log.info("S3 object %s is %d bytes: too large", where, length)
                    raise too_large()
                size = 0
                while chunk := body.read(_CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise too_large()
                    try:
                        file.write(chunk)
                    except OSError as error:  # the local disk, not S3: say so
                        raise RekognitionError(
                            "InternalServerError",
                            f"Cannot store the object for analysis: {error.strerror or error}.",
                        ) from None
                    if progress is not None:
                        progress(size)
                return size
            finally:
                body.close()

    def _read(self, body: Any, deadline: float, where: str) -> bytes:
        # At most max_bytes + 1 bytes: one more than allowed is enough to know it is too big.
        chunks: list[bytes] = []
        size = 0
        while size <= self.max_bytes:
            if time.monotonic() > deadline:
                log.warning("reading S3 object %s took too long", where)
                raise RekognitionError("InvalidS3ObjectException", f"{UNREADABLE} (read timed out)")
            chunk = body.read(min(_CHUNK, self.max_bytes + 1 - size))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
        log.info("S3 object %s is over %d bytes: too large", where, self.max_bytes)
        raise _too_large()


def _request(s3object: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """get_object's arguments for an S3Object parameter, and how the log names it."""
    request = {"Bucket": s3object.get("Bucket"), "Key": s3object.get("Name")}
    if not request["Bucket"] or not request["Key"]:
        raise RekognitionError(
            "InvalidParameterException", "S3Object: Bucket and Name are required"
        )
    if s3object.get("Version"):
        request["VersionId"] = s3object["Version"]
    return request, _describe(request)


@contextmanager
def _s3_errors(where: str) -> Iterator[None]:
    """S3's failures as Rekognition's InvalidS3ObjectException, without their details."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        code = code if _ERROR_CODE.fullmatch(code) else "unknown"
        log.info("cannot read S3 object %s: S3 error %s", where, code)
        raise RekognitionError("InvalidS3ObjectException", f"{UNREADABLE} ({code})") from None
    except (BotoCoreError, OSError) as error:
        # Timeouts, refused connections, missing credentials: the class name says which
        # without the request details (signed headers) that the message may carry.
        log.warning("cannot read S3 object %s: %s", where, type(error).__name__)
        raise RekognitionError(
            "InvalidS3ObjectException", f"{UNREADABLE} ({type(error).__name__})"
        ) from None


def _local_file(folder: str, request: dict[str, Any]) -> Path:
    """The file that ``Name`` names inside ``folder`` (a real path), with the checks of any
    untrusted path: relative, no ``.`` or ``..`` parts, no symbolic link leading out of the
    folder, a regular file; else InvalidS3ObjectException, as for a missing object."""
    name: str = request["Key"]
    parts = name.split("/")
    if (
        "VersionId" in request  # a folder keeps no versions
        or any(part in ("", ".", "..") for part in parts)
        or "\0" in name
        or "\\" in name
    ):
        raise RekognitionError("InvalidS3ObjectException", f"{UNREADABLE} (NoSuchKey)")
    path = os.path.realpath(os.path.join(folder, *parts))
    if os.path.commonpath([folder, path]) != folder or not os.path.isfile(path):
        raise RekognitionError("InvalidS3ObjectException", f"{UNREADABLE} (NoSuchKey)")
    return Path(path)


def _describe(request: dict[str, Any]) -> str:
    version = f"?versionId={request['VersionId']}" if "VersionId" in request else ""
    return f"s3://{request['Bucket']}/{request['Key']}{version}"


def _too_large() -> RekognitionError:
    return RekognitionError("ImageTooLargeException", "Image size is too large.")


def _not_configured() -> RekognitionError:
    return RekognitionError(
        "InvalidS3ObjectException", "Reading images from S3 is not configured correctly."
    )
