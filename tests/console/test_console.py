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
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError
from PIL import Image
from support.clients import rekognition_client
from support.serve import serve_app

from facesearch.server.app import App
from facesearch.server.auth import AccessKey, Verifier, local_key
from facesearch.server.console import (
    COOKIE,
    IDLE_SECONDS,
    MAX_LIFETIME_SECONDS,
    REFRESH_SECONDS,
    Console,
    SessionStore,
)
from facesearch.service import RekognitionService
from facesearch.store import Store, StoreUnavailableError

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
# The model's constraints, as a Rekognition user reads them in botocore.
MODEL = botocore.session.get_session().get_service_model("rekognition")
COLLECTION_ID = MODEL.shape_for("CollectionId").metadata
MAX_USERS = MODEL.operation_model("SearchUsersByImage").input_shape.members["MaxUsers"].metadata


@dataclass
class Live:
    url: str
    app: App
    photos: Path
    store: Store

    def console(self, clock: Callable[[], float] = time.time) -> Console:
        """A console of its own in the live server, on its store: another worker's, or the
        server's after a restart."""
        return Console(self.app, SessionStore(self.store), clock)

    def client(self, key: AccessKey = ALICE) -> Any:
        """boto3 on the same server, to get what the API answers for the console's images."""
        return rekognition_client(
            self.url, key.access_key_id, key.secret_access_key, retries={"max_attempts": 1}
        )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, photos_dir: Path) -> Iterator[Live]:
    service = RekognitionService(tmp_path_factory.mktemp("console-data"))
    keys = Verifier({key.access_key_id: key for key in (ALICE, BOB)})
    app = App(service, keys, threads=2, sessions=SessionStore(service.state.store))
    with serve_app(app) as url:
        yield Live(url, app, photos_dir, service.state.store)


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


def family_photo(photos: Path, path: Path) -> Path:
    """A photo made of real ones: two different men, large, and three small faces above them
    (too small for IndexFaces' default quality bar), so some faces are indexed and some not."""
    canvas = Image.new("RGB", (900, 520), (128, 128, 128))
    for name, size, at in (
        ("barack_obama/1.jpg", 380, (20, 130)),
        ("joe_biden/1.jpg", 380, (480, 130)),
        ("joe_biden/2.jpg", 36, (300, 20)),
        ("barack_obama/1.jpg", 36, (340, 22)),
        ("bill_gates/1.jpg", 40, (380, 18)),
    ):
        face = Image.open(photos / "people" / name).convert("RGB")
        face.thumbnail((size, size))
        canvas.paste(face, at)
    canvas.save(path, quality=92)
    return path


def labels_layout(figure: Any) -> dict[str, Any]:
    """Where the tags and dots of a drawn photo fell: pairs of tags that overlap, tags over
    another face's box, and each dot's size against its face's width (CSS pixels)."""
    return figure.evaluate(
        """figure => {
            const rect = el => el.getBoundingClientRect();
            const area = (a, b) =>
                Math.max(0, Math.min(a.right, b.right) - Math.max(a.left, b.left))
                * Math.max(0, Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top));
            const boxes = [...figure.querySelectorAll('.box')];
            const tags = [...figure.querySelectorAll('.tag')];
            const frame = rect(figure.querySelector('.frame'));
            const overlaps = [], covers = [], outside = [];
            tags.forEach((a, i) => {
                const r = rect(a);
                if (r.left < frame.left - 0.5 || r.right > frame.right + 0.5
                    || r.top < frame.top - 0.5 || r.bottom > frame.bottom + 0.5) {
                    outside.push(a.textContent);
                }
                tags.slice(i + 1).forEach(b => {
                    if (area(r, rect(b)) > 0.5) overlaps.push([a.textContent, b.textContent]);
                });
                boxes.forEach((box, j) => {
                    if (String(j) !== a.dataset.face && area(r, rect(box)) > 0.5)
                        covers.push([a.textContent, j + 1]);
                });
            });
            const dots = [...figure.querySelectorAll('.dot')].map(
                dot => [rect(dot).width, rect(boxes[dot.dataset.face]).width]);
            return {tags: tags.map(t => t.textContent), overlaps, covers, outside, dots};
        }"""
    )


def assert_laid_out(figure: Any) -> None:
    """No tag over another tag or another face, none outside the photo; dots small on small
    faces (at most a 20th of the face's width) and never bigger than 5 px."""
    # Laid out at the size the photo has on screen now, once it is loaded.
    figure.page.wait_for_function(
        """figure => {
            const frame = figure.querySelector('.frame'), img = figure.querySelector('img');
            return img.complete && img.naturalWidth > 0
                && frame.dataset.laidOut === `${frame.clientWidth}x${frame.clientHeight}`;
        }""",
        arg=figure.element_handle(),
    )
    layout = labels_layout(figure)
    assert layout["tags"], layout
    assert not layout["overlaps"], layout
    assert not layout["covers"], layout
    assert not layout["outside"], layout
    for size, face_width in layout["dots"]:
        assert size <= max(1.5, face_width / 20) + 0.01 and size <= 5.01, (size, face_width)


def fully_visible(page: Any, selector: str) -> list[bool]:
    """For each element matching ``selector``: whether it lies within the viewport's width and
    is what the browser finds at its centre (not clipped off by a scroller or covered)."""
    return page.locator(selector).evaluate_all(
        """elements => elements.map(el => {
            el.scrollIntoView({block: 'center'});
            const r = el.getBoundingClientRect();
            const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
            return r.left >= 0 && r.right <= window.innerWidth && r.width > 0
                && (hit === el || el.contains(hit));
        })"""
    )


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
    # What is wrong, in the words of the form: not a "security token" the user never gave.
    assert "The access key ID or the secret access key is wrong." in alert(page)
    assert "security token" not in alert(page)
    assert page.locator("#nav").is_hidden()
    # Keys are configured: the local key is neither accepted nor offered.
    assert page.locator(".local-key").count() == 0
    assert "facesearch-local" not in page.locator("main").inner_text()
    assert "null" not in page.locator("main").inner_text()
    assert page.get_by_label("Access key ID").input_value() == ALICE.access_key_id
    screenshot(page, "sign-in")


def test_sign_in_and_create_a_collection(page: Any, live: Live) -> None:
    page.get_by_label("Secret access key").fill(ALICE.secret_access_key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Collections").wait_for()
    assert ALICE.account_id in page.locator("#who-key").inner_text()
    # An id the model's pattern refuses: the page says what the format is, and sends nothing.
    field = page.get_by_label("Collection ID")
    field.fill("bad id!")
    page.get_by_role("button", name="Create collection").click()
    expected = (
        f"{COLLECTION_ID['min']} to {COLLECTION_ID['max']} characters: letters, digits and _ . -"
    )
    page.locator("#alert", has_text=expected).wait_for()
    assert field.evaluate("input => input.validationMessage") == f"A collection ID is {expected}."
    assert expected in page.locator("#new-collection-format").inner_text()
    assert live.client().list_collections()["CollectionIds"] == []
    field.fill(COLLECTION)
    assert field.evaluate("input => input.validity.valid")
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
            card.locator(".outcome", has_text=f"Associated face 1 with {person}.").wait_for()
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


def test_enrol_lets_the_user_choose_faces_and_warns_of_strangers(
    page: Any, live: Live, tmp_path: Path
) -> None:
    client = live.client()
    client.create_collection(CollectionId="home")
    family = family_photo(live.photos, tmp_path / "family.jpg")
    files = [
        family,
        live.photos / "invalid/csv_text.jpg",
        live.photos / "noface/scikit_image_coffee.png",
    ]
    # What IndexFaces makes of the same photos, in a collection of their own.
    client.create_collection(CollectionId="home-check")
    expected, failed = [], 0
    for path in files:
        try:
            expected.append(
                client.index_faces(CollectionId="home-check", Image={"Bytes": path.read_bytes()})
            )
        except ClientError:
            failed += 1
    indexed = sum(len(answer["FaceRecords"]) for answer in expected)
    unindexed = sum(len(answer["UnindexedFaces"]) for answer in expected)
    assert failed == 1 and indexed == 2 and unindexed >= 1
    page.evaluate("location.hash = '#/collections/home'")
    page.get_by_role("heading", name="Collection home").wait_for()
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Choose photos").click()
    chooser.value.set_files(files)
    # Every photo counted: the faces indexed and not, and the photo that failed.
    done = page.locator(".enrol-progress", has_text="Done:")
    done.wait_for()
    assert done.inner_text() == (
        f"Done: 3 photos, 2 faces indexed, {unindexed} face{'s' if unindexed > 1 else ''} "
        "not indexed; 1 photo failed."
    )
    card = page.locator("figure.photo[data-path='family.jpg']")
    # One numbering: the indexed faces 1 and 2, the others from 3 on, on the boxes and in the list.
    labels = card.locator(".box").evaluate_all(
        "boxes => boxes.map(b => b.getAttribute('aria-label'))"
    )
    assert labels[:2] == ["Face 1: indexed", "Face 2: indexed"]
    listed = card.locator(".reasons li").all_inner_texts()
    assert len(listed) == unindexed == len(labels) - 2
    for number, (label, item) in enumerate(zip(labels[2:], listed, strict=True), start=3):
        assert label.startswith(f"Face {number}: not indexed (") and item == label
    assert_laid_out(card)
    # Of two faces, none is chosen for the user: the page does not guess.
    picks = card.locator("input.enrol-face")
    assert picks.count() == 2 and not picks.nth(0).is_checked() and not picks.nth(1).is_checked()
    associate = card.locator("button.associate")
    assert associate.is_disabled()
    face_ids = [face["FaceId"] for face in client.list_faces(CollectionId="home")["Faces"]]
    records = [r["Face"]["FaceId"] for r in expected[0]["FaceRecords"]]
    # The faces' ids in the page, in its order, are those IndexFaces gave (face 1 = largest).
    ids = picks.evaluate_all("boxes => boxes.map(b => b.value)")
    assert sorted(ids) == sorted(face_ids) and len(ids) == len(records)
    pair = client.search_faces(CollectionId="home", FaceId=ids[0], FaceMatchThreshold=0)
    apart = next(m["Similarity"] for m in pair["FaceMatches"] if m["Face"]["FaceId"] == ids[1])
    assert apart < 75  # two different men
    # Both into one new user: AssociateFaces would take them; the page warns first.
    card.get_by_label("Face 1", exact=True).check()
    card.get_by_label("Face 2", exact=True).check()
    card.locator("input.enrol-user").fill("dad")
    assert associate.inner_text() == "Associate faces 1 and 2"
    associate.click()
    warning = card.locator(".warning")
    warning.wait_for()
    assert (
        f"Face 1 and Face 2 do not look like one person: similarity {apart:.1f}, below 75."
        in warning.inner_text()
    )
    card.evaluate("card => card.scrollIntoView({block: 'start'})")
    screenshot(page, "enrol-warning")
    warning.get_by_role("button", name="Cancel").click()
    card.locator(".outcome", has_text="Nothing associated.").wait_for()
    assert "dad" not in {u["UserId"] for u in client.list_users(CollectionId="home")["Users"]}
    # Face 1 alone into the new user: nothing to warn of.
    card.get_by_label("Face 2", exact=True).uncheck()
    associate.click()
    card.locator(".outcome", has_text="Associated face 1 with dad.").wait_for()
    assert card.locator(".warning").count() == 0
    assert [f["FaceId"] for f in client.list_faces(CollectionId="home", UserId="dad")["Faces"]] == [
        ids[0]
    ]
    # Face 2 into dad, who has a face now: scored as AssociateFaces scores it, warned, and
    # refused by the service, whose answer the page shows.
    against = client.search_users(CollectionId="home", FaceId=ids[1], UserMatchThreshold=0)
    score = next(m["Similarity"] for m in against["UserMatches"] if m["User"]["UserId"] == "dad")
    card.get_by_label("Face 2", exact=True).check()
    associate.click()
    warning.wait_for()
    assert (
        f"Face 2 scores {score:.1f} against dad's faces: AssociateFaces will refuse it below 75 "
        "(LOW_MATCH_CONFIDENCE)." in warning.inner_text()
    )
    warning.get_by_role("button", name="Associate anyway").click()
    outcome = card.locator(".outcome", has_text="not associated")
    outcome.wait_for()
    refused = client.associate_faces(CollectionId="home", UserId="dad", FaceIds=[ids[1]])
    failure = refused["UnsuccessfulFaceAssociations"][0]
    assert failure["Reasons"] == ["LOW_MATCH_CONFIDENCE"]
    assert outcome.inner_text() == (
        "Nothing associated with dad. Face 2 not associated: LOW_MATCH_CONFIDENCE: it scores "
        f"{failure['Confidence']:.1f} against dad's faces, below the bar of 75."
    )
    assert len(client.list_faces(CollectionId="home", UserId="dad")["Faces"]) == 1
    for collection in ("home", "home-check"):
        for user in client.list_users(CollectionId=collection)["Users"]:
            client.delete_user(CollectionId=collection, UserId=user["UserId"])
        client.delete_collection(CollectionId=collection)


def test_search_a_group_photo_draws_the_apis_boxes(page: Any, live: Live) -> None:
    image = (live.photos / GROUP).read_bytes()
    expected = live.client().search_users_by_image(
        CollectionId=COLLECTION, Image={"Bytes": image}, UserMatchThreshold=0
    )
    page.get_by_role("link", name="Search").click()
    page.get_by_role("heading", name="Search").wait_for()
    # MaxUsers starts at the API's default: the most a call may ask for, as the service uses it.
    assert page.locator("#max-users").input_value() == str(MAX_USERS["max"])
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
    # One numbering: the boxes' tags and the list name the same faces.
    tags = figure.locator(".tag").all_inner_texts()
    assert tags == ["1 searched"] + [str(i) for i in range(2, len(boxes) + 1)]
    assert [r.split(":")[0] for r in reasons] == [f"Face {i}" for i in range(2, len(boxes) + 1)]
    # Counts that are true: what was returned, of how many users.
    returned = len(expected["UserMatches"])
    users = live.client().describe_collection(CollectionId=COLLECTION)["UserCount"]
    assert page.locator(".match-scope").inner_text() == (
        f"{returned} users returned of the collection's {users} users; "
        "a user without faces is never returned."
    )
    assert_laid_out(figure)
    screenshot(page, "search")
    # The slider hides matches below it, without a new search.
    shown = page.locator("li.match").count()
    page.locator("#threshold").evaluate(
        "slider => { slider.value = 100; slider.dispatchEvent(new Event('input')); }"
    )
    assert page.locator("li.match").count() == 0 < shown
    assert page.locator(".match-count").inner_text().startswith("0 of")
    page.locator("#threshold").evaluate(
        "slider => { slider.value = 80; slider.dispatchEvent(new Event('input')); }"
    )


def test_search_another_face_of_the_photo(page: Any, live: Live) -> None:
    # The group photo's largest face is searched first; the other man is face 2, one click away,
    # searched in a crop around it (where it is the largest face).
    client = live.client()
    image = (live.photos / GROUP).read_bytes()
    whole = client.search_users_by_image(CollectionId=COLLECTION, Image={"Bytes": image})
    first_user = whole["UserMatches"][0]["User"]["UserId"]
    other = whole["UnsearchedFaces"][0]["FaceDetails"]["BoundingBox"]
    # The same search made here: a crop with PIL around face 2, padded by its size.
    photo = Image.open(live.photos / GROUP)
    width, height = photo.size
    crop = photo.crop(
        (
            max(0, int((other["Left"] - other["Width"]) * width)),
            max(0, int((other["Top"] - other["Height"]) * height)),
            min(width, int((other["Left"] + 2 * other["Width"]) * width)),
            min(height, int((other["Top"] + 2 * other["Height"]) * height)),
        )
    )
    buffer = io.BytesIO()
    crop.convert("RGB").save(buffer, "JPEG", quality=95)
    cropped = client.search_users_by_image(
        CollectionId=COLLECTION, Image={"Bytes": buffer.getvalue()}
    )
    second_user = cropped["UserMatches"][0]["User"]["UserId"]
    assert {first_user, second_user} == set(PEOPLE)  # the other man, found as himself
    page.get_by_role("button", name="Search face 2", exact=True).click()
    page.locator(".match-count", has_text="(face 2)").wait_for()
    figure = page.locator(".search-results figure.photo")
    page.locator(".search-results img").evaluate("img => img.decode()")
    boxes = [whole["SearchedFace"]["FaceDetail"]["BoundingBox"]] + [
        face["FaceDetails"]["BoundingBox"] for face in whole["UnsearchedFaces"]
    ]
    kinds = boxes_against(page, figure, boxes)
    assert kinds == ["unsearched", "searched"] + ["unsearched"] * (len(boxes) - 2)
    first = page.locator("li.match").first
    assert first.get_attribute("data-user") == second_user
    assert float(first.get_attribute("data-similarity") or 0) >= 80
    assert "Searched face 2 of" in page.locator("#status").inner_text()
    # Face 1 is a face to pick now, by its box as well as by the list.
    page.get_by_role("button", name="Face 1, not searched: search this face").click()
    page.locator(".match-count", has_text="(face 1)").wait_for()
    assert page.locator("li.match").first.get_attribute("data-user") == first_user
    assert not alert(page)


def test_max_users_is_the_users_choice_and_counts_are_true(page: Any, live: Live) -> None:
    client = live.client()
    for n in range(30):
        client.create_user(CollectionId=COLLECTION, UserId=f"visitor-{n:02d}")
    users = client.describe_collection(CollectionId=COLLECTION)["UserCount"]
    assert users == 32
    image = live.photos / GROUP
    expected = client.search_users_by_image(
        CollectionId=COLLECTION,
        Image={"Bytes": image.read_bytes()},
        UserMatchThreshold=0,
        MaxUsers=1,
    )
    assert len(expected["UserMatches"]) == 1
    # Out of the model's range: said, and nothing sent.
    page.locator("#max-users").fill("0")
    page.locator(".drop input.files").set_input_files(image)
    page.locator("#alert", has_text=f"from {MAX_USERS['min']} to {MAX_USERS['max']}").wait_for()
    page.locator("#max-users").fill("1")
    page.locator("#threshold").evaluate(
        "slider => { slider.value = 0; slider.dispatchEvent(new Event('input')); }"
    )
    page.locator(".drop input.files").set_input_files(image)
    page.locator(".match-scope", has_text="MaxUsers 1").wait_for()
    assert page.locator("li.match").count() == 1
    assert (
        page.locator("li.match").first.get_attribute("data-user")
        == (expected["UserMatches"][0]["User"]["UserId"])
    )
    assert page.locator(".match-scope").inner_text() == (
        f"The 1 most similar of the collection's {users} users (MaxUsers 1): "
        "more may pass the threshold."
    )
    assert page.locator(".match-count").inner_text() == (
        "1 of 1 user returned at similarity 0 or more (face 1)."
    )
    page.locator("#max-users").fill(str(MAX_USERS["max"]))
    page.locator("#threshold").evaluate(
        "slider => { slider.value = 80; slider.dispatchEvent(new Event('input')); }"
    )


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
    # Nothing was compared, and the page does not say otherwise.
    assert (
        page.locator("#status").inner_text()
        == "No face found in webcam photo; nothing was searched."
    )
    assert page.locator(".match-scope").inner_text() == ""


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
    assert_laid_out(figure)
    # Six faces side by side, each tagged with its summary: the tags find room without overlap.
    crowded = live.photos / "group/deepface_selfie_many_people.jpg"
    count = len(live.client().detect_faces(Image={"Bytes": crowded.read_bytes()})["FaceDetails"])
    page.locator(".drop input.files").set_input_files(crowded)
    page.locator(f"figure.photo img[alt='Photo {crowded.name}']").wait_for()
    page.locator("figure.photo img").evaluate("img => img.decode()")
    assert page.locator("figure.photo .box").count() == count >= 5
    assert_laid_out(page.locator("figure.photo"))
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
    # Nothing is wider than the phone, and every row's Delete button is on screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert all(fully_visible(page, "tr[data-collection] button"))
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "phone")
    page.locator(f"tr[data-collection='{COLLECTION}'] a").click()
    page.locator("tr[data-user]").first.wait_for()
    page.locator("tr[data-face]").first.wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    deletes = fully_visible(page, "tr[data-user] button.danger")
    assert len(deletes) == page.locator("tr[data-user]").count() == 10 and all(deletes)
    assert all(fully_visible(page, "tr[data-face] input.face-pick"))
    page.locator("#users-title").scroll_into_view_if_needed()
    screenshot(page, "phone-users")
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


def test_the_local_key_is_offered_where_it_is_the_key(
    browser: Any, live: Live, tmp_path: Path
) -> None:
    # A server on loopback with no key configured takes the documented local key: the sign-in
    # page says so and fills it in.
    service = RekognitionService(tmp_path / "local")
    local = local_key()
    app = App(
        service, Verifier({local.access_key_id: local}), sessions=SessionStore(service.state.store)
    )
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        with serve_app(app) as url:
            page = context.new_page()
            page.goto(f"{url}/console")
            note = page.locator(".local-key")
            note.wait_for()
            text = note.inner_text()
            assert local.access_key_id in text and local.secret_access_key in text
            screenshot(page, "sign-in-local")
            page.get_by_role("button", name="Fill in the local key").click()
            assert page.get_by_label("Access key ID").input_value() == local.access_key_id
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("heading", name="Collections").wait_for()
            assert local.access_key_id in page.locator("#who-key").inner_text()
    finally:
        context.close()
    # Where keys are configured, the page learns no key and no secret.
    with urllib.request.urlopen(f"{live.url}/console/api/info", timeout=10) as response:
        info = json.loads(response.read())
    assert info["LocalKey"] is None
    text = json.dumps(info)
    assert all(key.secret_access_key not in text for key in (ALICE, BOB))
    assert info["Shapes"]["CollectionId"] == {
        "Min": COLLECTION_ID["min"],
        "Max": COLLECTION_ID["max"],
        "Pattern": COLLECTION_ID["pattern"],
    }


def test_the_local_key_is_not_offered_off_loopback(tmp_path: Path) -> None:
    # The same server asked from another machine (through a proxy, say): not named.
    service = RekognitionService(tmp_path / "local")
    local = local_key()
    app = App(
        service, Verifier({local.access_key_id: local}), sessions=SessionStore(service.state.store)
    )
    try:
        assert app.console is not None
        for client, offered in ((("127.0.0.1", 5000), True), (("192.0.2.7", 5000), False)):
            status, _, body = asgi(app.console, "GET", "/console/api/info", client=client)
            assert status == 200
            assert (json.loads(body)["LocalKey"] is not None) is offered
    finally:
        app.close()


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
    console: Console,
    method: str,
    path: str,
    body: bytes = b"",
    headers: list | None = None,
    client: tuple[str, int] | None = None,
) -> tuple[int, dict[bytes, bytes], bytes]:
    """One request straight to the console's ASGI handler, over HTTPS: (status, headers, body)."""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "scheme": "https",
        "headers": [(b"host", b"faces.example"), *(headers or [])],
        "client": client,
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
    console = live.console(clock=lambda: now[0])
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
    console = live.console()
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
    service = RekognitionService(tmp_path / "elsewhere")
    elsewhere = App(service, Verifier({ALICE.access_key_id: ALICE}))
    try:
        foreign, _ = sign_in(Console(elsewhere, SessionStore(service.state.store)))
        assert refused(who(console, foreign))
    finally:
        elsewhere.close()


def test_a_removed_or_changed_key_ends_its_sessions(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    console = live.console()
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
    console, other = live.console(), live.console()
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
    for anywhere in (console, other, live.console()):
        assert refused(who(anywhere, cookie))
        assert refused(list_collections(anywhere, cookie, csrf))


def test_the_csrf_token_of_another_session_is_refused(live: Live) -> None:
    console = live.console()
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
    console = live.console()
    cookie, _ = sign_in(console)

    def unavailable(session_id: str) -> bool:
        raise StoreUnavailableError("The store is unavailable.")

    monkeypatch.setattr(live.store, "session_revoked", unavailable)
    status, _, error = who(console, cookie)
    assert status == 500 and error["__type"] == "InternalServerError"
