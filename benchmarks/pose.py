"""Head pose against the truth: Yaw and Pitch on turned heads, and the same face in a crop.

faces-pose (20 people; ``left`` is the head turned towards the image's right, roughly 60-90
degrees, so Yaw > 0; ``right`` the other way; ``up`` pitched up; the angles are categories, not
measured) upscaled 4x as a camera's digital zoom would (a face 200-240 px tall), and faces/
(frontal people photos: Yaw about 0). Printed per pose: faces found, median Yaw with its 10th-90th
percentiles, the median |Yaw| less 60 degrees for the turned heads, how many turned
heads get |Yaw| = 90 (refused as EXTREME_POSE), median Pitch; then the crop check: each faces/
photo's largest face again in a crop of the photo around it (three box sizes wide, clipped), and
how much its Yaw and Pitch move. The baseline, run in the same process, is the previous release's
rule: the mesh's pose, or asin(2 x nose offset) where the mesh is not believed.

    .venv/bin/python benchmarks/pose.py [--smoke]
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from photoset import FACES, SHARED, person_rows
from PIL import Image

from facesearch.vision import ImageError, get_analyzer
from facesearch.vision import analyzer as analyzer_module
from facesearch.vision.face import Face, Pose
from facesearch.vision.image import sniff_format
from facesearch.vision.pose import believable, face_pose, head_pose

FACES_POSE = Path(os.environ.get("FACESEARCH_POSE_PHOTOS", SHARED / "faces-pose"))
POSES = ("straight", "left", "right", "up")
ZOOM = 4
SMOKE_PER_POSE = 2  # photos of each pose (and of faces/) in a --smoke run
TURNED = 60.0  # the least turn of faces-pose's left and right
PosePicker = Callable[[np.ndarray, np.ndarray, int, int], Pose]


def previous_pose(mesh_points: np.ndarray, points: np.ndarray, width: int, height: int) -> Pose:
    """The previous release's rule, the baseline: the mesh's pose, or where it is not believed
    yaw = asin(2 x the nose's offset from the eyes' middle in eye gaps), which saturates at 90."""
    mesh = head_pose(mesh_points)
    if believable(mesh, points):
        return mesh
    left_eye, right_eye, nose, left_mouth, right_mouth = (np.asarray(p, float) for p in points)
    across = right_eye - left_eye
    gap = float(np.linalg.norm(across)) or 1.0
    cos, sin = across / gap

    def level(p: np.ndarray) -> np.ndarray:
        q = p - (left_eye + right_eye) / 2
        return np.array([q[0] * cos + q[1] * sin, -q[0] * sin + q[1] * cos]) / gap

    nose_x, nose_y = level(nose)
    mouth_y = float(level((left_mouth + right_mouth) / 2)[1]) or 1.0
    return Pose(
        roll=math.degrees(math.atan2(-across[1], across[0])),
        yaw=math.degrees(math.asin(float(np.clip(2 * nose_x, -1.0, 1.0)))),
        pitch=float(np.clip((0.55 - nose_y / mouth_y) * 180, -90.0, 90.0)),
    )


@contextmanager
def picking(rule: PosePicker) -> Iterator[None]:
    """Analyse with ``rule`` choosing each face's pose."""
    kept = getattr(analyzer_module, "face_pose")  # noqa: B009 (the name the analyser calls)
    setattr(analyzer_module, "face_pose", rule)  # noqa: B010
    try:
        yield
    finally:
        setattr(analyzer_module, "face_pose", kept)  # noqa: B010


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def largest(data: bytes) -> Face | None:
    faces = get_analyzer().analyze(data).faces
    return faces[0] if faces else None


def pose_rows() -> list[dict[str, str]]:
    """faces-pose's manifest rows."""
    with open(FACES_POSE / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def zoomed(path: str) -> bytes:
    """A faces-pose photo (its manifest path) upscaled ZOOM times, as PNG."""
    image = Image.open(FACES_POSE / path).convert("RGB")
    return png(image.resize((image.width * ZOOM, image.height * ZOOM)))


def pose_photos(per_pose: int | None) -> dict[str, list[bytes]]:
    """faces-pose's photos by pose, upscaled (``per_pose`` of each, else all)."""
    out: dict[str, list[bytes]] = {pose: [] for pose in POSES}
    for row in pose_rows():
        photos = out[row["pose"]]
        if per_pose is None or len(photos) < per_pose:
            photos.append(zoomed(row["path"]))
    return out


def by_pose(photos: dict[str, list[bytes]], frontal: list[bytes]) -> None:
    """One line per pose: found, Yaw median [p10, p90], short of 60, |Yaw| = 90, Pitch."""
    for pose, datas in [*photos.items(), ("faces/", frontal)]:
        faces = [f for f in map(largest, datas) if f is not None]
        yaws = np.array([f.pose.yaw for f in faces])
        pitches = np.array([f.pose.pitch for f in faces])
        if not faces:
            print(f"  {pose:9} found 0/{len(datas)}")
            continue
        median = float(np.median(yaws))
        short = f"{abs(median) - TURNED:5.1f}" if pose in ("left", "right") else "    -"
        p10, p90 = np.percentile(yaws, [10, 90])
        at90 = int((np.abs(yaws) >= 89.95).sum())
        print(
            f"  {pose:9} found {len(faces):3}/{len(datas):<3}  yaw {median:6.1f} "
            f"[{p10:6.1f}, {p90:6.1f}]  |yaw|-60 {short}  |yaw|=90 {at90:3}  "
            f"pitch {float(np.median(pitches)):6.1f}"
        )


def crops(frontal: list[bytes]) -> None:
    """How far Yaw and Pitch move between a photo and a crop around its largest face."""
    moves = []
    for data in frontal:
        whole = get_analyzer().analyze(data)
        if not whole.faces:
            continue
        box = whole.faces[0].box
        image = Image.open(io.BytesIO(data)).convert("RGB")
        w, h = box.width * whole.width, box.height * whole.height
        x, y = box.left * whole.width, box.top * whole.height
        left, top = int(max(0, x - w)), int(max(0, y - h))
        right, bottom = int(min(whole.width, x + 2 * w)), int(min(whole.height, y + 2 * h))
        cut = io.BytesIO()  # as JPEG: a large photo's crop as PNG can pass Rekognition's 5 MB
        image.crop((left, top, right, bottom)).save(cut, "JPEG", quality=95)
        try:
            crop = largest(cut.getvalue())
        except ImageError:  # a small face's crop, under Rekognition's 80 px
            continue
        if crop is not None:
            face = whole.faces[0].pose
            moves.append((abs(crop.pose.yaw - face.yaw), abs(crop.pose.pitch - face.pitch)))
    if not moves:
        print("  no face found in both")
        return
    yaw, pitch = np.array(moves).T
    print(
        f"  {len(moves)} faces: |yaw change| median {np.median(yaw):4.1f} p90 "
        f"{np.percentile(yaw, 90):5.1f} max {yaw.max():5.1f};  |pitch change| median "
        f"{np.median(pitch):4.1f} p90 {np.percentile(pitch, 90):5.1f} max {pitch.max():5.1f}"
    )


def main() -> None:
    """Print the figures of the baseline and of this release."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help=f"{SMOKE_PER_POSE} photos a pose")
    args = parser.parse_args()
    per_pose = SMOKE_PER_POSE if args.smoke else None
    print(f"load average {os.getloadavg()[0]:.2f}; faces-pose at {FACES_POSE}, faces/ at {FACES}")
    photos = pose_photos(per_pose)
    rows = person_rows(FACES, per_pose)
    readable = (f.read_bytes() for f in (FACES / r["path"] for r in rows))
    frontal = [data for data in readable if sniff_format(data[:16])]  # a WebP named .jpg: out
    for label, rule in (
        ("previous release: mesh, else asin(2 x nose offset)", previous_pose),
        ("this release: mesh, its yaw blended into the 3D fit's from 30, else the fit", face_pose),
    ):
        with picking(rule):
            print(f"\n{label}; faces-pose upscaled {ZOOM}x:")
            by_pose(photos, frontal)
            print("  the same face in a crop (faces/):")
            crops(frontal)


if __name__ == "__main__":
    main()
