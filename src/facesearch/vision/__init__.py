"""facesearch vision: image input, face detection, landmarks, embeddings and similarity.

``Analyzer.analyze`` returns plain values (face.py: a ``Face`` per face, its box, landmarks,
pose, quality, attributes and embedding) and raises vision's own errors (errors.py); turning
them into an API's shapes and error codes is the service's business.

Every name is imported on first use, so what needs only the face models' versions and
calibrations, or vision's errors, starts fast; the analyser (OpenCV, ONNX, TFLite) loads only
for an analysis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from facesearch.vision.analyzer import AnalyzedImage, Analyzer, get_analyzer
    from facesearch.vision.errors import (
        ImageError,
        ImageErrorKind,
        ModelsMissingError,
        UnknownFaceModelError,
        VisionError,
    )
    from facesearch.vision.face import (
        AgeRange,
        Attributes,
        Binary,
        Box,
        Emotion,
        Face,
        Gaze,
        Gender,
        Point,
        Pose,
        Quality,
    )
    from facesearch.vision.face_models import CURRENT, FACE_MODELS, FaceModel, face_model

_MODULES = {
    "analyzer": ("AnalyzedImage", "Analyzer", "get_analyzer"),
    "errors": (
        "ImageError",
        "ImageErrorKind",
        "ModelsMissingError",
        "UnknownFaceModelError",
        "VisionError",
    ),
    "face": (
        "AgeRange",
        "Attributes",
        "Binary",
        "Box",
        "Emotion",
        "Face",
        "Gaze",
        "Gender",
        "Point",
        "Pose",
        "Quality",
    ),
    "face_models": ("CURRENT", "FACE_MODELS", "FaceModel", "face_model"),
}
_MODULE_OF = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "CURRENT",
    "FACE_MODELS",
    "AgeRange",
    "AnalyzedImage",
    "Analyzer",
    "Attributes",
    "Binary",
    "Box",
    "Emotion",
    "Face",
    "FaceModel",
    "Gaze",
    "Gender",
    "ImageError",
    "ImageErrorKind",
    "ModelsMissingError",
    "Point",
    "Pose",
    "Quality",
    "UnknownFaceModelError",
    "VisionError",
    "face_model",
    "get_analyzer",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'facesearch.vision' has no attribute {name!r}")
    return getattr(importlib.import_module(f"facesearch.vision.{module}"), name)
