"""Stored-video fixtures: the labelled clips in a real S3-protocol server (moto_server on
loopback), the service's S3 settings pointed at it, and the people the clips' manifest enrols."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from support.moto import moto_server

from video.clips import BUCKET, S3_KEY_ID, S3_SECRET


@pytest.fixture(scope="session")
def clips(videos_dir: Path) -> dict[str, Any]:
    """The clips' manifest (enrol, strangers, clips by file name)."""
    manifest: dict[str, Any] = json.loads((videos_dir / "manifest.json").read_text())
    manifest["clips"] = {clip["file"]: clip for clip in manifest["clips"]}
    return manifest


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory, videos_dir: Path) -> Iterator[str]:
    """moto_server on a free loopback port, its bucket holding every clip."""
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as endpoint:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=S3_KEY_ID,
            aws_secret_access_key=S3_SECRET,
        )
        s3.create_bucket(Bucket=BUCKET)
        for path in sorted(videos_dir.iterdir()):
            if path.suffix in (".mp4", ".mov", ".webm"):
                s3.upload_file(str(path), BUCKET, path.name)
        yield endpoint


@pytest.fixture(scope="module")
def s3_env(s3_endpoint: str) -> Iterator[str]:
    """The service's S3 settings (and those of any process it starts) aimed at moto_server."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            patch.delenv(name, raising=False)
        patch.delenv("AWS_SESSION_TOKEN", raising=False)
        patch.setenv("FACESEARCH_S3_ENDPOINT_URL", s3_endpoint)
        patch.setenv("FACESEARCH_S3_REGION", "us-east-1")
        patch.setenv("FACESEARCH_S3_ACCESS_KEY_ID", S3_KEY_ID)
        patch.setenv("FACESEARCH_S3_SECRET_ACCESS_KEY", S3_SECRET)
        # Completion messages go to moto_server's SNS (and on to SQS) too.
        patch.setenv("FACESEARCH_SNS_ENDPOINT_URL", s3_endpoint)
        patch.setenv("FACESEARCH_SNS_ACCESS_KEY_ID", S3_KEY_ID)
        patch.setenv("FACESEARCH_SNS_SECRET_ACCESS_KEY", S3_SECRET)
        yield s3_endpoint


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest) -> str | None:
    """Each store in turn, for a whole module: None for the embedded store, else a fresh
    PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres").new_database()
    return url
