"""``get-face-search`` / ``get-face-detection --wait``: poll a stored-video job to its end with a
progress bar on stderr, then print what the command prints without ``--wait``. Run as
subprocesses on the embedded store, the clips read from a local folder named as a bucket."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from facesearch.vision.models import models_dir

FACESEARCH = str(Path(sys.executable).parent / "facesearch")


@pytest.fixture
def env(tmp_path: Path, videos_dir: Path) -> dict[str, str]:
    """No AWS configuration, an empty HOME, the installed models, no warm process, the labelled
    clips as the bucket ``clips``."""
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH")
    base = {key: os.environ[key] for key in keep if key in os.environ}
    home = tmp_path / "home"
    home.mkdir()
    return {
        **base,
        "HOME": str(home),
        "FACESEARCH_MODELS_DIR": str(models_dir()),
        "FACESEARCH_WARM": "0",
        "FACESEARCH_DATA_DIR": str(tmp_path / "data"),
        "FACESEARCH_LOCAL_BUCKETS": f"clips={videos_dir}",
    }


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FACESEARCH, *args], env=env, capture_output=True, text=True, timeout=300)


def start(env: dict[str, str], name: str) -> str:
    video = json.dumps({"S3Object": {"Bucket": "clips", "Name": name}})
    done = run(env, "start-face-detection", "--video", video)
    assert done.returncode == 0, done.stderr
    job_id: str = json.loads(done.stdout)["JobId"]
    return job_id


def test_wait_draws_the_progress_then_prints_the_usual_output(env: dict[str, str]) -> None:
    job_id = start(env, "street_640x360.mp4")
    waited = run(env, "get-face-detection", "--job-id", job_id, "--max-results", "3",
                 "--wait", "--progress")  # fmt: skip
    assert waited.returncode == 0, waited.stderr
    answer = json.loads(waited.stdout)
    assert answer["JobStatus"] == "SUCCEEDED" and answer["Faces"]
    # The bar is redrawn in place while the job runs (the runner has models to load and 23.5 s
    # of video to analyse: the first poll finds it running), and ends at 100 % on a new line.
    shares = [float(share) for share in re.findall(r"\] +([\d.]+)% IN_PROGRESS", waited.stderr)]
    assert shares and shares == sorted(shares) and shares[0] < 100, waited.stderr
    assert waited.stderr.endswith("] 100.0% SUCCEEDED\n")
    # What --wait prints is what the command prints without it, once the job has ended.
    plain = run(env, "get-face-detection", "--job-id", job_id, "--max-results", "3")
    assert plain.returncode == 0 and plain.stdout == waited.stdout
    assert plain.stderr == ""


def test_without_a_terminal_or_progress_nothing_is_drawn(env: dict[str, str]) -> None:
    job_id = start(env, "noface_640x360.mp4")
    # A running job's answer has only the model's members; its progress goes in a header.
    running = run(env, "get-face-detection", "--job-id", job_id)
    assert running.returncode == 0, running.stderr
    assert set(json.loads(running.stdout)) <= {
        "JobStatus", "JobId", "Video", "VideoMetadata", "Faces", "StatusMessage", "JobTag",
    }  # fmt: skip
    waited = run(env, "get-face-detection", "--job-id", job_id, "--wait", "--output", "text",
                 "--query", "JobStatus")  # fmt: skip
    assert (waited.returncode, waited.stdout, waited.stderr) == (0, "SUCCEEDED\n", "")


def test_wait_on_an_unknown_job_fails_as_the_plain_command(env: dict[str, str]) -> None:
    job_id = "0" * 64
    plain = run(env, "get-face-search", "--job-id", job_id)
    waited = run(env, "get-face-search", "--job-id", job_id, "--wait", "--progress")
    assert plain.returncode == 254 and "ResourceNotFoundException" in plain.stderr
    assert (waited.returncode, waited.stdout) == (plain.returncode, plain.stdout)
    assert waited.stderr.endswith(plain.stderr)
