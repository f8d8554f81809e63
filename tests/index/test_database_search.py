"""The in-database search mode on the real PostgreSQL: the same answers as the in-process index,
from a process that holds no index and reads no vectors at start."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from support.faces import face_records

from facesearch.defaults import DEFAULT_ACCOUNT_ID, DEFAULT_REGION
from facesearch.index import CollectionIndex, SearchIndexes
from facesearch.index import database as database_module
from facesearch.server.main import parse_args
from facesearch.service import RekognitionService
from facesearch.store import open_store
from facesearch.store.postgres import PostgresStore
from facesearch.vision.face_models import CURRENT

FACES = 3_000


def _unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)).astype(np.float32)


def _fill(url: str) -> tuple[list[str], list[str]]:
    """A collection "big" of users of 2 faces each (a vector and a near copy) and, beside every
    tenth user's first face, an unassociated near copy of it; the face ids of both kinds."""
    rng = np.random.default_rng(23)
    base = _unit(rng.standard_normal((FACES // 2, 128)))
    owned = _unit(np.repeat(base, 2, axis=0) + 0.04 * rng.standard_normal((FACES, 128)))
    loose = _unit(owned[::20] + 0.01 * rng.standard_normal((FACES // 20, 128)))
    store = open_store(url, "unused")
    try:
        collection = store.create_collection(
            DEFAULT_ACCOUNT_ID, DEFAULT_REGION, "big", "arn:big", CURRENT.version, {}
        )
        assert collection is not None
        users = [f"user-{i // 2}" for i in range(FACES)]
        store.create_users(collection, list(dict.fromkeys(users)))

        owned_faces = face_records(owned, users, CURRENT.version)
        loose_faces = face_records(loose, None, CURRENT.version)
        store.add_faces(collection, owned_faces + loose_faces)
    finally:
        store.close()
    return [f.face_id for f in owned_faces], [f.face_id for f in loose_faces]


def _answers(service: RekognitionService, owned: list[str]) -> list[dict]:
    """SearchFaces and SearchUsers (by face and by user) of a few faces, as the caller sees
    them: face ids, user ids and similarities."""

    def call(operation: str, **params: object) -> dict:
        return service.call(operation, {"CollectionId": "big", **params})

    found = []
    for i in (0, 40, 1001, 2998):
        faces = call("SearchFaces", FaceId=owned[i], MaxFaces=5)["FaceMatches"]
        by_face = call("SearchUsers", FaceId=owned[i], MaxUsers=3)["UserMatches"]
        by_user = call("SearchUsers", UserId=f"user-{i // 2}", UserMatchThreshold=0, MaxUsers=1)
        found.append(
            {
                "faces": [(m["Face"]["FaceId"], m["Similarity"]) for m in faces],
                "users": [(m["User"]["UserId"], m["Similarity"]) for m in by_face],
                "others": [m["User"]["UserId"] for m in by_user["UserMatches"]],
            }
        )
    return found


def _same(first: list[dict], second: list[dict]) -> None:
    for a, b in zip(first, second, strict=True):
        assert [f for f, _ in a["faces"]] == [f for f, _ in b["faces"]]
        assert [s for _, s in a["faces"]] == pytest.approx([s for _, s in b["faces"]], abs=1e-3)
        assert [u for u, _ in a["users"]] == [u for u, _ in b["users"]]
        assert [s for _, s in a["users"]] == pytest.approx([s for _, s in b["users"]], abs=1e-3)
        assert a["others"] == b["others"]


def test_database_mode_answers_as_the_index_and_holds_none(
    postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres.new_database()
    owned, loose = _fill(url)
    reference = RekognitionService(tmp_path / "a", store=url)  # the in-process index
    expected = _answers(reference, owned)
    reference.close()
    # The searched face's near copy first, then its pair.
    assert [f for f, _ in expected[0]["faces"][:2]] == [loose[0], owned[1]]
    assert expected[0]["users"][0][0] == "user-0"

    # A process in the database mode builds no index and reads no vectors, at start or after.
    read: list[int] = []
    face_changes = PostgresStore.face_changes
    monkeypatch.setattr(
        PostgresStore, "face_changes", lambda *a, **k: read.append(1) or face_changes(*a, **k)
    )
    monkeypatch.setattr(SearchIndexes, "__init__", lambda *a: pytest.fail("an index was made"))
    monkeypatch.setattr(CollectionIndex, "load", lambda *a: pytest.fail("an index was loaded"))
    monkeypatch.setattr(database_module, "HNSW_MIN_FACES", 10 * FACES)
    monkeypatch.setattr(database_module, "INLINE_BUILD_FACES", 1_000)  # built in the background
    monkeypatch.setattr(database_module, "STATE_SECONDS", 0.0)
    service = RekognitionService(tmp_path / "b", store=url, preload=True, search_mode="database")
    try:
        assert service.health()["indexes"] == "ready"  # nothing to load
        store = service.state.store
        assert isinstance(store, PostgresStore)
        collection = store.get_collection(DEFAULT_ACCOUNT_ID, DEFAULT_REGION, "big")
        assert collection is not None
        # A collection below the HNSW size: searched exactly, in SQL.
        _same(_answers(service, owned), expected)
        assert store.search_index_state(collection) == (FACES + len(loose), False)
        # Above it: exactly while its HNSW index is built in the background, then through it.
        monkeypatch.setattr(database_module, "HNSW_MIN_FACES", 1_000)
        _same(_answers(service, owned), expected)
        deadline = time.monotonic() + 60
        while not store.search_index_state(collection)[1]:
            assert time.monotonic() < deadline, "the HNSW index was never built"
            time.sleep(0.1)
        assert store.search_index_state(collection) == (FACES + len(loose), True)
        _same(_answers(service, owned), expected)
        assert read == []

        # A deleted collection's index goes with it.
        service.call("DeleteCollection", {"CollectionId": "big"})
        while _index_names(store):
            assert time.monotonic() < deadline, "the HNSW index was never dropped"
            time.sleep(0.1)
    finally:
        service.close()


def _index_names(store: PostgresStore) -> list[str]:
    rows = store._read("SELECT relname FROM pg_class WHERE starts_with(relname, 'faces_hnsw_')")
    return [name for (name,) in rows]


def test_database_mode_needs_postgresql(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a PostgreSQL store"):
        RekognitionService(tmp_path, search_mode="database")
    with pytest.raises(ValueError, match="search mode"):
        RekognitionService(tmp_path, search_mode="elsewhere")
    with pytest.raises(SystemExit):
        parse_args(["--search", "database"])
    assert parse_args(["--search", "database", "--store", "postgresql://h/db"]).search == "database"
