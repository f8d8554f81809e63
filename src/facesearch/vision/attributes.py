"""Face attributes that real models can support: emotions, smile, eyes and mouth open, gaze.

Beards, moustaches, glasses and occlusion are not computed: no installable model carries them
(docs/vision.md), and made-up values would mislead callers.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from facesearch.vision.face import Binary, Emotion, Gaze
from facesearch.vision.pose import head_pose
from facesearch.vision.tflite import interpreter

# fer's mini-Xception classes, in output order.
EMOTION_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
EMOTION_INPUT = 64
EMOTION_MARGIN = 0.1  # fraction of the box added on each side, as fer pads its face crops

SMILE_THRESHOLD = 0.4  # mean of mouthSmileLeft/Right
EYES_CLOSED_THRESHOLD = 0.5  # mean of eyeBlinkLeft/Right
MOUTH_OPEN_THRESHOLD = 0.08  # inner-lip gap over the inner mouth width
# Half the visible eye width over the eyeball radius (about 15 mm over 12 mm): turns the iris
# offset, in half eye widths, into the sine of the eye's rotation.
_EYE_WIDTH_TO_RADIUS = 1.25


class EmotionClassifier:
    """fer's 7-class mini-Xception (64x64 grey). Not thread-safe: one per thread."""

    def __init__(self, model: bytes) -> None:
        self._net = interpreter(model)
        self._in = self._net.get_input_details()[0]["index"]
        self._out = self._net.get_output_details()[0]["index"]

    def emotions(self, grey: np.ndarray, box: np.ndarray) -> tuple[Emotion, ...]:
        """The emotion classes with their probabilities in percent, most likely first (none
        for a box too small to crop)."""
        height, width = grey.shape
        x, y, w, h = box
        x0 = int(max(0, x - w * EMOTION_MARGIN))
        y0 = int(max(0, y - h * EMOTION_MARGIN))
        x1 = int(min(width, x + w * (1 + EMOTION_MARGIN)))
        y1 = int(min(height, y + h * (1 + EMOTION_MARGIN)))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return ()
        face = cv2.resize(
            grey[y0:y1, x0:x1], (EMOTION_INPUT, EMOTION_INPUT), interpolation=cv2.INTER_AREA
        )
        # fer's preprocessing: scale to [-1, 1].
        tensor = (face.astype(np.float32) / 127.5 - 1.0)[None, :, :, None]
        self._net.set_tensor(self._in, tensor)
        self._net.invoke()
        probs = self._net.get_tensor(self._out).ravel().astype(np.float64)
        probs = probs / probs.sum() if probs.sum() > 0 else probs
        ranked = sorted(zip(EMOTION_LABELS, probs, strict=True), key=lambda t: -t[1])
        return tuple(Emotion(label=name, confidence=float(p * 100.0)) for name, p in ranked)


def _binary(score: float, threshold: float) -> Binary:
    """The value is score >= threshold; confidence rises linearly from 50 at the threshold to 100 at
    0 or 1, so a score near the bar is reported as the coin toss it is."""
    value = score >= threshold
    span = (1.0 - threshold) if value else threshold
    margin = abs(score - threshold) / span if span > 0 else 1.0
    return Binary(value=bool(value), confidence=50.0 + 50.0 * min(1.0, margin))


def smile(blendshapes: dict[str, float]) -> Binary:
    """Smile from the mouthSmile blendshapes."""
    score = (blendshapes["mouthSmileLeft"] + blendshapes["mouthSmileRight"]) / 2
    return _binary(score, SMILE_THRESHOLD)


def eyes_open(blendshapes: dict[str, float]) -> Binary:
    """Open eyes from the eyeBlink blendshapes."""
    closed = (blendshapes["eyeBlinkLeft"] + blendshapes["eyeBlinkRight"]) / 2
    return _binary(1.0 - closed, 1.0 - EYES_CLOSED_THRESHOLD)


def mouth_open(points: np.ndarray) -> Binary:
    """An open mouth from the gap between the inner lips (13, 14) relative to the mouth's inner
    width (78, 308); the ratio is mapped so the threshold sits at the middle of 0..1."""
    width = float(np.linalg.norm(points[308, :2] - points[78, :2])) or 1.0
    gap = float(np.linalg.norm(points[14, :2] - points[13, :2])) / width
    return _binary(min(1.0, gap / (2 * MOUTH_OPEN_THRESHOLD)), 0.5)


def _iris_offset(points: np.ndarray, corner_a: int, corner_b: int, iris: int) -> np.ndarray:
    """Iris centre relative to the mid-point of the eye corners, in half eye widths, in the
    eye's own frame (x along the corners towards image-right, y up)."""
    a, b = points[corner_a, :2], points[corner_b, :2]
    across = b - a
    half = float(np.linalg.norm(across)) / 2 or 1.0
    across /= half * 2
    up = np.array([across[1], -across[0]])  # perpendicular, pointing up in the image
    d = points[iris, :2] - (a + b) / 2
    return np.array([float(d @ across), float(d @ up)]) / half


def eye_direction(points: np.ndarray, blendshapes: dict[str, float]) -> Gaze:
    """Gaze relative to the camera: head pose plus the eyes' rotation in the head (from the iris
    centres between the eye corners). Same sign convention as Pose. Confidence falls as the
    eyes close."""
    offset = (_iris_offset(points, 33, 133, 468) + _iris_offset(points, 362, 263, 473)) / 2
    sines = np.clip(offset * _EYE_WIDTH_TO_RADIUS, -1.0, 1.0)
    pose = head_pose(points)
    yaw = pose.yaw + math.degrees(math.asin(float(sines[0])))
    pitch = pose.pitch + math.degrees(math.asin(float(sines[1])))
    closed = (blendshapes["eyeBlinkLeft"] + blendshapes["eyeBlinkRight"]) / 2
    return Gaze(
        yaw=float(np.clip(yaw, -180.0, 180.0)),
        pitch=float(np.clip(pitch, -180.0, 180.0)),
        confidence=float(100.0 * (1.0 - min(1.0, max(0.0, closed)))),
    )
