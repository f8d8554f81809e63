"""Response shapes built from analysed faces and stored face records: where vision's plain values
(vision/face.py) become Rekognition's members, names and order."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, cast

from botocore.model import StringShape, StructureShape

from facesearch.model import service_model
from facesearch.store import FaceRecord
from facesearch.vision.face import Attributes, Binary, Box, Emotion, Face
from facesearch.vision.quality_bars import QUALITY_BARS, Shortfall

# The emotion network's labels as EmotionName values. It has no CONFUSED (nor UNKNOWN);
# "neutral" is reported as CALM.
EMOTION_TYPES = {
    "angry": "ANGRY",
    "disgust": "DISGUSTED",
    "fear": "FEAR",
    "happy": "HAPPY",
    "sad": "SAD",
    "surprise": "SURPRISED",
    "neutral": "CALM",
}
GENDER_TYPES = {"female": "Female", "male": "Male"}
# The UnindexedFace (and UnsearchedFace) Reasons of a quality bar's shortfalls.
QUALITY_REASONS = {
    Shortfall.POSE: "EXTREME_POSE",
    Shortfall.BRIGHTNESS: "LOW_BRIGHTNESS",
    Shortfall.SHARPNESS: "LOW_SHARPNESS",
    Shortfall.CONFIDENCE: "LOW_CONFIDENCE",
    Shortfall.SIZE: "SMALL_BOUNDING_BOX",
    Shortfall.PRESENCE: "LOW_FACE_QUALITY",
}


def _enum(name: str) -> list[str]:
    """The values of one of the model's string enums."""
    return cast(StringShape, service_model().shape_for(name)).enum


@cache
def _attribute_members() -> dict[str, str]:
    """DetectionAttributes values (EYES_OPEN, ...) -> FaceDetail member names (EyesOpen, ...)."""
    detail = cast(StructureShape, service_model().shape_for("FaceDetail"))
    members = {m.lower(): m for m in detail.members}
    return {
        value: members[value.replace("_", "").lower()]
        for value in _enum("Attribute")
        if value.replace("_", "").lower() in members
    }


@cache
def _landmark_type(name: str) -> str:
    """The LandmarkType of one of vision's landmark names: the same words (eye_left: eyeLeft)."""
    return {value.lower(): value for value in _enum("LandmarkType")}[name.replace("_", "")]


def wants_attributes(attributes: Sequence[str] | None) -> bool:
    """Whether a DetectionAttributes/Attributes list asks for more than the DEFAULT set."""
    return any(a != "DEFAULT" for a in attributes or ())


def bounding_box(box: Box) -> dict[str, float]:
    """A BoundingBox."""
    return {"Width": box.width, "Height": box.height, "Left": box.left, "Top": box.top}


def _binary(attribute: Binary) -> dict[str, Any]:
    return {"Value": attribute.value, "Confidence": attribute.confidence}


def _emotions(emotions: Sequence[Emotion]) -> list[dict[str, Any]]:
    return [{"Type": EMOTION_TYPES[e.label], "Confidence": e.confidence} for e in emotions]


def _default_detail(face: Face) -> dict[str, Any]:
    """The FaceDetail members of the DEFAULT attributes."""
    pose, quality = face.pose, face.quality
    return {
        "BoundingBox": bounding_box(face.box),
        "Confidence": face.confidence,
        "Landmarks": [
            {"Type": _landmark_type(name), "X": point.x, "Y": point.y}
            for name, point in face.landmarks.items()
        ],
        "Pose": {"Roll": pose.roll, "Yaw": pose.yaw, "Pitch": pose.pitch},
        "Quality": {"Brightness": quality.brightness, "Sharpness": quality.sharpness},
    }


def _attribute_details(attributes: Attributes) -> dict[str, Any]:
    """The FaceDetail members that ALL adds and facesearch computes, in the order it gives them
    (the others, contract.FACE_DETAIL_NOT_RETURNED, no installable model carries)."""
    gaze, ages, gender = attributes.gaze, attributes.age_range, attributes.gender
    return {
        "Smile": _binary(attributes.smile),
        "EyesOpen": _binary(attributes.eyes_open),
        "MouthOpen": _binary(attributes.mouth_open),
        "Emotions": _emotions(attributes.emotions),
        "EyeDirection": {"Yaw": gaze.yaw, "Pitch": gaze.pitch, "Confidence": gaze.confidence},
        "AgeRange": {"Low": ages.low, "High": ages.high},
        "Gender": {"Value": GENDER_TYPES[gender.label], "Confidence": gender.confidence},
    }


def face_detail(face: Face, attributes: Sequence[str] | None) -> dict[str, Any]:
    """A FaceDetail with the DEFAULT members plus the requested attributes we can compute
    (beyond DEFAULT, the face must have been analysed with attributes)."""
    detail = _default_detail(face)
    if not wants_attributes(attributes):
        return detail
    if face.attributes is None:
        raise ValueError("attributes beyond DEFAULT need analyze(..., attributes=True)")
    computed = _attribute_details(face.attributes)
    if "ALL" not in (attributes or ()):
        members = _attribute_members()
        requested = {members[a] for a in attributes or () if a in members}
        computed = {k: v for k, v in computed.items() if k in requested}
    return {**detail, **computed}


def compared_face(face: Face) -> dict[str, Any]:
    """CompareFaces' ComparedFace; Emotions and Smile only if analysed with attributes."""
    out = _default_detail(face)
    if face.attributes is not None:
        out["Emotions"] = _emotions(face.attributes.emotions)
        out["Smile"] = _binary(face.attributes.smile)
    return out


def quality_reasons(face: Face, quality_filter: str) -> list[str]:
    """The Reasons ``face`` fails ``quality_filter`` (NONE, AUTO, LOW, MEDIUM, HIGH); [] = ok."""
    if quality_filter == "NONE":
        return []
    bar = QUALITY_BARS.get(quality_filter)
    if bar is None:
        raise ValueError(f"unknown QualityFilter {quality_filter!r}")
    return [QUALITY_REASONS[shortfall] for shortfall in bar.shortfalls(face)]


def stored_face(record: FaceRecord, *, listing: bool = False) -> dict[str, Any]:
    """The ``Face`` shape of a stored face (ListFaces adds the model version and user)."""
    face: dict[str, Any] = {
        "FaceId": record.face_id,
        "BoundingBox": record.bounding_box,
        "ImageId": record.image_id,
        "Confidence": record.confidence,
    }
    if record.external_image_id is not None:
        face["ExternalImageId"] = record.external_image_id
    if listing:
        face["IndexFacesModelVersion"] = record.index_model_version
    if record.user_id is not None:
        face["UserId"] = record.user_id
    return face
