"""Response shapes built from analysed faces and stored face records."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from facesearch.model import service_model
from facesearch.store import FaceRecord

if TYPE_CHECKING:
    from facesearch.vision.analyzer import Face


@cache
def _attribute_members() -> dict[str, str]:
    """DetectionAttributes values (EYES_OPEN, ...) -> FaceDetail member names (EyesOpen, ...)."""
    members = {m.lower(): m for m in service_model().shape_for("FaceDetail").members}
    return {
        value: members[value.replace("_", "").lower()]
        for value in service_model().shape_for("Attribute").enum
        if value.replace("_", "").lower() in members
    }


def wants_attributes(attributes: Sequence[str] | None) -> bool:
    """Whether a DetectionAttributes/Attributes list asks for more than the DEFAULT set."""
    return any(a != "DEFAULT" for a in attributes or ())


def face_detail(face: Face, attributes: Sequence[str] | None) -> dict[str, Any]:
    """A FaceDetail with the DEFAULT members plus the requested attributes we can compute."""
    if not wants_attributes(attributes):
        return face.detail(all_attributes=False)
    detail = face.detail(all_attributes=True)
    if "ALL" in (attributes or ()):
        return detail
    requested = {_attribute_members()[a] for a in attributes or () if a in _attribute_members()}
    default = face.detail(all_attributes=False)
    return {k: v for k, v in detail.items() if k in default or k in requested}


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
