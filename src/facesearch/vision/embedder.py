"""Face embeddings: the Embedder protocol and SFace (OpenCV Zoo, int8 block-quantized)."""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from facesearch.vision.tflite import interpreter

INPUT_SIZE = 112  # the side of SFace's aligned crop
# The graph's own input scaling (its Sub and Mul nodes, which convert/sface.py checks): applied to
# the pixels before the network, because the first convolution pads its scaled input with zeros.
INPUT_MEAN = 127.5
INPUT_SCALE = 0.0078125


class Embedder(Protocol):
    """A face embedding model. ``version`` names it (vectors of different versions never mix)."""

    version: str
    dim: int

    def align(self, rgb: np.ndarray, five_points: np.ndarray) -> np.ndarray:
        """The model's aligned RGB crop of a face in an RGB image, given its (5, 2) eye centres,
        nose tip and mouth corners (image-left first)."""
        ...

    def embed(self, aligned_crop: np.ndarray) -> np.ndarray:
        """Unit-norm float32 vector of shape (dim,)."""
        ...


# Where OpenCV's FaceRecognizerSF.alignCrop puts the five points in the 112x112 crop, and their
# mean (as OpenCV writes it, not computed).
_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    np.float32,
)
_TEMPLATE_MEAN = np.array([56.0262, 71.9008], np.float32)


def similarity_transform(five_points: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (Umeyama's least squares) taking the five points to _TEMPLATE:
    OpenCV's FaceRecognizerSF.alignCrop ported step by step, float32 where it computes in float,
    so that the crops are the same to the bit (checked on 742 faces of faces/)."""
    src = np.asarray(five_points, np.float32).reshape(5, 2)
    mean = np.empty(2, np.float32)
    for axis in range(2):
        total = src[0, axis]
        for value in src[1:, axis]:
            total = np.float32(total + value)
        mean[axis] = total / np.float32(5)
    src_demeaned = src - mean
    dst_demeaned = _TEMPLATE - _TEMPLATE_MEAN

    def mean_product(a: np.ndarray, b: np.ndarray) -> float:
        # float products summed in double, as OpenCV does.
        return sum(float(v) for v in (a * b).astype(np.float32)) / 5

    covariance = np.array(
        [[mean_product(dst_demeaned[:, i], src_demeaned[:, j]) for j in range(2)] for i in range(2)]
    )
    (a, b), (c, d) = covariance
    signs = np.array([1.0, -1.0 if a * d - b * c < 0 else 1.0])
    u, singular, vt = np.linalg.svd(covariance)
    rotation = u @ np.diag(signs) @ vt
    variance = mean_product(src_demeaned[:, 0], src_demeaned[:, 0]) + mean_product(
        src_demeaned[:, 1], src_demeaned[:, 1]
    )
    scale = 1.0 / variance * float(singular[0] * signs[0] + singular[1] * signs[1])
    matrix = np.empty((2, 3))
    matrix[:, :2] = rotation * scale
    matrix[:, 2] = _TEMPLATE_MEAN - scale * (rotation @ mean.astype(np.float64))
    return matrix


class SFaceEmbedder:
    """SFace 128-d, run by LiteRT on ``threads`` threads (models.SFACE_TFLITE). Not thread-safe."""

    version = "sface-2021dec-int8bq"
    dim = 128

    def __init__(self, model: bytes, threads: int = 1) -> None:
        """``model``: the TFLite file convert.sface.convert made from the pinned ONNX graph."""
        self._net = interpreter(model, threads)
        self._input = self._net.get_input_details()[0]["index"]
        self._output = self._net.get_output_details()[0]["index"]

    def align(self, rgb: np.ndarray, five_points: np.ndarray) -> np.ndarray:
        """112x112 RGB crop, similarity-aligned on five points (as OpenCV's alignCrop)."""
        return cv2.warpAffine(
            rgb, similarity_transform(five_points), (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR
        )

    def embed(self, aligned_crop: np.ndarray) -> np.ndarray:
        """L2-normalised 128-d float32 embedding of an aligned 112x112 RGB crop."""
        pixels = (aligned_crop.astype(np.float32) - np.float32(INPUT_MEAN)) * np.float32(
            INPUT_SCALE
        )
        self._net.set_tensor(self._input, pixels[None])
        self._net.invoke()
        vector: np.ndarray = self._net.get_tensor(self._output).ravel().astype(np.float32)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector
