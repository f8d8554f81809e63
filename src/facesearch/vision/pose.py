"""Head pose (Roll, Yaw, Pitch in degrees) from the 3D MediaPipe mesh.

Axes are taken from the mesh in a right-handed frame (X image-right, Y up, Z towards the camera):
across the face from the image-left cheek edge (234) to the image-right one (454), up from the chin
(152) to the top of the forehead (10), and the face's forward direction as their cross product.
Signs, from the viewer's side: Yaw > 0 when the face turns towards the image's right, Pitch > 0
when it tilts up, Roll > 0 when it leans counter-clockwise (its image-right side higher).
"""

from __future__ import annotations

import math

import numpy as np

_LEFT_EDGE, _RIGHT_EDGE, _CHIN, _FOREHEAD = 234, 454, 152, 10


def head_pose(points: np.ndarray) -> dict[str, float]:
    """Rekognition's Pose dict from (478, 3) mesh points in image pixels (x right, y down)."""
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
    return {"Roll": roll, "Yaw": yaw, "Pitch": pitch}
