"""Shared fixtures: where the labelled photos and clips are, and the photos' manifest."""

from __future__ import annotations

import csv
import os
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import video_labels
from support.postgres import PostgresServer

REPO = Path(__file__).resolve().parent.parent
# Every command a test runs runs in its own process, as its test expects; tests/cli/test_warm.py
# covers the warm process.
os.environ.setdefault("FACESEARCH_WARM", "0")
# The search indexes the suite's processes keep on local disk go to one throwaway folder, not to
# the user's cache (where a PostgreSQL store's go); tests/index/test_persisted.py checks the
# defaults.
_INDEXES = tempfile.TemporaryDirectory(prefix="facesearch-test-indexes-")
os.environ.setdefault("FACESEARCH_INDEX_DIR", _INDEXES.name)
# Started in the background (a shell's `make test &`), the suite inherits SIGINT ignored, and so
# would every command it starts: the Ctrl-C tests (tests/cli) would see their Ctrl-C ignored. Take
# it back as a terminal gives it (a child process then starts with SIGINT's default).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    """The face photo set: ``FACESEARCH_TEST_PHOTOS`` or ``../shared/datasets/faces``."""
    path = Path(os.environ.get("FACESEARCH_TEST_PHOTOS", REPO.parent / "shared/datasets/faces"))
    if not (path / "manifest.csv").is_file():
        pytest.fail(f"face photo set not found at {path} (set FACESEARCH_TEST_PHOTOS)")
    return path


@pytest.fixture(scope="session")
def videos_dir() -> Path:
    """The labelled clips: ``FACESEARCH_TEST_VIDEOS`` or ``../shared/datasets/videos``."""
    path = video_labels.videos_dir()
    if not (path / "manifest.json").is_file():
        pytest.fail(f"video set not found at {path} (set FACESEARCH_TEST_VIDEOS)")
    return path


def read_manifest(photos_dir: Path, kind: str | None = None) -> list[dict[str, str]]:
    """Rows of ``manifest.csv`` (all, or one ``kind``: person, group, noface, invalid)."""
    with open(photos_dir / "manifest.csv", newline="") as f:
        return [row for row in csv.DictReader(f) if kind is None or row["kind"] == kind]


@pytest.fixture(scope="session")
def manifest(photos_dir: Path) -> Callable[..., list[dict[str, str]]]:
    """``manifest(kind=None)``: the manifest rows of the photo set, optionally of one kind."""
    return lambda kind=None: read_manifest(photos_dir, kind)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session (about a second to start)."""
    server = PostgresServer(tmp_path_factory.mktemp("pgdata"))
    yield server
    server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> str | None:
    """Each store in turn: None for the embedded store, else a fresh PostgreSQL database URL."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres").new_database()
