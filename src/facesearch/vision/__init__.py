"""facesearch vision: image input, face detection, landmarks, embeddings and similarity.

The analyser (OpenCV, ONNX, TFLite) is imported on first use, so what needs only the face models'
versions and calibrations (a command that lists collections, the similarity scale) starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from facesearch.vision.face_model import CURRENT, FACE_MODELS, FaceModel, face_model

if TYPE_CHECKING:
    from facesearch.vision.analyzer import AnalyzedImage, Analyzer, Face, get_analyzer

_ANALYZER_NAMES = frozenset({"AnalyzedImage", "Analyzer", "Face", "get_analyzer"})

__all__ = [
    "CURRENT",
    "FACE_MODELS",
    "AnalyzedImage",
    "Analyzer",
    "Face",
    "FaceModel",
    "face_model",
    "get_analyzer",
]


def __getattr__(name: str) -> Any:
    if name in _ANALYZER_NAMES:
        from facesearch.vision import analyzer

        return getattr(analyzer, name)
    raise AttributeError(f"module 'facesearch.vision' has no attribute {name!r}")
