"""AgeRange and Gender (DetectFaces/IndexFaces with ALL attributes) on the labelled photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from support.photos import is_near_copy

from facesearch.vision import ImageError, get_analyzer
from facesearch.vision.age_gender import (
    DETECTOR_TEMPLATE,
    DLIB_TEMPLATE,
    MESH_POINTS,
    age_range,
    face_chip,
    gender_of,
)
from facesearch.vision.face import AgeRange
from facesearch.vision.image import decode_image, sniff_format
from facesearch.vision.pose import believable, head_pose

# The public gender presentation of the named people of faces/ (deepface_unnamed_* left out).
GENDER = {
    "alex_lacamoire": "Male", "barack_obama": "Male", "ben_affleck": "Male",
    "bill_gates": "Male", "britney_spears": "Female", "deepface_angelina": "Female",
    "deepface_elon": "Male", "deepface_jack": "Male", "deepface_jeff": "Male",
    "deepface_jennifer": "Female", "deepface_marissa": "Female", "deepface_mark": "Male",
    "deepface_scarlett": "Female", "deepface_sundar": "Male", "elton_john": "Male",
    "hu_jintao": "Male", "jackie_chan": "Male", "jerry_seinfeld": "Male", "joe_biden": "Male",
    "kit_harington": "Male", "lin_manuel_miranda": "Male", "madonna": "Female",
    "mindy_kaling": "Female", "rose_leslie": "Female", "salma_hayek": "Female",
    "venus_williams": "Female",
}  # fmt: skip
# Measured 296/305 (97.0 %); the bar leaves room for a model or landmark update, not for a
# broken chip (a misaligned chip drops far below it).
GENDER_BAR = 0.95


def test_gender_and_age_on_named_people(manifest, photos_dir: Path) -> None:
    analyzer = get_analyzer()
    right = total = 0
    for row in manifest("person"):
        if row["identity"] not in GENDER or is_near_copy(row):
            continue
        try:
            faces = analyzer.analyze((photos_dir / row["path"]).read_bytes(), attributes=True).faces
        except ImageError:
            continue  # the WebP named .jpg
        attributes = faces[0].attributes
        assert attributes is not None
        gender, ages = attributes.gender, attributes.age_range
        assert gender.label in ("male", "female") and 50 <= gender.confidence <= 100
        assert 0 <= ages.low < ages.high <= 100, (row["path"], ages)
        total += 1
        right += gender.label == GENDER[row["identity"]].lower()
    print(f"\ngender right on {right}/{total} photos of named people")
    assert total > 280
    assert right / total >= GENDER_BAR


def test_age_range_follows_the_distribution() -> None:
    sure = np.zeros(81)
    sure[40] = 1.0  # all mass on 40 years: at least 3 years either side
    assert age_range(sure) == AgeRange(low=37, high=43)
    spread = np.zeros(81)
    spread[20:61] = 1.0  # flat over 20..60: the middle 80 %
    low_high = age_range(spread)
    assert 23 <= low_high.low <= 25 and 55 <= low_high.high <= 57


def test_chip_puts_the_five_points_on_the_template() -> None:
    # A synthetic image with five bright dots where a face's points would be, tilted 20 degrees.
    rgb = np.zeros((300, 300, 3), np.uint8)
    template = np.array([[0.86, 0.21], [0.65, 0.23], [0.12, 0.21], [0.33, 0.23], [0.49, 0.63]])
    angle = np.radians(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = (template - 0.5) @ rotation.T * 120 + 150
    for x, y in points:
        cx, cy = round(x), round(y)
        rgb[cy - 1 : cy + 2, cx - 1 : cx + 2] = 255
    chip = face_chip(rgb, points, 64)
    expected = (0.2 + template) / 1.4 * 64
    for x, y in expected:  # each dot lands within a pixel or two of its template place
        window = chip[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3]
        assert window.max() > 40, (x, y)


@pytest.mark.parametrize("attributes", [["DEFAULT"], ["ALL"]])
def test_detect_faces_returns_them_with_all_only(tmp_path, photos_dir, attributes) -> None:
    import facesearch

    client = facesearch.client(data_dir=tmp_path)
    detail = client.detect_faces(
        Image={"Bytes": (photos_dir / "people/madonna/1.jpg").read_bytes()}, Attributes=attributes
    )["FaceDetails"][0]
    client.close()
    if attributes == ["ALL"]:
        assert detail["Gender"]["Value"] == "Female" and "AgeRange" in detail
    else:
        assert "Gender" not in detail and "AgeRange" not in detail


def test_the_detector_points_place_the_chip_where_the_mesh_does(manifest, photos_dir: Path) -> None:
    # Where the mesh is not believed the chip is placed by the detector's points: on real faces
    # whose mesh is believed, that chip must put the mesh's five points where dlib's template
    # has them, as the mesh's own chip does (off by the template's spread, largest point of five:
    # a few % of the chip; more on a turned head, where the two sets of points disagree).
    analyzer = get_analyzer()
    estimator = analyzer._runtime().age_gender
    errors = []
    for row in [r for r in manifest("person") if r["identity"] in GENDER][::10]:
        data = (photos_dir / row["path"]).read_bytes()
        if sniff_format(data[:16]) is None:
            continue  # the WebP named .jpg
        rgb = decode_image(data)
        with analyzer._networks() as networks:
            detection = networks.detector.detect(rgb)[0]
            mesh = networks.mesher.mesh(rgb, detection)
        if not believable(head_pose(mesh.points), detection.points):
            continue
        to_template, _ = cv2.estimateAffinePartial2D(
            detection.points.astype(np.float32),
            DETECTOR_TEMPLATE.astype(np.float32),
            method=cv2.LMEDS,
        )
        placed = np.c_[mesh.points[list(MESH_POINTS), :2], np.ones(5)] @ to_template.T
        errors.append(float(np.abs(placed - DLIB_TEMPLATE).max()))
        # And estimate() takes the detector's points when told the mesh is not believed.
        nonsense = np.zeros_like(mesh.points)
        ages, gender = estimator.probabilities(rgb, detection.points, DETECTOR_TEMPLATE)
        assert estimator.estimate(rgb, nonsense, detection.points, believed=False) == (
            age_range(ages),
            gender_of(gender),
        )
    assert len(errors) >= 25
    # Measured: median 0.065 (3 px of the 64 px chip), 71 % under 0.1; a template with two
    # points swapped or off by a tenth of the face is 0.3 or more off on every face.
    assert np.median(errors) < 0.09, sorted(errors)
    assert np.mean(np.array(errors) < 0.12) >= 0.7, sorted(errors)
