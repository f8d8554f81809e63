"""A local folder named as a bucket (``FACESEARCH_LOCAL_BUCKETS``), for images and videos, with
the checks of any untrusted path, and Rekognition's 10 GB limit on a video, met with sparse
files (they take no disk)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from facesearch import inprocess
from facesearch.inprocess import InProcessClient
from facesearch.service import RekognitionService
from facesearch.service.video import MAX_VIDEO_BYTES
from video.clips import wait_for_job


@pytest.fixture
def folder_client(
    tmp_path: Path, photos_dir: Path, videos_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    bucket = tmp_path / "bucket"
    (bucket / "door").mkdir(parents=True)
    shutil.copy(photos_dir / "people/barack_obama/3.jpg", bucket / "door/obama.jpg")
    shutil.copy(videos_dir / "noface_640x360.mp4", bucket / "empty.mp4")
    outside = tmp_path / "secret.jpg"
    shutil.copy(photos_dir / "people/joe_biden/1.jpg", outside)
    os.symlink(outside, bucket / "door/escape.jpg")
    os.symlink(bucket / "door/obama.jpg", bucket / "inside.jpg")
    monkeypatch.setenv("FACESEARCH_LOCAL_BUCKETS", f"cameras={bucket}")
    client = inprocess.client(tmp_path / "data")
    yield client
    client.close()


def s3(name: str, **extra: str) -> dict[str, Any]:
    return {"S3Object": {"Bucket": "cameras", "Name": name, **extra}}


def test_images_and_videos_come_from_the_folder(folder_client: Any) -> None:
    faces = folder_client.detect_faces(Image=s3("door/obama.jpg"))["FaceDetails"]
    assert len(faces) == 1
    assert len(folder_client.detect_faces(Image=s3("inside.jpg"))["FaceDetails"]) == 1
    started = folder_client.start_face_detection(Video=s3("empty.mp4"))
    answer = wait_for_job(folder_client.get_face_detection, started["JobId"])
    assert answer["JobStatus"] == "SUCCEEDED" and answer["Faces"] == []


@pytest.mark.parametrize(
    "name",
    ["door/escape.jpg", "../secret.jpg", "door/../../secret.jpg", "door//obama.jpg", "missing.jpg"],
)
def test_paths_out_of_the_folder_are_missing_objects(folder_client: Any, name: str) -> None:
    with pytest.raises(ClientError) as error:
        folder_client.detect_faces(Image=s3(name))
    assert error.value.response["Error"]["Code"] == "InvalidS3ObjectException"


def test_a_folder_has_no_versions(folder_client: Any) -> None:
    with pytest.raises(ClientError) as error:
        folder_client.detect_faces(Image=s3("door/obama.jpg", Version="1"))
    assert error.value.response["Error"]["Code"] == "InvalidS3ObjectException"


def _sparse(path: Path, size: int, start: Path | None = None) -> None:
    """A file of ``size`` bytes: ``start``'s bytes (if given), then a hole."""
    if start is not None:
        shutil.copy(start, path)
    with path.open("ab") as f:
        f.truncate(size)


def _bytes_read() -> int:
    """The bytes this process has read so far, through any file (Linux's /proc/self/io)."""
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["rchar"])


@pytest.fixture
def sparse_client(
    tmp_path: Path, videos_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """A client whose jobs run on a worker thread of this process (as ``facesearch serve`` runs
    them), over a folder holding videos of 10 GB and one byte more."""
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    clip = videos_dir / "noface_640x360.mp4"
    _sparse(bucket / "limit.mp4", MAX_VIDEO_BYTES, start=clip)
    _sparse(bucket / "zeros.mp4", MAX_VIDEO_BYTES)
    _sparse(bucket / "over.mp4", MAX_VIDEO_BYTES + 1, start=clip)
    monkeypatch.setenv("FACESEARCH_LOCAL_BUCKETS", f"cameras={bucket}")
    service = RekognitionService(tmp_path / "data", video_runner=False)
    service.start_video_workers(1)
    try:
        yield InProcessClient(service)
    finally:
        service.close()


def test_a_video_over_10_gb_is_refused_and_10_gb_is_not(sparse_client: Any) -> None:
    read_before = _bytes_read()
    sparse_client.create_collection(CollectionId="people")
    for start, extra in (
        (sparse_client.start_face_detection, {}),
        (sparse_client.start_face_search, {"CollectionId": "people"}),
    ):
        with pytest.raises(ClientError) as error:
            start(Video=s3("over.mp4"), **extra)
        assert error.value.response["Error"]["Code"] == "VideoTooLargeException"
    # Exactly the limit is analysed: the clip at its start, the hole after it ignored...
    started = sparse_client.start_face_detection(Video=s3("limit.mp4"))
    answer = wait_for_job(sparse_client.get_face_detection, started["JobId"], timeout=120)
    assert answer["JobStatus"] == "SUCCEEDED", answer.get("StatusMessage")
    assert answer["Faces"] == [] and answer["VideoMetadata"]["DurationMillis"] > 4000
    # ... and 10 GB that are no video fail as such, for their format, not their size.
    started = sparse_client.start_face_search(CollectionId="people", Video=s3("zeros.mp4"))
    answer = wait_for_job(sparse_client.get_face_search, started["JobId"], timeout=120)
    assert answer["JobStatus"] == "FAILED"
    assert answer["StatusMessage"].startswith("Unsupported format:"), answer["StatusMessage"]
    # Read where they lie, a few boxes and frames each: never copied, nor read whole.
    assert _bytes_read() - read_before < MAX_VIDEO_BYTES // 10
