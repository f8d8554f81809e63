"""Face detection with YuNet (OpenCV Zoo, int8 block-quantized) through cv2.FaceDetectorYN."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# YuNet misplaces boxes on faces that fill a large frame (a 560 px face in a 1536x2048 photo got a
# box over the forehead) and costs time in proportion to the pixels; detection therefore runs on a
# copy of at most this many pixels (640x480), and the boxes are mapped back.
DETECT_MAX_PIXELS = 640 * 480
SCORE_THRESHOLD = 0.6  # the people/ set scores >= 0.8; the hard negatives of noface/ score <= 0.57
NMS_THRESHOLD = 0.3
# A bound on the work one image can cause, far above what Rekognition reports on (100 faces):
# each operation caps its own answer and accounts for the rest (EXCEEDS_MAX_FACES...).
MAX_DETECTIONS = 1000


@dataclass(frozen=True)
class Detection:
    """One detected face, in pixels of the full image."""

    box: np.ndarray  # (4,) x, y, width, height
    # (5, 2): subject's right eye, left eye, nose tip, right and left mouth corner
    points: np.ndarray
    score: float  # 0..1


class YuNetDetector:
    """Not thread-safe (FaceDetectorYN keeps the input size as state): one per thread."""

    def __init__(self, model: bytes) -> None:
        self._net = cv2.FaceDetectorYN.create(
            "onnx",
            np.frombuffer(model, np.uint8),
            np.zeros(0, np.uint8),
            (320, 320),
            SCORE_THRESHOLD,
            NMS_THRESHOLD,
            5000,
        )

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in an RGB image, largest box first, at most MAX_DETECTIONS."""
        height, width = rgb.shape[:2]
        scale = min(1.0, (DETECT_MAX_PIXELS / (width * height)) ** 0.5)
        small = rgb
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            # Map back with the exact per-axis factors of the rounded size.
            sx, sy = width / size[0], height / size[1]
        else:
            sx = sy = 1.0
        bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
        self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = self._net.detect(bgr)
        if rows is None:
            return []
        factors = np.array([sx, sy] * 7, np.float32)
        detections = [
            Detection(
                box=(row[:4] * factors[:4]).astype(np.float64),
                points=(row[4:14] * factors[4:]).reshape(5, 2).astype(np.float64),
                score=float(row[14]),
            )
            for row in rows
        ]
        detections.sort(key=lambda d: float(d.box[2] * d.box[3]), reverse=True)
        return detections[:MAX_DETECTIONS]
