"""Search indexes kept on local disk: a restart reads only what changed, a bad file is rebuilt,
the processes of a machine map one file, and tombstones are pruned without losing a delete."""

from __future__ import annotations

import mmap
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.faces import face_records

from facesearch.index import SearchIndexes, persisted
from facesearch.index.collection import CollectionIndex
from facesearch.store import CollectionRecord, Store, open_store
from facesearch.vision.face_models import CURRENT

ACCOUNT = "000000000000"
REGION = "us-east-1"
COMPRESSED_MIN = 2_000


def unit(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.standard_normal((count, 128)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def add(db: Store, collection: CollectionRecord, vectors: np.ndarray, user: str | None = None):
    faces = face_records(vectors, [user] * len(vectors))
    db.add_faces(collection, faces)
    return [face.face_id for face in faces]


def fresh(db: Store, collection: CollectionRecord) -> CollectionRecord:
    record = db.get_collection(collection.account_id, collection.region, collection.collection_id)
    assert record is not None
    return record


class Counting:
    """A store that counts the vectors the change feed and re-ranking reads return."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.vectors = 0

    def face_changes(self, *args: Any, **kwargs: Any) -> Any:
        changes = self._store.face_changes(*args, **kwargs)
        self.vectors += len(changes.seqs)
        return changes

    def embeddings(self, *args: Any, **kwargs: Any) -> Any:
        found = self._store.embeddings(*args, **kwargs)
        self.vectors += len(found)
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def mapped(array: Any) -> bool:
    """Whether ``array`` is a view of a memory-mapped file."""
    while array is not None and not isinstance(array, mmap.mmap):
        array = array.base if isinstance(array, np.ndarray) else getattr(array, "obj", None)
    return array is not None


def indexes(db: Any, index_dir: Path | None) -> SearchIndexes:
    return SearchIndexes(db, index_dir, compressed_min_faces=COMPRESSED_MIN)


def answers(index: CollectionIndex, queries: np.ndarray) -> list[Any]:
    """What the index finds for each query: faces, then users, with their cosines rounded
    (BLAS may sum a mapped base and an in-memory tail in another order)."""
    faces = [[(h.seq, round(h.cosine, 4)) for h in index.search_faces(q, 0.0, 20)] for q in queries]
    users = [
        [(h.user_seq, round(h.cosine, 4)) for h in index.search_users(q, -1.0, 5)] for q in queries
    ]
    return faces + users


@pytest.fixture
def db(store: str | None, tmp_path: Path):
    opened = open_store(store, tmp_path / "data")
    yield opened
    opened.close()


@pytest.mark.parametrize("faces", [300, 3_000], ids=["exact", "compressed"])
def test_a_restart_reads_only_what_changed(db: Store, tmp_path: Path, faces: int) -> None:
    rng = np.random.default_rng(faces)
    collection = db.create_collection(ACCOUNT, REGION, "c", "arn:c", "1", {})
    assert collection is not None
    face_ids = add(db, collection, unit(rng, faces))
    index_dir = tmp_path / "indexes"
    first = indexes(db, index_dir)
    assert len(first.get(fresh(db, collection))) == faces
    first.close()  # the file is written after the load (and at a clean shutdown)
    assert [p.name for p in index_dir.glob("*.index")] == [
        f"{db.store_id()}-{collection.key}.index"
    ]

    # Writes while no process runs: 10 faces added, 5 deleted, 3 associated.
    add(db, collection, unit(rng, 10))
    db.delete_faces(collection, face_ids[:5])
    db.create_users(collection, ["ada"])
    db.set_face_user(collection, face_ids[5:8], "ada")
    collection = fresh(db, collection)

    counting = Counting(db)
    index = indexes(counting, index_dir).get(collection)
    assert counting.vectors == 13  # the 10 new faces and the 3 associated, nothing else
    assert index.compressed == (faces > COMPRESSED_MIN) and len(index) == faces + 5
    assert mapped(index._snap.base_seqs) and len(index._snap.base_seqs) == faces
    if index.compressed:
        assert mapped(index._codes._base_bytes)  # type: ignore[union-attr]
    else:
        assert mapped(index._snap.vectors[0])  # type: ignore[index]
    # It answers as an index loaded from the store does.
    loaded = indexes(db, None).get(collection)
    queries = unit(rng, 5)
    assert answers(index, queries) == answers(loaded, queries)


def test_corrupt_truncated_and_foreign_files_are_rebuilt(db: Store, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    collection = db.create_collection(ACCOUNT, REGION, "c", "arn:c", "1", {})
    other = db.create_collection(ACCOUNT, REGION, "other", "arn:other", "1", {})
    assert collection is not None and other is not None
    add(db, collection, unit(rng, 300))
    add(db, other, unit(rng, 40))
    index_dir = tmp_path / "indexes"
    first = indexes(db, index_dir)
    first.get(fresh(db, collection))
    first.get(fresh(db, other))
    first.close()
    path = index_dir / f"{db.store_id()}-{collection.key}.index"
    good = path.read_bytes()
    queries = unit(rng, 3)
    expected = answers(indexes(db, None).get(fresh(db, collection)), queries)

    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF  # inside the vectors
    foreign_store = open_store(None, tmp_path / "another")
    try:
        stranger = foreign_store.create_collection(ACCOUNT, REGION, "c", "arn:c", "1", {})
        assert stranger is not None
        add(foreign_store, stranger, unit(rng, 300))
        elsewhere = indexes(foreign_store, tmp_path / "elsewhere")
        elsewhere.get(fresh(foreign_store, stranger))
        elsewhere.close()
        (foreign,) = (tmp_path / "elsewhere").glob("*.index")
        other_key = index_dir / f"{db.store_id()}-{other.key}.index"
        bad_files = {
            "corrupt": bytes(flipped),
            "truncated": good[: len(good) - 4096],
            "another store": foreign.read_bytes(),
            "another collection": other_key.read_bytes(),
            "empty": b"",
        }
    finally:
        foreign_store.close()
    for why, content in bad_files.items():
        path.write_bytes(content)
        counting = Counting(db)
        rebuilt = indexes(counting, index_dir)
        index = rebuilt.get(fresh(db, collection))
        assert counting.vectors == 300, why  # read in full from the store
        assert answers(index, queries) == expected, why
        rebuilt.close()
        assert path.read_bytes() != content, why  # and written afresh
        identity = persisted.Identity(db.store_id(), collection.key, "1")
        assert persisted.read(path, identity) is not None, why
    # A file for another face model (another size of vector) is refused as well.
    assert persisted.read(path, persisted.Identity(db.store_id(), collection.key, "2")) is None


def test_deleted_collections_lose_their_files(db: Store, tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    index_dir = tmp_path / "indexes"
    held = indexes(db, index_dir)
    records = {}
    for name in ("dropped", "swept", "kept"):
        record = db.create_collection(ACCOUNT, REGION, name, f"arn:{name}", "1", {})
        assert record is not None
        add(db, record, unit(rng, 20))
        records[name] = fresh(db, record)
        held.get(records[name])
    held.close()
    files = {
        key: index_dir / f"{db.store_id()}-{key}.index" for key in [r.key for r in records.values()]
    }
    assert all(path.exists() for path in files.values())
    running = indexes(db, index_dir)
    for record in records.values():
        running.get(record)
    db.delete_collection(ACCOUNT, REGION, "dropped")  # by this process
    running.drop(records["dropped"])
    db.delete_collection(ACCOUNT, REGION, "swept")  # by another one: found by the sweep
    running.sweep()
    assert [key for key, path in files.items() if path.exists()] == [records["kept"].key]


def test_tombstones_are_pruned_without_losing_a_delete(db: Store, tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    collection = db.create_collection(ACCOUNT, REGION, "c", "arn:c", "1", {})
    assert collection is not None
    vectors = unit(rng, 50)
    face_ids = add(db, collection, vectors)
    index_dir = tmp_path / "indexes"
    ahead, behind, silent = indexes(db, None), indexes(db, None), indexes(db, None)
    with_file = indexes(db, index_dir)
    for process in (ahead, behind, silent, with_file):
        process.get(fresh(db, collection))
    with_file.close()  # its file, at the version before the delete
    behind.record_progress()  # recorded before the delete: holds the tombstones back
    (seq,) = [f.seq for f in db.get_faces(collection, face_ids[:1]).values()]
    db.delete_faces(collection, face_ids[:1])
    collection = fresh(db, collection)

    def tombstones() -> int:
        return int(db._read("SELECT COUNT(*) FROM face_tombstones")[0][0])  # type: ignore[attr-defined]

    def has_deleted(process: SearchIndexes) -> bool:
        hits = process.get(fresh(db, collection)).search_faces(vectors[0], 0.5, 5)
        return seq in [h.seq for h in hits]

    assert not has_deleted(ahead)
    ahead.record_progress()  # the new version; "behind" still holds the tombstone back
    assert tombstones() == 1
    assert not has_deleted(behind)  # caught up from the tombstone
    behind.record_progress()  # now every recorded process is past it
    assert tombstones() == 0
    assert db.face_changes(collection, 1).pruned == collection.version
    # One that never recorded its version, and a file older than what was pruned: both load in
    # full rather than miss the delete.
    assert not has_deleted(silent)
    counting = Counting(db)
    restarted = indexes(counting, index_dir)
    assert not has_deleted(restarted) and counting.vectors >= 49


def test_processes_share_one_mapped_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    data_dir, index_dir = tmp_path / "data", tmp_path / "indexes"
    db = open_store(None, data_dir)
    try:
        # A collection the service can search: the current face model's.
        collection = db.create_collection(
            ACCOUNT, REGION, "shared", "arn:shared", CURRENT.version, {}
        )
        assert collection is not None
        face_ids = add(db, collection, unit(rng, 300))
        made = indexes(db, index_dir)
        made.get(fresh(db, collection))
        made.close()
        (path,) = index_dir.glob("*.index")
    finally:
        db.close()
    # Two library clients, each a process of its own, search the collection and wait.
    script = textwrap.dedent(
        f"""
        import sys
        from facesearch.index import collection
        collection.COMPRESSED_MIN_FACES = {COMPRESSED_MIN}
        import facesearch
        client = facesearch.client({str(data_dir)!r}, index_dir={str(index_dir)!r})
        client.search_faces(CollectionId="shared", FaceId={face_ids[0]!r})
        print("ready", flush=True)
        sys.stdin.read()
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "FACESEARCH_STORE"}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        inode = path.stat().st_ino
        for process in processes:
            assert process.stdout is not None and process.stdout.readline() == "ready\n"
        for process in processes:
            maps = Path(f"/proc/{process.pid}/maps").read_text().splitlines()
            mapped = [line.split() for line in maps if line.endswith(str(path))]
            assert mapped and all(int(fields[4]) == inode for fields in mapped)
            # And its pages in memory are the same pages as the other process's.
            assert shared_kb(process.pid, path) > 0
    finally:
        for process in processes:
            process.communicate("", timeout=30)
    assert all(process.returncode == 0 for process in processes)


def shared_kb(pid: int, path: Path) -> int:
    """Resident kB of the mappings of ``path`` in process ``pid`` that another process maps too."""
    total, inside = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if not line[:1].isupper():  # a mapping's header line (its address range first)
            inside = line.endswith(str(path))
        elif inside and line.startswith("Shared_Clean:"):
            total += int(line.split()[1])
    return total


def test_default_index_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres: Any) -> None:
    from facesearch.service import RekognitionService

    monkeypatch.delenv("FACESEARCH_INDEX_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    embedded = RekognitionService(tmp_path / "data", video_runner=False)
    try:
        assert embedded.state.index_dir == tmp_path / "data" / "indexes"
    finally:
        embedded.close()
    shared = RekognitionService(store=postgres.new_database(), video_runner=False)
    try:
        store_id = shared.state.store.store_id()
        assert shared.state.index_dir == tmp_path / "cache" / "facesearch" / "indexes" / store_id
    finally:
        shared.close()
    monkeypatch.setenv("FACESEARCH_INDEX_DIR", str(tmp_path / "chosen"))
    chosen = RekognitionService(tmp_path / "data", video_runner=False)
    try:
        assert chosen.state.index_dir == tmp_path / "chosen"
    finally:
        chosen.close()


def test_a_file_newer_than_the_store_is_not_used(tmp_path: Path) -> None:
    # A data directory restored from a backup: same store, older versions than the file's.
    rng = np.random.default_rng(11)
    data_dir, backup, index_dir = tmp_path / "data", tmp_path / "backup", tmp_path / "indexes"
    db = open_store(None, data_dir)
    collection = db.create_collection(ACCOUNT, REGION, "c", "arn:c", "1", {})
    assert collection is not None
    add(db, collection, unit(rng, 300))
    db.close()
    shutil.copytree(data_dir, backup)
    db = open_store(None, data_dir)
    add(db, collection, unit(rng, 10))
    saved = indexes(db, index_dir)
    assert len(saved.get(fresh(db, collection))) == 310
    saved.close()
    db.close()
    shutil.rmtree(data_dir)
    shutil.copytree(backup, data_dir)
    db = open_store(None, data_dir)
    try:
        counting = Counting(db)
        index = indexes(counting, index_dir).get(fresh(db, collection))
        assert len(index) == 300 and counting.vectors == 300
    finally:
        db.close()
