"""Face detection with YuNet (OpenCV Zoo, int8 block-quantized), run by LiteRT.

The network is the TFLite model convert/yunet.py makes at setup (models.YUNET_TFLITE); LiteRT's
XNNPACK runs it in about half the time OpenCV 5.0's dnn takes on the ONNX graph
(benchmarks/detector.py). The post-processing is cv2.FaceDetectorYN's (OpenCV's
modules/objdetect/src/face_detect.cpp) in numpy, step for step, so the faces are the same as
before: boxes and points within 0.0005 px, scores within 4e-7 on all of faces/ (tests/vision/
test_yunet_tflite.py). The pinned ONNX graph (models.YUNET) is still accepted and run by
cv2.FaceDetectorYN, as the reference the tests and the benchmark compare against.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter

from facesearch.vision.tflite import interpreter

# The model's outputs, one per stride (in input pixels) of its feature pyramid, and what its input's
# height and width must be multiples of (convert/yunet.py writes it so).
STRIDES = (8, 16, 32)
DIVISOR = 32

# YuNet misplaces boxes on faces that fill a large frame (a 560 px face in a 1536x2048 photo got a
# box over the forehead) and costs time in proportion to the pixels; detection therefore runs on a
# copy of at most this many pixels (640x480), and the boxes are mapped back.
DETECT_MAX_PIXELS = 640 * 480
SCORE_THRESHOLD = 0.6  # the people/ set scores >= 0.8; the hard negatives of noface/ score <= 0.57
NMS_THRESHOLD = 0.3
# Confidence is the probability that a detection is a face, a logistic of the raw score fitted on
# every candidate of faces/ and noface/ down to a score of 0.45, labelled by eye (378 faces, 13
# false detections; docs/vision.md): a clear face scores 0.93 (Confidence 99.7), the threshold
# 0.6 is 67.4. Strictly increasing, so a bar on either scale keeps the same faces.
CONFIDENCE_SLOPE = 15.82
CONFIDENCE_MIDPOINT = 0.554
TOP_K = 5000  # boxes kept by the non-maximum suppression (FaceDetectorYN's top_k)
# A bound on the work one image can cause, far above what Rekognition reports on (100 faces):
# each operation caps its own answer and accounts for the rest (EXCEEDS_MAX_FACES...).
MAX_DETECTIONS = 1000
# Threads of an analysis that has the machine to itself (OpenCV's pool had two).
DEFAULT_THREADS = min(2, len(os.sched_getaffinity(0)))
# Interpreters kept, one per padded input size: resizing one costs 3-7 ms (XNNPACK plans again),
# as much as a detection, but each holds 20-30 MiB at 640x480 (OpenCV's one net held 30): two
# serve the commonest pair, a photo and its portrait (or a video's frames). The crops of detect_in
# have one of their own besides (a few MiB), built on first use.
CACHED_SIZES = 2
# The side of detect_in's input: a region is scaled down to fit it (never up) and padded, so that
# every crop runs on one interpreter; at a tenth of a 640x384 frame's pixels, about a tenth of
# its time.
CROP_INPUT = 160


@dataclass(frozen=True)
class Detection:
    """One detected face, in pixels of the full image."""

    box: np.ndarray  # (4,) x, y, width, height
    # (5, 2): subject's right eye, left eye, nose tip, right and left mouth corner
    points: np.ndarray
    score: float  # 0..1


def confidence(score: float) -> float:
    """Rekognition's Confidence (0..100) of a detection whose raw YuNet score is ``score``."""
    return 100.0 / (1.0 + math.exp(-CONFIDENCE_SLOPE * (score - CONFIDENCE_MIDPOINT)))


def _padded(size: int) -> int:
    """``size`` rounded up to a multiple of DIVISOR, as FaceDetectorYN pads its input."""
    return ((size - 1) // DIVISOR + 1) * DIVISOR


class _LiteRT:
    """The TFLite YuNet and FaceDetectorYN's post-processing: rows as FaceDetectorYN.detect's."""

    def __init__(self, model: bytes, threads: int) -> None:
        self._model, self._threads = model, threads
        self._nets: OrderedDict[tuple[int, int], Interpreter] = OrderedDict()
        self._crops: Interpreter | None = None
        self._net((480, 640))  # the commonest size (a 4:3 photo); checks the model at once

    def _net(self, size: tuple[int, int]) -> Interpreter:
        """The interpreter for a padded (height, width), least recently used ones dropped (but
        detect_in's)."""
        if size == (CROP_INPUT, CROP_INPUT):
            if self._crops is None:
                self._crops = interpreter(self._model, self._threads, [1, *size, 3])
            return self._crops
        net = self._nets.pop(size, None)
        if net is None:
            net = interpreter(self._model, self._threads, [1, *size, 3])
            while len(self._nets) >= CACHED_SIZES:
                self._nets.popitem(last=False)
        self._nets[size] = net
        return net

    def rows(self, rgb: np.ndarray, padded: tuple[int, int] | None = None) -> np.ndarray:
        """(n, 15) float32: box x, y, w, h, five points x, y, score; NMS order. ``padded``:
        the (height, width) the input is padded to (multiples of DIVISOR, at least the
        image's), else the image's own rounded up."""
        height, width = rgb.shape[:2]
        net = self._net(padded or (_padded(height), _padded(width)))
        # Written straight into the input tensor; the padding (bottom and right) is zeros.
        pixels = net.tensor(net.get_input_details()[0]["index"])()[0]
        pixels[:height, :width] = rgb
        pixels[height:] = 0
        pixels[:height, width:] = 0
        del pixels  # no reference into the interpreter's memory may outlive this
        net.invoke()
        candidates = [
            _decode(net.get_tensor(output["index"])[0], stride)
            for output, stride in zip(net.get_output_details(), STRIDES, strict=True)
        ]
        faces = np.concatenate(candidates)
        if len(faces) <= 1:
            return faces
        # As FaceDetectorYN: boxes truncated to integers, its thresholds, eta 1, top_k.
        boxes = np.trunc(faces[:, :4]).astype(np.int32)
        keep = cv2.dnn.NMSBoxes(
            boxes.tolist(), faces[:, 14].tolist(), SCORE_THRESHOLD, NMS_THRESHOLD, 1.0, TOP_K
        )
        return faces[np.asarray(keep, np.int64).ravel()]


def _decode(heads: np.ndarray, stride: int) -> np.ndarray:
    """The (n, 15) candidate faces of one stride's (rows, cols, 16) head output, row-major
    order, in float32 as FaceDetectorYN computes them."""
    cls = np.clip(_sigmoid(heads[..., 0]), 0, 1)
    obj = np.clip(_sigmoid(heads[..., 1]), 0, 1)
    score = np.sqrt(cls * obj)
    r, c = np.nonzero(score >= np.float32(SCORE_THRESHOLD))
    cell = heads[r, c]
    step = np.float32(stride)
    rows, cols = r.astype(np.float32), c.astype(np.float32)
    cx = (cols + cell[:, 2]) * step
    cy = (rows + cell[:, 3]) * step
    w = np.exp(cell[:, 4]) * step
    h = np.exp(cell[:, 5]) * step
    faces = np.empty((len(r), 15), np.float32)
    faces[:, 0] = cx - w / np.float32(2)
    faces[:, 1] = cy - h / np.float32(2)
    faces[:, 2], faces[:, 3] = w, h
    faces[:, 4:14:2] = (cell[:, 6:16:2] + cols[:, None]) * step
    faces[:, 5:14:2] = (cell[:, 7:16:2] + rows[:, None]) * step
    faces[:, 14] = score[r, c]
    return faces


def _sigmoid(x: np.ndarray) -> np.ndarray:
    result: np.ndarray = np.float32(1) / (np.float32(1) + np.exp(-x))
    return result


class _OpenCV:
    """cv2.FaceDetectorYN on the ONNX graph, on OpenCV's pool of threads: the reference."""

    def __init__(self, model: bytes) -> None:
        self._net = cv2.FaceDetectorYN.create(
            "onnx",
            np.frombuffer(model, np.uint8),
            np.zeros(0, np.uint8),
            (320, 320),
            SCORE_THRESHOLD,
            NMS_THRESHOLD,
            TOP_K,
        )

    def rows(self, rgb: np.ndarray, padded: tuple[int, int] | None = None) -> np.ndarray:
        del padded  # FaceDetectorYN pads by itself
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = self._net.detect(bgr)
        return np.zeros((0, 15), np.float32) if rows is None else rows


class YuNetDetector:
    """Not thread-safe (interpreters, and FaceDetectorYN's input size): one per thread."""

    def __init__(self, model: bytes, threads: int = DEFAULT_THREADS) -> None:
        """``model``: the TFLite file convert.yunet.convert made (models.YUNET_TFLITE), run by
        LiteRT on ``threads`` threads; or the pinned ONNX graph (models.YUNET), run by
        cv2.FaceDetectorYN on OpenCV's threads (``threads`` unused)."""
        is_tflite = model[4:8] == b"TFL3"  # the flatbuffer's file identifier
        self._runner = _LiteRT(model, threads) if is_tflite else _OpenCV(model)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in an RGB image, largest box first, at most MAX_DETECTIONS."""
        height, width = rgb.shape[:2]
        scale = min(1.0, (DETECT_MAX_PIXELS / (width * height)) ** 0.5)
        return self._detect(rgb, scale, (0, 0), None)

    def detect_in(self, rgb: np.ndarray, region: tuple[int, int, int, int]) -> list[Detection]:
        """Faces in the pixel region (x0, y0, x1, y1) of an RGB image, in the image's pixels,
        largest first: the region scaled down to fit CROP_INPUT (never up, so a small face is
        seen at its full resolution) and padded to it."""
        x0, y0, x1, y1 = region
        crop = rgb[y0:y1, x0:x1]
        height, width = crop.shape[:2]
        if height == 0 or width == 0:
            return []
        scale = min(1.0, CROP_INPUT / max(width, height))
        return self._detect(crop, scale, (x0, y0), (CROP_INPUT, CROP_INPUT))

    def _detect(
        self,
        rgb: np.ndarray,
        scale: float,
        offset: tuple[int, int],
        padded: tuple[int, int] | None,
    ) -> list[Detection]:
        height, width = rgb.shape[:2]
        small = rgb
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            if padded is None:
                small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            else:
                # A crop: averaged down by a whole factor (OpenCV's fast path: a non-integer
                # area resize costs ten times more), the rest bilinear (shrinking at most
                # twice, it still sees every pixel). The last rows and columns that do not
                # fill a block are dropped.
                whole = int(1 / scale)
                if whole >= 2:
                    width, height = width // whole * whole, height // whole * whole
                    rgb = cv2.resize(
                        rgb[:height, :width],
                        (width // whole, height // whole),
                        interpolation=cv2.INTER_AREA,
                    )
                small = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
            # Map back with the exact per-axis factors of the rounded size.
            sx, sy = width / size[0], height / size[1]
        else:
            sx = sy = 1.0
        rows = self._runner.rows(small, padded)
        factors = np.array([sx, sy] * 7, np.float32)
        shift = np.array([offset[0], offset[1]] * 7, np.float64)
        shift[2:4] = 0  # width and height
        detections = [
            Detection(
                box=(row[:4] * factors[:4]).astype(np.float64) + shift[:4],
                points=((row[4:14] * factors[4:]).astype(np.float64) + shift[4:]).reshape(5, 2),
                score=float(row[14]),
            )
            for row in rows
        ]
        detections.sort(key=lambda d: float(d.box[2] * d.box[3]), reverse=True)
        return detections[:MAX_DETECTIONS]
