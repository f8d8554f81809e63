"""Head pose (roll, yaw, pitch in degrees): from the 3D MediaPipe mesh, or from a perspective fit
of the detector's five points on a mean face where the mesh is not believed or flattens a turn.

Axes are taken from the mesh in a right-handed frame (X image-right, Y up, Z towards the camera):
across the face from the image-left cheek edge (234) to the image-right one (454), up from the chin
(152) to the top of the forehead (10), and the face's forward direction as their cross product.
Signs, from the viewer's side: yaw > 0 when the face turns towards the image's right, pitch > 0
when it tilts up, roll > 0 when it leans counter-clockwise (its image-right side higher).
Figures: benchmarks/pose.py.
"""

from __future__ import annotations

import math

import cv2
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


# The detector's five points on a mean face, in eye gaps (X image-right, Y up, Z towards the
# camera, origin between the eyes): the MediaPipe mesh's own points, averaged over 450 near-frontal
# faces of faces/ and faces-pose in head_pose's frame, so that the fit's angles are the mesh's.
MEAN_FACE = np.array(
    [
        [-0.5, 0.0, 0.0],
        [0.5, 0.0, 0.0],
        [0.0, -0.58, 0.65],
        [-0.435, -1.07, 0.09],
        [0.435, -1.07, 0.09],
    ]
)
# From the first to the second mesh |yaw| the reported yaw moves from the mesh's to the fit's
# (when they turn the same way): the mesh flattens strong turns (faces-pose left/right, turned
# 60-90 degrees: mesh median 44/-45, the fit 53/-59; with the blend 52/-55), and a blend keeps
# a face near a quality bar from jumping across it with a degree more of mesh yaw.
MESH_YAW_BLEND = (30.0, 45.0)

# The focal length in eye gaps (a face about 1.3 m away): with the image's size instead, the fit
# of the same points moved by up to 50 degrees of Pitch between a faces/ photo and a crop of it
# around the face; at 20 eye gaps by at most 4 (and it agrees with the mesh as well or better).
FOCAL_EYE_GAPS = 20.0


def eye_roll(points: np.ndarray) -> float:
    """Roll in degrees from the detector's eye line (image-left eye first)."""
    across = np.asarray(points[1], float) - np.asarray(points[0], float)
    return math.degrees(math.atan2(-across[1], across[0]))


def pose_from_five_points(points: np.ndarray, width: int, height: int) -> Pose:
    """The Pose of the detector's five points (eyes, nose tip, mouth corners; image-left first)
    in a ``width`` x ``height`` image, for faces whose mesh is not believable: a perspective fit
    of MEAN_FACE (cv2.solvePnP; the camera centred on the image, the face FOCAL_EYE_GAPS away),
    with the angles taken against the line of sight to the face, so that a crop of the photo
    gives the same pose."""
    focal = FOCAL_EYE_GAPS * (float(np.linalg.norm(np.subtract(points[1], points[0]))) or 1.0)
    camera = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]])
    model = MEAN_FACE * np.array([1.0, -1.0, -1.0])  # OpenCV's frame: Y down, Z away
    image = np.asarray(points, float).reshape(-1, 1, 2)
    _, rvec, tvec = cv2.solvePnP(model, image, camera, None, flags=cv2.SOLVEPNP_SQPNP)
    rotation = cv2.Rodrigues(rvec)[0]
    forward, across = rotation @ np.array([0.0, 0.0, -1.0]), rotation @ np.array([1.0, 0.0, 0.0])
    # Turn the ray to the face onto the optical axis.
    ray = tvec.ravel() / (np.linalg.norm(tvec) or 1.0)
    axis = np.cross(ray, [0.0, 0.0, 1.0])
    sine = float(np.linalg.norm(axis))
    if sine > 1e-9:
        towards = cv2.Rodrigues(axis / sine * math.atan2(sine, float(ray[2])))[0]
        forward, across = towards @ forward, towards @ across
    # Back to head_pose's frame (Y up, Z towards the camera); a face that shows its five points
    # faces the camera, so a fit that flips it away is mirrored back.
    fx, fy, fz = forward[0], -forward[1], abs(forward[2])
    yaw = math.degrees(math.atan2(fx, fz))
    pitch = math.degrees(math.atan2(fy, math.hypot(fx, fz)))
    roll = math.degrees(math.atan2(-across[1], across[0]))
    return Pose(roll=roll, yaw=yaw, pitch=pitch)


def face_pose(mesh_points: np.ndarray, points: np.ndarray, width: int, height: int) -> Pose:
    """The Pose of a face from its mesh and the detector's five points: the mesh's when it is
    believable, its yaw blended into the fit's over MESH_YAW_BLEND; else the five points' fit."""
    mesh = head_pose(mesh_points)
    if not believable(mesh, points):
        return pose_from_five_points(points, width, height)
    start, end = MESH_YAW_BLEND
    if abs(mesh.yaw) > start:
        fit = pose_from_five_points(points, width, height)
        if fit.yaw * mesh.yaw > 0:
            weight = min(1.0, (abs(mesh.yaw) - start) / (end - start))
            yaw = (1 - weight) * mesh.yaw + weight * fit.yaw
            return Pose(roll=mesh.roll, yaw=yaw, pitch=mesh.pitch)
    return mesh


def believable(pose: Pose, points: np.ndarray) -> bool:
    """Whether a mesh pose can be a head's: facing the camera (|Yaw| under 90) and leaning as
    the detector's eye line does (within 45 degrees)."""
    lean = abs((pose.roll - eye_roll(points) + 180) % 360 - 180)
    return abs(pose.yaw) < 90 and lean < 45
