"""MediaPipe Face Landmarker (478 3D points, 52 blendshapes) run with ai-edge-litert on YuNet crops.

MediaPipe's own short-range detector misses small faces, so only the landmark and blendshape
networks of ``face_landmarker.task`` are used, with our pre- and post-processing: a square crop
around the YuNet box, rotated so the eyes are level, resized to 256x256 RGB in [0, 1].
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import cv2
import numpy as np

from facesearch.vision.detector import Detection
from facesearch.vision.face import Point
from facesearch.vision.tflite import interpreter

INPUT_SIZE = 256
# Side of the square crop as a multiple of the YuNet box's longer side: MediaPipe enlarges its
# detector box 1.5 times; YuNet's box already includes the forehead, so a little less.
CROP_SCALE = 1.4

# The named landmarks (Rekognition's 30 landmark types, in its order) as MediaPipe mesh indices.
# "Left" and "right" are the viewer's, as Rekognition's are (in its published responses eyeLeft
# has the smaller X). MediaPipe numbers the subject's right side (the image's left) 33, 133,
# 468...; so "left" here is the image's left.
LANDMARKS: dict[str, tuple[int, ...]] = {
    "eye_left": (33, 133, 159, 145),  # mean of the corners and lids: the eye's centre
    "eye_right": (263, 362, 386, 374),
    "nose": (1,),
    "mouth_left": (61,),
    "mouth_right": (291,),
    "left_eye_brow_left": (70,),
    "left_eye_brow_right": (107,),
    "left_eye_brow_up": (105,),
    "right_eye_brow_left": (336,),
    "right_eye_brow_right": (300,),
    "right_eye_brow_up": (334,),
    "left_eye_left": (33,),
    "left_eye_right": (133,),
    "left_eye_up": (159,),
    "left_eye_down": (145,),
    "right_eye_left": (362,),
    "right_eye_right": (263,),
    "right_eye_up": (386,),
    "right_eye_down": (374,),
    "nose_left": (129,),
    "nose_right": (358,),
    "mouth_up": (0,),
    "mouth_down": (17,),
    "left_pupil": (468,),
    "right_pupil": (473,),
    "upper_jawline_left": (234,),
    "mid_jawline_left": (172,),
    "chin_bottom": (152,),
    "mid_jawline_right": (397,),
    "upper_jawline_right": (454,),
}

# The 146 mesh points the blendshape network takes (MediaPipe's face_blendshapes_graph.cc).
BLENDSHAPE_POINTS = np.array([
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55, 58, 61, 63, 65,
    66, 67, 70, 78, 80, 81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133, 136,
    144, 145, 146, 148, 149, 150, 152, 153, 154, 155, 157, 158, 159, 160, 161, 162, 163, 168, 172,
    173, 176, 178, 181, 185, 191, 195, 197, 234, 246, 249, 251, 263, 267, 269, 270, 276, 282, 283,
    284, 285, 288, 291, 293, 295, 296, 297, 300, 308, 310, 311, 312, 314, 317, 318, 321, 323, 324,
    332, 334, 336, 338, 356, 361, 362, 365, 373, 374, 375, 377, 378, 379, 380, 381, 382, 384, 385,
    386, 387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454, 466, 468, 469, 470, 471, 472,
    473, 474, 475, 476, 477,
])  # fmt: skip

BLENDSHAPE_NAMES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft",
    "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)  # fmt: skip


@dataclass(frozen=True)
class Mesh:
    """478 landmarks in pixels of the full image: x right, y down, z depth (camera-ward negative,
    same scale as x); ``presence`` is the network's 0..1 belief that the crop holds a face."""

    points: np.ndarray  # (478, 3) float64
    presence: float

    def five_points(self) -> np.ndarray:
        """(5, 2) eye centres, nose tip and mouth corners in the detector's order (image-left
        first). Placed by the 478-point mesh, they align faces better than the detector's own
        five points (docs/accuracy.md)."""
        points = self.points[:, :2]
        return np.array(
            [
                points[list(LANDMARKS["eye_left"])].mean(axis=0),
                points[list(LANDMARKS["eye_right"])].mean(axis=0),
                points[LANDMARKS["nose"][0]],
                points[LANDMARKS["mouth_left"][0]],
                points[LANDMARKS["mouth_right"][0]],
            ]
        )

    def landmarks(self, width: int, height: int) -> dict[str, Point]:
        """The named LANDMARKS as ratios of the image size (origin top-left)."""
        out: dict[str, Point] = {}
        for name, idx in LANDMARKS.items():
            x, y = self.points[list(idx), :2].mean(axis=0)
            out[name] = Point(x=float(x / width), y=float(y / height))
        return out


class FaceMesher:
    """Landmark and blendshape networks. Not thread-safe (TFLite interpreters): one per thread."""

    def __init__(self, task: bytes, threads: int = 1) -> None:
        """``task``: face_landmarker.task; the landmark network runs on ``threads`` threads."""
        with zipfile.ZipFile(io.BytesIO(task)) as bundle:
            landmarks = bundle.read("face_landmarks_detector.tflite")
            blendshapes = bundle.read("face_blendshapes.tflite")
        self._mesh = interpreter(landmarks, threads)
        self._mesh_in = self._mesh.get_input_details()[0]["index"]
        outputs = self._mesh.get_output_details()
        self._mesh_points = outputs[0]["index"]
        self._mesh_presence = outputs[1]["index"]
        self._blend = interpreter(blendshapes)
        self._blend_in = self._blend.get_input_details()[0]["index"]
        self._blend_out = self._blend.get_output_details()[0]["index"]

    def mesh(self, rgb: np.ndarray, detection: Detection) -> Mesh:
        """Run the landmark network on the rotated square crop around ``detection``."""
        x, y, w, h = detection.box
        center = (float(x + w / 2), float(y + h / 2))
        right_eye, left_eye = detection.points[0], detection.points[1]
        dx, dy = left_eye - right_eye
        angle = float(np.degrees(np.arctan2(dy, dx)))
        side = max(float(w), float(h)) * CROP_SCALE
        scale = INPUT_SIZE / side
        to_crop = cv2.getRotationMatrix2D(center, angle, scale)
        to_crop[:, 2] += np.array([INPUT_SIZE / 2 - center[0], INPUT_SIZE / 2 - center[1]])
        crop = cv2.warpAffine(rgb, to_crop, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR)
        tensor = crop.astype(np.float32)[None] * np.float32(1 / 255)
        self._mesh.set_tensor(self._mesh_in, tensor)
        self._mesh.invoke()
        raw = self._mesh.get_tensor(self._mesh_points).reshape(478, 3).astype(np.float64)
        logit = float(self._mesh.get_tensor(self._mesh_presence).ravel()[0])
        back = cv2.invertAffineTransform(to_crop)
        points = np.empty_like(raw)
        points[:, :2] = raw[:, :2] @ back[:, :2].T + back[:, 2]
        points[:, 2] = raw[:, 2] / scale
        return Mesh(points=points, presence=float(1 / (1 + np.exp(-logit))))

    def blendshapes(self, mesh: Mesh) -> dict[str, float]:
        """The 52 ARKit-style blendshape scores (0..1) of a mesh."""
        subset = mesh.points[BLENDSHAPE_POINTS, :2].astype(np.float32)[None]
        self._blend.set_tensor(self._blend_in, subset)
        self._blend.invoke()
        scores = self._blend.get_tensor(self._blend_out).ravel()
        return {name: float(s) for name, s in zip(BLENDSHAPE_NAMES, scores, strict=True)}
