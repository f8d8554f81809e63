"""facesearch vision: image input, face detection, landmarks, embeddings and similarity."""

from facesearch.vision.analyzer import AnalyzedImage, Analyzer, Face, get_analyzer
from facesearch.vision.face_model import CURRENT, FACE_MODELS, FaceModel, face_model

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
