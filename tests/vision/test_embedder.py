"""SFace as run by LiteRT: the converted model against the pinned ONNX graph, the alignment, and
the networks an analysis runs on alone or with others in flight."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from facesearch.vision import CURRENT, FACE_MODELS, models
from facesearch.vision.embedder import _TEMPLATE, SFaceEmbedder, similarity_transform
from facesearch.vision.image import decode_image, sniff_format

PHOTO = "people/barack_obama/1.jpg"


@pytest.fixture(scope="module")
def aligned(analyzer, photos_dir: Path) -> np.ndarray:
    """A real face's aligned 112x112 RGB crop."""
    runtime = analyzer._runtime()
    rgb = decode_image((photos_dir / PHOTO).read_bytes())
    detection = runtime.detector.detect(rgb)[0]
    embedder = runtime.own.embedder(CURRENT)
    return embedder.align(rgb, runtime.mesher.mesh(rgb, detection).five_points())


def test_the_tflite_model_computes_the_onnx_graph(analyzer, aligned: np.ndarray) -> None:
    from onnx.reference import ReferenceEvaluator

    graph = ReferenceEvaluator(analyzer._blob(models.SFACE))
    # The graph's input: RGB, channels first (OpenCV's blobFromImage with swapRB did this).
    (reference,) = graph.run(None, {"data": aligned.transpose(2, 0, 1)[None].astype(np.float32)})
    reference = reference.ravel() / np.linalg.norm(reference)
    embedding = SFaceEmbedder(analyzer._blob(models.SFACE_TFLITE)).embed(aligned)
    assert embedding.shape == (128,) and abs(float(np.linalg.norm(embedding)) - 1) < 1e-6
    assert np.abs(embedding - reference).max() < 1e-5


@pytest.mark.parametrize("weights", sorted(models.SFACE_WEIGHTS))
def test_threads_do_not_change_the_embedding(analyzer, aligned: np.ndarray, weights) -> None:
    model = analyzer._blob(models.SFACE_WEIGHTS[weights])
    one, two = SFaceEmbedder(model, 1).embed(aligned), SFaceEmbedder(model, 2).embed(aligned)
    assert np.array_equal(one, two)


def test_int8_weights_keep_the_float_embeddings(analyzer, photos_dir: Path, manifest) -> None:
    """The int8 face model's vectors stay close to the float model's (on faces-calib: median
    cosine 0.9994, 1st percentile 0.998, least 0.974), on every fifth photo of people/: a new
    FaceModelVersion with its own calibration, but the same network."""
    int8 = next(m for m in FACE_MODELS.values() if m.weights == "int8" and not m.mirrored)
    float32 = next(m for m in FACE_MODELS.values() if m.weights == "float32" and
                   m.alignment == int8.alignment)  # fmt: skip
    cosines = []
    for row in manifest("person")[::5]:
        data = (photos_dir / row["path"]).read_bytes()
        if sniff_format(data) is None:  # the set's few WebP and GIF photos
            continue
        pair = [analyzer.analyze(data, face_model=m).faces[0].embedding for m in (int8, float32)]
        cosines.append(float(pair[0] @ pair[1]))
    assert len(cosines) >= 40
    assert np.median(cosines) > 0.999 and min(cosines) > 0.97 and max(cosines) < 1.0


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
