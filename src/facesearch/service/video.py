"""Stored video: StartFaceSearch, GetFaceSearch, StartFaceDetection, GetFaceDetection.

A Start call checks what it can at once (the collection, the S3 object and its size, the
account's jobs in progress, the ClientRequestToken) and stores a job, returning its JobId; the
work runs in the background (video_runner.py: a server's worker threads, or the embedded runner
process) and the job's results are kept in the store (store/jobs.py), so any process answers
the Get calls, page by page, with tokens signed like every other pagination token.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from facesearch.defaults import PROGRESS_HEADER
from facesearch.errors import RekognitionError, invalid_parameter, not_found
from facesearch.service.context import Context
from facesearch.service.registry import operation, paginate
from facesearch.service.scoring import collection_model
from facesearch.store.jobs import (
    BY_INDEX,
    BY_TIMESTAMP,
    IN_PROGRESS,
    WAITING,
    JobRecord,
    JobResult,
)

FACE_SEARCH = "StartFaceSearch"
FACE_DETECTION = "StartFaceDetection"
# Rekognition's limits for stored video: 10 GB per file, 20 jobs in progress per account.
MAX_VIDEO_BYTES = 10 * 1024**3
MAX_JOBS_IN_PROGRESS = 20
# GetFaceSearch / GetFaceDetection: MaxResults up to 1000, the default.
MAX_RESULTS = 1000
DEFAULT_THRESHOLD = 80.0
# Where a handler leaves the extension headers for the front ends, which pop them off the result
# before it is encoded (``extension_headers``): never a member of the response body.
_HEADERS = "facesearch:headers"


class VideoSource(Protocol):
    """Where videos come from: the service's S3 fetcher (s3.S3ImageFetcher)."""

    def head(self, s3object: dict[str, Any]) -> int: ...

    def local_video(
        self, s3object: dict[str, Any], max_bytes: int, too_large: Any
    ) -> Path | None: ...

    def download(
        self,
        s3object: dict[str, Any],
        file: BinaryIO,
        max_bytes: int,
        too_large: Any,
        progress: Any = None,
    ) -> int: ...


def video_too_large() -> RekognitionError:
    return RekognitionError(
        "VideoTooLargeException",
        "The file size or duration of the supplied media is too large. The maximum file size is "
        "10GB. The maximum duration is 6 hours.",
    )


def video_source(ctx: Context) -> VideoSource:
    """The S3 reader registered for ``S3Object`` images, which reads videos too."""
    fetcher = ctx.state.image_fetchers.get("S3Object")
    if fetcher is None or not hasattr(fetcher, "download"):
        raise RekognitionError(
            "InvalidS3ObjectException", "Reading videos from S3 is not configured."
        )
    source: VideoSource = fetcher  # type: ignore[assignment]
    return source


def _request_hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def _start(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    token = params.pop("ClientRequestToken", None)
    s3object = params["Video"].get("S3Object")
    if s3object is None:
        raise invalid_parameter("Video: S3Object is required.")
    if ctx.operation == FACE_SEARCH:
        collection_model(ctx.collection(params["CollectionId"]))  # exists, in a known version
    job = JobRecord(
        key=0,
        job_id=secrets.token_hex(32),
        account_id=ctx.account_id,
        api=ctx.operation,
        status=WAITING,
        params=params,
        region=ctx.region,
        client_token=token,
        request_hash=_request_hash(params),
        created_at=time.time(),
    )
    if token is not None:
        seen = _same_token(ctx, job)
        if seen is not None:
            return {"JobId": seen.job_id}
    size = video_source(ctx).head(s3object)
    if size > MAX_VIDEO_BYTES:
        raise video_too_large()
    # Under the account's write lock: the count and the insert are one step for every process.
    with ctx.write_lock():
        stored = ctx.store.create_job(job, MAX_JOBS_IN_PROGRESS)
    if stored is None:
        raise RekognitionError(
            "LimitExceededException",
            f"An Amazon Rekognition service limit was exceeded: at most {MAX_JOBS_IN_PROGRESS} "
            "stored-video jobs may be in progress at once.",
        )
    if stored.job_id != job.job_id:  # the same token, stored by a call that just ran
        return {"JobId": _check_token(stored, job).job_id}
    jobs = ctx.state.video_jobs
    if jobs is not None:
        jobs.submitted()
    return {"JobId": stored.job_id}


def _same_token(ctx: Context, job: JobRecord) -> JobRecord | None:
    """The live job started earlier with the job's ClientRequestToken, if any."""
    with ctx.write_lock():
        seen = ctx.store.create_job(job, 0)  # a limit of 0 stores nothing
    return None if seen is None else _check_token(seen, job)


def _check_token(seen: JobRecord, job: JobRecord) -> JobRecord:
    if seen.request_hash != job.request_hash:
        raise RekognitionError(
            "IdempotentParameterMismatchException",
            f"The ClientRequestToken: {job.client_token} you have supplied is already in use.",
        )
    return seen


@operation("StartFaceSearch")
def start_face_search(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    params.setdefault("FaceMatchThreshold", DEFAULT_THRESHOLD)
    return _start(ctx, params)


@operation("StartFaceDetection")
def start_face_detection(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    params.setdefault("FaceAttributes", "DEFAULT")
    return _start(ctx, params)


def _job(ctx: Context, params: dict[str, Any], api: str) -> tuple[JobRecord, dict[str, Any]]:
    """The caller's job of ``api`` and the part of the answer every status has."""
    max_results = params.get("MaxResults")
    if max_results is not None and max_results > MAX_RESULTS:
        raise invalid_parameter(f"MaxResults must be at most {MAX_RESULTS}.")
    job = ctx.store.get_job(ctx.account_id, params["JobId"])
    if job is None or job.region != ctx.region:  # a job belongs to the region it was started in
        raise not_found(f"The job id: {params['JobId']} does not exist (or has expired).")
    if job.api != api:
        name = "face search" if api == FACE_SEARCH else "face detection"
        raise invalid_parameter(f"The job id: {job.job_id} is not a {name} job.")
    jobs = ctx.state.video_jobs
    if jobs is not None and job.status in (WAITING, IN_PROGRESS):
        jobs.check(job)  # no process working on it: start one
    response: dict[str, Any] = {
        "JobStatus": IN_PROGRESS if job.status == WAITING else job.status,
        "JobId": job.job_id,
        "Video": job.params["Video"],
    }
    if job.status_message:
        response["StatusMessage"] = job.status_message
    if job.video_metadata is not None:
        response["VideoMetadata"] = job.video_metadata
    if "JobTag" in job.params:
        response["JobTag"] = job.params["JobTag"]
    if job.status in (WAITING, IN_PROGRESS):
        response[_HEADERS] = {PROGRESS_HEADER: f"{100 * job.progress:.1f}"}
    return job, response


def extension_headers(result: dict[str, Any]) -> dict[str, str]:
    """Take facesearch's extension headers (``x-facesearch-progress``) off a service result,
    leaving only the model's members; every front end sends them as HTTP headers."""
    headers: dict[str, str] = result.pop(_HEADERS, {})
    return headers


def _results(
    ctx: Context, params: dict[str, Any], job: JobRecord, order: str
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a finished job's results and the next page's token."""
    if job.status != "SUCCEEDED":
        return [], None

    def position(result: JobResult) -> list[int]:
        if order == BY_INDEX:
            return [result.person_index, result.rank]
        return [result.rank]

    page, token = paginate(
        ctx,
        params,
        scope=f"{job.job_id}|{order}",
        default_size=MAX_RESULTS,
        start=[-1, -1] if order == BY_INDEX else [-1],
        fetch=lambda after, limit: ctx.store.job_results(job, order, after, limit),
        position=position,
    )
    return [result.payload for result in page], token


@operation("GetFaceSearch")
def get_face_search(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    job, response = _job(ctx, params, FACE_SEARCH)
    order = BY_INDEX if params.get("SortBy") == "INDEX" else BY_TIMESTAMP
    persons, token = _results(ctx, params, job, order)
    if job.status == "SUCCEEDED":
        response["Persons"] = persons
    if token is not None:
        response["NextToken"] = token
    return response


@operation("GetFaceDetection")
def get_face_detection(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    job, response = _job(ctx, params, FACE_DETECTION)
    faces, token = _results(ctx, params, job, BY_TIMESTAMP)
    if job.status == "SUCCEEDED":
        response["Faces"] = faces
    if token is not None:
        response["NextToken"] = token
    return response
