"""Fit each face model's cosine -> similarity map on faces-calib, and check it on faces/.

The similarity scale is defined by the false-match rate per comparison (FMR) of two photos of
different people: 80 at FMR 5e-6, ten points per decade (src/facesearch/vision/similarity.py).
For each face model this script takes every pair of faces-calib photos (19 million pairs of
different people, 35,000 of the same), measures the FMR of each cosine, fits log10(FMR) as a
quadratic in the cosine where the data are dense (FMR 1e-1 .. 1e-5), and continues beyond 1e-5
along the fit's tangent: an exponential tail, more cautious than the Gaussian that the quadratic
would extrapolate (beyond 2e-6 the measured tail is mostly mislabelled pairs of the same person).
Above 99 the map runs straight to (1, 100). It prints the cosines to paste into
vision/face_models.py, then the measured FMR and FNMR (same person below the threshold) of the
installed calibration on faces-calib and on faces/, the names behind false matches at 99, and
faces-calib's cosines by the two faces' Yaw difference.
``--smoke``: the same on a few photos of each set (photoset.SMOKE_PHOTOS), figures meaningless.

    .venv/bin/python benchmarks/calibrate.py [--smoke] [--model VERSION ...]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from photoset import FACES, FACES_CALIB, SMOKE_PHOTOS, LabelledFaces, load

from facesearch.vision import FACE_MODELS, FaceModel
from facesearch.vision.similarity import KNOT_SIMILARITIES, fmr_of_similarity

FIT_FMRS = np.logspace(-1, -5, 17)
THRESHOLDS = (50, 80, 90, 95, 99)
YAW_BINS = ((0, 10), (10, 20), (20, 30), (30, 40), (40, 50), (50, 60), (60, 180))


def pair_cosines(faces: LabelledFaces) -> tuple[np.ndarray, np.ndarray]:
    """(same-person cosines, different-person cosines) over all pairs of photos."""
    cos = faces.embeddings.astype(np.float64) @ faces.embeddings.T.astype(np.float64)
    upper = np.triu_indices(len(cos), 1)
    same = faces.identities[upper[0]] == faces.identities[upper[1]]
    values = cos[upper]
    return values[same], values[~same]


def fit_knots(impostors: np.ndarray) -> list[tuple[float, float]]:
    """(cosine, similarity) knots from the measured FMR of the different-person cosines."""
    ordered = np.sort(impostors)[::-1]
    cut = ordered[(FIT_FMRS * len(ordered)).astype(int)]
    quadratic = np.polyfit(cut, np.log10(FIT_FMRS), 2)
    # Beyond the data: the tangent at the last fitted point (log-linear, an exponential tail).
    edge = cut[-1]
    slope = np.polyval(np.polyder(quadratic), edge)
    log_edge = np.polyval(quadratic, edge)

    def log_fmr(c: np.ndarray) -> np.ndarray:
        return np.where(c <= edge, np.polyval(quadratic, c), log_edge + slope * (c - edge))

    grid = np.linspace(0.0, 1.0, 100_001)
    logs = log_fmr(grid)
    # The quadratic turns up again left of its vertex: keep the monotone part only.
    monotone = grid >= grid[np.argmax(logs)]
    knots = [(-1.0, 0.0)]
    for s in KNOT_SIMILARITIES[1:-1]:
        target = np.log10(fmr_of_similarity(float(s)))
        cosine = float(np.interp(-target, -logs[monotone], grid[monotone]))
        knots.append((round(cosine, 4), float(s)))
    knots.append((1.0, 100.0))
    return knots


def names_matched(faces: LabelledFaces, cosine: float) -> list[tuple[str, str]]:
    """The distinct pairs of different names whose photos reach ``cosine``."""
    cos = faces.embeddings @ faces.embeddings.T
    a, b = np.nonzero(np.triu(cos >= cosine, 1))
    return sorted(
        {
            tuple(sorted((str(faces.identities[i]), str(faces.identities[j]))))
            for i, j in zip(a, b, strict=True)
            if faces.identities[i] != faces.identities[j]
        }
    )


def report(name: str, model: FaceModel, faces: LabelledFaces) -> None:
    """Measured FMR and FNMR per comparison at the thresholds, under the installed calibration."""
    same, diff = pair_cosines(faces)
    print(
        f"  {name}: {len(faces.paths)} photos, {len(same):,} same-person pairs, "
        f"{len(diff):,} different-person pairs"
    )
    print("    threshold  cosine   FMR measured (events)  FMR by the scale  FNMR")
    for t in THRESHOLDS:
        cosine = model.calibration.min_cosine(t)
        events = int((diff >= cosine).sum())
        print(
            f"    {t:9}  {cosine:6.3f}  {events / len(diff):12.2e} ({events:5})  "
            f"{fmr_of_similarity(t):16.1e}  {(same < cosine).mean():6.1%}"
        )
    matched = names_matched(faces, model.calibration.min_cosine(99))
    print(f"    pairs of names matched at 99 ({len(matched)}): {matched}")


def by_yaw_difference(model: FaceModel, faces: LabelledFaces) -> None:
    """Different-person cosines by the two faces' Yaw difference: a pose-aware scale (80 at the
    same FMR for every pose difference) would need them to fall as the difference grows."""
    cos = faces.embeddings.astype(np.float64) @ faces.embeddings.T.astype(np.float64)
    upper = np.triu_indices(len(cos), 1)
    same = faces.identities[upper[0]] == faces.identities[upper[1]]
    apart = np.abs(faces.yaws[upper[0]] - faces.yaws[upper[1]])
    values, bar = cos[upper], model.calibration.min_cosine(80)
    print("    yaw apart  different-person pairs: n, mean, sd, FMR at 80 | same-person: n, median")
    for low, high in YAW_BINS:
        near = (apart >= low) & (apart < high)
        diff, own = values[near & ~same], values[near & same]
        if not (len(diff) and len(own)):
            continue
        print(
            f"    {low:3}-{high:<3}  {len(diff):11,} {diff.mean():7.4f} {diff.std():7.4f} "
            f"{(diff >= bar).mean():9.2e} | {len(own):6,} {np.median(own):6.3f}"
        )


def main() -> None:
    """Print the fitted knots and the check of the installed ones."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few photos of each set")
    parser.add_argument(
        "--model", action="append", choices=FACE_MODELS, help="only this face model (repeatable)"
    )
    args = parser.parse_args()
    limit = SMOKE_PHOTOS if args.smoke else None
    print(f"load average {os.getloadavg()[0]:.2f}")
    for model in (FACE_MODELS[v] for v in args.model or FACE_MODELS):
        calib = load(FACES_CALIB, model, limit=limit)
        _, diff = pair_cosines(calib)
        print(f"\n{model.version} ({model.alignment}-aligned)")
        knots = fit_knots(diff)
        print(f"  fitted cosines at KNOT_SIMILARITIES: {tuple(c for c, _ in knots)}")
        if len(model.calibration.cosines) > 1:
            report("faces-calib (fitted here)", model, calib)
            by_yaw_difference(model, calib)
            report("faces/ (held out)", model, load(FACES, model, limit=limit))


if __name__ == "__main__":
    main()
