"""Fixtures for the service tests: an isolated in-process client and the labelled photos."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest
from support.photos import is_near_copy

import facesearch
from facesearch.index import database
from facesearch.vision.image import sniff_format


@pytest.fixture
def search_mode() -> str:
    """Where the client searches: its process's in-memory index, unless a module asks for the
    in-database search too (test_search.py)."""
    return "index"


@pytest.fixture
def client(tmp_path: Path, store: str | None, search_mode: str, monkeypatch: pytest.MonkeyPatch):
    """A boto3-shaped in-process client over a fresh store: each test runs on both stores."""
    if search_mode == "database":
        # Even these few faces are searched through an HNSW index, not exactly.
        monkeypatch.setattr(database, "HNSW_MIN_FACES", 0)
    rekognition = facesearch.client(data_dir=tmp_path / "data", store=store, search=search_mode)
    yield rekognition
    rekognition.close()


@pytest.fixture(scope="session")
def people(photos_dir: Path) -> dict[str, list[Path]]:
    """identity -> that person's photos (manifest order), near-copies and variants left out.

    One "person" photo is a WebP file named .jpg: Rekognition (and so facesearch) refuses
    WebP, so it is left out too (the vision tests check that it is refused).
    """
    found: dict[str, list[Path]] = defaultdict(list)
    with open(photos_dir / "manifest.csv", newline="") as f:
        for row in csv.DictReader(f):
            path = photos_dir / row["path"]
            if (
                row["kind"] == "person"
                and not is_near_copy(row)
                and sniff_format(path.read_bytes()[:16]) is not None
            ):
                found[row["identity"]].append(path)
    return dict(found)


@pytest.fixture(scope="session")
def photo(photos_dir: Path):
    """Bytes of a photo by its path inside the dataset."""

    def read(relative: str) -> bytes:
        return (photos_dir / relative).read_bytes()

    return read
