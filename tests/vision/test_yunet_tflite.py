"""YuNet as run by LiteRT (convert/yunet.py, detector.py) against cv2.FaceDetectorYN on the pinned
ONNX graph: the same faces, on real photos of every kind and on input sizes of every aspect."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facesearch.vision import models
from facesearch.vision.detector import Detection, YuNetDetector
from facesearch.vision.errors import ImageError
from facesearch.vision.image import decode_image

# Measured on all of faces/ (341 photos, 375 faces): 0.0004 px and 4e-7; the margins leave room
# for another CPU's XNNPACK kernels summing in another order.
MAX_PIXELS_OFF = 0.05
MAX_SCORE_OFF = 1e-4


@pytest.fixture(scope="module")
def detectors(analyzer) -> tuple[YuNetDetector, YuNetDetector]:
    """(OpenCV's FaceDetectorYN on the ONNX graph, LiteRT on the converted model)."""
    return (
        YuNetDetector(analyzer._blob(models.YUNET)),
        YuNetDetector(analyzer._blob(models.YUNET_TFLITE)),
    )


def _assert_same(reference: list[Detection], found: list[Detection], label: str) -> None:
    assert len(found) == len(reference), label
    for a, b in zip(reference, found, strict=True):
        assert np.abs(a.box - b.box).max() < MAX_PIXELS_OFF, label
        assert np.abs(a.points - b.points).max() < MAX_PIXELS_OFF, label
        assert abs(a.score - b.score) < MAX_SCORE_OFF, label


def test_litert_finds_the_faces_opencv_finds(detectors, manifest, photos_dir: Path) -> None:
    rows = manifest("person")[::5] + manifest("group") + manifest("noface")
    faces = 0
    for row in rows:
        try:
            rgb = decode_image((photos_dir / row["path"]).read_bytes())
        except ImageError:
            continue  # a photo the service refuses: nothing to detect
        reference = detectors[0].detect(rgb)
        _assert_same(reference, detectors[1].detect(rgb), row["path"])
        faces += len(reference)
    assert faces > 80  # the group photos alone hold dozens: the NMS is exercised


@pytest.mark.parametrize("size", [(480, 640), (640, 480), (333, 500), (200, 1000), (96, 96)])
def test_any_input_size(detectors, manifest, photos_dir: Path, size: tuple[int, int]) -> None:
    """Sizes that are not multiples of 32 are padded (bottom, right) as FaceDetectorYN pads."""
    rgb = decode_image((photos_dir / manifest("group")[0]["path"]).read_bytes())
    canvas = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    _assert_same(detectors[0].detect(canvas), detectors[1].detect(canvas), str(size))


def test_cached_sizes_and_threads_give_the_same_answer(analyzer, photos_dir: Path) -> None:
    model = analyzer._blob(models.YUNET_TFLITE)
    one, two = YuNetDetector(model, 1), YuNetDetector(model, 2)
    rgb = decode_image((photos_dir / "people/barack_obama/1.jpg").read_bytes())
    first = two.detect(rgb)
    for width in (320, 400, 500, 600, 700, 800):  # more sizes than are kept: some are dropped
        two.detect(np.ascontiguousarray(rgb[:, :width]))
    for again in (two.detect(rgb), one.detect(rgb)):
        assert len(again) == len(first) == 1
        assert np.array_equal(again[0].box, first[0].box)
        assert np.array_equal(again[0].points, first[0].points)
