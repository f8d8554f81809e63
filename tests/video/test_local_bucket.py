"""A local folder named as a bucket (``FACESEARCH_LOCAL_BUCKETS``), for images and videos, with
the checks of any untrusted path."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from facesearch import inprocess
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
