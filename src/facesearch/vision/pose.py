"""Head pose (roll, yaw, pitch in degrees) from the 3D MediaPipe mesh.

Axes are taken from the mesh in a right-handed frame (X image-right, Y up, Z towards the camera):
across the face from the image-left cheek edge (234) to the image-right one (454), up from the chin
(152) to the top of the forehead (10), and the face's forward direction as their cross product.
Signs, from the viewer's side: yaw > 0 when the face turns towards the image's right, pitch > 0
when it tilts up, roll > 0 when it leans counter-clockwise (its image-right side higher).
"""

from __future__ import annotations

import math

import numpy as np

from facesearch.vision.face import Pose

_LEFT_EDGE, _RIGHT_EDGE, _CHIN, _FOREHEAD = 234, 454, 152, 10


def head_pose(points: np.ndarray) -> Pose:
    """The Pose of (478, 3) mesh points in image pixels (x right, y down)."""
    frame = points[[_LEFT_EDGE, _RIGHT_EDGE, _CHIN, _FOREHEAD]] * np.array([1.0, -1.0, -1.0])
    across = frame[1] - frame[0]
    across /= np.linalg.norm(across) or 1.0
    up = frame[3] - frame[2]
    up -= across * float(up @ across)
    up /= np.linalg.norm(up) or 1.0
    forward = np.cross(across, up)
    yaw = math.degrees(math.atan2(forward[0], forward[2]))
    pitch = math.degrees(math.atan2(forward[1], math.hypot(forward[0], forward[2])))
    roll = math.degrees(math.atan2(across[1], across[0]))
    return Pose(roll=roll, yaw=yaw, pitch=pitch)


def pose_from_five_points(points: np.ndarray) -> Pose:
    """A coarse Pose from the detector's five points (eyes, nose tip, mouth corners; image-left
    first), for faces whose mesh is not believable (a face cut by the image edge): roll from the
    eye line, yaw and pitch from where the nose sits between the eyes and the mouth."""
    left_eye, right_eye, nose, left_mouth, right_mouth = (np.asarray(p, float) for p in points)
    across = right_eye - left_eye
    eye_gap = float(np.linalg.norm(across)) or 1.0
    roll = math.degrees(math.atan2(-across[1], across[0]))
    # Into the face's own frame (undo the roll), in eye gaps.
    cos, sin = across / eye_gap

    def level(p: np.ndarray) -> np.ndarray:
        q = p - (left_eye + right_eye) / 2
        return np.array([q[0] * cos + q[1] * sin, -q[0] * sin + q[1] * cos]) / eye_gap

    nose_x, nose_y = level(nose)
    mouth_y = float(level((left_mouth + right_mouth) / 2)[1]) or 1.0
    yaw = math.degrees(math.asin(float(np.clip(2 * nose_x, -1.0, 1.0))))
    # A frontal nose tip sits about 55 % of the way from the eyes to the mouth; higher is up.
    pitch = float(np.clip((0.55 - nose_y / mouth_y) * 180, -90.0, 90.0))
    return Pose(roll=roll, yaw=yaw, pitch=pitch)


def believable(pose: Pose, points: np.ndarray) -> bool:
    """Whether a mesh pose can be a head's: facing the camera (|Yaw| under 90) and leaning as
    the detector's eye line does (within 45 degrees)."""
    eye_roll = pose_from_five_points(points).roll
    lean = abs((pose.roll - eye_roll + 180) % 360 - 180)
    return abs(pose.yaw) < 90 and lean < 45
