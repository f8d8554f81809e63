"""Stateless face operations: DetectFaces and CompareFaces."""

from __future__ import annotations

from typing import Any

import numpy as np

from facesearch.errors import invalid_parameter
from facesearch.service.context import Context
from facesearch.service.details import (
    bounding_box,
    compared_face,
    face_detail,
    quality_reasons,
    wants_attributes,
)
from facesearch.service.faces import MAX_FACES_PER_IMAGE
from facesearch.service.registry import operation
from facesearch.vision import CURRENT

# "By default, only faces with a similarity score of greater than or equal to 80% are returned."
COMPARE_THRESHOLD = 80.0


@operation("DetectFaces")
def detect_faces(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    attributes = params.get("Attributes")
    # "DetectFaces detects the 100 largest faces in the image."
    analysed = ctx.analyze(
        params["Image"], attributes=wants_attributes(attributes), max_faces=MAX_FACES_PER_IMAGE
    )
    return {"FaceDetails": [face_detail(face, attributes) for face in analysed.faces]}


@operation("CompareFaces")
def compare_faces(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    quality_filter = params.get("QualityFilter", "NONE")
    source_faces = ctx.analyze(params["SourceImage"], field_name="SourceImage", max_faces=1).faces
    if not source_faces:
        raise invalid_parameter("There are no faces in the source image. Should be at least 1.")
    source = source_faces[0]
    if quality_reasons(source, quality_filter):
        raise invalid_parameter(
            "The largest face of the source image did not pass the quality filter."
        )
    targets = [
        face
        # "CompareFaces ... up to 100 largest faces detected in the target image."
        for face in ctx.analyze(
            params["TargetImage"],
            attributes=True,
            field_name="TargetImage",
            max_faces=MAX_FACES_PER_IMAGE,
        ).faces
        if not quality_reasons(face, quality_filter)
    ]
    threshold = params.get("SimilarityThreshold", COMPARE_THRESHOLD)
    matches: list[dict[str, Any]] = []
    unmatched: list[dict[str, Any]] = []
    if targets:
        scores = CURRENT.calibration.scores(
            source.embedding, np.stack([t.embedding for t in targets])
        )
        for face, score in zip(targets, scores, strict=True):
            if score >= threshold:
                matches.append({"Similarity": float(score), "Face": compared_face(face)})
            else:
                unmatched.append(compared_face(face))
    matches.sort(key=lambda match: -float(match["Similarity"]))
    return {
        "SourceImageFace": {
            "BoundingBox": bounding_box(source.box),
            "Confidence": source.confidence,
        },
        "FaceMatches": matches,
        "UnmatchedFaces": unmatched,
    }
