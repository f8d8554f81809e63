"""The in-memory search index against a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest

from facesearch.store import FaceRecord
from facesearch.store.index import CollectionIndex


def faces(count: int, seed: int, users: int = 0) -> list[FaceRecord]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        FaceRecord(
            face_id=f"face-{seed}-{i}",
            image_id="image",
            external_image_id=None,
            bounding_box={},
            confidence=99.0,
            index_model_version="test",
            embedding=vector,
            user_id=f"user-{i % users}" if users else None,
        )
        for i, vector in enumerate(vectors)
    ]


def near(vector: np.ndarray, seed: int, noise: float = 0.5) -> np.ndarray:
    query = (
        vector + noise * np.random.default_rng(seed).standard_normal(128).astype(np.float32) / 11
    )
    return query / np.linalg.norm(query)


@pytest.mark.parametrize("limit", [1, 5, 50])
def test_search_faces_matches_brute_force(limit: int) -> None:
    records = faces(3000, seed=1)
    index = CollectionIndex(records[:1000])
    index.add(records[1000:2500])  # grows its buffer
    index.add(records[2500:])
    matrix = np.stack([r.embedding for r in records])
    for probe in range(5):
        query = near(records[probe * 7].embedding, seed=probe)
        scores = matrix @ query
        expected = [records[i].face_id for i in np.argsort(-scores) if scores[i] >= 0.1][:limit]
        assert [h.face_id for h in index.search_faces(query, 0.1, limit)] == expected


def test_search_users_best_face_and_exclusion() -> None:
    records = faces(600, seed=2, users=30)
    index = CollectionIndex(records)
    matrix = np.stack([r.embedding for r in records])
    query = near(records[10].embedding, seed=3)
    scores = matrix @ query
    best: dict[str, float] = {}
    for record, score in zip(records, scores, strict=True):
        best[record.user_id] = max(best.get(record.user_id, -1.0), float(score))
    ranked = sorted((u for u in best if best[u] >= 0.0), key=lambda u: -best[u])
    assert [h.user_id for h in index.search_users(query, 0.0, 500)] == ranked
    assert [h.user_id for h in index.search_users(query, 0.0, 3)] == ranked[:3]
    assert ranked[0] not in [h.user_id for h in index.search_users(query, 0.0, 500, ranked[0])]


def test_updates_and_snapshots() -> None:
    records = faces(10, seed=4)
    index = CollectionIndex([])
    assert index.search_faces(records[0].embedding, -1.0, 10) == []
    index.add(records)
    index.set_user([r.face_id for r in records[:3]], "ada")
    assert sorted(index.face_ids_of("ada")) == sorted(r.face_id for r in records[:3])
    assert np.allclose(index.user_vectors("ada"), np.stack([r.embedding for r in records[:3]]))
    before = index.search_faces(records[0].embedding, -1.0, 10)
    index.remove([records[0].face_id])
    after = index.search_faces(records[0].embedding, -1.0, 10)
    assert len(before) == 10 and len(after) == 9
    assert records[0].face_id not in {h.face_id for h in after}
    index.set_user(index.face_ids_of("ada"), None)
    assert index.search_users(records[1].embedding, -1.0, 10) == []
