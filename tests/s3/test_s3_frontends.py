"""Image.S3Object through the HTTP server (boto3, aws CLI) and the facesearch CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from support.serve import serve_app

from facesearch.server.app import App
from facesearch.server.auth import AccessKey, Verifier
from facesearch.service import RekognitionService
from facesearch.vision.models import models_dir

from .conftest import BUCKET, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, Store, s3_image

# The key a client uses to call facesearch: not the service's S3 key.
CALLER = AccessKey("AKIDFACESEARCHCALLER", "caller-secret-for-facesearch", "111111111111")
BIN = Path(sys.executable).parent


@pytest.fixture
def server(s3_env: Store, tmp_path: Path) -> Iterator[tuple[str, RekognitionService]]:
    """facesearch's ASGI app in a uvicorn thread on a free port: (endpoint, its service)."""
    service = RekognitionService(tmp_path / "data")
    app = App(service, Verifier({CALLER.access_key_id: CALLER}), threads=2)
    with serve_app(app) as endpoint:
        yield endpoint, service


def caller_env(home: Path) -> dict[str, str]:
    """A clean environment holding only the caller's key (no S3 settings)."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": CALLER.access_key_id,
        "AWS_SECRET_ACCESS_KEY": CALLER.secret_access_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
    }


def test_server_reads_s3_objects_for_boto3_and_the_aws_cli(server, tmp_path: Path) -> None:
    endpoint, service = server
    rekognition = boto3.client(
        "rekognition",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CALLER.access_key_id,
        aws_secret_access_key=CALLER.secret_access_key,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    expected = service.call("DetectFaces", {"Image": s3_image("group.jpg")})
    answer = rekognition.detect_faces(Image=s3_image("group.jpg"))
    assert len(answer["FaceDetails"]) == len(expected["FaceDetails"]) >= 2
    with pytest.raises(rekognition.exceptions.InvalidS3ObjectException) as missing:
        rekognition.detect_faces(Image=s3_image("no/such/key.jpg"))
    assert S3_SECRET_ACCESS_KEY not in str(missing.value.response)
    with pytest.raises(rekognition.exceptions.InvalidParameterException):
        rekognition.detect_faces(Image={"S3Object": {"Bucket": "bad/bucket", "Name": "x"}})

    aws = BIN / "aws"
    if not aws.exists():
        pytest.skip("aws CLI not installed in the venv")
    image = f"S3Object={{Bucket={BUCKET},Name=group.jpg}}"
    result = subprocess.run(
        [str(aws), "rekognition", "detect-faces", "--image", image, "--endpoint-url", endpoint],
        env=caller_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["FaceDetails"]) == len(expected["FaceDetails"])


def test_facesearch_cli_reads_s3_objects(s3_env: Store, tmp_path: Path) -> None:
    env = {
        **caller_env(tmp_path),
        # The isolated HOME has no models: use the ones this process uses.
        "FACESEARCH_MODELS_DIR": str(models_dir()),
        "FACESEARCH_S3_ENDPOINT_URL": s3_env.endpoint,
        "FACESEARCH_S3_ACCESS_KEY_ID": S3_ACCESS_KEY_ID,
        "FACESEARCH_S3_SECRET_ACCESS_KEY": S3_SECRET_ACCESS_KEY,
    }

    def facesearch(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "facesearch"), *args, "--data-dir", str(tmp_path / "data")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    found = facesearch("detect-faces", "--image", f"S3Object={{Bucket={BUCKET},Name=obama.jpg}}")
    assert found.returncode == 0, found.stderr
    assert len(json.loads(found.stdout)["FaceDetails"]) == 1
    missing = facesearch("detect-faces", "--image", f"S3Object={{Bucket={BUCKET},Name=nope.jpg}}")
    assert missing.returncode != 0
    assert "InvalidS3ObjectException" in missing.stderr
    for output in (found.stdout, found.stderr, missing.stdout, missing.stderr):
        assert S3_ACCESS_KEY_ID not in output and S3_SECRET_ACCESS_KEY not in output
