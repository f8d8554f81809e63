"""The labelled photo sets (faces/, faces-calib/) as embeddings, one face per photo.

Each photo's labelled face is analysed with a given face model: the largest face, or for LFW
photos (which label the centred face) the face nearest the centre. Results are cached under
.cache/embeddings/ by set, face model version and the manifest's sha1s, so the calibration and
accuracy benchmarks analyse 6,190 photos once (about 4 minutes on 2 cores), not on every run
(``FACESEARCH_EMBEDDINGS_CACHE`` names another folder). Their ``--smoke`` runs use a small fixed
sample of each set (SMOKE_PHOTOS), the suite's check that they work.
"""

from __future__ import annotations

import csv
import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facesearch.vision import Face, FaceModel, face_model, get_analyzer
from facesearch.vision.image import sniff_format
from facesearch.vision.quality_bars import QUALITY_BARS

PROBE_FILTERS = tuple(QUALITY_BARS)  # LOW, AUTO, MEDIUM, HIGH
REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "datasets"
FACES = Path(os.environ.get("FACESEARCH_TEST_PHOTOS", SHARED / "faces"))
FACES_CALIB = Path(os.environ.get("FACESEARCH_CALIB_PHOTOS", SHARED / "faces-calib"))
CACHE = Path(os.environ.get("FACESEARCH_EMBEDDINGS_CACHE", REPO / ".cache" / "embeddings"))
SMOKE_PHOTOS = 16  # photos of a set in a --smoke run (analysed in one process)
# Deliberate near-copies in faces/ (resized, cropped, mirrored): not independent photos.
VARIANT_MARKERS = ("variant of", "mirror image of", "horizontal mirror")
# One person under two names in faces-calib (LFW spellings): counted as one identity, or their
# photos would pass for false matches at any threshold. Found by calibrate.py's list of names
# matched at 99; the other pairs there (twins, sisters, two people in one photo) stay apart.
SAME_PERSON = {
    "sung_hong_choi": "choi_sung_hong",
    "prince_felipe": "felipe_de_borbon",
    "jon_gruden": "john_gruden",
    "mireya_elisa_moscoso_rodriguez": "mireya_moscoso",
}


@dataclass
class LabelledFaces:
    """Parallel arrays, one row per photo with a usable face."""

    paths: np.ndarray  # manifest paths
    identities: np.ndarray
    embeddings: np.ndarray  # (n, d) float32, unit norm
    # (n, len(PROBE_FILTERS)) bool: whether the face passes each QualityFilter
    passes: np.ndarray
    yaws: np.ndarray  # (n,) the face's Pose.Yaw in degrees

    def by_identity(self) -> dict[str, list[int]]:
        """Row numbers of each identity, in manifest order."""
        out: dict[str, list[int]] = {}
        for row, identity in enumerate(self.identities):
            out.setdefault(str(identity), []).append(row)
        return out


def person_rows(photos: Path, limit: int | None = None) -> list[dict[str, str]]:
    """The manifest rows of the photos of people (deliberate near-copies left out); with
    ``limit``, the first ``limit`` of them taking at most 4 photos of a person, so that the
    sample holds people seen once, twice and more often."""
    with open(photos / "manifest.csv", newline="") as f:
        rows = [
            r
            for r in csv.DictReader(f)
            if r["kind"] == "person" and not any(m in r["notes"] for m in VARIANT_MARKERS)
        ]
    if limit is None:
        return rows
    taken: dict[str, int] = {}
    sample = []
    for r in rows:
        if len(sample) < limit and taken.get(r["identity"], 0) < 4:
            taken[r["identity"]] = taken.get(r["identity"], 0) + 1
            sample.append(r)
    return sample


def _analyse(job: tuple[str, str, str]) -> tuple[np.ndarray, list[bool], float] | None:
    path, notes, version = job
    data = Path(path).read_bytes()
    if sniff_format(data[:16]) is None:  # e.g. WebP named .jpg: Rekognition refuses it too
        return None
    analysed = get_analyzer().analyze(data, face_model=face_model(version))
    face = labelled_face(analysed.faces, notes)
    if face is None:
        return None
    passes = [not QUALITY_BARS[level].shortfalls(face) for level in PROBE_FILTERS]
    return face.embedding, passes, face.pose.yaw


def labelled_face(faces: list[Face], notes: str) -> Face | None:
    """The face a photo's label is about: the largest, or for LFW photos the one nearest the
    centre; None if no face was found."""
    if not faces:
        return None
    if not notes.startswith("LFW"):
        return faces[0]
    return min(
        faces,
        key=lambda f: (
            abs(f.box.left + f.box.width / 2 - 0.5) + abs(f.box.top + f.box.height / 2 - 0.5)
        ),
    )


def load(photos: Path, model: FaceModel, jobs: int = 2, limit: int | None = None) -> LabelledFaces:
    """Embeddings of the labelled face of every photo of ``photos`` (or of the sample
    ``person_rows`` takes with ``limit``, in one process), from cache when current."""
    rows = person_rows(photos, limit)
    jobs = jobs if limit is None else 1  # starting a second process costs more than it saves
    # "yaw": the cache's format (files made before yaws were kept are not read).
    key = hashlib.sha1(("yaw" + "".join(r["sha1"] for r in rows)).encode()).hexdigest()[:12]
    cache = CACHE / f"{photos.name}-{model.version.replace('/', '_')}-{key}.npz"
    if cache.exists():
        with np.load(cache) as stored:
            return LabelledFaces(**{name: stored[name] for name in stored.files})
    work = [(str(photos / r["path"]), r["notes"], model.version) for r in rows]
    with ProcessPoolExecutor(jobs) as pool:
        results = list(pool.map(_analyse, work, chunksize=32))
    kept = [(r, out) for r, out in zip(rows, results, strict=True) if out is not None]
    faces = LabelledFaces(
        paths=np.array([r["path"] for r, _ in kept]),
        identities=np.array([SAME_PERSON.get(r["identity"], r["identity"]) for r, _ in kept]),
        embeddings=np.stack([out[0] for _, out in kept]).astype(np.float32),
        passes=np.array([out[1] for _, out in kept], bool),
        yaws=np.array([out[2] for _, out in kept], np.float32),
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **faces.__dict__)
    return faces
