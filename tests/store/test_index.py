"""The in-memory search index against a brute-force reference, fed by FaceChanges."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from facesearch.store import FaceChanges
from facesearch.store.index import CollectionIndex


class Faces:
    """Random unit vectors with seqs, face ids and users: a collection's faces as a store has
    them, and the FaceChanges that bring an index to them."""

    def __init__(self, count: int, seed: int, users: int = 0) -> None:
        rng = np.random.default_rng(seed)
        vectors = rng.standard_normal((count, 128)).astype(np.float32)
        self.vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        self.seqs = np.arange(1, count + 1, dtype=np.int64) * 3  # gaps, as deletions leave
        self.face_ids = [str(uuid.UUID(int=seed << 64 | i)) for i in range(count)]
        self.users: list[str | None] = [
            f"user-{i % users}" if users else None for i in range(count)
        ]
        self.version = 0

    def changes(
        self, rows: list[int] | range, deleted: tuple[int, ...] | list[int] = ()
    ) -> FaceChanges:
        self.version += 1
        rows = list(rows)
        return FaceChanges(
            version=self.version,
            seqs=self.seqs[rows],
            face_ids=[self.face_ids[r] for r in rows],
            user_ids=[self.users[r] for r in rows],
            embeddings=self.vectors[rows].reshape(len(rows), 128),
            deleted=self.seqs[list(deleted)],
        )


def near(vector: np.ndarray, seed: int, noise: float = 0.5) -> np.ndarray:
    query = (
        vector + noise * np.random.default_rng(seed).standard_normal(128).astype(np.float32) / 11
    )
    return query / np.linalg.norm(query)


def brute_force_faces(faces: Faces, alive: list[int], query: np.ndarray, floor: float) -> list[str]:
    scores = faces.vectors[alive] @ query
    return [faces.face_ids[alive[i]] for i in np.argsort(-scores) if scores[i] >= floor]


def brute_force_users(faces: Faces, query: np.ndarray, floor: float) -> list[str]:
    best: dict[str, float] = {}
    for user, score in zip(faces.users, faces.vectors @ query, strict=True):
        if user is not None:
            best[user] = max(best.get(user, -1.0), float(score))
    return sorted((u for u in best if best[u] >= floor), key=lambda u: -best[u])


@pytest.mark.parametrize("limit", [1, 5, 50])
def test_search_faces_matches_brute_force(limit: int) -> None:
    faces = Faces(3000, seed=1)
    index = CollectionIndex(faces.changes(range(1000)))
    index.apply(faces.changes(range(1000, 2500)))  # grows its buffer
    index.apply(faces.changes(range(2500, 3000)))
    assert len(index) == 3000 and index.version == 3
    for probe in range(5):
        query = near(faces.vectors[probe * 7], seed=probe)
        expected = brute_force_faces(faces, list(range(3000)), query, 0.1)[:limit]
        assert [h.face_id for h in index.search_faces(query, 0.1, limit)] == expected


def test_search_users_best_face_and_exclusion() -> None:
    faces = Faces(600, seed=2, users=30)
    index = CollectionIndex(faces.changes(range(600)))
    query = near(faces.vectors[10], seed=3)
    ranked = brute_force_users(faces, query, 0.0)
    assert [h.user_id for h in index.search_users(query, 0.0, 500)] == ranked
    assert [h.user_id for h in index.search_users(query, 0.0, 3)] == ranked[:3]
    assert ranked[0] not in [h.user_id for h in index.search_users(query, 0.0, 500, ranked[0])]


def test_search_users_when_the_best_faces_belong_to_few_users() -> None:
    # 400 near-copies of one user's face outrank everything: the index must look past them.
    faces = Faces(2000, seed=5, users=500)
    faces.vectors[:400] = near(faces.vectors[0], seed=6, noise=0.01)
    faces.users[:400] = ["crowd"] * 400
    index = CollectionIndex(faces.changes(range(2000)))
    query = near(faces.vectors[0], seed=7, noise=0.05)
    assert [h.user_id for h in index.search_users(query, -1.0, 20)] == brute_force_users(
        faces, query, -1.0
    )[:20]


def test_deletions_users_and_compaction() -> None:
    faces = Faces(40, seed=4)
    index = CollectionIndex(faces.changes([]))
    assert index.search_faces(faces.vectors[0], -1.0, 10) == []
    index.apply(faces.changes(range(40)))
    faces.users[:3] = ["ada"] * 3
    index.apply(faces.changes([0, 1, 2]))
    assert np.allclose(index.user_vectors("ada"), faces.vectors[:3])
    assert [h.user_id for h in index.search_users(faces.vectors[1], -1.0, 10)] == ["ada"]
    before = index.search_faces(faces.vectors[5], -1.0, 40)
    index.apply(faces.changes([], deleted=[5, 6]))  # marks them dead
    after = index.search_faces(faces.vectors[5], -1.0, 40)
    assert len(before) == 40 and len(after) == 38 and len(index) == 38
    assert faces.face_ids[5] not in {h.face_id for h in after}
    index.apply(faces.changes([], deleted=list(range(7, 20))))  # a quarter dead: compacted
    alive = [0, 1, 2, 3, 4, *range(20, 40)]
    query = near(faces.vectors[30], seed=8)
    assert [h.face_id for h in index.search_faces(query, -1.0, 40)] == brute_force_faces(
        faces, alive, query, -1.0
    )
    assert np.allclose(index.user_vectors("ada"), faces.vectors[:3])
    faces.users[:3] = [None] * 3
    index.apply(faces.changes([0, 1, 2]))
    assert index.search_users(faces.vectors[1], -1.0, 10) == []
    stale = faces.changes([])
    index.apply(faces.changes([], deleted=[0]))
    index.apply(stale)  # an older version changes nothing
    assert len(index) == len(alive) - 1


def test_faces_arriving_out_of_seq_order() -> None:
    faces = Faces(30, seed=9)
    index = CollectionIndex(faces.changes(range(20, 30)))
    index.apply(faces.changes(range(20)))  # lower seqs committed later (another process)
    faces.users[3] = "grace"
    index.apply(faces.changes([3]))
    assert np.allclose(index.user_vectors("grace"), faces.vectors[3:4])
    query = near(faces.vectors[3], seed=10)
    assert [h.face_id for h in index.search_faces(query, -1.0, 30)] == brute_force_faces(
        faces, list(range(30)), query, -1.0
    )
