"""The search index over each real store: loading, catching up and the compressed path, as
several processes see one store."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from support.faces import face_records

from facesearch.index import SearchIndexes
from facesearch.index import collection as collection_module
from facesearch.store import open_store


def test_large_collection_on_each_store(
    store: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collection_module, "COMPRESSED_MIN_FACES", 2_000)
    rng = np.random.default_rng(21)
    vectors = rng.standard_normal((3_000, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    db = open_store(store, tmp_path / "data")
    try:
        collection = db.create_collection("000000000000", "us-east-1", "big", "arn:big", "1", {})
        assert collection is not None
        users = [f"user-{i}" for i in range(1_500)]
        db.create_users(collection, users)
        faces = face_records(vectors, [users[i // 2] for i in range(len(vectors))])
        db.add_faces(collection, faces)
        collection = db.get_collection("000000000000", "us-east-1", "big")
        first = SearchIndexes(db).get(collection)  # one process
        assert first.compressed and len(first) == 3_000
        query = vectors[10] + 0.05 * rng.standard_normal(128).astype(np.float32)
        query /= np.linalg.norm(query)
        hits = first.search_faces(query, 0.5, 5)
        assert hits[0].seq == db.get_faces(collection, [faces[10].face_id])[faces[10].face_id].seq
        assert hits[0].cosine == pytest.approx(float(vectors[10] @ query), abs=1e-5)
        best = first.search_users(query, 0.5, 1)[0]
        assert db.user_ids(collection, [best.user_seq]) == {best.user_seq: "user-5"}
        # A user's vectors, for scoring it on all its faces; a user without faces is absent.
        db.create_users(collection, ["no-faces"])
        mine = db.user_embeddings(collection, ["user-5", "user-7", "no-faces", "unknown"])
        assert sorted(mine) == ["user-5", "user-7"]
        assert np.allclose(
            mine["user-5"][np.argsort(mine["user-5"][:, 0])],
            vectors[10:12][np.argsort(vectors[10:12, 0])],
            atol=1e-6,
        )

        # Writes through the store reach an index that catches up, and a second process that
        # loads afterwards, with the model the first one stored: both answer alike.
        db.delete_user(collection, "user-5")
        db.delete_faces(collection, [faces[10].face_id, faces[11].face_id])
        collection = db.get_collection("000000000000", "us-east-1", "big")
        second = SearchIndexes(db).get(collection)  # another process, loading now
        for index in (first, second):
            index.catch_up()
            assert len(index) == 2_998 and index.version == collection.version
            assert faces[10].face_id not in {
                f.face_id
                for f in db.faces_by_seq(
                    collection, [h.seq for h in index.search_faces(query, 0.0, 50)]
                ).values()
            }
        assert second.compressed
        assert first.search_users(query, 0.0, 20) == second.search_users(query, 0.0, 20)
        assert first.search_faces(query, 0.1, 50) == second.search_faces(query, 0.1, 50)
    finally:
        db.close()


class _SlowStore:
    """A store whose reads of one collection's faces wait for a signal: a large collection
    still loading."""

    def __init__(self, store, slow_key: int) -> None:
        self._store = store
        self._slow_key = slow_key
        self.release = threading.Event()

    def face_changes(self, collection, *args, **kwargs):
        if collection.key == self._slow_key:
            assert self.release.wait(30)
        return self._store.face_changes(collection, *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._store, name)


def test_loading_one_collection_blocks_no_other(tmp_path: Path) -> None:
    db = open_store(None, tmp_path / "data")
    try:
        big = db.create_collection("000000000000", "us-east-1", "big", "arn:big", "1", {})
        small = db.create_collection("000000000000", "us-east-1", "small", "arn:small", "1", {})
        assert big is not None and small is not None
        slow = _SlowStore(db, big.key)
        indexes = SearchIndexes(slow)  # type: ignore[arg-type]
        indexes.preload()  # starts on "big", which hangs
        time.sleep(0.2)
        assert indexes.loading
        started = time.monotonic()
        assert len(indexes.get(small)) == 0  # served while "big" loads
        assert time.monotonic() - started < 5
        slow.release.set()
        deadline = time.monotonic() + 30
        while indexes.loading and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not indexes.loading
    finally:
        db.close()


def test_indexes_of_collections_deleted_elsewhere_are_dropped(tmp_path: Path) -> None:
    db = open_store(None, tmp_path / "data")
    try:
        gone = db.create_collection("000000000000", "us-east-1", "gone", "arn:gone", "1", {})
        kept = db.create_collection("000000000000", "us-east-1", "kept", "arn:kept", "1", {})
        assert gone is not None and kept is not None
        indexes = SearchIndexes(db)
        first = indexes.get(gone)
        kept_index = indexes.get(kept)
        db.delete_collection("000000000000", "us-east-1", "gone")  # as another process would
        indexes.sweep()
        assert indexes.get(kept) is kept_index
        assert indexes.get(gone) is not first  # no longer held: a new one would be loaded
    finally:
        db.close()
