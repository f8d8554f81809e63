"""The console's Videos page in a real Chromium against a live server whose bucket ``clips`` is
the folder of labelled clips (FACESEARCH_LOCAL_BUCKETS): start a face search, follow its
progress, read its persons on the timeline, against what boto3 gets from the same server."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.clients import rekognition_client
from support.serve import serve_app
from support.video_labels import enrol

from console.test_console import ALICE, BOB, CHROMIUM, screenshot
from facesearch.server.app import App
from facesearch.server.auth import Verifier
from facesearch.server.console import SessionStore
from facesearch.service import RekognitionService

pytestmark = pytest.mark.slow

COLLECTION = "door"
CLIP = "street_640x360.mp4"
# Three of the manifest's enrolled people, all seen in the clip; the others in it are strangers
# here (not enrolled), so the timeline has unmatched persons too.
ENROLLED = ("barack_obama", "bill_gates", "madonna")


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, videos_dir: Path, photos_dir: Path
) -> Iterator[tuple[str, Any]]:
    """The server's URL and a boto3 client of Alice's on it, her collection enrolled."""
    before = os.environ.get("FACESEARCH_LOCAL_BUCKETS")
    os.environ["FACESEARCH_LOCAL_BUCKETS"] = f"clips={videos_dir}"
    service = RekognitionService(tmp_path_factory.mktemp("videos-data"), video_runner=False)
    service.start_video_workers(1)
    keys = Verifier({key.access_key_id: key for key in (ALICE, BOB)})
    app = App(service, keys, threads=2, sessions=SessionStore(service.state.store))
    try:
        with serve_app(app) as url:
            client = rekognition_client(url, ALICE.access_key_id, ALICE.secret_access_key)
            enrolment = json.loads((videos_dir / "manifest.json").read_text())["enrol"]
            enrol(client, COLLECTION, enrolment, photos_dir, ENROLLED)
            yield url, client
    finally:
        service.close()
        if before is None:
            os.environ.pop("FACESEARCH_LOCAL_BUCKETS", None)
        else:
            os.environ["FACESEARCH_LOCAL_BUCKETS"] = before


@pytest.fixture(scope="module")
def page(live: tuple[str, Any]) -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (make test installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(30_000)
        page = context.new_page()
        errors: list[str] = []
        requests: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("request", lambda request: requests.append(request.url))
        page.goto(f"{live[0]}/console")
        page.get_by_label("Access key ID").fill(ALICE.access_key_id)
        page.get_by_label("Secret access key").fill(ALICE.secret_access_key)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Collections").wait_for()
        yield page
        context.close()
        browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"
        # Nothing is loaded from elsewhere.
        assert all(url.startswith(live[0]) for url in requests), requests


def test_the_api_reports_progress_in_a_header_not_in_the_body(live: tuple[str, Any]) -> None:
    _, client = live
    started = client.start_face_detection(
        Video={"S3Object": {"Bucket": "clips", "Name": "noface_640x360.mp4"}}
    )
    answer = client.get_face_detection(JobId=started["JobId"])
    assert answer["JobStatus"] == "IN_PROGRESS"  # decoding and analysing take longer than this
    share = float(answer["ResponseMetadata"]["HTTPHeaders"]["x-facesearch-progress"])
    assert 0 <= share <= 100
    assert "Progress" not in answer
    deadline = time.monotonic() + 120
    while answer["JobStatus"] == "IN_PROGRESS" and time.monotonic() < deadline:
        time.sleep(0.5)
        answer = client.get_face_detection(JobId=started["JobId"])
    assert answer["JobStatus"] == "SUCCEEDED"
    assert "x-facesearch-progress" not in answer["ResponseMetadata"]["HTTPHeaders"]


def test_start_a_face_search_and_follow_its_progress(page: Any, live: tuple[str, Any]) -> None:
    page.get_by_role("link", name="Videos").click()
    page.get_by_role("heading", name="Videos").wait_for()
    assert page.locator("#video-jobs").inner_text() == "No job started in this browser yet."
    page.locator("#video-kind").select_option("StartFaceSearch")
    assert page.locator("#video-attributes").is_hidden()
    page.locator("#video-collection").select_option(COLLECTION)
    page.get_by_label("Face match threshold").fill("80")
    page.get_by_label("S3 bucket").fill("clips")
    # With the keyboard: Enter in the last field starts the job.
    page.get_by_label("Object name").fill(CLIP)
    page.get_by_label("Object name").press("Enter")
    row = page.locator("tr[data-job]")
    row.wait_for()
    job_id = row.get_attribute("data-job")
    kept = json.loads(page.evaluate("localStorage.getItem('facesearch.videoJobs')"))
    assert [job["jobId"] for job in kept] == [job_id]
    # The page polls while the job runs: its bar follows the server's x-facesearch-progress.
    seen: list[float] = []
    deadline = time.monotonic() + 240
    while row.get_attribute("data-status") == "IN_PROGRESS":
        # Read at once: the row is redrawn at each poll.
        value = row.evaluate("row => row.querySelector('progress')?.getAttribute('value')")
        if value is not None:
            share = float(value)
            if share > 0 and not any(earlier > 0 for earlier in seen):
                screenshot(page, "videos-progress")  # the first drawn share above 0
            seen.append(share)
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.25)
    assert row.get_attribute("data-status") == "SUCCEEDED", row.inner_text()
    assert seen and seen == sorted(seen) and all(0 <= share < 100 for share in seen), seen
    assert live[1].get_face_search(JobId=job_id, MaxResults=1)["JobStatus"] == "SUCCEEDED"
    assert "100%" in row.inner_text()


def test_a_finished_job_shows_its_persons_on_a_timeline(page: Any, live: tuple[str, Any]) -> None:
    row = page.locator("tr[data-job]")
    job_id = row.get_attribute("data-job")
    # With the keyboard: the Results link is reached by Tab and opened with Enter.
    link = row.get_by_role("link", name=f"Results of {CLIP}")
    link.focus()
    page.keyboard.press("Enter")
    page.get_by_role("heading", name=f"Results: {CLIP}").wait_for()
    persons = page.locator(".timeline li.person")
    persons.first.wait_for()
    # What boto3 gets for the same job, all pages, by person.
    answer, token, expected = {"NextToken": None}, None, {}
    while True:
        answer = live[1].get_face_search(
            JobId=job_id, SortBy="INDEX", **({"NextToken": token} if token else {})
        )
        for person in answer["Persons"]:
            users = expected.setdefault(person["Person"]["Index"], {})
            for match in person.get("FaceMatches", []):
                user = match["Face"]["UserId"]
                users[user] = max(users.get(user, 0), match["Similarity"])
        token = answer.get("NextToken")
        if not token:
            break
    assert persons.count() == len(expected)
    shown = persons.all_inner_texts()
    for text, (index, users) in zip(shown, sorted(expected.items()), strict=True):
        assert text.startswith(f"Person {index} ")
        if users:
            best = sorted(users.items(), key=lambda item: -item[1])
            assert ", ".join(f"{user} ({similarity:.1f})" for user, similarity in best) in text
        else:
            assert "not matched" in text
        assert "Seen at " in text
    # Matched users are enrolled ones (the strangers match nobody), Barack Obama among them.
    matched = {user for users in expected.values() for user in users}
    assert "barack_obama" in matched and matched <= set(ENROLLED)
    assert page.locator(".timeline li.person.unmatched").count() == sum(
        not users for users in expected.values()
    )
    obama = page.locator(".timeline li.person", has_text="barack_obama (").first
    assert obama.locator(".stretch").count() >= 1
    screenshot(page, "videos", full_page=True)


def test_face_detections_and_a_failed_job(page: Any, live: tuple[str, Any]) -> None:
    page.locator("#video-kind").select_option("StartFaceDetection")
    assert page.locator("#video-collection").is_hidden()
    page.locator("#video-attributes").select_option("ALL")
    assert page.get_by_label("S3 bucket").input_value() == "clips"  # the last job's bucket
    for name in ("noface_640x360.mp4", "street_640x360_vp9.webm", "phone_portrait_rotated.mp4"):
        page.get_by_label("Object name").fill(name)
        page.get_by_role("button", name="Start").click()
        page.locator("tr[data-job]", has_text=name).wait_for()
    empty = page.locator("tr[data-job]", has_text="noface_640x360.mp4")
    vp9 = page.locator("tr[data-job]", has_text="street_640x360_vp9.webm")
    vp9.locator("xpath=self::*[@data-status='FAILED']").wait_for(timeout=120_000)
    # The job's StatusMessage says what is wrong.
    assert "vp9" in vp9.locator(".job-status").inner_text().lower()
    assert vp9.get_by_role("link", name="Results of street_640x360_vp9.webm").count() == 0
    empty.locator("xpath=self::*[@data-status='SUCCEEDED']").wait_for(timeout=120_000)
    empty.get_by_role("link", name="Results of noface_640x360.mp4").click()
    page.get_by_text("No face was seen in this video.").wait_for()
    assert "Face detection" in empty.inner_text()
    # Faces are one row of the times they were seen, as many as boto3 gets.
    phone = page.locator("tr[data-job]", has_text="phone_portrait_rotated.mp4")
    phone.locator("xpath=self::*[@data-status='SUCCEEDED']").wait_for(timeout=120_000)
    phone.get_by_role("link", name="Results of phone_portrait_rotated.mp4").click()
    page.get_by_role("heading", name="Results: phone_portrait_rotated.mp4").wait_for()
    faces = live[1].get_face_detection(JobId=phone.get_attribute("data-job"))["Faces"]
    assert faces
    row = page.locator(".timeline li.person")
    assert row.count() == 1 and f"Faces {len(faces)} faces" in row.inner_text()
    assert "360×640" in page.locator("#video-result").inner_text()  # the displayed orientation
    # Back to the face search, whose timeline the next test reloads.
    job = page.locator("tr[data-job]", has_text=CLIP)
    job.get_by_role("link", name=f"Results of {CLIP}").click()
    page.get_by_role("heading", name=f"Results: {CLIP}").wait_for()


def test_the_jobs_outlive_a_reload_and_fit_a_phone(page: Any) -> None:
    page.reload()
    page.get_by_role("heading", name="Videos").wait_for()
    page.locator("tr[data-job][data-status='SUCCEEDED']", has_text=CLIP).wait_for()
    page.locator(".timeline li.person").first.wait_for()
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "phone-videos")
    page.set_viewport_size({"width": 1280, "height": 800})
    # Forget drops a job from this browser's list.
    assert page.locator("tr[data-job]").count() == 4
    page.get_by_role("button", name=f"Forget the job on {CLIP}").click()
    page.locator("tr[data-job]", has_text=CLIP).wait_for(state="detached")
    kept = json.loads(page.evaluate("localStorage.getItem('facesearch.videoJobs')"))
    assert [job["name"] for job in kept] == [
        "phone_portrait_rotated.mp4", "street_640x360_vp9.webm", "noface_640x360.mp4",
    ]  # fmt: skip
