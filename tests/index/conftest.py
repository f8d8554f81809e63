"""The index tests' fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def one_faiss_thread() -> Iterator[None]:
    """Train the compressed indexes' models on one thread: faiss's OpenMP threads spin for
    seconds on a machine whose cores are busy (6 s against 0.4 s for 3,000 faces here)."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)
