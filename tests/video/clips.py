"""Helpers of the stored-video tests: naming clips, enrolling, waiting for jobs, scoring."""

from __future__ import annotations

import time
from typing import Any

BUCKET = "facesearch-videos"
S3_KEY_ID = "AKIAVIDEOTESTS"
S3_SECRET = "video-tests-secret"


def video(name: str, bucket: str = BUCKET) -> dict[str, Any]:
    """A ``Video`` parameter naming a clip in the test bucket."""
    return {"S3Object": {"Bucket": bucket, "Name": name}}


def wait_for_job(get: Any, job_id: str, timeout: float = 300, **params: Any) -> dict[str, Any]:
    """Poll ``get(JobId=...)`` until the job is no longer IN_PROGRESS; its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer: dict[str, Any] = get(JobId=job_id, **params)
        if answer["JobStatus"] != "IN_PROGRESS":
            return answer
        assert time.monotonic() < deadline, f"job {job_id} still IN_PROGRESS after {timeout} s"
        time.sleep(0.5)


def all_pages(get: Any, job_id: str, key: str, **params: Any) -> list[dict[str, Any]]:
    """Every entry of a finished job's ``key`` list, following NextToken."""
    entries: list[dict[str, Any]] = []
    token = None
    while True:
        answer = get(JobId=job_id, **params, **({"NextToken": token} if token else {}))
        entries.extend(answer[key])
        token = answer.get("NextToken")
        if token is None:
            return entries
        assert token, "an empty NextToken would never end AWS's polling loops"


def box(bounding_box: dict[str, float]) -> tuple[float, float, float, float]:
    """A response's BoundingBox as the (left, top, width, height) the clips' labels use."""
    return (
        bounding_box["Left"],
        bounding_box["Top"],
        bounding_box["Width"],
        bounding_box["Height"],
    )


def shot_at(clip: dict[str, Any], timestamp: int) -> dict[str, Any] | None:
    return next((s for s in clip["shots"] if s["start_ms"] <= timestamp <= s["end_ms"]), None)
