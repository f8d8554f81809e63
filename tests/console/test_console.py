"""The web console in a real Chromium (Debian's, driven by Playwright) against a live server.

The tests run in file order on one page and one server: sign in, create a collection, enrol two
people, search a group photo, and so on, each step building on the previous one. Drawn boxes are
checked against the BoundingBox that boto3 gets from the same server for the same image.
Screenshots go to $FACESEARCH_SCREENSHOTS (docs/console for the README) or a temporary folder.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from PIL import Image
from support.clients import rekognition_client
from support.serve import serve_app

from facesearch.console import (
    COOKIE,
    IDLE_SECONDS,
    MAX_LIFETIME_SECONDS,
    REFRESH_SECONDS,
    Console,
)
from facesearch.server.app import App
from facesearch.server.auth import AccessKey, Verifier
from facesearch.service import RekognitionService
from facesearch.store import StoreUnavailableError

pytestmark = pytest.mark.slow

ALICE = AccessKey("AKIDALICE", "alice-secret", "111111111111")
BOB = AccessKey("AKIDBOB", "bob-secret", "222222222222")
CHROMIUM = os.environ.get("FACESEARCH_CHROMIUM", "/usr/bin/chromium")
# The README's screenshots are refreshed with FACESEARCH_SCREENSHOTS=docs/console; otherwise a
# test run leaves the repository as it was.
SHOTS = Path(
    os.environ.get("FACESEARCH_SCREENSHOTS")
    or Path(tempfile.gettempdir()) / "facesearch-console-shots"
)
COLLECTION = "staff"
PEOPLE = {"barack_obama": ("1.jpg", "2.jpg"), "joe_biden": ("1.jpg", "2.jpg")}
GROUP = "group/face_recognition_obama_and_biden.jpg"
# How far (CSS pixels) a drawn box may be from the API's BoundingBox times the rendered size.
TOLERANCE_PX = 2.0


@dataclass
class Live:
    url: str
    app: App
    photos: Path

    def client(self, key: AccessKey = ALICE) -> Any:
        """boto3 on the same server, to get what the API answers for the console's images."""
        return rekognition_client(
            self.url, key.access_key_id, key.secret_access_key, retries={"max_attempts": 1}
        )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, photos_dir: Path) -> Iterator[Live]:
    service = RekognitionService(tmp_path_factory.mktemp("console-data"))
    app = App(service, Verifier({key.access_key_id: key for key in (ALICE, BOB)}), threads=2)
    with serve_app(app) as url:
        yield Live(url, app, photos_dir)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (make test installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
                # A synthetic camera (a test pattern, no face), allowed without a prompt.
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(browser: Any, live: Live) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, permissions=["camera"])
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{live.url}/console")
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def screenshot(page: Any, name: str, full_page: bool = False) -> None:
    """A screenshot under SHOTS, shrunk to a 128-colour PNG to keep the repository small."""
    png = page.screenshot(full_page=full_page)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.width > 900:
        image = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.LANCZOS)
    SHOTS.mkdir(parents=True, exist_ok=True)
    image.quantize(colors=128).save(SHOTS / f"{name}.png", optimize=True)


def alert(page: Any) -> str:
    return page.locator("#alert").inner_text()


def boxes_against(page: Any, figure: Any, expected: list[dict[str, float]]) -> list[str]:
    """Each drawn box's rendered rectangle minus BoundingBox × the rendered image size."""
    measured = figure.evaluate(
        """figure => {
            const image = figure.querySelector('img').getBoundingClientRect();
            return [...figure.querySelectorAll('.box')].map(box => {
                const r = box.getBoundingClientRect();
                return {kind: box.dataset.kind, left: r.left - image.left, top: r.top - image.top,
                        width: r.width, height: r.height, imageWidth: image.width,
                        imageHeight: image.height};
            });
        }"""
    )
    assert len(measured) == len(expected), (measured, expected)
    kinds = []
    for box, want in zip(measured, expected, strict=True):
        w, h = box["imageWidth"], box["imageHeight"]
        assert w > 100 and h > 100  # the photo is on screen at a usable size
        for got, ratio, size in (
            (box["left"], want["Left"], w),
            (box["top"], want["Top"], h),
            (box["width"], want["Width"], w),
            (box["height"], want["Height"], h),
        ):
            assert abs(got - ratio * size) <= TOLERANCE_PX, (box, want)
        kinds.append(box["kind"])
    return kinds


def post(
    url: str,
    path: str,
    body: Any,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """A POST under /console of the server at ``url``, on a connection of its own, with urllib:
    (status, lower-cased headers, JSON body)."""
    request = urllib.request.Request(
        f"{url}/console/{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw, answer = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, raw, answer = error.code, error.headers, error.read()
    return status, {k.lower(): v for k, v in raw.items()}, json.loads(answer or b"{}")


def sign_in_with_urllib(live: Live, key: AccessKey) -> tuple[str, str]:
    """(cookie header value, CSRF token) of a new session for ``key``."""
    status, headers, who = post(
        live.url,
        "api/session",
        {"AccessKeyId": key.access_key_id, "SecretAccessKey": key.secret_access_key},
    )
    assert status == 200, who
    return headers["set-cookie"].split(";")[0], who["CsrfToken"]


# ---- the browser flow, in order ---------------------------------------------------------------


def test_a_wrong_secret_is_refused_and_shown(page: Any) -> None:
    # With the keyboard only: the form starts focused, Tab moves on, Enter submits.
    page.get_by_label("Access key ID").wait_for()
    page.keyboard.type(ALICE.access_key_id)
    page.keyboard.press("Tab")
    page.keyboard.type("not-the-secret")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('#alert').textContent.length > 0")
    assert "UnrecognizedClientException" in alert(page)
    assert page.locator("#nav").is_hidden()
    assert page.get_by_label("Access key ID").input_value() == ALICE.access_key_id
    screenshot(page, "sign-in")


def test_sign_in_and_create_a_collection(page: Any, live: Live) -> None:
    page.get_by_label("Secret access key").fill(ALICE.secret_access_key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Collections").wait_for()
    assert ALICE.account_id in page.locator("#who-key").inner_text()
    page.get_by_label("Collection ID").fill(COLLECTION)
    page.get_by_label("Tags (key=value, comma separated)").fill("team=door, site=hq")
    page.get_by_role("button", name="Create collection").click()
    row = page.locator(f"tr[data-collection='{COLLECTION}']")
    row.wait_for()
    described = live.client().describe_collection(CollectionId=COLLECTION)
    cells = row.locator("td").all_inner_texts()
    assert cells[:4] == [COLLECTION, "0", "0", described["FaceModelVersion"]]
    assert cells[5] == described["CollectionARN"]
    assert sorted(cells[6].split(", ")) == ["site=hq", "team=door"]
    # Bob's account cannot see Alice's collection, through the API the console uses.
    assert live.client(BOB).list_collections()["CollectionIds"] == []


def test_enrol_two_people(page: Any, live: Live) -> None:
    page.locator(f"tr[data-collection='{COLLECTION}'] a").click()
    page.get_by_role("heading", name=f"Collection {COLLECTION}").wait_for()
    for person, files in PEOPLE.items():
        paths = [live.photos / "people" / person / name for name in files]
        # The file chooser opened by the button, as a keyboard user would reach it.
        with page.expect_file_chooser() as chooser:
            page.get_by_role("button", name="Choose photos").click()
        chooser.value.set_files(paths)
        page.locator(".enrol-progress", has_text=f"Done: {len(files)} photos").wait_for()
        for name in files:
            card = page.locator(f"figure.photo[data-path='{name}']").last
            assert card.locator(".box.indexed").count() == 1
            card.locator("input.enrol-user").fill(person)
            card.locator("button.associate").click()
            card.locator(".outcome", has_text=f"Associated 1 with {person}").wait_for()
        assert float(page.locator("progress").get_attribute("max") or 0) == len(files)
    page.locator("tr[data-user='joe_biden']").wait_for()
    screenshot(page, "enrol", full_page=True)
    client = live.client()
    users = {u["UserId"] for u in client.list_users(CollectionId=COLLECTION)["Users"]}
    assert users == set(PEOPLE)
    faces = client.list_faces(CollectionId=COLLECTION)["Faces"]
    assert sorted(f.get("UserId") for f in faces) == sorted(
        p for p, fs in PEOPLE.items() for _ in fs
    )
    # The faces table, filtered by user, shows that user's faces.
    page.get_by_role("button", name="Show the faces of joe_biden").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('tr[data-face] td:nth-child(4)')]"
        ".every(td => td.textContent === 'joe_biden')"
    )
    assert page.locator("tr[data-face]").count() == 2


def test_search_a_group_photo_draws_the_apis_boxes(page: Any, live: Live) -> None:
    image = (live.photos / GROUP).read_bytes()
    expected = live.client().search_users_by_image(
        CollectionId=COLLECTION, Image={"Bytes": image}, UserMatchThreshold=0, MaxUsers=20
    )
    page.get_by_role("link", name="Search").click()
    page.get_by_role("heading", name="Search").wait_for()
    page.locator("#search-collection").select_option(COLLECTION)
    page.locator(".drop input.files").set_input_files(live.photos / GROUP)
    figure = page.locator(".search-results figure.photo")
    figure.locator(".box.searched").wait_for()
    page.locator(".search-results img").evaluate("img => img.decode()")
    boxes = [expected["SearchedFace"]["FaceDetail"]["BoundingBox"]] + [
        face["FaceDetails"]["BoundingBox"] for face in expected["UnsearchedFaces"]
    ]
    assert len(boxes) >= 2
    kinds = boxes_against(page, figure, boxes)
    assert kinds == ["searched"] + ["unsearched"] * (len(boxes) - 1)
    # Highlighted: the searched face's border is drawn thicker than the others'.
    widths = figure.locator(".box").evaluate_all(
        "boxes => boxes.map(b => parseFloat(getComputedStyle(b).borderTopWidth))"
    )
    assert widths[0] > max(widths[1:])
    assert figure.locator(".dot").count() > 10  # landmarks drawn
    # UserMatches: the best match first, at the API's similarity.
    top = expected["UserMatches"][0]
    assert top["User"]["UserId"] in PEOPLE and top["Similarity"] >= 80
    first = page.locator("li.match").first
    assert first.get_attribute("data-user") == top["User"]["UserId"]
    assert abs(float(first.get_attribute("data-similarity") or 0) - top["Similarity"]) < 1e-6
    reasons = page.locator(".unsearched-list li").all_inner_texts()
    assert len(reasons) == len(expected["UnsearchedFaces"])
    assert all(r in " ".join(reasons) for f in expected["UnsearchedFaces"] for r in f["Reasons"])
    screenshot(page, "search")
    # The slider hides matches below it, without a new search.
    shown = page.locator("li.match").count()
    page.locator("#threshold").evaluate(
        "slider => { slider.value = 100; slider.dispatchEvent(new Event('input')); }"
    )
    assert page.locator("li.match").count() == 0 < shown
    assert page.locator(".match-count").inner_text().startswith("0 of")


def test_a_bad_image_shows_its_error(page: Any, live: Live) -> None:
    page.locator(".drop input.files").set_input_files(live.photos / "invalid/csv_text.jpg")
    page.wait_for_function("() => document.querySelector('#alert').textContent.length > 0")
    assert alert(page).startswith("InvalidImageFormatException:")


def test_a_webcam_photo_is_searched(page: Any) -> None:
    page.locator("#alert").evaluate("alert => { alert.textContent = ''; }")
    page.get_by_role("button", name="Use the webcam").click()
    take = page.get_by_role("button", name="Take the photo")
    take.wait_for()
    page.wait_for_function("() => document.querySelector('.webcam video').videoWidth > 0")
    take.click()
    # The fake camera films a test pattern (640x480, no face): the search finds nobody.
    page.locator(".match-count", has_text="No face found in the photo.").wait_for()
    size = page.locator(".search-results img").evaluate(
        "img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])"
    )
    assert size == [640, 480] and not alert(page)
    assert page.locator(".webcam video").count() == 0  # the camera is released


def test_detect_faces_on_a_photo_with_exif_orientation(
    page: Any, live: Live, tmp_path: Path
) -> None:
    # The pixels stored turned a quarter; EXIF orientation 6 says to turn them back. The server
    # analyses the upright photo, so the browser must show it upright too.
    upright = Image.open(live.photos / "people/joe_biden/1.jpg").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = tmp_path / "rotated.jpg"
    upright.transpose(Image.Transpose.ROTATE_90).save(rotated, exif=exif, quality=90)
    expected = live.client().detect_faces(Image={"Bytes": rotated.read_bytes()}, Attributes=["ALL"])
    assert expected["FaceDetails"]
    page.get_by_role("link", name="Detect").click()
    page.get_by_role("heading", name="Detect faces").wait_for()
    page.locator(".drop input.files").set_input_files(rotated)
    figure = page.locator("figure.photo")
    figure.locator(".box").first.wait_for()
    size = page.locator("figure.photo img").evaluate(
        "img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])"
    )
    assert size == [upright.width, upright.height]
    boxes_against(page, figure, [f["BoundingBox"] for f in expected["FaceDetails"]])
    face = expected["FaceDetails"][0]
    table = page.locator(".attributes").first.inner_text()
    assert f"{face['AgeRange']['Low']}–{face['AgeRange']['High']}" in table
    assert face["Gender"]["Value"] in table
    screenshot(page, "detect")


def test_compare_faces_links_the_matches(page: Any, live: Live) -> None:
    source = live.photos / "people/barack_obama/3.jpg"
    target = live.photos / GROUP
    expected = live.client().compare_faces(
        SourceImage={"Bytes": source.read_bytes()}, TargetImage={"Bytes": target.read_bytes()}
    )
    page.get_by_role("link", name="Compare").click()
    page.get_by_role("heading", name="Compare faces").wait_for()
    page.locator(".drop input.files").nth(0).set_input_files(source)
    page.locator(".drop input.files").nth(1).set_input_files(target)
    page.get_by_role("button", name="Compare", exact=True).click()
    page.locator(".compare-summary").wait_for()
    figures = page.locator(".pair figure.photo")
    boxes_against(page, figures.nth(0), [expected["SourceImageFace"]["BoundingBox"]])
    target_boxes = [m["Face"]["BoundingBox"] for m in expected["FaceMatches"]] + [
        f["BoundingBox"] for f in expected["UnmatchedFaces"]
    ]
    kinds = boxes_against(page, figures.nth(1), target_boxes)
    assert kinds.count("match") == len(expected["FaceMatches"]) == 1
    assert page.locator(".links line").count() == 1
    screenshot(page, "compare")


def test_phone_width(page: Any) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("link", name="Collections").click()
    page.locator(f"tr[data-collection='{COLLECTION}']").wait_for()
    # Nothing but the table's own scroller is wider than the phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "phone")
    page.set_viewport_size({"width": 1280, "height": 800})


def test_sign_out_ends_the_session(page: Any, live: Live) -> None:
    cookie = next(c for c in page.context.cookies() if c["name"] == "facesearch_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    csrf = page.evaluate("fetch('api/session').then(r => r.json()).then(s => s.CsrfToken)")
    headers = {"Cookie": f"facesearch_console={cookie['value']}", "X-CSRF-Token": csrf}
    target = {"X-Amz-Target": "RekognitionService.ListCollections"}
    assert post(live.url, "api", {}, {**headers, **target})[0] == 200
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    status, _, error = post(live.url, "api", {}, {**headers, **target})
    assert status == 403 and error["__type"] == "MissingAuthenticationTokenException"


# ---- the HTTP side, without a browser --------------------------------------------------------


def test_posts_need_the_csrf_token_and_the_same_origin(live: Live) -> None:
    cookie, csrf = sign_in_with_urllib(live, BOB)
    target = {"Cookie": cookie, "X-Amz-Target": "RekognitionService.ListCollections"}
    status, _, error = post(live.url, "api", {}, target)
    assert status == 403 and error["__type"] == "AccessDeniedException"
    status, _, error = post(live.url, "api", {}, {**target, "X-CSRF-Token": csrf[:-1] + "x"})
    assert status == 403 and error["__type"] == "AccessDeniedException"
    status, _, error = post(
        live.url, "api", {}, {**target, "X-CSRF-Token": csrf, "Origin": "http://evil.example"}
    )
    assert status == 403 and error["__type"] == "AccessDeniedException"
    status, _, answer = post(live.url, "api", {}, {**target, "X-CSRF-Token": csrf})
    # Bob's account has none of Alice's collections.
    assert status == 200 and answer["CollectionIds"] == []
    # Errors of the operation come through as the API gives them to boto3.
    with pytest.raises(ClientError) as through_boto3:
        live.client(BOB).create_collection(CollectionId="bad id!")
    status, headers, error = post(
        live.url,
        "api",
        {"CollectionId": "bad id!"},
        {**target, "X-CSRF-Token": csrf, "X-Amz-Target": "RekognitionService.CreateCollection"},
    )
    code = through_boto3.value.response["Error"]["Code"]
    assert status == through_boto3.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["__type"] == headers["x-amzn-errortype"] == code
    assert error["Message"] == through_boto3.value.response["Error"]["Message"]


def test_a_body_over_the_limit_is_refused(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    cookie, csrf = sign_in_with_urllib(live, ALICE)
    monkeypatch.setattr(live.app, "max_body_bytes", 1000)
    status, _, error = post(
        live.url,
        "api",
        {"Image": {"Bytes": "A" * 2000}},
        {"Cookie": cookie, "X-CSRF-Token": csrf, "X-Amz-Target": "RekognitionService.DetectFaces"},
    )
    assert status == 413 and error["__type"] == "RequestEntityTooLargeException"


def test_static_files_carry_security_headers(live: Live) -> None:
    with urllib.request.urlopen(f"{live.url}/console", timeout=10) as response:
        assert response.url.endswith("/console/")  # redirected to the page's own folder
        page = response.read().decode()
        headers = response.headers
    assert "app.js" in page
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    with urllib.request.urlopen(f"{live.url}/console/app.js", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/javascript")
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{live.url}/console/..%2Fapp.py", timeout=10)
    assert missing.value.code == 404


def asgi(
    console: Console, method: str, path: str, body: bytes = b"", headers: list | None = None
) -> tuple[int, dict[bytes, bytes], bytes]:
    """One request straight to the console's ASGI handler, over HTTPS: (status, headers, body)."""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "scheme": "https",
        "headers": [(b"host", b"faces.example"), *(headers or [])],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, console(scope, receive, send)).result()
    return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]


CREDENTIALS = {"AccessKeyId": ALICE.access_key_id, "SecretAccessKey": ALICE.secret_access_key}


def sign_in(console: Console, credentials: dict[str, str] = CREDENTIALS) -> tuple[str, str]:
    """(cookie header value, CSRF token) of a new session straight from ``console``."""
    status, headers, body = asgi(
        console, "POST", "/console/api/session", json.dumps(credentials).encode()
    )
    assert status == 200, body
    return headers[b"set-cookie"].decode().split(";")[0], json.loads(body)["CsrfToken"]


def who(console: Console, cookie: str) -> tuple[int, str | None, dict[str, Any]]:
    """GET the session: (status, the re-issued cookie if any, the JSON answer)."""
    status, headers, body = asgi(
        console, "GET", "/console/api/session", headers=[(b"cookie", cookie.encode())]
    )
    fresh = headers.get(b"set-cookie")
    return status, fresh.decode().split(";")[0] if fresh else None, json.loads(body)


def list_collections(console: Console, cookie: str, csrf: str) -> tuple[int, dict[str, Any]]:
    status, _, body = asgi(
        console,
        "POST",
        "/console/api",
        b"{}",
        [
            (b"cookie", cookie.encode()),
            (b"x-csrf-token", csrf.encode()),
            (b"x-amz-target", b"RekognitionService.ListCollections"),
        ],
    )
    return status, json.loads(body)


def refused(answer: tuple[int, Any, dict[str, Any]] | tuple[int, dict[str, Any]]) -> bool:
    status, *_, error = answer
    return status == 403 and error["__type"] == "MissingAuthenticationTokenException"


def test_the_cookie_is_secure_under_tls_and_slides_until_idle_or_too_old(live: Live) -> None:
    signed_in = float(int(time.time()))
    now = [signed_in]
    console = Console(live.app, clock=lambda: now[0])
    status, headers, _ = asgi(
        console, "POST", "/console/api/session", json.dumps(CREDENTIALS).encode()
    )
    assert status == 200
    cookie = headers[b"set-cookie"].decode()
    assert "; Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert f"Max-Age={IDLE_SECONDS}" in cookie and "Path=/console" in cookie
    first = cookie.split(";")[0]
    now[0] += REFRESH_SECONDS - 1  # too soon to be worth a new cookie
    assert who(console, first)[:2] == (200, None)
    now[0] += IDLE_SECONDS - REFRESH_SECONDS  # a second before it lapses: re-issued, later
    status, second, _ = who(console, first)
    assert status == 200 and second and second != first
    now[0] += IDLE_SECONDS - 1
    assert refused(who(console, first))  # the old cookie has lapsed
    status, third, _ = who(console, second)
    assert status == 200 and third
    # Used all the time, it still ends MAX_LIFETIME_SECONDS after signing in.
    latest = third
    while now[0] + IDLE_SECONDS - 1 < signed_in + MAX_LIFETIME_SECONDS:
        now[0] += IDLE_SECONDS - 1
        status, fresh, _ = who(console, latest)
        assert status == 200
        latest = fresh or latest
    now[0] += IDLE_SECONDS - 1
    assert now[0] >= signed_in + MAX_LIFETIME_SECONDS
    assert refused(who(console, latest))


def test_a_tampered_foreign_or_junk_cookie_is_refused(live: Live, tmp_path: Path) -> None:
    console = Console(live.app)
    cookie, _ = sign_in(console)
    value = cookie.removeprefix(f"{COOKIE}=")
    payload, mac = value.split(".")
    assert who(console, cookie)[0] == 200
    # Another region, another expiry, another key id: the MAC no longer fits.
    fields = json.loads(base64.urlsafe_b64decode(payload + "=="))
    for change in ({"r": "eu-west-1"}, {"e": fields["e"] + 3600}, {"k": BOB.access_key_id}):
        altered = json.dumps({**fields, **change}, separators=(",", ":")).encode()
        forged = base64.urlsafe_b64encode(altered).rstrip(b"=").decode()
        assert refused(who(console, f"{COOKIE}={forged}.{mac}"))
    for junk in (
        payload,
        f"{payload}.",
        f"{payload}.{mac[:-2]}",
        f"{payload}.{mac[::-1]}",
        "x." + mac,
        "e30." + mac,  # {}
        "W10." + mac,  # []
        "!!!.???",
        base64.urlsafe_b64encode(b"[" * 500).decode() + "." + mac,
        value + "A" * 1000,
    ):
        assert refused(who(console, f"{COOKIE}={junk}")), junk
    # A server on another store signs with another key: its cookies mean nothing here.
    elsewhere = App(
        RekognitionService(tmp_path / "elsewhere"), Verifier({ALICE.access_key_id: ALICE})
    )
    try:
        foreign, _ = sign_in(Console(elsewhere))
        assert refused(who(console, foreign))
    finally:
        elsewhere.close()


def test_a_removed_or_changed_key_ends_its_sessions(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    console = Console(live.app)
    cookie, csrf = sign_in(console)
    assert list_collections(console, cookie, csrf)[0] == 200
    monkeypatch.setattr(live.app, "verifier", Verifier({BOB.access_key_id: BOB}))
    assert refused(who(console, cookie))
    assert refused(list_collections(console, cookie, csrf))
    # The same key id with a new secret (a leaked one replaced): refused too.
    renewed = AccessKey(ALICE.access_key_id, "a-new-secret", ALICE.account_id)
    monkeypatch.setattr(live.app, "verifier", Verifier({ALICE.access_key_id: renewed}))
    assert refused(who(console, cookie))
    monkeypatch.setattr(live.app, "verifier", Verifier({ALICE.access_key_id: ALICE}))
    assert who(console, cookie)[0] == 200


def test_sessions_outlive_the_process_and_sign_out_holds_everywhere(live: Live) -> None:
    # A new Console on the same store stands for a restarted server or another worker.
    console, other = Console(live.app), Console(live.app)
    cookie, csrf = sign_in(console)
    status, _, answer = who(other, cookie)
    assert status == 200 and answer["CsrfToken"] == csrf
    assert list_collections(other, cookie, csrf)[0] == 200
    status, headers, _ = asgi(
        console,
        "POST",
        "/console/api/sign-out",
        b"{}",
        [(b"cookie", cookie.encode()), (b"x-csrf-token", csrf.encode())],
    )
    assert status == 200 and headers[b"set-cookie"].startswith(f"{COOKIE}=;".encode())
    for anywhere in (console, other, Console(live.app)):
        assert refused(who(anywhere, cookie))
        assert refused(list_collections(anywhere, cookie, csrf))


def test_the_csrf_token_of_another_session_is_refused(live: Live) -> None:
    console = Console(live.app)
    cookie, csrf = sign_in(console)
    other_cookie, other_csrf = sign_in(console)
    assert csrf != other_csrf
    for token in (other_csrf, "", csrf[:-1]):
        status, error = list_collections(console, cookie, token)
        assert status == 403 and error["__type"] == "AccessDeniedException"
    assert list_collections(console, other_cookie, other_csrf)[0] == 200


def test_a_store_outage_is_an_internal_error_not_a_crash(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    console = Console(live.app)
    cookie, _ = sign_in(console)

    def unavailable(session_id: str) -> bool:
        raise StoreUnavailableError("The store is unavailable.")

    monkeypatch.setattr(live.app.service, "session_revoked", unavailable)
    status, _, error = who(console, cookie)
    assert status == 500 and error["__type"] == "InternalServerError"
