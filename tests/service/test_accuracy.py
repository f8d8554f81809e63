"""End to end through the library API: enrol users from real photos, search with others.

Every person with 4+ photos gets a user from their first 2 photos; every other photo of theirs
probes SearchUsersByImage. People never enrolled (fewer than 4 photos, and a second fold that
enrols only every other person) must not match above the default threshold of 80.
"""

from __future__ import annotations

from pathlib import Path

import pytest

RANK1_BAR = 0.95
STRANGER_BAR = 0.99


def enrol(client, collection_id: str, people: dict[str, list[Path]], names: list[str]) -> None:
    client.create_collection(CollectionId=collection_id)
    for name in names:
        client.create_user(CollectionId=collection_id, UserId=name)
        face_ids = [
            record["Face"]["FaceId"]
            for path in people[name][:2]
            for record in client.index_faces(
                CollectionId=collection_id,
                Image={"Bytes": path.read_bytes()},
                ExternalImageId=f"{name}-{path.stem}",
                MaxFaces=1,
            )["FaceRecords"]
        ]
        assert face_ids, f"no face indexed for {name}"
        client.associate_faces(CollectionId=collection_id, UserId=name, FaceIds=face_ids)


def best_user(client, collection_id: str, path: Path, threshold: float) -> str | None:
    matches = client.search_users_by_image(
        CollectionId=collection_id, Image={"Bytes": path.read_bytes()}, UserMatchThreshold=threshold
    )["UserMatches"]
    return matches[0]["User"]["UserId"] if matches else None


@pytest.mark.slow
def test_rank1_and_strangers(client, people: dict[str, list[Path]]) -> None:
    enrolled = sorted(name for name, paths in people.items() if len(paths) >= 4)
    strangers = sorted(name for name, paths in people.items() if len(paths) < 4)
    assert len(enrolled) >= 15 and strangers

    enrol(client, "everyone", people, enrolled)
    probes = [(name, path) for name in enrolled for path in people[name][2:]]
    right = sum(best_user(client, "everyone", path, 0) == name for name, path in probes)
    rank1 = right / len(probes)
    print(f"rank-1: {right}/{len(probes)} = {rank1:.1%}")
    assert rank1 >= RANK1_BAR

    half = enrolled[::2]
    enrol(client, "half", people, half)
    outsiders = [("everyone", p) for n in strangers for p in people[n]] + [
        ("half", p) for n in enrolled if n not in half for p in people[n]
    ]
    false = [
        path
        for collection, path in outsiders
        if best_user(client, collection, path, 80) is not None
    ]
    print(f"strangers matched at 80: {len(false)}/{len(outsiders)}")
    assert 1 - len(false) / len(outsiders) >= STRANGER_BAR, false
