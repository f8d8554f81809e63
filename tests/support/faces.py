"""Synthetic stored faces: records written straight to a store, with given vectors and users."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

import numpy as np

from facesearch.store import FaceRecord

BOX = {"Width": 0.5, "Height": 0.5, "Left": 0.25, "Top": 0.25}


def face_records(
    vectors: Iterable[np.ndarray],
    user_ids: Sequence[str | None] | None = None,
    model_version: str = "1",
) -> list[FaceRecord]:
    """A FaceRecord per vector, each of its own new image, ``user_ids[i]`` owning face i (none
    without ``user_ids``)."""
    vectors = list(vectors)
    owners = [None] * len(vectors) if user_ids is None else user_ids
    return [
        FaceRecord(
            face_id=str(uuid.uuid4()),
            image_id=str(uuid.uuid4()),
            external_image_id=None,
            bounding_box=BOX,
            confidence=99.9,
            index_model_version=model_version,
            embedding=vector,
            user_id=owner,
        )
        for vector, owner in zip(vectors, owners, strict=True)
    ]
