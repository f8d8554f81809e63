"""SFace as run by LiteRT: the converted model against the pinned ONNX graph, the alignment, and
the networks an analysis runs on alone or with others in flight."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from facesearch.vision import models
from facesearch.vision.embedder import _TEMPLATE, SFaceEmbedder, similarity_transform
from facesearch.vision.image import decode_image

PHOTO = "people/barack_obama/1.jpg"


@pytest.fixture(scope="module")
def aligned(analyzer, photos_dir: Path) -> np.ndarray:
    """A real face's aligned 112x112 RGB crop."""
    runtime = analyzer._runtime()
    rgb = decode_image((photos_dir / PHOTO).read_bytes())
    detection = runtime.detector.detect(rgb)[0]
    return runtime.embedder.align(rgb, runtime.mesher.mesh(rgb, detection).five_points())


def test_the_tflite_model_computes_the_onnx_graph(analyzer, aligned: np.ndarray) -> None:
    from onnx.reference import ReferenceEvaluator

    graph = ReferenceEvaluator(analyzer._blob(models.SFACE))
    # The graph's input: RGB, channels first (OpenCV's blobFromImage with swapRB did this).
    (reference,) = graph.run(None, {"data": aligned.transpose(2, 0, 1)[None].astype(np.float32)})
    reference = reference.ravel() / np.linalg.norm(reference)
    embedding = SFaceEmbedder(analyzer._blob(models.SFACE_TFLITE)).embed(aligned)
    assert embedding.shape == (128,) and abs(float(np.linalg.norm(embedding)) - 1) < 1e-6
    assert np.abs(embedding - reference).max() < 1e-5


def test_threads_do_not_change_the_embedding(analyzer, aligned: np.ndarray) -> None:
    model = analyzer._blob(models.SFACE_TFLITE)
    one, two = SFaceEmbedder(model, 1).embed(aligned), SFaceEmbedder(model, 2).embed(aligned)
    assert np.array_equal(one, two)


def test_alignment_maps_the_five_points_onto_the_template() -> None:
    angle, scale, shift = np.radians(25), 2.5, np.array([300.0, 140.0])
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = _TEMPLATE.astype(np.float64) @ turn.T * scale + shift  # a face 2.5x the crop's
    matrix = similarity_transform(points)
    mapped = points @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(mapped - _TEMPLATE).max() < 1e-3
    # Noisy points still land near the template, by a similarity (no shear).
    noisy = points + np.random.default_rng(0).normal(0, 3, points.shape)
    linear = similarity_transform(noisy)[:, :2]
    assert abs(linear[0, 0] - linear[1, 1]) < 1e-9 and abs(linear[0, 1] + linear[1, 0]) < 1e-9


def test_concurrent_analyses_agree_with_one_alone(analyzer, photos_dir: Path) -> None:
    """Alone, an analysis runs on the shared two-thread networks; two at once run on their
    threads' own one-thread networks. Both give the same faces."""
    data = (photos_dir / PHOTO).read_bytes()
    alone = analyzer.analyze(data).faces[0].embedding
    results: list[np.ndarray] = []
    start = threading.Barrier(2)

    def search() -> None:
        start.wait()
        for _ in range(3):
            results.append(analyzer.analyze(data).faces[0].embedding)

    threads = [threading.Thread(target=search) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6
    for embedding in results:
        assert np.array_equal(embedding, alone)
