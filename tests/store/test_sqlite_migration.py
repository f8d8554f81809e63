"""A data directory written by the previous release (schema 1, no change feed) opens migrated."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import numpy as np

from facesearch.index import NO_USER, SearchIndexes
from facesearch.store import SQLiteStore
from facesearch.store.sqlite import _MIGRATIONS


def test_previous_release_data_directory_is_migrated(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((4, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    face_ids = [str(uuid.uuid4()) for _ in vectors]
    # What the previous release left: its schema (user_version 0) and its rows.
    db = sqlite3.connect(tmp_path / "facesearch.db")
    db.executescript(_MIGRATIONS[0])
    db.execute(
        "INSERT INTO collections (account_id, collection_id, arn, face_model_version,"
        " created_at) VALUES ('000000000000', 'old', 'arn:old', '1', 0),"
        " ('000000000000', 'dublin',"
        " 'arn:aws:rekognition:eu-west-1:000000000000:collection/dublin', '1', 0)"
    )
    db.executemany(
        "INSERT INTO users (collection_key, user_id) VALUES (1, ?)", [("ada",), ("grace",)]
    )
    for face_id, vector, user in zip(face_ids, vectors, ["ada", "ada", "grace", None], strict=True):
        db.execute(
            "INSERT INTO faces (collection_key, face_id, image_id, bounding_box, confidence,"
            " index_model_version, embedding, user_id) VALUES (1, ?, 'img', ?, 99, '1', ?, ?)",
            (face_id, json.dumps({"Width": 0.5}), vector.tobytes(), user),
        )
    db.commit()
    db.close()

    store = SQLiteStore(tmp_path)
    try:
        # Each collection is in the region its ARN names (the default where it names none).
        assert store.get_collection("000000000000", "us-east-1", "dublin") is None
        dublin = store.get_collection("000000000000", "eu-west-1", "dublin")
        assert dublin is not None and dublin.key == 2
        collection = store.get_collection("000000000000", "us-east-1", "old")
        assert collection is not None and collection.version == 0
        assert store.count(collection) == (4, 2)
        assert store.get_user(collection, "ada").face_count == 2  # type: ignore[union-attr]
        # The faces' user seqs were filled in: the index finds users by them.
        users = {u.user_id: u.seq for u in store.list_users(collection, 0, 10)}
        changes = store.face_changes(collection, 0)
        assert changes.user_seqs.tolist() == [users["ada"], users["ada"], users["grace"], NO_USER]
        index = SearchIndexes(store).get(collection)
        hits = index.search_users(vectors[2], 0.9, 5)
        assert [
            store.user_ids(collection, [h.user_seq for h in hits])[h.user_seq] for h in hits
        ] == ["grace"]
        # And it takes new writes through the change feed.
        store.set_face_user(collection, [face_ids[3]], "grace")
        collection = store.get_collection("000000000000", "us-east-1", "old")
        assert collection is not None and collection.version == 1
        assert [
            h.user_seq
            for h in SearchIndexes(store).get(collection).search_users(vectors[3], 0.9, 5)
        ] == [users["grace"]]
        # A deleted collection's key is never given again (search indexes are kept by key).
        store.delete_collection("000000000000", "eu-west-1", "dublin")
        again = store.create_collection("000000000000", "eu-west-1", "dublin", "arn:x", "1", {})
        assert again is not None and again.key == 3
    finally:
        store.close()
    # Opening it again runs no migration twice.
    SQLiteStore(tmp_path).close()
