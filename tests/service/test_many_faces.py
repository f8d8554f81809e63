"""Every face accounted for: a real mosaic of 120 faces cut from the labelled photos."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from PIL import Image
from support.photos import is_near_copy

from facesearch.vision import get_analyzer

TILE, COLUMNS, ROWS = 80, 12, 10


@pytest.fixture(scope="module")
def mosaic(photos_dir: Path) -> bytes:
    """120 face crops of the people photos, tiled 12 x 10 into one 960x800 JPEG."""
    analyzer = get_analyzer()
    with open(photos_dir / "manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "person"]
    tiles = []
    for row in rows:
        if len(tiles) == COLUMNS * ROWS:
            break
        if is_near_copy(row):
            continue
        data = (photos_dir / row["path"]).read_bytes()
        try:
            faces = analyzer.analyze(data, max_faces=1).faces
        except Exception:  # the WebP named .jpg
            continue
        if not faces:
            continue
        x, y, w, h = faces[0].box_pixels
        side = max(w, h) * 1.7
        box = (
            x + w / 2 - side / 2,
            y + h / 2 - side / 2,
            x + w / 2 + side / 2,
            y + h / 2 + side / 2,
        )
        image = Image.open(io.BytesIO(data)).convert("RGB")
        tiles.append(image.crop(tuple(int(v) for v in box)).resize((TILE, TILE)))
    sheet = Image.new("RGB", (COLUMNS * TILE, ROWS * TILE))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % COLUMNS) * TILE, (i // COLUMNS) * TILE))
    out = io.BytesIO()
    sheet.save(out, "JPEG", quality=92)
    return out.getvalue()


def test_every_face_of_a_crowd_is_accounted_for(client, mosaic: bytes) -> None:
    detected = len(get_analyzer().analyze(mosaic).faces)
    assert detected > 110  # well past Rekognition's 100

    image = {"Bytes": mosaic}
    assert len(client.detect_faces(Image=image)["FaceDetails"]) == 100  # the 100 largest

    client.create_collection(CollectionId="crowd")
    indexed = client.index_faces(CollectionId="crowd", Image=image, QualityFilter="NONE")
    assert len(indexed["FaceRecords"]) == 100
    unindexed = indexed["UnindexedFaces"]
    assert len(unindexed) == detected - 100
    assert all(u["Reasons"] == ["EXCEEDS_MAX_FACES"] for u in unindexed)

    client.create_user(CollectionId="crowd", UserId="someone")
    client.associate_faces(
        CollectionId="crowd",
        UserId="someone",
        FaceIds=[indexed["FaceRecords"][0]["Face"]["FaceId"]],
    )
    searched = client.search_users_by_image(CollectionId="crowd", Image=image)
    assert len(searched["UnsearchedFaces"]) == detected - 1
    # The 2nd..100th largest are not the largest; the faces past the 100 largest exceed the limit.
    reasons = [u["Reasons"][0] for u in searched["UnsearchedFaces"]]
    assert reasons == ["FACE_NOT_LARGEST"] * 99 + ["EXCEEDS_MAX_FACES"] * (detected - 100)
    assert all("FACE_NOT_LARGEST" not in u["Reasons"][1:] for u in searched["UnsearchedFaces"])
