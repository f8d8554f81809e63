"""A collection of N faces on either store: search, recall, cold start, memory, writes, lists.

The collection holds real people enrolled from photos (2 faces each) and synthetic users of 2
faces each (a random unit vector and a near copy), written straight to the store in bulk. Real
photos of the enrolled people probe it. Figures (written with --json):

- search_p50_ms / search_p95_ms: SearchUsersByImage beyond the analysis, through the library
  API: each probe is analysed once, then the calls reuse that analysis (the models' share is
  benchmarks/vision.py's), so what is timed is the rest of the call (validation, store, index,
  response). search_1k_*: the same on a 1,000-face collection, searched alternately with it in
  this process, the baseline. search_max_users_*: the same with MaxUsers 500 and
  UserMatchThreshold 0.
- recall_at_1: the share of probes whose exact top user (brute force over the store's vectors)
  comes first.
- cold_start_s: ``facesearch serve`` start to the first answered SearchUsers on the collection,
  with no persisted index (the server loads every vector from the store, then writes its file).
- cold_start_persisted_s: the same for the next start, from the persisted index (--index-dir).
- rss_bytes_per_face: the first server's resident memory less an empty server's, per face.
- two_workers_pss_ratio: two servers on one store and one index folder, each after a few
  searches: their proportional set sizes together (shared pages counted once) against one
  server's alone. two_workers_rss_ratio: the same with resident sizes (shared pages counted in
  each), two_workers_index_ratio: the PSS ratio less an empty server's memory per process (the
  models are each process's own).
- write_p50_ms: the slowest p50 of IndexFaces (beyond the analysis), AssociateFaces,
  DisassociateFaces and DeleteFaces of one face (each is printed).
- search_after_write_p50_ms: SearchUsersByImage (beyond the analysis) right after an IndexFaces
  and a DeleteFaces: the index catches up with them first (compare search_p50_ms).
- list_page_ms: the slower p50 of a ListFaces page of 1,000 and a ListUsers page of 100, from
  the middle of the collection.
- disk_bytes_per_face: the data directory's size (SQLite) or the database's (PostgreSQL), per
  face.

With ``--search database`` (PostgreSQL only) the searches run inside the database
(index/database.py): the big collection's HNSW index is built once the collection is filled,
timed (hnsw_build_s, with hnsw_bytes_per_face its size), and the server of the cold start holds
no index.

    .venv/bin/python benchmarks/scale.py --store sqlite --faces 1000000 --json out.json
    PYTHONPATH=tests .venv/bin/python benchmarks/scale.py --store postgresql --faces 1000000
    .venv/bin/python benchmarks/scale.py --store postgresql://USER:PASS@HOST/DB --faces 10000000
    PYTHONPATH=tests .venv/bin/python benchmarks/scale.py --store postgresql --search database
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import boto3
import numpy as np
from botocore.config import Config
from support.faces import face_records

import facesearch
from facesearch.index import NO_USER
from facesearch.vision.image import sniff_format
from facesearch.wire.keys import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY

REPO = Path(__file__).resolve().parent.parent
PHOTOS = Path(os.environ.get("FACESEARCH_TEST_PHOTOS", REPO.parent / "shared/datasets/faces"))
FACESEARCH = Path(sys.executable).with_name("facesearch")
BIG, SMALL, SCRATCH = "scale-big", "scale-1k", "scale-scratch"
CHUNK = 20_000


def p50_p95(samples: list[float]) -> tuple[float, float]:
    """Median and p95 of seconds, in milliseconds."""
    ordered = sorted(samples)
    return (
        statistics.median(ordered) * 1e3,
        ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1e3,
    )


class MemoAnalyzer:
    """The service's analyzer, analysing each image once: a later call with the same arguments
    reuses the result. It wraps the real ``analyze``, so it takes whatever that takes."""

    def __init__(self, analyzer: Any) -> None:
        self._analyzer = analyzer
        self.analyze = functools.cache(analyzer.analyze)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._analyzer, name)


def timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def real_people(limit: int) -> dict[str, list[Path]]:
    """People of the photo set with at least 3 JPEG photos: 2 to enrol, the rest to probe."""
    people = {}
    for folder in sorted((PHOTOS / "people").iterdir()):
        photos = sorted(p for p in folder.glob("*.jpg") if sniff_format(p.read_bytes()[:16]))
        if len(photos) >= 3:
            people[folder.name] = photos[:5]
    return dict(list(people.items())[:limit])


def enrol(client: Any, collection_id: str, people: dict[str, list[Path]]) -> int:
    """Enrol each person from 2 photos; the number of faces indexed."""
    client.create_collection(CollectionId=collection_id)
    count = 0
    for name, photos in people.items():
        client.create_user(CollectionId=collection_id, UserId=name)
        face_ids = [
            r["Face"]["FaceId"]
            for photo in photos[:2]
            for r in client.index_faces(
                CollectionId=collection_id, Image={"Bytes": photo.read_bytes()}, MaxFaces=1
            )["FaceRecords"]
        ]
        client.associate_faces(CollectionId=collection_id, UserId=name, FaceIds=face_ids)
        count += len(face_ids)
    return count


def add_synthetic(store: Any, collection: Any, vectors: np.ndarray, users: list[str]) -> None:
    """Store ``vectors`` as faces of new users (``users[i]`` owns face i), in one transaction
    each for the users and the faces."""
    store.create_users(collection, list(dict.fromkeys(users)))
    store.add_faces(collection, face_records(vectors, users, collection.face_model_version))


def fill(client: Any, collection_id: str, faces: int, dim: int, seed: int) -> None:
    """Add synthetic users of 2 faces each (a random unit vector and a near copy) in bulk."""
    store = client.service.state.store
    collection = store.get_collection(client.account_id, client.region, collection_id)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    for start in range(0, faces, CHUNK):
        size = min(CHUNK, faces - start)
        base = rng.standard_normal(((size + 1) // 2, dim)).astype(np.float32)
        vectors = np.repeat(base, 2, axis=0)[:size]
        vectors += 0.5 * rng.standard_normal(vectors.shape).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        users = [f"synthetic-{seed}-{(start + i) // 2}" for i in range(size)]
        add_synthetic(store, collection, vectors, users)
        if (start // CHUNK) % 10 == 9:
            rate = (start + size) / (time.perf_counter() - started)
            print(f"  {start + size:>10,} faces written ({rate:,.0f}/s)", flush=True)


def exact_top_user(client: Any, collection_id: str, queries: np.ndarray) -> list[str]:
    """Each query's best user by brute force over every vector the store holds (page by page:
    a collection of millions does not fit in memory as float32 twice)."""
    store = client.service.state.store
    collection = store.get_collection(client.account_id, client.region, collection_id)
    best_score = np.full(len(queries), -3.0)
    best_user = np.full(len(queries), NO_USER, np.int64)
    after = 0
    while len((changes := store.face_changes(collection, 0, after, 200_000)).seqs):
        scores = queries @ changes.embeddings.T
        scores[:, changes.user_seqs == NO_USER] = -2
        top = scores.argmax(axis=1)
        better = scores[np.arange(len(queries)), top] > best_score
        best_score[better] = scores[np.arange(len(queries)), top][better]
        best_user[better] = changes.user_seqs[top][better]
        after = int(changes.seqs[-1])
    names = store.user_ids(collection, best_user.tolist())
    return [names[int(seq)] for seq in best_user]


def build_hnsw(client: Any, collection_id: str) -> dict[str, Any]:
    """Build the collection's HNSW index in the database now, as a search would start it:
    its build time and size per face."""
    state = client.service.state
    collection = state.store.get_collection(client.account_id, client.region, collection_id)
    started = time.perf_counter()
    assert state.indexes.build(collection)
    elapsed = time.perf_counter() - started
    faces, indexed = state.store.search_index_state(collection)
    assert indexed
    size = state.store._read(f"SELECT pg_relation_size('faces_hnsw_{collection.key}')")[0][0]
    return {"hnsw_build_s": round(elapsed, 1), "hnsw_bytes_per_face": round(size / faces)}


def recall_by_ef_search(client: Any, probes: list[bytes], exact: list[str]) -> dict[str, Any]:
    """Recall and p50 of the recall's search (MaxUsers 1, threshold 0; beyond the analysis) at
    other ef_search values than the default, on the same HNSW index."""
    from facesearch.store import database_search

    default = database_search.EF_SEARCH
    figures: dict[str, Any] = {}
    try:
        for ef in (100, 400):
            database_search.EF_SEARCH = ef
            found, times = [], []
            for probe, best in zip(probes, exact, strict=True):
                start = time.perf_counter()
                answer = client.search_users_by_image(
                    CollectionId=BIG, Image={"Bytes": probe}, UserMatchThreshold=0, MaxUsers=1
                )
                times.append(time.perf_counter() - start)
                found.append(answer["UserMatches"][0]["User"]["UserId"] == best)
            figures[f"recall_at_1_ef{ef}"] = round(sum(found) / len(found), 4)
            figures[f"recall_search_p50_ms_ef{ef}"] = round(p50_p95(times)[0], 2)
    finally:
        database_search.EF_SEARCH = default
    return figures


def disk_bytes(client: Any, data_dir: Path) -> int:
    """What the store takes on disk: the data directory, or the PostgreSQL database."""
    store = client.service.state.store
    if store.__class__.__name__ == "PostgresStore":
        return store._read("SELECT pg_database_size(current_database())")[0][0]
    return sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file())


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def pss_bytes(pid: int) -> int:
    """The process's proportional set size: each page shared with others counted in part."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no Pss")


@contextmanager
def server(store_args: list[str]) -> Iterator[tuple[subprocess.Popen[bytes], Any, float]]:
    """Start ``facesearch serve``; yields the process, a boto3 client and the start time."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACESEARCH_")}
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(FACESEARCH), "serve", "--port", str(port), "--log-level", "warning", *store_args],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    client = boto3.client(  # one attempt each: a refused connection means "not up yet"
        "rekognition",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id=LOCAL_ACCESS_KEY_ID,
        aws_secret_access_key=LOCAL_SECRET_ACCESS_KEY,
        config=Config(retries={"max_attempts": 1}, read_timeout=600),
    )
    try:
        yield process, client, started
    finally:
        process.terminate()
        process.wait(120)


def first_answer(call: Callable[[], Any], process: subprocess.Popen[bytes]) -> None:
    """Call until it answers (the server is still starting), unless the server exits."""
    while True:
        try:
            call()
            return
        except Exception:
            if process.poll() is not None:
                raise RuntimeError("the server exited") from None
            time.sleep(0.05)


def measure(
    args: argparse.Namespace, workdir: Path, store_url: str | None, store_args: list[str]
) -> dict[str, Any]:
    """Build the collections on the store and take every figure."""
    figures: dict[str, Any] = {
        "store": args.store.split("://")[0],
        "search": args.search,
        "faces": args.faces,
    }
    client = facesearch.client(
        data_dir=workdir / "data",
        store=store_url,
        search=args.search,
        index_dir=workdir / "client-indexes",
    )
    analyzer = client.service.state.analyzer
    people = real_people(args.people)
    probes = [p.read_bytes() for photos in people.values() for p in photos[2:]]
    truth_names = [name for name, photos in people.items() for _ in photos[2:]]
    dim = analyzer.analyze(probes[0]).faces[0].embedding.shape[0]

    started = time.perf_counter()
    real = enrol(client, BIG, people)
    fill(client, BIG, args.faces - real, dim, seed=1)
    figures["build_s"] = round(time.perf_counter() - started, 1)
    small_real = enrol(client, SMALL, people)
    fill(client, SMALL, 1000 - small_real, dim, seed=2)
    print(f"built {args.faces:,} faces in {figures['build_s']} s ({len(probes)} probes)")
    if args.search == "database":
        figures |= build_hnsw(client, BIG)
        print(f"HNSW index built in {figures['hnsw_build_s']} s")

    def search(collection_id: str, probe: bytes, **extra: Any) -> dict[str, Any]:
        return client.search_users_by_image(
            CollectionId=collection_id, Image={"Bytes": probe}, **extra
        )

    # Recall: the first user against the exact best user (threshold 0, so both always exist).
    queries = np.stack([analyzer.analyze(p).faces[0].embedding for p in probes])
    exact = exact_top_user(client, BIG, queries)
    found = [
        search(BIG, p, UserMatchThreshold=0, MaxUsers=1)["UserMatches"][0]["User"]["UserId"]
        for p in probes
    ]
    figures["recall_at_1"] = sum(f == e for f, e in zip(found, exact, strict=True)) / len(probes)
    figures["rank1_true_identity"] = sum(
        f == t for f, t in zip(found, truth_names, strict=True)
    ) / len(probes)

    client.service.state.__dict__["analyzer"] = MemoAnalyzer(analyzer)
    for name, extra in (("search", {}), ("search_max_users", {"UserMatchThreshold": 0})):
        for probe in probes:  # the analyses, once
            search(SMALL, probe, **extra)
        big_times, small_times = [], []
        for i in range(args.repeat):
            probe = probes[i % len(probes)]
            small_times.append(timed(lambda p=probe, e=extra: search(SMALL, p, **e)))
            big_times.append(timed(lambda p=probe, e=extra: search(BIG, p, **e)))
        for label, samples in (
            (name, big_times),
            (name.replace("search", "search_1k"), small_times),
        ):
            p50, p95 = p50_p95(samples)
            figures[f"{label}_p50_ms"], figures[f"{label}_p95_ms"] = round(p50, 2), round(p95, 2)
    if args.search == "database":  # the probes' analyses are held from here on
        figures |= recall_by_ef_search(client, probes, exact)

    # Writes of one face on the big collection (IndexFaces beyond the analysis, as above).
    spare = [p.read_bytes() for p in sorted((PHOTOS / "people" / "barack_obama").glob("*"))]
    writes: dict[str, list[float]] = {
        "IndexFaces": [],
        "AssociateFaces": [],
        "DisassociateFaces": [],
        "DeleteFaces": [],
    }
    client.create_collection(CollectionId=SCRATCH)
    for i in range(min(args.repeat, 20)):
        photo = spare[i % len(spare)]
        # The analysis, once and untimed: the same call on a collection of the same model.
        client.index_faces(CollectionId=SCRATCH, Image={"Bytes": photo}, MaxFaces=1)
        start = time.perf_counter()
        answer = client.index_faces(CollectionId=BIG, Image={"Bytes": photo}, MaxFaces=1)
        writes["IndexFaces"].append(time.perf_counter() - start)
        face_id = answer["FaceRecords"][0]["Face"]["FaceId"]
        user_id = f"writer-{i}"
        client.create_user(CollectionId=BIG, UserId=user_id)
        ids = {"CollectionId": BIG, "FaceIds": [face_id]}
        writes["AssociateFaces"].append(
            timed(lambda u=user_id, f=ids: client.associate_faces(UserId=u, **f))
        )
        writes["DisassociateFaces"].append(
            timed(lambda u=user_id, f=ids: client.disassociate_faces(UserId=u, **f))
        )
        writes["DeleteFaces"].append(timed(lambda f=ids: client.delete_faces(**f)))
        client.delete_user(CollectionId=BIG, UserId=user_id)
    for name, samples in writes.items():
        figures[f"{name}_p50_ms"] = round(p50_p95(samples)[0], 2)
    figures["write_p50_ms"] = max(figures[f"{name}_p50_ms"] for name in writes)

    # A search right after each IndexFaces (and the DeleteFaces of the face before).
    after_write: list[float] = []
    face_ids: list[str] = []
    for i in range(min(args.repeat, 20)):
        if face_ids:
            client.delete_faces(CollectionId=BIG, FaceIds=face_ids)
        photo = spare[i % len(spare)]
        answer = client.index_faces(CollectionId=BIG, Image={"Bytes": photo}, MaxFaces=1)
        face_ids = [r["Face"]["FaceId"] for r in answer["FaceRecords"]]
        after_write.append(timed(lambda: search(BIG, probes[0])))
    if face_ids:
        client.delete_faces(CollectionId=BIG, FaceIds=face_ids)
    figures["search_after_write_p50_ms"] = round(p50_p95(after_write)[0], 2)

    # List pages from the middle of the collection: tokens made as the service makes them.
    state = client.service.state
    collection = state.store.get_collection(client.account_id, client.region, BIG)
    first_face = state.store.list_faces(collection, 0, 1)[0].seq
    first_user = state.store.list_users(collection, 0, 1)[0].seq
    account = client.account_id
    faces_token = state.tokens.encode(
        f"{account}|ListFaces|{collection.key}|None|None", first_face + args.faces // 2
    )
    users_token = state.tokens.encode(
        f"{account}|ListUsers|{collection.key}", first_user + args.faces // 4
    )
    faces_page = [
        timed(lambda: client.list_faces(CollectionId=BIG, NextToken=faces_token)) for _ in range(10)
    ]
    users_page = [
        timed(lambda: client.list_users(CollectionId=BIG, NextToken=users_token)) for _ in range(10)
    ]
    figures["list_faces_page_ms"] = round(p50_p95(faces_page)[0], 2)
    figures["list_users_page_ms"] = round(p50_p95(users_page)[0], 2)
    figures["list_page_ms"] = max(figures["list_faces_page_ms"], figures["list_users_page_ms"])
    figures["disk_bytes_per_face"] = round(disk_bytes(client, workdir / "data") / args.faces)
    client.close()  # the embedded store belongs to one process: hand it to the server

    # Cold start and memory: a server on this store, against an empty one; first with no
    # persisted index, then from the one the first server wrote.
    store_args = [*store_args, "--index-dir", str(workdir / "indexes")]
    person = next(iter(people))

    def searched(remote: Any, process: subprocess.Popen[bytes]) -> None:
        first_answer(lambda: remote.search_users(CollectionId=BIG, UserId=person), process)

    with server(store_args) as (process, remote, started):
        searched(remote, process)
        figures["cold_start_s"] = round(time.perf_counter() - started, 2)
        loaded = rss_bytes(process.pid)
    # (its clean shutdown waited for its index file)
    probe = probes[0]
    with server(store_args) as (process, remote, started):
        searched(remote, process)
        figures["cold_start_persisted_s"] = round(time.perf_counter() - started, 2)
        for _ in range(10):
            remote.search_users_by_image(CollectionId=BIG, Image={"Bytes": probe})
        one = pss_bytes(process.pid)
        with server(store_args) as (other, other_remote, _):
            searched(other_remote, other)
            for _ in range(10):
                other_remote.search_users_by_image(CollectionId=BIG, Image={"Bytes": probe})
            two_pss = pss_bytes(process.pid) + pss_bytes(other.pid)
            two_rss = rss_bytes(process.pid) + rss_bytes(other.pid)
            one_rss = rss_bytes(process.pid)
    with server(["--data-dir", str(workdir / "empty")]) as (process, remote, _):
        # CreateCollection loads the models, as the first search did on the other server.
        first_answer(lambda: remote.create_collection(CollectionId="empty"), process)
        empty = rss_bytes(process.pid)
    figures["rss_bytes_per_face"] = round((loaded - empty) / args.faces)
    figures["two_workers_pss_ratio"] = round(two_pss / one, 2)
    figures["two_workers_rss_ratio"] = round(two_rss / one_rss, 2)
    figures["two_workers_index_ratio"] = round((two_pss - 2 * empty) / max(one - empty, 1), 2)
    figures["one_worker_pss_mb"] = round(one / 2**20)

    figures["load_average_after"] = os.getloadavg()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="sqlite", help="sqlite, postgresql (throwaway) or URL")
    parser.add_argument(
        "--search", default="index", choices=("index", "database"), help="the search mode"
    )
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--people", type=int, default=30, help="real people enrolled")
    parser.add_argument("--repeat", type=int, default=40, help="timed calls per figure")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    if args.search == "database" and args.store == "sqlite":
        parser.error("--search database needs a PostgreSQL --store")
    print(f"load average before: {os.getloadavg()}; cpus: {os.cpu_count()}")

    with ExitStack() as cleanup:  # the throwaway data and database go, whatever happens
        workdir = Path(tempfile.mkdtemp(prefix="facesearch-scale-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        if args.store == "sqlite":
            store_url, store_args = None, ["--data-dir", str(workdir / "data")]
        else:
            if args.store == "postgresql":
                from support.postgres import PostgresServer

                pg = PostgresServer(workdir / "pgdata")
                cleanup.callback(pg.close)
                store_url = pg.new_database()
            else:
                store_url = args.store
            store_args = ["--store", store_url, "--search", args.search]
        figures = measure(args, workdir, store_url, store_args)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
