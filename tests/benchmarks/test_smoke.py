"""Every benchmark's smoke run: each script of benchmarks/ runs in its own process at tiny sizes
(its ``--smoke`` option or small counts), exits 0 and prints its figure lines. The figures are
never checked (on a few photos and calls they mean nothing): what fails here is a benchmark that
no longer runs. The scripts find tests/support/ through PYTHONPATH=tests, as ``make bench`` runs
them, and the faces-calib ones share one embeddings cache for the session.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks"
# The modules of benchmarks/ that other scripts import and that run nothing themselves.
LIBRARIES = {"photoset"}

# Run id -> (script, arguments, patterns of the lines its figures print). "{tmp}" is a
# temporary folder. accuracy comes before calibrate: it fills the faces-calib cache they share.
SMOKE = {
    "accuracy": (
        "accuracy",
        ["--smoke", "--plot", "{tmp}/accuracy-det.png"],
        [
            r"rank-1 +[\d.]+%  found@80",
            r"users +80 +90 +95 +99",
            r"DET plot: ",
            r"left +[\d.]+% / [\d.]+% \(\d+\);  right",
        ],
    ),
    "attributes": (
        "attributes",
        ["--smoke", "--shrink", "60"],
        [r"gender right +\d+/\d+", r"AgeRange width", r"faces shrunk to 60 px: gender right"],
    ),
    "attributes-template": (
        "attributes",
        ["--smoke", "--fit-template"],
        [r"DETECTOR_TEMPLATE from \d+ photos: \[\[", r"detector points: gender right \d+/\d+"],
    ),
    "calibrate": (
        "calibrate",
        ["--smoke"],
        [r"fitted cosines at KNOT_SIMILARITIES: \(", r"^ +80 +[\d.]+ +[\d.e+-]+ \( *\d+\)"],
    ),
    "cli_startup": (
        "cli_startup",
        ["--repeat", "1"],
        [r"search-users-by-image \(embedded\), warm process +[\d.]+", r"one analysis \(warm\)"],
    ),
    "detector": ("detector", ["--smoke"], [r"^ *1920x1080 +2 +[\d.]+ +[\d.]+ +[\d.]+"]),
    "detector-resolution-study": (
        "detector",
        ["--smoke", "--resolution-study"],
        [r"faces-calib +\d+ +\d+ +480x360", r"1920x1080 letterboxed .* ms"],
    ),
    "fuzz": (
        "fuzz",
        ["--examples", "1", "--seed", "1"],
        [r"^\d+ requests in \d+ s", r"by HTTP status: .*400: \d+"],
    ),
    "hostile": (
        "hostile",
        ["--smoke"],
        [r"slow heads open \d+/50", r"cut off after \d+ MiB", r"exited with 0 after [\d.]+ s"],
    ),
    "pose": (
        "pose",
        ["--smoke"],
        [r"^ +left +found +\d+/\d+ +yaw +-?[\d.]+", r"faces: \|yaw change\|"],
    ),
    "replicas": (
        "replicas",
        ["--smoke"],
        [r"SearchFaces, through replica: p50 [\d.]+ ms", r"replica stopped: first call [\d.]+ ms"],
    ),
    "scale-sqlite": (
        "scale",
        ["--store", "sqlite", "--faces", "1200", "--people", "2", "--repeat", "2"],
        [
            r'"search_p50_ms": [\d.]+',
            r'"search_after_write_p50_ms": [\d.]+',
            r'"rss_bytes_per_face": -?\d+',
            r'"cold_start_persisted_s": [\d.]+',
            r'"two_workers_pss_ratio": [\d.]+',
        ],
    ),
    "scale-postgresql": (
        "scale",
        ["--store", "postgresql", "--faces", "1200", "--people", "2", "--repeat", "2"],
        [r'"search_p50_ms": [\d.]+', r'"disk_bytes_per_face": \d+'],
    ),
    "scale-database": (
        "scale",
        [
            *("--store", "postgresql", "--search", "database"),
            *("--faces", "1200", "--people", "2", "--repeat", "2"),
        ],
        [r'"search_p50_ms": [\d.]+', r'"hnsw_build_s": [\d.]+'],
    ),
    "search": (
        "search",
        ["--smoke", "--repeat", "2"],
        [r"^ +1,000 +[\d.]+ms", r"IndexFaces: \d+ photos in [\d.]+ s"],
    ),
    "server": (
        "server",
        ["--smoke", "--identities", "2", "--describe", "2", "--search", "2"],
        [r"^SearchUsersByImage/miss +2 +[\d.]+", r"server through pre-signed plain HTTP"],
    ),
    "soak": (
        "soak",
        ["--minutes", "0.05", "--clients", "2", "--people", "2"],
        [r"^\d+ calls in \d+ s", r"^SearchUsersByImage +\d+", r"server RSS: "],
    ),
    "video": ("video", ["--smoke", "2"], [r"x real time", r"load average"]),
    "video-contention": (
        "video",
        ["--contention", "--smoke", "0"],
        [r"contention: 2 jobs at once .*: SUCCEEDED, SUCCEEDED in .* [\d.]+x$"],
    ),
    "visibility": ("visibility", ["--writes", "2"], [r"2 writes on server A, .* p99 [\d.]+ ms"]),
    "vision": (
        "vision",
        ["--smoke"],
        [r"^ +640x480 +1 +[\d.]+", r"2 caller\(s\): ", r"pairs.csv verification accuracy"],
    ),
}


@pytest.fixture(scope="module")
def embeddings_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The photoset embeddings cache of the smoke runs (the repository's .cache/ is left alone)."""
    return tmp_path_factory.mktemp("embeddings")


def test_every_benchmark_has_a_smoke_run() -> None:
    scripts = {path.stem for path in BENCHMARKS.glob("*.py")} - LIBRARIES
    assert scripts == {script for script, _, _ in SMOKE.values()}


@pytest.mark.slow
@pytest.mark.parametrize("run", list(SMOKE))
def test_smoke_run(run: str, tmp_path: Path, embeddings_cache: Path) -> None:
    script, arguments, patterns = SMOKE[run]
    python_path = os.pathsep.join(filter(None, [str(REPO / "tests"), os.environ.get("PYTHONPATH")]))
    env = {
        **os.environ,
        "PYTHONPATH": python_path,
        "FACESEARCH_EMBEDDINGS_CACHE": str(embeddings_cache),
    }
    command = [
        sys.executable,
        str(BENCHMARKS / f"{script}.py"),
        *(argument.format(tmp=tmp_path) for argument in arguments),
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{output[-4000:]}"
    missing = [p for p in patterns if not re.search(p, done.stdout, re.MULTILINE)]
    assert not missing, f"no line matches {missing} in:\n{done.stdout[-4000:]}"
