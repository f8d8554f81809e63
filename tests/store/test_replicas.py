"""Read replicas on a real streaming standby: a PostgreSQL on loopback and a hot standby of it
(``pg_basebackup -R``), with searches served by the standby, the writer reading its own writes at
once while the standby's replay is held back, the standby stopped under load and started again,
and its lag in ``/metrics``."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.postgres import PostgresServer, StreamingReplica
from support.serve import serve_app

import facesearch
from facesearch.index import database
from facesearch.server.main import make_app, parse_args
from facesearch.store import ReadReplicas, open_store
from facesearch.wire.keys import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY

FACESEARCH = Path(sys.executable).with_name("facesearch")


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[PostgresServer, StreamingReplica]]:
    """A primary of its own (the suite's shared one is never stopped) and a standby of it."""
    primary = PostgresServer(tmp_path_factory.mktemp("primary"))
    replica = StreamingReplica(primary, tmp_path_factory.mktemp("standby"))
    yield primary, replica
    replica.stop()
    primary.close()


@pytest.fixture
def urls(cluster: tuple[PostgresServer, StreamingReplica]) -> tuple[str, str]:
    """A new database on the primary, and the same database on the standby."""
    primary, replica = cluster
    url = primary.new_database()
    return url, replica.url(urlsplit(url).path.lstrip("/"))


def wait_until(check: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)
    return result


def replicas_of(client: Any) -> ReadReplicas:
    """A library client's (or an app's) store's replicas and reads."""
    return client.service.read_replicas()


def replica_up(client: Any) -> bool:
    return replicas_of(client).replicas[0].up


def image(photos_dir: Path, person: str, number: int) -> dict[str, bytes]:
    return {"Bytes": (photos_dir / "people" / person / f"{number}.jpg").read_bytes()}


def index_one(client: Any, photos_dir: Path, number: int) -> str:
    faces = client.index_faces(
        CollectionId="staff", Image=image(photos_dir, "barack_obama", number), MaxFaces=1
    )["FaceRecords"]
    return str(faces[0]["Face"]["FaceId"])


def matches(client: Any, face_id: str) -> set[str]:
    found = client.search_faces(CollectionId="staff", FaceId=face_id, FaceMatchThreshold=0)
    return {match["Face"]["FaceId"] for match in found["FaceMatches"]}


def face_count(client: Any) -> int:
    return int(client.describe_collection(CollectionId="staff")["FaceCount"])


def describe_on_the_command_line(url: str, *replicas: str) -> dict[str, Any]:
    """``facesearch describe-collection`` over the store, reading from ``replicas``."""
    options = [arg for replica in replicas for arg in ("--store-replica", replica)]
    command = [str(FACESEARCH), "--store", url, *options, "describe-collection"]
    done = subprocess.run(
        [*command, "--collection-id", "staff"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_the_replica_answers_reads_and_a_writer_reads_its_own_writes_at_once(
    urls: tuple[str, str], photos_dir: Path
) -> None:
    url, replica_url = urls
    # Two processes' worth of stores: each knows only its own writes.
    writer = facesearch.client(store=url, store_replicas=[replica_url])
    reader = facesearch.client(store=url, store_replicas=[replica_url])
    try:
        wait_until(lambda: replica_up(writer) and replica_up(reader), "the replica is up")
        writer.create_collection(CollectionId="staff")
        first = index_one(writer, photos_dir, 1)
        wait_until(lambda: face_count(reader) == 1, "the reader sees the write")

        before = replicas_of(reader)
        assert matches(reader, first) == set()  # its only face: no other match
        assert len(reader.list_faces(CollectionId="staff")["Faces"]) == 1
        after = replicas_of(reader)
        # Every one of the reader's reads went to the replica, none to the primary...
        assert after.replicas[0].reads > before.replicas[0].reads
        assert after.primary_reads == before.primary_reads == 0
        # ...and ran there: the standby's backends last ran the faces' reads.
        with psycopg.connect(replica_url, autocommit=True) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
            last = conn.execute(
                "SELECT query FROM pg_stat_activity WHERE datname = current_database()"
                " AND query LIKE '%FROM faces%'"
            ).fetchall()
            assert last

            # Replay held back: the writer still reads its own write at once, from the primary;
            # the other process reads the replica's older state, within its (growing) lag.
            conn.execute("SELECT pg_wal_replay_pause()")
            try:
                second = index_one(writer, photos_dir, 2)
                assert face_count(writer) == 2
                assert second in matches(writer, first)
                faces = writer.list_faces(CollectionId="staff")["Faces"]
                assert {face["FaceId"] for face in faces} == {first, second}
                assert face_count(reader) == 1
                assert matches(reader, first) == set()
                # The command line's --store-replica: a process of its own, reading the replica.
                assert describe_on_the_command_line(url, replica_url)["FaceCount"] == 1
                wait_until(
                    lambda: (replicas_of(reader).replicas[0].lag_bytes or 0) > 0,
                    "the lag is measured",
                )
                assert replicas_of(writer).primary_reads > 0
            finally:
                conn.execute("SELECT pg_wal_replay_resume()")
        wait_until(lambda: face_count(reader) == 2, "the reader sees the second write")
        assert matches(reader, first) == {second}
        wait_until(lambda: replicas_of(reader).replicas[0].lag_bytes == 0, "the lag is gone")
    finally:
        writer.close()
        reader.close()


def test_searches_keep_answering_from_the_primary_while_the_replica_is_stopped(
    cluster: tuple[PostgresServer, StreamingReplica], urls: tuple[str, str], photos_dir: Path
) -> None:
    url, replica_url = urls
    replica = cluster[1]
    writer = facesearch.client(store=url)
    reader = facesearch.client(store=url, store_replicas=[replica_url])
    answered: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def search() -> None:
        while not stop.is_set():
            try:
                assert matches(reader, first) == {second}
                answered.append(1)
            except BaseException as error:  # every failure is reported by the test
                errors.append(error)
                return

    try:
        writer.create_collection(CollectionId="staff")
        first, second = index_one(writer, photos_dir, 1), index_one(writer, photos_dir, 2)
        wait_until(lambda: replica_up(reader) and face_count(reader) == 2, "the replica is up")
        threads = [threading.Thread(target=search) for _ in range(4)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(answered) >= 20, "searches on the replica")
        on_replica = replicas_of(reader)
        assert on_replica.replicas[0].reads > 0

        replica.stop()
        try:
            stopped_at = len(answered)
            wait_until(lambda: len(answered) >= stopped_at + 50 or errors, "searches go on")
            down = replicas_of(reader)
            assert not down.replicas[0].up
            assert down.primary_reads > on_replica.primary_reads
        finally:
            replica.start()
        # Tried again in the background: reads go back to it once it answers.
        wait_until(lambda: replica_up(reader), "the replica is up again")
        back = replicas_of(reader).replicas[0].reads
        wait_until(lambda: replicas_of(reader).replicas[0].reads > back, "reads on it again")
        stop.set()
        for thread in threads:
            thread.join()
        assert errors == []
    finally:
        stop.set()
        writer.close()
        reader.close()


def test_in_database_searches_run_on_the_replica(
    urls: tuple[str, str], photos_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-database search mode's statements are reads a replica answers, through its copy
    of the collection's HNSW index (built on the primary)."""
    monkeypatch.setattr(database, "HNSW_MIN_FACES", 0)  # even two faces get an HNSW index
    url, replica_url = urls
    writer = facesearch.client(store=url, search="database")
    reader = facesearch.client(store=url, store_replicas=[replica_url], search="database")
    try:
        writer.create_collection(CollectionId="staff")
        first, second = index_one(writer, photos_dir, 1), index_one(writer, photos_dir, 2)
        assert matches(writer, first) == {second}  # builds the index, on the primary
        with psycopg.connect(replica_url, autocommit=True) as conn:
            wait_until(
                lambda: conn.execute(
                    "SELECT 1 FROM pg_class WHERE starts_with(relname, 'faces_hnsw_')"
                ).fetchone(),
                "the index reaches the replica",
            )
            wait_until(lambda: replica_up(reader) and face_count(reader) == 2, "the replica")
            # Replay held back, a face deleted on the primary is still found on the replica:
            # the search itself ran there (a search on the primary would miss it).
            conn.execute("SELECT pg_wal_replay_pause()")
            try:
                writer.delete_faces(CollectionId="staff", FaceIds=[second])
                assert matches(writer, first) == set()
                before = replicas_of(reader)
                assert matches(reader, first) == {second}
                after = replicas_of(reader)
                assert after.replicas[0].reads > before.replicas[0].reads
                assert after.primary_reads == before.primary_reads
            finally:
                conn.execute("SELECT pg_wal_replay_resume()")
        wait_until(lambda: matches(reader, first) == set(), "the deletion reaches the replica")
    finally:
        writer.close()
        reader.close()


def _metrics(endpoint: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(endpoint + "/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_a_server_reports_its_replicas_lag_in_metrics(
    urls: tuple[str, str], photos_dir: Path, tmp_path: Path
) -> None:
    url, replica_url = urls
    assert parse_args(["--store", url, "--store-replica", replica_url]).store_replicas == [
        replica_url
    ]
    app = make_app(
        url, str(tmp_path), None, threads=2, video_workers=0, store_replicas=[replica_url]
    )
    writer = facesearch.client(store=url)
    try:
        with serve_app(app) as endpoint:
            client = boto3.client(
                "rekognition",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id=LOCAL_ACCESS_KEY_ID,
                aws_secret_access_key=LOCAL_SECRET_ACCESS_KEY,
            )
            writer.create_collection(CollectionId="staff")
            first = index_one(writer, photos_dir, 1)
            name = replicas_of(app).replicas[0].where
            where, served_by = (("replica", name),), (("served_by", name),)
            wait_until(
                lambda: _metrics(endpoint)["facesearch_store_replica_up"][where] == 1,
                "the replica is up",
            )
            wait_until(lambda: face_count(client) == 1, "the server sees the write")
            primary = (("served_by", "primary"),)
            before = _metrics(endpoint)["facesearch_store_reads_total"]
            assert matches(client, first) == set()
            after = _metrics(endpoint)["facesearch_store_reads_total"]
            assert after[served_by] > before[served_by] and after[primary] == before[primary]
            with psycopg.connect(replica_url, autocommit=True) as conn:
                conn.execute("SELECT pg_wal_replay_pause()")
                try:
                    index_one(writer, photos_dir, 2)
                    lag = wait_until(
                        lambda: _metrics(endpoint)["facesearch_store_replica_lag_bytes"][where],
                        "a lag in /metrics",
                    )
                    assert lag > 0
                    wait_until(
                        lambda: (
                            _metrics(endpoint)["facesearch_store_replica_lag_seconds"].get(where, 0)
                            > 0
                        ),
                        "a lag in seconds once the replica has received the WAL",
                    )
                    assert face_count(client) == 1  # the server reads the replica, behind
                finally:
                    conn.execute("SELECT pg_wal_replay_resume()")
            wait_until(
                lambda: _metrics(endpoint)["facesearch_store_replica_lag_bytes"][where] == 0,
                "no lag once replayed",
            )
            assert face_count(client) == 2
    finally:
        app.close()
        writer.close()


def test_a_replica_url_that_is_no_standby_is_never_read(
    urls: tuple[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = urls
    # The primary itself given as a replica (as a promoted standby would be): not used.
    client = facesearch.client(store=url, store_replicas=[url])
    try:
        client.create_collection(CollectionId="staff")
        assert face_count(client) == 0
        status = replicas_of(client)
        assert not status.replicas[0].up and status.replicas[0].reads == 0
        assert status.primary_reads > 0
        assert "not a standby" in caplog.text
    finally:
        client.close()
    with pytest.raises(ValueError, match="need a postgresql:// store"):
        open_store(None, tmp_path, [url])
    with pytest.raises(ValueError, match="a read replica is a postgresql:// URL"):
        open_store(url, tmp_path, ["mysql://elsewhere/faces"])
