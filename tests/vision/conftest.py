"""Fixtures of the vision tests."""

from __future__ import annotations

import pytest

from facesearch.vision import get_analyzer


@pytest.fixture(scope="session")
def analyzer():
    """The process's analyser, its models loaded."""
    analyzer = get_analyzer()
    analyzer.check_ready()
    return analyzer
