"""Rekognition similarity thresholds as the cosines the index compares, per face model."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from facesearch.service.context import rekognition_error
from facesearch.store import CollectionRecord
from facesearch.vision import FaceModel, UnknownFaceModelError, face_model


def collection_model(collection: CollectionRecord) -> FaceModel:
    """The face model a collection was created with (its faces compare only under it), or
    InvalidParameterException for a version this build lacks."""
    try:
        return face_model(collection.face_model_version)
    except UnknownFaceModelError as error:
        raise rekognition_error(error) from None


@lru_cache(maxsize=1024)
def min_cosine(threshold: float, model: FaceModel) -> float:
    """The smallest cosine whose similarity under ``model`` reaches ``threshold``."""
    return model.calibration.min_cosine(threshold)


def similarity(cosine: float, model: FaceModel) -> float:
    """Rekognition's Similarity for a cosine under ``model``."""
    return float(model.calibration.similarity(cosine))


def user_cosines(queries: np.ndarray, users: list[np.ndarray]) -> np.ndarray:
    """How well any of ``queries`` (q, d) matches each user, given each user's faces (k, d):
    the mean of its best face's cosine and the cosine to its mean face, the best over the
    queries. Shape (len(users),).

    The mean face steadies a user of several photos against one lucky look-alike photo: on
    faces-calib it finds more of the enrolled and lets fewer strangers through than either
    score alone (docs/accuracy.md). A user of one face scores that face's cosine.
    """
    if not users:
        return np.empty(0, np.float32)
    faces = np.concatenate(users)
    starts = np.cumsum([0, *(len(user) for user in users[:-1])])
    means = np.add.reduceat(faces, starts, axis=0)
    means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    out = np.full(len(users), -np.inf, np.float32)
    for query in queries:
        # Row-wise sums rather than a matrix product: a user's score must not depend, even in
        # the last bit, on which other users were scored with it (BLAS blocks by shape).
        best = np.maximum.reduceat((faces * query).sum(axis=1), starts)
        np.maximum(out, (best + (means * query).sum(axis=1)) / 2, out=out)
    return out
