"""Shared fixtures: where the labelled photos are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    """The face photo set: ``FACESEARCH_TEST_PHOTOS`` or ``../shared/datasets/faces``."""
    path = Path(os.environ.get("FACESEARCH_TEST_PHOTOS", REPO.parent / "shared/datasets/faces"))
    if not (path / "manifest.csv").is_file():
        pytest.fail(f"face photo set not found at {path} (set FACESEARCH_TEST_PHOTOS)")
    return path
