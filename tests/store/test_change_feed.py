"""The change feed that every process's search index catches up from, on each real store: what
changed after a version, page by page, whichever way the store finds it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.faces import face_records

from facesearch.store import CollectionRecord, FaceRecord, Store, open_store
from facesearch.store import sql as sql_module


def _faces(rng: np.random.Generator, count: int) -> list[FaceRecord]:
    return face_records(rng.standard_normal((count, 16)).astype(np.float32))


def _pages(
    db: Store, collection: CollectionRecord, since: int, limit: int | None
) -> tuple[list[int], list[int], np.ndarray, list[int]]:
    """Every page after ``since``, as an index reads them: seqs, user seqs, vectors, deleted."""
    seqs: list[int] = []
    users: list[int] = []
    vectors: list[np.ndarray] = []
    first = db.face_changes(collection, since, 0, limit)
    page = first
    while len(page.seqs):
        seqs += page.seqs.tolist()
        users += page.user_seqs.tolist()
        vectors.append(page.embeddings)
        page = db.face_changes(collection, since, int(page.seqs[-1]), limit)
    return seqs, users, np.concatenate(vectors), sorted(first.deleted.tolist())


@pytest.mark.parametrize("by_version", [True, False], ids=["version-index", "seq-walk"])
def test_changes_after_a_version_page_by_page(
    store: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, by_version: bool
) -> None:
    if not by_version:  # more changes than the version index is asked for: the seq walk
        monkeypatch.setattr(sql_module, "_CHANGED_BY_VERSION", 2)
    rng = np.random.default_rng(5)
    db = open_store(store, tmp_path / "data")
    try:
        mine = db.create_collection("000000000000", "us-east-1", "mine", "arn:mine", "1", {})
        other = db.create_collection("000000000000", "us-east-1", "other", "arn:other", "1", {})
        assert mine is not None and other is not None
        old = _faces(rng, 30)
        db.add_faces(mine, old[:15])
        db.add_faces(other, _faces(rng, 10))  # seqs of another collection in between
        db.add_faces(mine, old[15:])
        record = db.get_collection("000000000000", "us-east-1", "mine")
        assert record is not None
        since = record.version

        db.create_users(mine, ["alice"])
        new = _faces(rng, 6)
        db.add_faces(mine, new[:4])
        db.add_faces(other, _faces(rng, 5))
        db.add_faces(mine, new[4:])
        db.set_face_user(mine, [old[3].face_id, old[20].face_id, new[1].face_id], "alice")
        gone_ids = [old[7].face_id, new[5].face_id]
        removed = sorted(face.seq for face in db.get_faces(mine, gone_ids).values())
        assert db.delete_faces(mine, gone_ids) == gone_ids
        db.set_face_user(other, [], "alice")

        stored = db.get_faces(mine, [f.face_id for f in old + new])
        changed = [old[3], old[20]] + [f for f in new if f.face_id not in gone_ids]
        expected = sorted((stored[f.face_id].seq, f) for f in changed)
        alice = db.get_user(mine, "alice")
        assert alice is not None
        for limit in (None, 2):
            seqs, users, vectors, gone = _pages(db, mine, since, limit)
            assert seqs == [seq for seq, _ in expected]
            assert users == [
                alice.seq if f.face_id in {old[3].face_id, old[20].face_id, new[1].face_id} else -1
                for _, f in expected
            ]
            assert np.array_equal(vectors, np.stack([f.embedding for _, f in expected]))
            assert gone == removed and len(removed) == 2
        # Nothing changed after the latest version: an empty page, and its version.
        latest = db.face_changes(mine, since, 0, 2).version
        nothing = db.face_changes(mine, latest, 0, 2)
        assert not len(nothing.seqs) and not len(nothing.deleted) and nothing.version == latest
    finally:
        db.close()
