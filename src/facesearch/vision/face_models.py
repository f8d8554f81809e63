"""Face model versions: how a face becomes a vector, and what the cosine of two such vectors means.

A collection keeps the FaceModelVersion it was created with, as Rekognition's do: its faces are
indexed and searched with that version's alignment and calibration, so upgrading facesearch never
mixes incomparable vectors. New collections get ``CURRENT``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from facesearch.vision.errors import UnknownFaceModelError
from facesearch.vision.similarity import KNOT_SIMILARITIES, Calibration


@dataclass(frozen=True)
class FaceModel:
    """One FaceModelVersion: the embedding network, the alignment and the similarity scale."""

    version: str
    # Which five points align the crop: the detector's, or the landmark mesh's.
    alignment: Literal["detector", "mesh"]
    calibration: Calibration
    # SFace's weights: as published (float32 once dequantized), or int8 per output channel
    # (int8_weights.py: 2.7 times faster; vectors at a median cosine of 0.9994 to float32's).
    weights: Literal["float32", "int8"] = "float32"
    # Whether a face's vector is the normalised sum of its crop's and the mirrored crop's
    # embeddings: the side a turned head shows then stands for both sides (docs/accuracy.md).
    mirrored: bool = False


# From benchmarks/calibrate.py on faces-calib: the cosines at the similarities of KNOT_SIMILARITIES,
# i.e. where the false-match rate per comparison is 0.5 .. 6.3e-8 (similarity 30 .. 99).
DETECTOR_ALIGNED_COSINES = (
    -1.0, 0.0996, 0.1764, 0.2298, 0.2734, 0.311, 0.3447, 0.3755, 0.404,
    0.4306, 0.4558, 0.4798, 0.5038, 0.5277, 0.5516, 0.5708, 1.0,
)  # fmt: skip
MESH_ALIGNED_COSINES = (
    -1.0, 0.0804, 0.1858, 0.242, 0.2857, 0.3227, 0.3554, 0.385, 0.4122,
    0.4376, 0.4614, 0.4842, 0.5069, 0.5295, 0.5522, 0.5703, 1.0,
)  # fmt: skip
INT8_MESH_ALIGNED_COSINES = (
    -1.0, 0.0811, 0.1883, 0.2445, 0.2881, 0.325, 0.3575, 0.387, 0.4141,
    0.4394, 0.4632, 0.4859, 0.5084, 0.531, 0.5536, 0.5717, 1.0,
)  # fmt: skip
INT8_MIRRORED_COSINES = (
    -1.0, 0.103, 0.1911, 0.2457, 0.2889, 0.3259, 0.3587, 0.3886, 0.4161,
    0.4418, 0.4659, 0.489, 0.512, 0.5349, 0.5579, 0.5763, 1.0,
)  # fmt: skip

SFACE_DETECTOR_ALIGNED = FaceModel(
    version="facesearch-sface-2021dec-int8bq/1",
    alignment="detector",
    calibration=Calibration(DETECTOR_ALIGNED_COSINES, KNOT_SIMILARITIES),
)
SFACE_MESH_ALIGNED = FaceModel(
    version="facesearch-sface-2021dec-int8bq/2",
    alignment="mesh",
    calibration=Calibration(MESH_ALIGNED_COSINES, KNOT_SIMILARITIES),
)
SFACE_INT8_MESH_ALIGNED = FaceModel(
    version="facesearch-sface-2021dec-int8bq/3",
    alignment="mesh",
    calibration=Calibration(INT8_MESH_ALIGNED_COSINES, KNOT_SIMILARITIES),
    weights="int8",
)
SFACE_INT8_MIRRORED = FaceModel(
    version="facesearch-sface-2021dec-int8bq/4",
    alignment="mesh",
    calibration=Calibration(INT8_MIRRORED_COSINES, KNOT_SIMILARITIES),
    weights="int8",
    mirrored=True,
)
CURRENT = SFACE_INT8_MIRRORED
FACE_MODELS = {
    model.version: model
    for model in (
        SFACE_DETECTOR_ALIGNED,
        SFACE_MESH_ALIGNED,
        SFACE_INT8_MESH_ALIGNED,
        SFACE_INT8_MIRRORED,
    )
}


def face_model(version: str) -> FaceModel:
    """The FaceModel of a version; UnknownFaceModelError for one this build lacks."""
    model = FACE_MODELS.get(version)
    if model is None:
        raise UnknownFaceModelError(version, tuple(FACE_MODELS))
    return model
