"""Several threads on one client, and what reaches the disk."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def test_threads_index_and_search_at_once(client, people) -> None:
    client.create_collection(CollectionId="busy")
    photos = [path for name in ("bill_gates", "madonna") for path in people[name][:6]]

    def index(path: Path) -> list[str]:
        answer = client.index_faces(
            CollectionId="busy", Image={"Bytes": path.read_bytes()}, MaxFaces=1
        )
        return [r["Face"]["FaceId"] for r in answer["FaceRecords"]]

    def search(path: Path) -> int:
        answer = client.search_faces_by_image(
            CollectionId="busy", Image={"Bytes": path.read_bytes()}, FaceMatchThreshold=0
        )
        return len(answer["FaceMatches"])

    with ThreadPoolExecutor(4) as pool:
        indexing = [pool.submit(index, path) for path in photos]
        searches = [pool.submit(search, path) for path in photos[:4]]
        face_ids = [face for future in indexing for face in future.result()]
        assert all(0 <= future.result() <= len(photos) for future in searches)
    assert len(face_ids) == len(set(face_ids)) == len(photos)
    assert client.describe_collection(CollectionId="busy")["FaceCount"] == len(photos)
    listed = {f["FaceId"] for f in client.list_faces(CollectionId="busy")["Faces"]}
    assert listed == set(face_ids)
    # Every face is searchable afterwards: the index saw every write.
    everything = client.search_faces(CollectionId="busy", FaceId=face_ids[0], FaceMatchThreshold=0)
    assert len(everything["FaceMatches"]) == len(photos) - 1


def test_image_bytes_never_reach_the_disk(client, people, tmp_path: Path, request) -> None:
    photo = people["barack_obama"][0].read_bytes()
    client.create_collection(CollectionId="private")
    client.index_faces(CollectionId="private", Image={"Bytes": photo})
    client.search_users_by_image(CollectionId="private", Image={"Bytes": photo})
    # Any 64-byte run from the middle of the JPEG would betray a stored copy (runs of padding
    # are no evidence: a database's own files have those too).
    probes = [photo[i : i + 64] for i in range(len(photo) // 4, len(photo), len(photo) // 4)]
    probes = [probe for probe in probes if len(set(probe)) > 32]
    assert len(probes) >= 2
    # The embedded store's data directory, or the PostgreSQL server's (tables and WAL).
    where = tmp_path / "data" if client.service.data_dir.exists() else None
    if where is None or not any(where.iterdir()):
        where = Path(request.getfixturevalue("postgres").pgdata)
    stored = [p for p in where.rglob("*") if p.is_file()]
    assert stored
    for path in stored:
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            continue  # a running PostgreSQL replaces files such as global/pg_internal.init
        assert not any(probe in content for probe in probes), path
