"""How should a user's faces combine into one score? Measured on the labelled photos.

For every person with 4+ photos (near-copies left out), the first 2 photos enrol a user and the
others probe. Each strategy ranks users for each probe:
  best-face: a user's score is its best-matching face (what the index does);
  mean-vector: a user's score is the cosine to the normalised mean of its faces.
Prints rank-1 accuracy, and the false-match rate at threshold 80 for probes of people never
enrolled (people with fewer than 4 photos, plus a second fold that enrols only half the people).

    .venv/bin/python benchmarks/user_scoring.py
"""

from __future__ import annotations

import csv
import os
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from facesearch.vision import cosine_to_similarity, get_analyzer
from facesearch.vision.image import sniff_format

REPO = Path(__file__).resolve().parent.parent
PHOTOS = Path(os.environ.get("FACESEARCH_TEST_PHOTOS", REPO.parent / "shared/datasets/faces"))


def people() -> dict[str, list[Path]]:
    """identity -> photos; variants, mirror copies and non-JPEG/PNG files left out (as in tests)."""
    found: dict[str, list[Path]] = defaultdict(list)
    with open(PHOTOS / "manifest.csv", newline="") as f:
        for row in csv.DictReader(f):
            path = PHOTOS / row["path"]
            if (
                row["kind"] == "person"
                and not row["notes"].startswith(("variant", "horizontal mirror"))
                and sniff_format(path.read_bytes()[:16]) is not None
            ):
                found[row["identity"]].append(path)
    return dict(found)


def embed(paths: list[Path]) -> dict[Path, np.ndarray | None]:
    analyzer = get_analyzer()
    out = {}
    for path in paths:
        faces = analyzer.analyze(path.read_bytes()).faces
        out[path] = faces[0].embedding if faces else None
    return out


def scores(strategy: str, gallery: dict[str, list[np.ndarray]], probe: np.ndarray) -> dict:
    if strategy == "best-face":
        return {u: float(max(v @ probe for v in vs)) for u, vs in gallery.items()}
    means = {u: np.mean(vs, axis=0) for u, vs in gallery.items()}
    return {u: float(m @ probe / np.linalg.norm(m)) for u, m in means.items()}


def main() -> int:
    everyone = people()
    vectors = embed([p for paths in everyone.values() for p in paths])
    enrolled = sorted(name for name, paths in everyone.items() if len(paths) >= 4)
    strangers = sorted(name for name, paths in everyone.items() if len(paths) < 4)

    def gallery_of(names: list[str]) -> dict[str, list[np.ndarray]]:
        return {n: [vectors[p] for p in everyone[n][:2] if vectors[p] is not None] for n in names}

    print(f"{len(enrolled)} enrolled people, {len(strangers)} never enrolled")
    for strategy in ("best-face", "mean-vector"):
        gallery = gallery_of(enrolled)
        right = total = 0
        for name in enrolled:
            for path in everyone[name][2:]:
                total += 1
                probe = vectors[path]
                if probe is None:
                    continue
                ranked = scores(strategy, gallery, probe)
                right += max(ranked, key=ranked.get) == name
        false = probes = 0
        half = enrolled[::2]
        folds = [(gallery, strangers), (gallery_of(half), [n for n in enrolled if n not in half])]
        for fold_gallery, outsiders in folds:
            for name in outsiders:
                for path in everyone[name]:
                    if vectors[path] is None:
                        continue
                    probes += 1
                    best = max(scores(strategy, fold_gallery, vectors[path]).values())
                    false += float(cosine_to_similarity(best)) >= 80
        print(
            f"{strategy:12s} rank-1 {right}/{total} = {100 * right / total:.1f} %   "
            f"false match at 80: {false}/{probes} = {100 * false / probes:.2f} %"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
