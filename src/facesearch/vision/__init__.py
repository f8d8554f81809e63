"""facesearch vision: image input, face detection, landmarks, embeddings and similarity."""

from facesearch.vision.analyzer import AnalyzedImage, Analyzer, Face, get_analyzer
from facesearch.vision.similarity import cosine_to_similarity, similarity

__all__ = [
    "AnalyzedImage",
    "Analyzer",
    "Face",
    "cosine_to_similarity",
    "get_analyzer",
    "similarity",
]
