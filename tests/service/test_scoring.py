"""How a user's faces make one score (service/scoring.py)."""

from __future__ import annotations

import numpy as np

from facesearch.service.scoring import user_cosines


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def test_user_cosines_is_the_mean_of_best_face_and_mean_face() -> None:
    rng = np.random.default_rng(3)
    users = [unit(rng.standard_normal((k, 16))) for k in (1, 2, 5)]
    queries = unit(rng.standard_normal((3, 16)))
    scores = user_cosines(queries, users)
    for score, faces in zip(scores, users, strict=True):
        mean = faces.sum(axis=0) / np.linalg.norm(faces.sum(axis=0))
        expected = max((float((faces @ q).max()) + float(mean @ q)) / 2 for q in queries)
        assert abs(float(score) - expected) < 1e-5
    # One face: its own cosine. No users: no scores.
    assert abs(float(scores[0]) - float((queries @ users[0][0]).max())) < 1e-5
    assert user_cosines(queries, []).shape == (0,)


def test_a_users_score_does_not_depend_on_the_others_scored_with_it() -> None:
    rng = np.random.default_rng(4)
    users = [unit(rng.standard_normal((int(k), 128))) for k in rng.integers(1, 4, 300)]
    query = unit(rng.standard_normal((1, 128)))
    together = user_cosines(query, users)
    alone = np.array([user_cosines(query, [faces])[0] for faces in users])
    assert np.array_equal(together, alone)
