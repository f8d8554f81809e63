"""Helpers of the stored-video tests: naming clips, enrolling, waiting for jobs, scoring."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

BUCKET = "facesearch-videos"
S3_KEY_ID = "AKIAVIDEOTESTS"
S3_SECRET = "video-tests-secret"


def video(name: str, bucket: str = BUCKET) -> dict[str, Any]:
    """A ``Video`` parameter naming a clip in the test bucket."""
    return {"S3Object": {"Bucket": bucket, "Name": name}}


def enrol(client: Any, collection_id: str, clips: dict[str, Any], photos_dir: Path) -> None:
    """Create the collection, a user per enrolled person, and their ``enrol`` photos' faces."""
    client.create_collection(CollectionId=collection_id)
    for user_id, photos in clips["enrol"].items():
        client.create_user(CollectionId=collection_id, UserId=user_id)
        face_ids = [
            record["Face"]["FaceId"]
            for photo in photos
            for record in client.index_faces(
                CollectionId=collection_id,
                Image={"Bytes": (photos_dir / photo).read_bytes()},
                MaxFaces=1,
            )["FaceRecords"]
        ]
        client.associate_faces(CollectionId=collection_id, UserId=user_id, FaceIds=face_ids)


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


def iou(a: dict[str, float], b: dict[str, float]) -> float:
    """Intersection over union of two BoundingBoxes."""
    left, top = max(a["Left"], b["Left"]), max(a["Top"], b["Top"])
    right = min(a["Left"] + a["Width"], b["Left"] + b["Width"])
    bottom = min(a["Top"] + a["Height"], b["Top"] + b["Height"])
    inter = max(0.0, right - left) * max(0.0, bottom - top)
    union = a["Width"] * a["Height"] + b["Width"] * b["Height"] - inter
    return inter / union if union > 0 else 0.0


def labelled_box(face: dict[str, Any], shot: dict[str, Any], timestamp: int) -> dict[str, float]:
    """A labelled face's box at ``timestamp`` (it moves linearly through its shot)."""
    span = max(1, shot["end_ms"] - shot["start_ms"])
    t = min(1.0, max(0.0, (timestamp - shot["start_ms"]) / span))
    start, end = face["box_start"], face["box_end"]
    return {k: start[k] + (end[k] - start[k]) * t for k in start}


def shot_at(clip: dict[str, Any], timestamp: int) -> dict[str, Any] | None:
    return next((s for s in clip["shots"] if s["start_ms"] <= timestamp <= s["end_ms"]), None)
