"""Calibrate and check the cosine -> similarity map on the labelled photo set.

Analyses every photo of people/ once (largest face), leaves out the deliberate variants
(manifest notes "variant of", "mirror image of"), then prints the cosine spread of same-person and
different-person pairs (all pairs of the set, and deepface's pairs.csv), the false-match and
false-non-match rates at similarity thresholds 50/80/90/99, and pairs.csv verification accuracy.

    .venv/bin/python benchmarks/calibrate.py [--photos DIR]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
from pathlib import Path

import numpy as np

from facesearch.vision import cosine_to_similarity, get_analyzer
from facesearch.vision.image import sniff_format
from facesearch.vision.quality import QUALITY_FILTERS

DEFAULT_PHOTOS = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "faces"
VARIANT_MARKERS = ("variant of", "mirror image of")


def is_variant(notes: str) -> bool:
    """True for the manifest rows that are resized/cropped/mirrored copies of another photo."""
    return any(marker in notes for marker in VARIANT_MARKERS)


def load(photos: Path) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, dict]]:
    """Embeddings of the largest face, identities and quality stats, by manifest path."""
    analyzer = get_analyzer()
    embeddings: dict[str, np.ndarray] = {}
    identity: dict[str, str] = {}
    stats: dict[str, dict] = {}
    with (photos / "manifest.csv").open() as f:
        rows = [
            r for r in csv.DictReader(f) if r["kind"] == "person" and not is_variant(r["notes"])
        ]
    for row in rows:
        data = (photos / row["path"]).read_bytes()
        if sniff_format(data) is None:  # e.g. a WebP named .jpg: Rekognition refuses it too
            print(f"not JPEG/PNG, skipped: {row['path']}")
            continue
        faces = analyzer.analyze(data).faces
        if not faces:
            print(f"no face: {row['path']}")
            continue
        face = faces[0]
        if row["notes"].startswith("LFW"):
            # LFW labels the centred face, which is not always the largest.
            face = min(
                faces,
                key=lambda f: (
                    abs(f.bounding_box["Left"] + f.bounding_box["Width"] / 2 - 0.5)
                    + abs(f.bounding_box["Top"] + f.bounding_box["Height"] / 2 - 0.5)
                ),
            )
        embeddings[row["path"]] = face.embedding
        identity[row["path"]] = row["identity"]
        stats[row["path"]] = {
            "confidence": face.confidence,
            "side": min(face.box_pixels[2:]),
            **face.pose,
            **face.quality,
            "presence": face.presence,
            **{q: face.quality_reasons(q) for q in QUALITY_FILTERS},
        }
    return embeddings, identity, stats


def rates(same: np.ndarray, diff: np.ndarray, threshold: float) -> tuple[float, float]:
    """(false-match rate, false-non-match rate) at a similarity threshold."""
    return float((cosine_to_similarity(diff) >= threshold).mean()), float(
        (cosine_to_similarity(same) < threshold).mean()
    )


def best_accuracy(same: np.ndarray, diff: np.ndarray) -> tuple[float, float]:
    """(accuracy, cosine threshold) of the best single cut."""
    best = (0.0, 0.0)
    for cut in np.unique(np.concatenate([same, diff])):
        acc = ((same >= cut).sum() + (diff < cut).sum()) / (len(same) + len(diff))
        best = max(best, (float(acc), float(cut)))
    return best


def main() -> None:
    """Print the calibration figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("FACESEARCH_TEST_PHOTOS", str(DEFAULT_PHOTOS))
    parser.add_argument("--photos", type=Path, default=Path(default))
    photos = parser.parse_args().photos.resolve()
    embeddings, identity, stats = load(photos)

    same, diff = [], []
    for a, b in itertools.combinations(sorted(embeddings), 2):
        cos = float(embeddings[a] @ embeddings[b])
        (same if identity[a] == identity[b] else diff).append(cos)
    same_all, diff_all = np.array(same), np.array(diff)

    pair_same, pair_diff = [], []
    with (photos / "pairs.csv").open() as f:
        for row in csv.DictReader(f):
            a, b = row["path_a"], row["path_b"]
            if a in embeddings and b in embeddings:
                cos = float(embeddings[a] @ embeddings[b])
                (pair_same if row["same_person"] == "1" else pair_diff).append(cos)
    pair_same_a, pair_diff_a = np.array(pair_same), np.array(pair_diff)

    pct = (0, 1, 5, 50, 95, 99, 100)
    for name, s, d in (("all pairs", same_all, diff_all), ("pairs.csv", pair_same_a, pair_diff_a)):
        print(f"\n{name}: {len(s)} same-person, {len(d)} different-person")
        for label, v in (("same", s), ("diff", d)):
            spread = " ".join(
                f"p{p}={c:.3f}" for p, c in zip(pct, np.percentile(v, pct), strict=True)
            )
            print(f"  {label} cosine {spread}")
        print("  diff cosine max 5", np.sort(d)[-5:].round(3))
        print("  threshold  FMR        FNMR")
        for t in (50, 80, 90, 99):
            fmr, fnmr = rates(s, d, t)
            print(f"  {t:>9}  {fmr:9.4%}  {fnmr:8.2%}")
        acc, cut = best_accuracy(s, d)
        print(f"  best verification accuracy {acc:.2%} at cosine {cut:.3f}")
        at80 = ((cosine_to_similarity(s) >= 80).sum() + (cosine_to_similarity(d) < 80).sum()) / (
            len(s) + len(d)
        )
        print(f"  verification accuracy at similarity 80: {at80:.2%}")

    print(f"\nquality over {len(stats)} people/ photos (min / 1st percentile / median):")
    for key in ("confidence", "side", "Brightness", "Sharpness", "presence"):
        v = np.array([s[key] for s in stats.values()])
        print(f"  {key:10} {v.min():8.2f} {np.percentile(v, 1):8.2f} {np.median(v):8.2f}")
    for key in ("Yaw", "Pitch", "Roll"):
        v = np.abs([s[key] for s in stats.values()])
        print(f"  |{key}|     max {v.max():6.1f}  99th {np.percentile(v, 99):6.1f}")
    for q in QUALITY_FILTERS:
        failed = {p: s[q] for p, s in stats.items() if s[q]}
        print(f"  {q:6} rejects {len(failed)}: {dict(list(failed.items())[:6])}")


if __name__ == "__main__":
    main()
