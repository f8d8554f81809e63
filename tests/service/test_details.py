"""Where vision's plain values become Rekognition's: FaceDetail and ComparedFace shapes, quality
filter reasons, and the error codes and messages of refused images and face model versions."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
from botocore.model import StringShape
from PIL import Image

from facesearch.contract import FACE_DETAIL_NOT_RETURNED, service_model
from facesearch.errors import RekognitionError
from facesearch.service.context import rekognition_error
from facesearch.service.details import compared_face, face_detail, quality_reasons
from facesearch.vision import FACE_MODELS, Face, ImageError, UnknownFaceModelError, get_analyzer
from facesearch.vision.image import MAX_IMAGE_BYTES

OBAMA = "people/barack_obama/1.jpg"
DEFAULT_MEMBERS = ["BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"]
ALL_MEMBERS = ["Smile", "EyesOpen", "MouthOpen", "Emotions", "EyeDirection", "AgeRange", "Gender"]
Photo = Callable[[str], bytes]


def _enum(name: str) -> list[str]:
    return cast(StringShape, service_model().shape_for(name)).enum


@pytest.fixture(scope="module")
def faces(photo: Photo) -> tuple[Face, Face]:
    """Obama's face analysed without, then with, the attributes."""
    analyzer = get_analyzer()
    return analyzer.analyze(photo(OBAMA)).faces[0], analyzer.analyze(
        photo(OBAMA), attributes=True
    ).faces[0]


def test_default_face_detail(faces: tuple[Face, Face]) -> None:
    face, _ = faces
    detail = face_detail(face, None)
    assert list(detail) == DEFAULT_MEMBERS
    assert face_detail(face, ["DEFAULT"]) == detail
    box = face.box
    assert list(detail["BoundingBox"].items()) == [
        ("Width", box.width),
        ("Height", box.height),
        ("Left", box.left),
        ("Top", box.top),
    ]
    assert detail["Confidence"] == face.confidence
    # Rekognition's 30 landmark types in the model's order, at vision's points.
    assert [lm["Type"] for lm in detail["Landmarks"]] == _enum("LandmarkType")
    assert [list(lm) for lm in detail["Landmarks"]] == [["Type", "X", "Y"]] * 30
    assert [(lm["X"], lm["Y"]) for lm in detail["Landmarks"]] == [
        (p.x, p.y) for p in face.landmarks.values()
    ]
    lm = {m["Type"]: m for m in detail["Landmarks"]}
    assert lm["eyeLeft"]["X"] < lm["eyeRight"]["X"]  # Rekognition's left is the viewer's
    pose = face.pose
    assert list(detail["Pose"].items()) == [
        ("Roll", pose.roll),
        ("Yaw", pose.yaw),
        ("Pitch", pose.pitch),
    ]
    quality = face.quality
    assert list(detail["Quality"].items()) == [
        ("Brightness", quality.brightness),
        ("Sharpness", quality.sharpness),
    ]
    with pytest.raises(ValueError):
        face_detail(face, ["ALL"])  # analysed without attributes


def test_all_attributes(faces: tuple[Face, Face]) -> None:
    _, face = faces
    everything = face_detail(face, ["ALL"])
    assert list(everything) == DEFAULT_MEMBERS + ALL_MEMBERS
    assert not set(FACE_DETAIL_NOT_RETURNED) & set(everything)
    attributes = face.attributes
    assert attributes is not None
    assert everything["Gender"] == {"Value": "Male", "Confidence": attributes.gender.confidence}
    ages = attributes.age_range
    assert everything["AgeRange"] == {"Low": ages.low, "High": ages.high}
    emotions = everything["Emotions"]
    assert emotions[0]["Type"] == "HAPPY"
    assert {e["Type"] for e in emotions} <= set(_enum("EmotionName"))
    assert [e["Confidence"] for e in emotions] == [e.confidence for e in attributes.emotions]
    assert list(everything["EyeDirection"]) == ["Yaw", "Pitch", "Confidence"]
    for member in ("Smile", "EyesOpen", "MouthOpen"):
        assert list(everything[member]) == ["Value", "Confidence"]
    assert everything["Smile"]["Value"] is True and everything["EyesOpen"]["Value"] is True
    # Only the members asked for, in FaceDetail's usual order; those never computed: none.
    some = face_detail(face, ["AGE_RANGE", "DEFAULT", "EMOTIONS"])
    assert list(some) == [*DEFAULT_MEMBERS, "Emotions", "AgeRange"]
    assert list(face_detail(face, ["BEARD"])) == DEFAULT_MEMBERS
    compared = compared_face(face)
    assert list(compared) == [*DEFAULT_MEMBERS, "Emotions", "Smile"]
    assert list(compared_face(faces[0])) == DEFAULT_MEMBERS


def test_quality_reasons(photos_dir: Path) -> None:
    image = Image.open(photos_dir / OBAMA)
    dark = io.BytesIO()
    image.point(lambda v: v // 12).save(dark, "JPEG", quality=95)
    face = get_analyzer().analyze(dark.getvalue()).faces[0]
    assert "LOW_BRIGHTNESS" in quality_reasons(face, "MEDIUM")
    assert quality_reasons(face, "NONE") == []
    with pytest.raises(ValueError):
        quality_reasons(face, "BEST")
    blurred = io.BytesIO()
    small = image.resize((image.width // 10, image.height // 10))
    small.resize(image.size).save(blurred, "JPEG", quality=95)
    face = get_analyzer().analyze(blurred.getvalue()).faces[0]
    assert "LOW_SHARPNESS" in quality_reasons(face, "HIGH")


def _refusal(data: bytes, max_bytes: int = MAX_IMAGE_BYTES) -> tuple[str, str]:
    with pytest.raises(ImageError) as info:
        get_analyzer().analyze(data, max_bytes=max_bytes)
    error = rekognition_error(info.value)
    assert isinstance(error, RekognitionError)
    return error.code, error.message


# Pillow warns about the bomb before decode_image refuses it; pytest re-enables that warning.
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_image_errors_are_rekognitions(
    photo: Photo, manifest: Callable[[str], list[dict[str, str]]], photos_dir: Path
) -> None:
    too_large = ("ImageTooLargeException", "Image size is too large.")
    invalid = ("InvalidImageFormatException", "Request has invalid image format.")
    data = photo(OBAMA)
    assert _refusal(data + b"\0" * (MAX_IMAGE_BYTES + 1 - len(data))) == too_large
    assert _refusal(data, max_bytes=len(data) - 1) == too_large
    bomb = io.BytesIO()
    Image.new("1", (12_000, 8_000)).save(bomb, "PNG")  # 96 Mpx in a few kB
    assert _refusal(bomb.getvalue()) == too_large
    for junk in (b"", b"GIF89a" + b"\0" * 100, b"hello, world", data[:3000]):
        assert _refusal(junk) == invalid
    rows = manifest("invalid")
    assert rows
    for row in rows:
        assert _refusal((photos_dir / row["path"]).read_bytes()) == invalid
    tiny = io.BytesIO()
    Image.new("RGB", (79, 200), "white").save(tiny, "PNG")
    assert _refusal(tiny.getvalue()) == (
        "InvalidParameterException",
        "Image dimensions 79x200 are below the minimum of 80 pixels per side.",
    )


def test_unknown_face_model_is_invalid_parameter() -> None:
    error = rekognition_error(UnknownFaceModelError("later/9", tuple(FACE_MODELS)))
    assert (error.code, error.message) == (
        "InvalidParameterException",
        f"Face model version later/9 is unknown to this facesearch, which runs "
        f"{', '.join(FACE_MODELS)}. Upgrade facesearch to use this collection.",
    )
