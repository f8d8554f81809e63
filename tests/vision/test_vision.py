"""Vision pipeline on the real labelled photos (each photo analysed once per session)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from support.photos import is_near_copy

from facesearch.vision import CURRENT, FACE_MODELS, AnalyzedImage, ImageError, ImageErrorKind
from facesearch.vision import image as image_module
from facesearch.vision.face import Attributes, Box
from facesearch.vision.image import MAX_IMAGE_BYTES, MIN_IMAGE_SIDE, sniff_format
from facesearch.vision.landmarks import LANDMARKS
from facesearch.vision.quality_bars import QUALITY_BARS, Shortfall
from facesearch.vision.similarity import fmr_of_similarity


@pytest.fixture(scope="session")
def analyzed(analyzer, photos_dir: Path):
    """path -> AnalyzedImage (or the ImageError), computed at most once per photo."""
    cache: dict[str, AnalyzedImage | ImageError] = {}

    def get(path: str) -> AnalyzedImage | ImageError:
        if path not in cache:
            try:
                cache[path] = analyzer.analyze((photos_dir / path).read_bytes())
            except ImageError as exc:
                cache[path] = exc
        return cache[path]

    return get


def _error(call) -> ImageError:
    with pytest.raises(ImageError) as info:
        call()
    return info.value


def test_every_person_photo_yields_a_face(analyzed, manifest, photos_dir: Path) -> None:
    missing, refused = [], []
    for row in manifest("person"):
        result = analyzed(row["path"])
        if sniff_format((photos_dir / row["path"]).read_bytes()) is None:
            # A WebP named .jpg: Rekognition accepts only JPEG and PNG.
            assert isinstance(result, ImageError), row["path"]
            assert result.kind is ImageErrorKind.INVALID_FORMAT
            refused.append(row["path"])
        elif isinstance(result, ImageError) or not result.faces:
            missing.append(row["path"])
    assert not missing
    assert len(refused) <= 1


def test_group_photos_yield_at_least_the_known_faces(analyzed, manifest) -> None:
    for row in manifest("group"):
        result = analyzed(row["path"])
        assert not isinstance(result, ImageError)
        assert len(result.faces) >= int(row["n_faces"] or 2), row["path"]
        areas = [f.box.width * f.box.height for f in result.faces]
        assert areas == sorted(areas, reverse=True)


def test_noface_photos_yield_none(analyzed, manifest) -> None:
    for row in manifest("noface"):
        result = analyzed(row["path"])
        assert not isinstance(result, ImageError)
        assert result.faces == [], row["path"]


def test_invalid_files_are_invalid_image_format(analyzer, manifest, photos_dir: Path) -> None:
    rows = manifest("invalid")
    assert rows
    for row in rows:
        err = _error(lambda row=row: analyzer.analyze((photos_dir / row["path"]).read_bytes()))
        assert err.kind is ImageErrorKind.INVALID_FORMAT


# Pillow warns about the bomb before decode_image refuses it; pytest re-enables that warning.
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_input_limits(analyzer, photos_dir: Path) -> None:
    photo = (photos_dir / "people/bill_gates/1.jpg").read_bytes()
    err = _error(lambda: analyzer.analyze(photo + b"\0" * (MAX_IMAGE_BYTES + 1 - len(photo))))
    assert err.kind is ImageErrorKind.TOO_LARGE
    # The limit is a parameter: an S3 object may be 15 MB.
    analyzer.analyze(photo + b"\0" * (MAX_IMAGE_BYTES + 1 - len(photo)), max_bytes=15 << 20)

    tiny = io.BytesIO()
    Image.new("RGB", (79, 200), "white").save(tiny, "PNG")
    err = _error(lambda: analyzer.analyze(tiny.getvalue()))
    assert (err.kind, err.size, err.min_side) == (ImageErrorKind.TOO_SMALL, (79, 200), 80)
    assert MIN_IMAGE_SIDE == 80
    for junk in (b"", b"GIF89a" + b"\0" * 100, b"hello, world"):
        assert _error(lambda junk=junk: analyzer.analyze(junk)).kind is (
            ImageErrorKind.INVALID_FORMAT
        )
    bomb = io.BytesIO()
    Image.new("1", (12_000, 8_000)).save(bomb, "PNG")  # 96 Mpx in a few kB
    assert _error(lambda: analyzer.analyze(bomb.getvalue())).kind is ImageErrorKind.TOO_LARGE


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_large_images_are_analysed_reduced_with_the_same_box(
    analyzer, analyzed, photos_dir, fmt, monkeypatch
):
    path = "people/barack_obama/1.jpg"
    original = analyzed(path)
    enlarged = Image.open(photos_dir / path).convert("RGB")
    enlarged = enlarged.resize((enlarged.width * 3, enlarged.height * 3), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    enlarged.save(buf, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    # As if this were a 9000x9000 photo over the real 25 MP bar.
    monkeypatch.setattr(image_module, "MAX_ANALYSIS_PIXELS", enlarged.width * enlarged.height // 4)
    reduced = analyzer.analyze(buf.getvalue(), max_bytes=15 << 20)
    assert reduced.width * reduced.height <= enlarged.width * enlarged.height // 4
    a, b = original.faces[0].box, reduced.faces[0].box
    for key in ("left", "top", "width", "height"):
        assert abs(getattr(a, key) - getattr(b, key)) < 0.02, (key, a, b)


@pytest.mark.parametrize("transpose,orientation", [
    (Image.Transpose.ROTATE_90, 6),  # stored rotated; the tag says "rotate back 90 CW"
    (Image.Transpose.ROTATE_180, 3),
    (Image.Transpose.ROTATE_270, 8),
])  # fmt: skip
def test_exif_orientation_gives_the_same_box(
    analyzer, analyzed, photos_dir, transpose, orientation
):
    path = "people/barack_obama/1.jpg"
    upright = analyzed(path)
    stored = Image.open(photos_dir / path).transpose(transpose)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=95, exif=exif)
    rotated = analyzer.analyze(buf.getvalue())
    assert (rotated.width, rotated.height) == (upright.width, upright.height)
    a, b = upright.faces[0].box, rotated.faces[0].box
    for key in ("left", "top", "width", "height"):
        assert abs(getattr(a, key) - getattr(b, key)) < 0.02, (key, a, b)


def test_face_shapes(analyzer, analyzed, photos_dir: Path) -> None:
    face = analyzed("people/barack_obama/1.jpg").faces[0]
    assert isinstance(face.box, Box)
    assert list(face.landmarks) == list(LANDMARKS)
    assert len(face.landmarks) == 30
    assert 0 <= face.confidence <= 100
    assert 0 <= face.quality.brightness <= 100 and 0 <= face.quality.sharpness <= 100
    assert all(-180 <= v <= 180 for v in (face.pose.roll, face.pose.yaw, face.pose.pitch))
    assert face.embedding.dtype == np.float32
    assert abs(float(np.linalg.norm(face.embedding)) - 1) < 1e-5
    lm = face.landmarks
    # Left and right are the viewer's.
    assert lm["eye_left"].x < lm["eye_right"].x
    assert lm["mouth_left"].x < lm["mouth_right"].x
    assert lm["eye_left"].y < lm["nose"].y < lm["mouth_up"].y < lm["chin_bottom"].y
    assert face.attributes is None

    full = analyzer.analyze(
        (photos_dir / "people/barack_obama/1.jpg").read_bytes(), attributes=True
    )
    attributes = full.faces[0].attributes
    assert isinstance(attributes, Attributes)
    assert attributes.gender.label == "male"
    assert 30 <= attributes.age_range.low < attributes.age_range.high <= 60
    # A broad smile with open eyes.
    assert attributes.emotions[0].label == "happy"
    assert len(attributes.emotions) == 7
    assert attributes.smile.value and attributes.eyes_open.value


def test_mirror_flips_pose_sign(analyzer, photos_dir: Path) -> None:
    image = Image.open(photos_dir / "people/madonna/11.jpg")  # head turned well to one side
    buf = io.BytesIO()
    image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(buf, "JPEG", quality=95)
    pose = analyzer.analyze((photos_dir / "people/madonna/11.jpg").read_bytes()).faces[0].pose
    mirrored = analyzer.analyze(buf.getvalue()).faces[0].pose
    assert abs(pose.yaw) > 20
    assert pose.yaw * mirrored.yaw < 0
    assert abs(pose.yaw + mirrored.yaw) < 12


def test_landmarks_fall_in_their_box(analyzed, manifest) -> None:
    outside = 0
    total = 0
    for row in manifest("person")[::4] + manifest("group"):
        result = analyzed(row["path"])
        if isinstance(result, ImageError):
            continue
        for face in result.faces:
            box = face.box
            # "On the edge": a tenth of the box's size of slack for the jaw and brow outline.
            sx, sy = box.width * 0.1, box.height * 0.1
            for lm in face.landmarks.values():
                total += 1
                inside_x = box.left - sx <= lm.x <= box.left + box.width + sx
                inside_y = box.top - sy <= lm.y <= box.top + box.height + sy
                outside += not (inside_x and inside_y)
    assert total > 1000
    assert outside / total < 0.01, f"{outside} of {total} landmarks outside their box"


def test_quality_filter_auto_keeps_people(analyzed, manifest) -> None:
    dropped = {}
    for row in manifest("person"):
        result = analyzed(row["path"])
        if isinstance(result, ImageError):
            continue
        shortfalls = QUALITY_BARS["AUTO"].shortfalls(result.faces[0])
        if shortfalls:
            dropped[row["path"]] = shortfalls
    assert dropped == {}


def test_quality_filter_reasons(analyzer, photos_dir: Path) -> None:
    image = Image.open(photos_dir / "people/barack_obama/1.jpg")
    dark = io.BytesIO()
    image.point(lambda v: v // 12).save(dark, "JPEG", quality=95)
    face = analyzer.analyze(dark.getvalue()).faces[0]
    assert Shortfall.BRIGHTNESS in QUALITY_BARS["MEDIUM"].shortfalls(face)
    blurred = io.BytesIO()
    small = image.resize((image.width // 10, image.height // 10))
    small.resize(image.size).save(blurred, "JPEG", quality=95)
    face = analyzer.analyze(blurred.getvalue()).faces[0]
    assert Shortfall.SHARPNESS in QUALITY_BARS["HIGH"].shortfalls(face)


def test_verification_on_pairs(analyzed, manifest, photos_dir: Path) -> None:
    variants = {row["path"] for row in manifest() if is_near_copy(row)}
    same, diff = [], []
    with open(photos_dir / "pairs.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["path_a"] in variants or row["path_b"] in variants:
                continue
            a, b = analyzed(row["path_a"]), analyzed(row["path_b"])
            if isinstance(a, ImageError) or isinstance(b, ImageError):
                continue
            score = float(
                CURRENT.calibration.scores(a.faces[0].embedding, b.faces[0].embedding[None])[0]
            )
            (same if row["same_person"] == "1" else diff).append(score)
    same_a, diff_a = np.array(same), np.array(diff)
    accuracy = ((same_a >= 80).sum() + (diff_a < 80).sum()) / (len(same_a) + len(diff_a))
    print(
        f"\npairs.csv verification accuracy at similarity 80: {accuracy:.2%} "
        f"({len(same_a)} same, {len(diff_a)} different)"
    )
    assert len(same_a) > 100 and len(diff_a) > 300
    assert np.median(same_a) > np.median(diff_a) + 40
    assert accuracy >= 0.97
    assert (diff_a >= 80).mean() <= 0.01  # strict at Rekognition's default threshold


@pytest.mark.parametrize("model", FACE_MODELS.values(), ids=list(FACE_MODELS))
def test_calibration_is_monotone_and_inverts(model) -> None:
    calibration = model.calibration
    cos = np.linspace(-1, 1, 401)
    sim = calibration.similarity(cos)
    assert sim.shape == cos.shape and np.all(np.diff(sim) >= 0)
    assert sim[0] == 0 and sim[-1] == 100
    assert isinstance(calibration.similarity(0.5), float)
    for threshold in (0.5, 50, 80, 90, 95, 99, 99.9):
        bar = calibration.min_cosine(threshold)
        assert calibration.similarity(bar) >= threshold > calibration.similarity(bar - 1e-6)
    q = np.array([1, 0], np.float32)
    assert calibration.scores(q, np.array([[1, 0], [-1, 0]], np.float32)).tolist() == [100.0, 0.0]


def test_false_match_scale_holds_on_held_out_photos(analyzed, manifest) -> None:
    """The map was fitted on faces-calib; on faces/ (other people) a similarity must still
    mean its false-match rate per comparison (similarity.py's scale)."""
    faces = [
        (row["identity"], analyzed(row["path"]))
        for row in manifest("person")
        if not is_near_copy(row)
    ]
    faces = [(name, a) for name, a in faces if not isinstance(a, ImageError) and a.faces]
    vectors = np.stack([a.faces[0].embedding for _, a in faces])
    names = np.array([name for name, _ in faces])
    upper = np.triu_indices(len(faces), 1)
    different = names[upper[0]] != names[upper[1]]
    similarities = CURRENT.calibration.similarity((vectors @ vectors.T)[upper])
    impostors, genuine = similarities[different], similarities[~different]
    assert len(impostors) > 40_000 and len(genuine) > 2_000
    for threshold in (40, 50, 60):
        measured = float((impostors >= threshold).mean())
        expected = fmr_of_similarity(threshold)
        print(f"\nFMR at {threshold}: {measured:.2e} (the scale says {expected:.1e})")
        assert expected / 3 <= measured <= expected * 3
    assert (impostors >= 80).sum() <= 2  # the scale expects 0.25 of 50,000 pairs
    assert np.median(genuine) >= 90


def test_every_face_has_a_head_pose(analyzed, manifest) -> None:
    """Faces cut by the image edge get a mesh that is not a head's; their Pose must still be
    one (they fall back to the detector's five points)."""
    for row in manifest("person") + manifest("group"):
        result = analyzed(row["path"])
        if isinstance(result, ImageError):
            continue
        for face in result.faces:
            assert abs(face.pose.yaw) <= 90 and abs(face.pose.pitch) <= 90, (
                row["path"],
                face.pose,
            )
    cut = analyzed("people/jerry_seinfeld/13.jpg").faces[1]  # half a face at the right edge
    assert abs(cut.pose.roll) < 45


def test_sharpness_of_a_face_cut_by_the_edge(analyzer, photos_dir: Path) -> None:
    """The black fill beyond the image edge is not detail: a blurred face cut in two scores as
    the whole blurred face does."""
    image = Image.open(photos_dir / "people/barack_obama/1.jpg").convert("RGB")
    image = image.filter(ImageFilter.GaussianBlur(3))
    x, _, w, _ = analyzer.analyze(_jpeg(image)).faces[0].box_pixels
    whole = analyzer.analyze(_jpeg(image)).faces[0].quality.sharpness
    cut = analyzer.analyze(_jpeg(image.crop((0, 0, int(x + 0.7 * w), image.height))))
    assert abs(cut.faces[0].quality.sharpness - whole) <= 10, (whole, cut.faces[0].quality)


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


@pytest.mark.parametrize("angle", [90, 270, 180])
def test_a_photo_turned_without_exif_is_looked_at_again(analyzer, photos_dir, angle) -> None:
    """A photo turned on its side (no EXIF orientation) is analysed turned back: the same
    face, its roll the turn, its box and landmarks in the photo's own frame."""
    path = photos_dir / "people/bill_gates/1.jpg"
    upright = analyzer.analyze(path.read_bytes()).faces[0]
    image = Image.open(path).convert("RGB")
    width, height = image.size
    turned = analyzer.analyze(_jpeg(image.rotate(angle, expand=True))).faces
    assert len(turned) == 1
    face = turned[0]
    assert float(face.embedding @ upright.embedding) > 0.9
    expected_roll = {90: 90, 270: -90, 180: 180}[angle]
    assert abs((face.pose.roll - expected_roll + 180) % 360 - 180) < 25, face.pose
    # PIL turns counter-clockwise: where the upright box's corners went.
    x, y, w, h = upright.box_pixels
    corners = {
        90: (y, width - x - w, h, w),
        270: (height - y - h, x, h, w),
        180: (width - x - w, height - y - h, w, h),
    }[angle]
    size = (width, height) if angle == 180 else (height, width)
    box = face.box
    got = (box.left * size[0], box.top * size[1], box.width * size[0], box.height * size[1])
    assert all(abs(g - e) < 0.03 * max(size) for g, e in zip(got, corners, strict=True)), got
    nose = face.landmarks["nose"]
    assert box.left <= nose.x <= box.left + box.width
    assert box.top <= nose.y <= box.top + box.height


def test_vision_errors_survive_pickling() -> None:
    # A process pool sends a worker's exception back pickled: it must arrive whole.
    import pickle

    from facesearch.vision.errors import UnknownFaceModelError

    small = ImageError(ImageErrorKind.TOO_SMALL, "too small", size=(20, 10), min_side=32)
    again = pickle.loads(pickle.dumps(small))
    assert (again.kind, str(again), again.size, again.min_side) == (
        ImageErrorKind.TOO_SMALL,
        "too small",
        (20, 10),
        32,
    )
    unknown = pickle.loads(pickle.dumps(UnknownFaceModelError("9.9", ("1.0", "2.0"))))
    assert (unknown.version, unknown.known, str(unknown)) == (
        "9.9",
        ("1.0", "2.0"),
        str(UnknownFaceModelError("9.9", ("1.0", "2.0"))),
    )
