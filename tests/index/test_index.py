"""The in-memory search index against a brute-force reference, fed by FaceChanges."""

from __future__ import annotations

import numpy as np
import pytest

from facesearch.index import NO_USER, CollectionIndex, VectorSource
from facesearch.store import FaceChanges


class Faces:
    """Random unit vectors with seqs and users' seqs: a collection's faces as a store has them,
    and the FaceChanges that bring an index to them."""

    def __init__(self, count: int, seed: int, users: int = 0) -> None:
        rng = np.random.default_rng(seed)
        vectors = rng.standard_normal((count, 128)).astype(np.float32)
        self.vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        self.seqs = np.arange(1, count + 1, dtype=np.int64) * 3  # gaps, as deletions leave
        self.users = np.array(
            [1000 + i % users if users else NO_USER for i in range(count)], np.int64
        )
        self.version = 0
        self.gone: set[int] = set()  # rows deleted from the store

    def changes(
        self, rows: list[int] | range, deleted: tuple[int, ...] | list[int] = ()
    ) -> FaceChanges:
        self.version += 1
        rows = list(rows)
        return FaceChanges(
            version=self.version,
            seqs=self.seqs[rows],
            user_seqs=self.users[rows],
            embeddings=self.vectors[rows].reshape(len(rows), 128),
            deleted=self.seqs[list(deleted)],
        )

    def source(self) -> VectorSource:
        """The store's side of an index over these faces: exact vectors and a shared model."""
        by_seq = dict(zip(self.seqs.tolist(), self.vectors, strict=True))
        models: list[bytes] = []

        def search_model(model: bytes | None) -> bytes | None:
            if model is not None and not models:
                models.append(model)
            return models[0] if models else None

        def pages(version: int, after: int) -> FaceChanges:
            # Every face as it is now (the store's answer for version 0), 5,000 at a time.
            rows = [r for r in range(len(self.seqs)) if self.seqs[r] > after]
            page = self.changes([r for r in rows if r not in self.gone][:5_000])
            return FaceChanges(
                self.version, page.seqs, page.user_seqs, page.embeddings, page.deleted
            )

        return VectorSource(
            changes=pages,
            embeddings=lambda seqs: {
                int(s): by_seq[int(s)]
                for s in seqs
                if int(s) in by_seq and int(s) // 3 - 1 not in self.gone
            },
            search_model=search_model,
        )

    def index(self, rows: list[int] | range, compressed_min_faces: int = 10**9) -> CollectionIndex:
        index = CollectionIndex(self.source(), compressed_min_faces)
        index.apply(self.changes(rows))
        return index


def near(vector: np.ndarray, seed: int, noise: float = 0.5) -> np.ndarray:
    query = (
        vector + noise * np.random.default_rng(seed).standard_normal(128).astype(np.float32) / 11
    )
    return query / np.linalg.norm(query)


def brute_force_faces(faces: Faces, alive: list[int], query: np.ndarray, floor: float) -> list[int]:
    scores = faces.vectors[alive] @ query
    return [int(faces.seqs[alive[i]]) for i in np.argsort(-scores) if scores[i] >= floor]


def brute_force_users(faces: Faces, query: np.ndarray, floor: float) -> list[int]:
    best: dict[int, float] = {}
    for user, score in zip(faces.users.tolist(), faces.vectors @ query, strict=True):
        if user != NO_USER:
            best[user] = max(best.get(user, -1.0), float(score))
    return sorted((u for u in best if best[u] >= floor), key=lambda u: -best[u])


@pytest.mark.parametrize("limit", [1, 5, 50])
def test_search_faces_matches_brute_force(limit: int) -> None:
    faces = Faces(3000, seed=1)
    index = faces.index(range(1000))
    index.apply(faces.changes(range(1000, 2500)))  # grows its buffer
    index.apply(faces.changes(range(2500, 3000)))
    assert len(index) == 3000 and index.version == 3
    for probe in range(5):
        query = near(faces.vectors[probe * 7], seed=probe)
        expected = brute_force_faces(faces, list(range(3000)), query, 0.1)[:limit]
        assert [h.seq for h in index.search_faces(query, 0.1, limit)] == expected


def test_search_users_best_face_and_exclusion() -> None:
    faces = Faces(600, seed=2, users=30)
    index = faces.index(range(600))
    query = near(faces.vectors[10], seed=3)
    ranked = brute_force_users(faces, query, 0.0)
    assert [h.user_seq for h in index.search_users(query, 0.0, 500)] == ranked
    assert [h.user_seq for h in index.search_users(query, 0.0, 3)] == ranked[:3]
    assert ranked[0] not in [h.user_seq for h in index.search_users(query, 0.0, 500, ranked[0])]


def test_search_users_when_the_best_faces_belong_to_few_users() -> None:
    # 400 near-copies of one user's face outrank everything: the index must look past them.
    faces = Faces(2000, seed=5, users=500)
    faces.vectors[:400] = near(faces.vectors[0], seed=6, noise=0.01)
    faces.users[:400] = 7
    index = faces.index(range(2000))
    query = near(faces.vectors[0], seed=7, noise=0.05)
    assert [h.user_seq for h in index.search_users(query, -1.0, 20)] == brute_force_users(
        faces, query, -1.0
    )[:20]


def test_deletions_users_and_compaction() -> None:
    faces = Faces(40, seed=4)
    index = faces.index([])
    assert index.search_faces(faces.vectors[0], -1.0, 10) == []
    index.apply(faces.changes(range(40)))
    faces.users[:3] = 8
    index.apply(faces.changes([0, 1, 2]))
    assert [h.user_seq for h in index.search_users(faces.vectors[1], -1.0, 10)] == [8]
    before = index.search_faces(faces.vectors[5], -1.0, 40)
    index.apply(faces.changes([], deleted=[5, 6]))  # marks them dead
    after = index.search_faces(faces.vectors[5], -1.0, 40)
    assert len(before) == 40 and len(after) == 38 and len(index) == 38
    assert faces.seqs[5] not in {h.seq for h in after}
    index.apply(faces.changes([], deleted=list(range(7, 20))))  # a quarter dead: compacted
    alive = [0, 1, 2, 3, 4, *range(20, 40)]
    query = near(faces.vectors[30], seed=8)
    assert [h.seq for h in index.search_faces(query, -1.0, 40)] == brute_force_faces(
        faces, alive, query, -1.0
    )
    assert [h.user_seq for h in index.search_users(faces.vectors[2], -1.0, 10)] == [8]
    faces.users[:3] = NO_USER
    index.apply(faces.changes([0, 1, 2]))
    assert index.search_users(faces.vectors[1], -1.0, 10) == []
    stale = faces.changes([])
    index.apply(faces.changes([], deleted=[0]))
    index.apply(stale)  # an older version changes nothing
    assert len(index) == len(alive) - 1


def test_faces_arriving_out_of_seq_order() -> None:
    faces = Faces(30, seed=9)
    index = faces.index(range(20, 30))
    index.apply(faces.changes(range(20)))  # lower seqs committed later (another process)
    faces.users[3] = 9
    index.apply(faces.changes([3]))
    assert [h.user_seq for h in index.search_users(faces.vectors[3], -1.0, 5)] == [9]
    query = near(faces.vectors[3], seed=10)
    assert [h.seq for h in index.search_faces(query, -1.0, 30)] == brute_force_faces(
        faces, list(range(30)), query, -1.0
    )


def test_snapshots_taken_by_readers_never_change() -> None:
    # A reader searches the snapshot it took while writes go on. New faces are written past the
    # end of its arrays, in the same buffers (no copy of the whole collection per write); user
    # changes, deletions, compactions and faces out of seq order write new arrays.
    faces = Faces(80, seed=12, users=20)
    index = faces.index(range(10, 20))
    held: list[tuple[object, list[np.ndarray]]] = []

    def hold() -> object:
        snap = index._snap
        held.append((snap, [snap.tail_seqs.copy(), snap.users.copy(), snap.alive.copy()]))
        return snap

    before = hold()
    for row in range(20, 50):  # one face at a time, as IndexFaces calls are caught up
        index.apply(faces.changes([row]))
        after = hold()
        assert np.shares_memory(before.tail_seqs, after.tail_seqs)  # type: ignore[attr-defined]
        before = after
    faces.users[[12, 30]] = [7, 8]
    index.apply(faces.changes([12, 30]))  # known faces get users
    hold()
    index.apply(faces.changes([], deleted=[11, 25]))
    hold()
    index.apply(faces.changes(range(50, 60)))
    hold()
    index.apply(faces.changes([], deleted=list(range(13, 24))))  # a quarter dead: compacted
    hold()
    index.apply(faces.changes(range(60, 70)))
    index.apply(faces.changes(range(10)))  # lower seqs committed later (another process)
    hold()
    for snap, arrays in held:
        current = [snap.tail_seqs, snap.users, snap.alive]  # type: ignore[attr-defined]
        assert all(np.array_equal(a, b) for a, b in zip(current, arrays, strict=True))
    alive = [r for r in range(70) if r not in {11, 25, *range(13, 24)}]
    query = near(faces.vectors[40], seed=13)
    assert [h.seq for h in index.search_faces(query, -1.0, 70)] == brute_force_faces(
        faces, alive, query, -1.0
    )
    users = [h.user_seq for h in index.search_users(faces.vectors[30], -1.0, 3)]
    assert users[0] == 8


def test_compressed_index_finds_near_faces_with_exact_similarities() -> None:
    # Past the size where it switches, the index scans 16-byte codes, then re-ranks with the
    # stored vectors: near copies are still found first, with exact cosines.
    faces = Faces(16_000, seed=11, users=8_000)
    index = faces.index(range(12_000), compressed_min_faces=10_000)
    assert index.compressed
    index.apply(faces.changes(range(12_000, 16_000)))  # encoded as they come
    for probe in range(0, 16_000, 800):
        query = near(faces.vectors[probe], seed=probe, noise=1.0)
        exact = faces.vectors @ query
        hits = index.search_faces(query, 0.3, 3)
        assert hits[0].seq == faces.seqs[probe]
        assert hits[0].cosine == pytest.approx(float(exact[probe]), abs=1e-5)
        assert index.search_users(query, 0.3, 2)[0].user_seq == faces.users[probe]
        # Above a bar in the thick of random faces' scores, where approximate ranking is
        # hardest: what is returned passes, in exact order; little that passes is missed.
        wanted = brute_force_faces(faces, list(range(16_000)), query, 0.25)
        found = [h.seq for h in index.search_faces(query, 0.25, 1000)]
        assert found == [f for f in wanted if f in set(found)]
        assert len(found) >= 0.95 * len(wanted)
    index.apply(faces.changes([], deleted=[800]))
    query = near(faces.vectors[800], seed=800, noise=0.3)
    assert faces.seqs[800] not in {h.seq for h in index.search_faces(query, 0.0, 10)}


def test_compressed_users_at_threshold_zero() -> None:
    faces = Faces(12_000, seed=13, users=6_000)
    index = faces.index(range(12_000), compressed_min_faces=10_000)
    query = near(faces.vectors[77], seed=14, noise=1.0)
    found = [h.user_seq for h in index.search_users(query, -1.0, 300)]
    assert found[0] == faces.users[77] and len(found) == len(set(found)) == 300
    # The best 300 users by exact score, but for near ties the compressed ranking may swap.
    assert len(set(found) & set(brute_force_users(faces, query, -1.0)[:300])) >= 295


def test_codes_are_rebuilt_once_half_are_deleted() -> None:
    faces = Faces(12_000, seed=15)
    # What is left (5,800) stays above the size that goes back to exact (0.75 x 7,000).
    index = faces.index(range(12_000), compressed_min_faces=7_000)
    for start in range(0, 6_200, 2_000):
        gone = list(range(start, min(start + 2_000, 6_200)))
        faces.gone.update(gone)
        index.apply(faces.changes([], deleted=gone))
    alive = list(range(6_200, 12_000))
    assert index.compressed and len(index) == len(alive)
    assert len(index._codes) == len(alive)  # encoded afresh, without the deleted faces
    query = near(faces.vectors[9_000], seed=16, noise=0.5)
    assert [h.seq for h in index.search_faces(query, 0.2, 50)] == brute_force_faces(
        faces, alive, query, 0.2
    )[:50]


def test_a_shrinking_collection_goes_back_to_exact_with_hysteresis() -> None:
    faces = Faces(10_400, seed=17)
    faces.gone.update(range(10_000, 10_400))  # not in the store yet
    index = faces.index(range(10_000), compressed_min_faces=10_000)
    assert index.compressed

    def delete(rows: range) -> None:
        faces.gone.update(rows)
        index.apply(faces.changes([], deleted=list(rows)))

    delete(range(0, 2_400))  # 7,600 left: above 0.75 x 10,000, still compressed
    assert index.compressed and len(index) == 7_600
    delete(range(2_400, 2_600))  # 7,400: exact again
    assert not index.compressed and len(index) == 7_400
    alive = list(range(2_600, 10_000))
    query = near(faces.vectors[5_000], seed=18)
    assert [h.seq for h in index.search_faces(query, 0.2, 20)] == brute_force_faces(
        faces, alive, query, 0.2
    )[:20]
    faces.gone.difference_update(range(10_000, 10_400))
    index.apply(faces.changes(range(10_000, 10_400)))  # 7,800: back above, still exact
    assert not index.compressed and len(index) == 7_800


def test_processes_share_one_model_and_agree() -> None:
    # One process grows its index past the switch, another loads the whole collection later:
    # with the model the first stored, both return the same answers.
    faces = Faces(12_000, seed=12, users=6_000)
    source = faces.source()
    grown = CollectionIndex(source, compressed_min_faces=10_000)
    for start in range(0, 12_000, 3_000):
        grown.apply(faces.changes(range(start, start + 3_000)))
    loaded = CollectionIndex(source, compressed_min_faces=10_000)
    loaded.load()
    assert grown.compressed and loaded.compressed
    for probe in range(0, 12_000, 500):
        query = near(faces.vectors[probe], seed=probe, noise=1.0)
        assert grown.search_users(query, 0.0, 20) == loaded.search_users(query, 0.0, 20)
        assert grown.search_faces(query, 0.1, 50) == loaded.search_faces(query, 0.1, 50)
