"""Open-set search accuracy on faces-calib: what a door camera or a photo library would see.

A gallery of 1,000 users: every person with 3+ photos is enrolled from their first 2 photos and
probes with up to 3 others (Rekognition users, scored on all their faces as the service does);
people seen once fill the gallery to 1,000 users with one photo each. Strangers are the people seen
once who were not enrolled, and every photo of the people with exactly 2. Five shuffles of who
fills and who is a stranger are pooled. Printed per face model, with the previous release's
calibration as the baseline of the same run:
  rank-1 (own user first at any threshold), found at 80 (own user first with Similarity >= 80),
  strangers matched at 80 (anybody >= 80), and the thresholds that let 1 % and 0.1 % of strangers
  through, with what is found there; found and strangers matched threshold by threshold;
then the user-scoring levers, what each QualityFilter on the searched face does, the false-match
rate per search at 80/90/95/99 for galleries of 100 to 100,000 users (measured up to 2,000, the
most faces-calib allows with strangers left over; the scale's own figure, 1-(1-FMR)^faces,
beyond), and a DET plot; then faces-pose by head pose (each person enrolled from their
``straight_*_open`` photos; rank-1 and found at 80 for left, right, up and sunglasses).
``--smoke``: the same on a few photos (photoset.SMOKE_PHOTOS, SMOKE_POSE_PEOPLE) with galleries
to match (SMOKE_SIZES), figures meaningless.

    .venv/bin/python benchmarks/accuracy.py [--plot docs/accuracy-det.png] [--smoke] [--model V ...]
"""

from __future__ import annotations

import argparse
import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from calibrate import pair_cosines
from photoset import CACHE, FACES_CALIB, PROBE_FILTERS, REPO, SMOKE_PHOTOS, LabelledFaces, load
from pose import FACES_POSE, ZOOM, pose_rows, zoomed

from facesearch.service.search import USER_CANDIDATE_MARGIN
from facesearch.vision import CURRENT, FACE_MODELS, FaceModel, face_model, get_analyzer
from facesearch.vision.similarity import Calibration, fmr_of_similarity

USERS = 1000
SHUFFLES = 5
PROBES_PER_PERSON = 3
THRESHOLDS = (80, 90, 95, 99)
GALLERY_SIZES = (100, 1000, 2000, 10_000, 100_000)
MEASURABLE = 2000
# USERS, GALLERY_SIZES and MEASURABLE of a --smoke run, for the few people of its sample.
SMOKE_SIZES = (5, (2, 4, 1000), 4)
# faces-pose's probe groups: eyes open at each turned pose, and sunglasses at any pose.
POSE_GROUPS = ("left", "right", "up", "sunglasses")
SMOKE_POSE_PEOPLE = 2  # people of faces-pose in a --smoke run (this release's model only)
# The previous release: its face model, scored users by their best face, with this map (knots
# fitted on 30 people of faces/). The baseline.
PREVIOUS_VERSION = "facesearch-sface-2021dec-int8bq/1"
PREVIOUS = Calibration(
    cosines=(-1.0, 0.0, 0.30, 0.43, 0.52, 0.72, 1.0),
    similarities=(0.0, 0.0, 50.0, 80.0, 90.0, 99.0, 100.0),
)


@dataclass
class Outcome:
    """Pooled over the shuffles: each probe's own-user and best-other scores (cosines), and
    each stranger's best score; whether each probe and stranger passes each QualityFilter."""

    own: np.ndarray
    other: np.ndarray
    strangers: np.ndarray
    probe_passes: np.ndarray
    stranger_passes: np.ndarray

    def found(self, cosine: float) -> float:
        return float(((self.own >= cosine) & (self.own > self.other)).mean())

    def strangers_at(self, cosine: float) -> float:
        return float((self.strangers >= cosine).mean())

    def rank1(self) -> float:
        return float((self.own > self.other).mean())


def user_scores(
    faces: LabelledFaces, gallery: list[list[int]], probes: list[int], scoring: str = "both"
) -> np.ndarray:
    """(probes, users) cosines: a user's best face, its mean face, or the mean of both (the
    service's rule, facesearch.service.scoring.user_cosines, here for all users at once)."""
    rows = np.array([r for user in gallery for r in user])
    owner = np.repeat(np.arange(len(gallery)), [len(user) for user in gallery])
    cos = faces.embeddings[probes] @ faces.embeddings[rows].T
    best = np.full((len(probes), len(gallery)), -2.0, np.float32)
    np.maximum.at(best.T, owner, cos.T)
    if scoring == "best":
        return best
    means = np.stack([faces.embeddings[user].mean(axis=0) for user in gallery])
    mean = faces.embeddings[probes] @ (means / np.linalg.norm(means, axis=1, keepdims=True)).T
    return mean if scoring == "mean" else (best + mean) / 2


def search_protocol(faces: LabelledFaces, scoring: str = "both") -> Outcome:
    """The 1,000-user gallery, probes and strangers described above, pooled over shuffles."""
    people = faces.by_identity()
    names = sorted(people)
    enrolled = [n for n in names if len(people[n]) >= 3]
    singles = [n for n in names if len(people[n]) == 1]
    pairs = [n for n in names if len(people[n]) == 2]
    probes = [(u, r) for u, n in enumerate(enrolled) for r in people[n][2 : 2 + PROBES_PER_PERSON]]
    own, other, strangers, stranger_rows = [], [], [], []
    for shuffle in range(SHUFFLES):
        order = np.random.default_rng(shuffle).permutation(len(singles))
        fill = USERS - len(enrolled)
        fillers = [singles[i] for i in order[:fill]]
        outsiders = [singles[i] for i in order[fill:]] + pairs
        gallery = [people[n][:2] for n in enrolled + fillers]
        scores = user_scores(faces, gallery, [r for _, r in probes], scoring)
        users = np.array([u for u, _ in probes])
        rows = np.arange(len(probes))
        own.append(scores[rows, users].copy())
        scores[rows, users] = -2.0
        other.append(scores.max(axis=1))
        searched = [r for n in outsiders for r in people[n]]
        strangers.append(user_scores(faces, gallery, searched, scoring).max(axis=1))
        stranger_rows += searched
    return Outcome(
        np.concatenate(own),
        np.concatenate(other),
        np.concatenate(strangers),
        np.tile(faces.passes[[r for _, r in probes]], (SHUFFLES, 1)),
        faces.passes[stranger_rows],
    )


def per_search_fmr(faces: LabelledFaces, size: int, cosines: list[float]) -> list[float]:
    """Share of strangers matching anybody in galleries of ``size`` random people (first 2
    photos each), strangers being every photo of the people left out; 5 draws pooled."""
    people = faces.by_identity()
    names = sorted(people)
    hits, total = np.zeros(len(cosines)), 0
    for draw in range(SHUFFLES):
        chosen = set(np.random.default_rng(100 + draw).choice(len(names), size, replace=False))
        gallery = [people[names[i]][:2] for i in sorted(chosen)]
        outsiders = [r for i, n in enumerate(names) if i not in chosen for r in people[n]]
        best = user_scores(faces, gallery, outsiders).max(axis=1)
        hits += [(best >= c).sum() for c in cosines]
        total += len(best)
    return list(hits / total)


def _embed_pose_photo(job: tuple[str, str]) -> np.ndarray | None:
    path, version = job
    faces = get_analyzer().analyze(zoomed(path), face_model=face_model(version)).faces
    return faces[0].embedding if faces else None


def load_pose(
    model: FaceModel, people: int | None = None
) -> tuple[list[dict[str, str]], np.ndarray]:
    """faces-pose's manifest rows with a face (of the first ``people`` people, else all) and
    their embeddings, upscaled ZOOM times; cached beside photoset's (in one process for a few)."""
    rows = pose_rows()
    if people is not None:
        rows = [r for r in rows if r["identity"] in sorted({r["identity"] for r in rows})[:people]]
    listed = f"{ZOOM}" + "".join(r["path"] for r in rows)
    manifest = (FACES_POSE / "manifest.csv").read_bytes()
    key = hashlib.sha1(manifest + listed.encode()).hexdigest()[:12]
    cache = CACHE / f"faces-pose-{model.version.replace('/', '_')}-{key}.npz"
    if cache.exists():
        with np.load(cache) as stored:
            kept, embeddings = stored["kept"], stored["embeddings"]
    else:
        work = [(r["path"], model.version) for r in rows]
        if people is None:
            with ProcessPoolExecutor(2) as pool:
                results = list(pool.map(_embed_pose_photo, work, chunksize=16))
        else:
            results = [_embed_pose_photo(job) for job in work]
        kept = np.array([out is not None for out in results])
        embeddings = np.stack([out for out in results if out is not None]).astype(np.float32)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, kept=kept, embeddings=embeddings)
    return [r for r, k in zip(rows, kept, strict=True) if k], embeddings


def pose_search(model: FaceModel, people: int | None = None) -> None:
    """faces-pose: every person enrolled from their ``straight_*_open`` faces, searched with the
    rest; rank-1 and found at 80 per probe group (and what the faces-pose photos missed)."""
    rows, embeddings = load_pose(model, people)
    faces = LabelledFaces(
        paths=np.array([r["path"] for r in rows]),
        identities=np.array([r["identity"] for r in rows]),
        embeddings=embeddings,
        passes=np.ones((len(rows), len(PROBE_FILTERS)), bool),
        yaws=np.full(len(rows), np.nan, np.float32),  # faces-pose's poses are its categories
    )
    names = sorted({r["identity"] for r in rows})
    enrolled = [
        [i for i, r in enumerate(rows) if r["identity"] == n and r["pose"] == "straight"
         and r["eyes"] == "open"]
        for n in names
    ]  # fmt: skip
    bar = model.calibration.min_cosine(80)
    cells = []
    for group in POSE_GROUPS:
        probes = [
            i
            for i, r in enumerate(rows)
            if (r["eyes"] == "sunglasses" if group == "sunglasses" else
                (r["pose"] == group and r["eyes"] == "open"))
        ]  # fmt: skip
        scores = user_scores(faces, enrolled, probes)
        users = np.array([names.index(rows[i]["identity"]) for i in probes])
        own = scores[np.arange(len(probes)), users].copy()
        scores[np.arange(len(probes)), users] = -2.0
        other = scores.max(axis=1)
        rank1, found = (own > other).mean(), ((own >= bar) & (own > other)).mean()
        cells.append(f"{group} {rank1:5.1%} / {found:5.1%} ({len(probes)})")
    print(f"  {model.version}: " + ";  ".join(cells))


def summary(label: str, outcome: Outcome, calibration: Calibration) -> None:
    """One line: rank-1, found and strangers at 80, the 1 % and 0.1 % operating points."""
    at80 = calibration.min_cosine(80)
    one, tenth = np.quantile(outcome.strangers, [0.99, 0.999])
    print(
        f"  {label:58} rank-1 {outcome.rank1():6.2%}  found@80 {outcome.found(at80):6.2%}  "
        f"strangers@80 {outcome.strangers_at(at80):6.2%}  "
        f"1%: {calibration.similarity(one):5.1f} found {outcome.found(one):6.2%}  "
        f"0.1%: {calibration.similarity(tenth):5.1f} found {outcome.found(tenth):6.2%}"
    )


def det_points(outcome: Outcome) -> tuple[np.ndarray, np.ndarray]:
    """(strangers matched, enrolled not found) over all cosine thresholds."""
    cuts = np.linspace(0.2, 0.9, 400)
    fpir = np.array([outcome.strangers_at(c) for c in cuts])
    fnir = np.array([1 - outcome.found(c) for c in cuts])
    return fpir, fnir


def plot(path: Path, outcomes: dict[str, tuple[Outcome, Calibration]], pairs: dict) -> None:
    """Two DET panels: open-set search at 1,000 users, and verification per comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (search, verify) = plt.subplots(1, 2, figsize=(12, 5))
    for label, (outcome, calibration) in outcomes.items():
        fpir, fnir = det_points(outcome)
        (line,) = search.plot(fpir, fnir, label=label)
        for t in THRESHOLDS:
            c = calibration.min_cosine(t)
            search.plot(outcome.strangers_at(c), 1 - outcome.found(c), "o", color=line.get_color())
            search.annotate(str(t), (outcome.strangers_at(c), 1 - outcome.found(c)), fontsize=8)
    for label, (same, diff, model) in pairs.items():
        cuts = np.linspace(0.1, 0.95, 400)
        fmr = [(diff >= c).mean() for c in cuts]
        fnmr = [(same < c).mean() for c in cuts]
        (line,) = verify.plot(fmr, fnmr, label=label)
        for t in THRESHOLDS:
            c = model.calibration.min_cosine(t)
            verify.plot((diff >= c).mean(), (same < c).mean(), "o", color=line.get_color())
    for axes, title, xlabel, ylabel in (
        (search, "Search, 1,000 users", "strangers matching anybody (per search)",
         "enrolled people not found first"),
        (verify, "Pairs of faces-calib photos", "false-match rate per comparison",
         "false non-match rate"),
    ):  # fmt: skip
        axes.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=ylabel, title=title)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
    fig.suptitle("facesearch DET curves on faces-calib (dots: thresholds 80, 90, 95, 99)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    """Print the figures and write the DET plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "accuracy-det.png")
    parser.add_argument("--smoke", action="store_true", help="a few photos, small galleries")
    parser.add_argument(
        "--model", action="append", choices=FACE_MODELS, help="only this face model (repeatable)"
    )
    args = parser.parse_args()
    # The current model's figures are the ones every later section reports on.
    models = [FACE_MODELS[v] for v in args.model or FACE_MODELS]
    models += [] if CURRENT in models else [CURRENT]
    plot_path, limit = args.plot, SMOKE_PHOTOS if args.smoke else None
    if args.smoke:
        global USERS, GALLERY_SIZES, MEASURABLE
        USERS, GALLERY_SIZES, MEASURABLE = SMOKE_SIZES
    print(f"load average {os.getloadavg()[0]:.2f}; faces-calib at {FACES_CALIB}")
    outcomes: dict[str, tuple[Outcome, Calibration]] = {}
    pairs: dict = {}
    print(f"\nSearch, {USERS:,} users, {SHUFFLES} shuffles pooled:")
    previous_model = FACE_MODELS[PREVIOUS_VERSION]
    label = f"previous release: {PREVIOUS_VERSION}, best face"
    previous = load(FACES_CALIB, previous_model, limit=limit)
    outcomes[label] = (search_protocol(previous, "best"), PREVIOUS)
    summary(label, *outcomes[label])
    for model in models:
        faces = load(FACES_CALIB, model, limit=limit)
        label = f"this release: {model.version}, mean of both"
        outcomes[label] = (search_protocol(faces), model.calibration)
        summary(label, *outcomes[label])
        pairs[model.version] = (*pair_cosines(faces), model)
    current = outcomes[f"this release: {CURRENT.version}, mean of both"][0]
    print(f"  ({len(current.own):,} probes, {len(current.strangers):,} stranger searches)")
    print("  threshold  found  strangers matched")
    for threshold in (50, 60, 70, 75, *THRESHOLDS):
        bar = CURRENT.calibration.min_cosine(threshold)
        print(f"  {threshold:9}  {current.found(bar):6.2%}  {current.strangers_at(bar):6.2%}")

    faces = load(FACES_CALIB, CURRENT, limit=limit)
    print(f"\nHow a user's faces make one score ({CURRENT.version}):")
    for scoring, label in (
        ("best", "best face (the previous release)"),
        ("mean", "mean face"),
        ("both", "mean of both (this release)"),
    ):
        summary(label, search_protocol(faces, scoring), CURRENT.calibration)
    best, both = search_protocol(faces, "best"), search_protocol(faces, "both")
    bar = CURRENT.calibration.min_cosine(80)
    lifted = int(((both.own >= bar) & (best.own < bar - USER_CANDIDATE_MARGIN)).sum())
    print(
        f"  own users at 80 whose best face is over {USER_CANDIDATE_MARGIN} below the bar (so "
        f"missed by the service's candidate search): {lifted}"
    )

    print(
        f"\nQualityFilter on the searched face ({CURRENT.version}; a refused search finds nobody):"
    )
    hit = (current.own >= bar) & (current.own > current.other)
    for i, level in enumerate(PROBE_FILTERS):
        probe_ok, stranger_ok = current.probe_passes[:, i], current.stranger_passes[:, i]
        print(
            f"  {level:7} refuses {1 - probe_ok.mean():6.2%} of probes, "
            f"{1 - stranger_ok.mean():6.2%} of strangers;  found@80 {(hit & probe_ok).mean():6.2%}"
            f"  strangers@80 {((current.strangers >= bar) & stranger_ok).mean():6.2%}  "
            f"found@80 of the faces it keeps {hit[probe_ok].mean():6.2%}"
        )

    print(f"\nFalse-match rate per search, {CURRENT.version} (measured up to {MEASURABLE:,}):")
    cosines = [CURRENT.calibration.min_cosine(t) for t in THRESHOLDS]
    print("  users     " + "".join(f"{t:>18}" for t in THRESHOLDS))
    faces_per_user = len(faces.paths) and np.mean(
        [min(2, len(rows)) for rows in faces.by_identity().values()]
    )
    for size in GALLERY_SIZES:
        scale = [1 - (1 - fmr_of_similarity(t)) ** (size * faces_per_user) for t in THRESHOLDS]
        if size <= MEASURABLE:
            measured = per_search_fmr(faces, size, cosines)
            cells = "".join(f"{m:9.3%} ({s:6.3%})" for m, s in zip(measured, scale, strict=True))
        else:
            cells = "".join(f"{'':9} ({s:6.3%})" for s in scale)
        print(f"  {size:>7,}   {cells}")
    print(
        f"  (in brackets: 1-(1-FMR)^faces by the scale's definition, {faces_per_user:.2f} "
        "faces per user)"
    )
    plot(plot_path, outcomes, pairs)
    print(f"\nDET plot: {plot_path}")

    people = SMOKE_POSE_PEOPLE if args.smoke else None
    print(
        f"\nTurned heads and sunglasses: faces-pose ({FACES_POSE}) upscaled {ZOOM}x, enrolled "
        "from straight_*_open; rank-1 / found@80 (probes), missed photos left out:"
    )
    for model in [CURRENT] if args.smoke else models:
        pose_search(model, people)


if __name__ == "__main__":
    main()
