"""Stored-video jobs across processes: boto3 against ``facesearch serve``, a server killed in the
middle of a job and another finishing it (on either store), and a job started by a
``facesearch`` CLI command that ends before the job does."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from support.clients import rekognition_client
from support.serve import start_serve, stop_serve
from support.video_labels import enrol

from facesearch.store import open_store
from video.clips import all_pages, video, wait_for_job

KEY_ID, SECRET = "AKIDVIDEOSERVER", "video-server-secret"
ACCOUNT = "000000000000"
LOBBY = "lobby_1280x720.mov"


@pytest.fixture
def fast_takeover(monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers started from here take over a job silent for 3 s (the default is 30)."""
    monkeypatch.setenv("FACESEARCH_VIDEO_STALE_SECONDS", "3")


def test_a_job_of_a_killed_server_is_finished_by_another(
    s3_env: str,
    fast_takeover: None,
    store: str | None,
    clips: dict[str, Any],
    photos_dir: Path,
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    first, url = start_serve(data_dir, KEY_ID, SECRET, tmp_path / "first.log", store=store)
    # The jobs as the store holds them: the embedded one in data_dir, or the PostgreSQL one.
    with closing(open_store(store, data_dir)) as jobs:
        try:
            client = rekognition_client(url, KEY_ID, SECRET)
            enrol(client, "people", clips["enrol"], photos_dir)
            job_id = client.start_face_search(CollectionId="people", Video=video(LOBBY))["JobId"]
            deadline = time.monotonic() + 180
            # Killed as soon as its worker has claimed it: the clip takes over a second to
            # analyse even on a quiet machine, far longer than this look every 20 ms.
            while (job := jobs.get_job(ACCOUNT, job_id)).owner is None:
                assert job.status in ("WAITING", "IN_PROGRESS"), (job.status, job.status_message)
                assert time.monotonic() < deadline, "the job never started"
                time.sleep(0.02)
        finally:
            first.kill()
            first.wait()
        job = jobs.get_job(ACCOUNT, job_id)
        assert (job.status, job.attempts) == ("IN_PROGRESS", 1) and job.progress < 1
        second, url = start_serve(data_dir, KEY_ID, SECRET, tmp_path / "second.log", store=store)
        try:
            client = rekognition_client(url, KEY_ID, SECRET)
            answer = wait_for_job(client.get_face_search, job_id, timeout=300)
            assert answer["JobStatus"] == "SUCCEEDED", answer.get("StatusMessage")
            assert jobs.get_job(ACCOUNT, job_id).attempts == 2
            clip = clips["clips"][LOBBY]
            assert answer["VideoMetadata"]["Codec"] == "h264"
            assert answer["VideoMetadata"]["FrameWidth"] == clip["width"]
            persons = answer["Persons"]
            assert all_pages(client.get_face_search, job_id, "Persons", MaxResults=7) == persons
            # Taken over from the start: one entry per face and sample, no duplicate of the
            # first process's work.
            keys = [(p["Timestamp"], p["Person"]["Index"]) for p in persons]
            assert len(keys) == len(set(keys))
            matched = {
                p["FaceMatches"][0]["Face"]["UserId"] for p in persons if p.get("FaceMatches")
            }
            assert matched and matched <= set(clips["enrol"])
            assert not matched & set(clips["strangers"])
            with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
                metrics = response.read().decode()
            assert 'facesearch_video_jobs{status="SUCCEEDED"} 1.0' in metrics
            frames = re.search(r"^facesearch_video_frames_analysed_total (\S+)$", metrics, re.M)
            assert frames and float(frames.group(1)) > 0
        finally:
            assert stop_serve(second) == 0


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "facesearch.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_job_started_by_the_embedded_cli_outlives_the_command(
    s3_env: str, tmp_path: Path
) -> None:
    env = {**os.environ, "FACESEARCH_DATA_DIR": str(tmp_path / "data"), "FACESEARCH_WARM": "0"}
    started = _cli(env, "start-face-detection", "--video", json.dumps(video("noface_640x360.mp4")))
    assert started.returncode == 0, started.stderr
    job_id = json.loads(started.stdout)["JobId"]
    deadline = time.monotonic() + 180
    while True:
        got = _cli(env, "get-face-detection", "--job-id", job_id)
        assert got.returncode == 0, got.stderr
        answer = json.loads(got.stdout)
        if answer["JobStatus"] != "IN_PROGRESS":
            break
        assert time.monotonic() < deadline, "the job never ended"
        time.sleep(1)
    assert answer["JobStatus"] == "SUCCEEDED", answer.get("StatusMessage")
    assert answer["Faces"] == [] and answer["VideoMetadata"]["DurationMillis"] > 4000
