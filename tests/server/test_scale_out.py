"""Several ``facesearch serve`` processes on one PostgreSQL database, as a deployment runs them:
writes on one seen by the others, tokens and idempotency across them, a process killed
mid-IndexFaces, the database going away and coming back."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from support.serve import free_port, stop_serve, wait_for_url

from facesearch.server.auth import AccessKey
from facesearch.wire.keys import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY

from .conftest import rekognition
from .test_serve import clean_env

pytestmark = pytest.mark.slow

FACESEARCH = Path(sys.executable).with_name("facesearch")
LOCAL = AccessKey(LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY)
PEOPLE = ("barack_obama", "kit_harington", "joe_biden")


@pytest.fixture
def database(postgres) -> str:
    return postgres.new_database()


@contextmanager
def serving(store: str, log: Path, *options: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """A ``facesearch serve --store`` process on a free port: (its URL, the process)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(FACESEARCH), "serve", "--port", str(port), "--store", store, *options]
    with open(log, "w") as stderr:
        process = subprocess.Popen(command, env=clean_env(), stderr=stderr)
    try:
        wait_for_url(url + "/health", process, 180, f"facesearch serve ({log})")
        yield url, process
    finally:
        if process.poll() is None:
            stop_serve(process)
    assert store not in log.read_text()  # the URL (credentials and all) is never logged


def image(photos: Path, person: str, number: int) -> dict[str, bytes]:
    return {"Bytes": (photos / "people" / person / f"{number}.jpg").read_bytes()}


def all_face_ids(client, collection_id: str) -> list[str]:
    pages = client.get_paginator("list_faces").paginate(
        CollectionId=collection_id, PaginationConfig={"PageSize": 2}
    )
    return [face["FaceId"] for page in pages for face in page["Faces"]]


def test_two_servers_one_database(database: str, photos: Path, tmp_path: Path) -> None:
    # One server of two worker processes and one of a single process, on one database.
    with (
        serving(database, tmp_path / "a.log", "--workers", "2", "--threads", "2") as (url_a, _),
        serving(database, tmp_path / "b.log", "--threads", "2") as (url_b, _),
    ):
        a, b = rekognition(url_a, LOCAL), rekognition(url_b, LOCAL)
        arn = a.create_collection(CollectionId="staff", Tags={"site": "hq"})["CollectionArn"]
        with pytest.raises(b.exceptions.ResourceAlreadyExistsException):
            b.create_collection(CollectionId="staff")
        assert b.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"site": "hq"}

        for person in PEOPLE:
            # Each write is acknowledged by one server and used at once through the other.
            face = a.index_faces(CollectionId="staff", Image=image(photos, person, 1), MaxFaces=1)
            face_id = face["FaceRecords"][0]["Face"]["FaceId"]
            b.create_user(CollectionId="staff", UserId=person, ClientRequestToken=f"tok-{person}")
            again = a.create_user(
                CollectionId="staff", UserId=person, ClientRequestToken=f"tok-{person}"
            )  # the same token through the other server: answered again, no ConflictException
            assert again["ResponseMetadata"]["HTTPStatusCode"] == 200
            a.associate_faces(CollectionId="staff", UserId=person, FaceIds=[face_id])
            found = b.search_users_by_image(CollectionId="staff", Image=image(photos, person, 2))
            assert found["UserMatches"][0]["User"]["UserId"] == person

        # The same token with other arguments is refused, whichever server remembers it.
        with pytest.raises(a.exceptions.IdempotentParameterMismatchException):
            a.create_user(CollectionId="staff", UserId="x", ClientRequestToken="tok-barack_obama")

        # A page token from one server is good on the other.
        first = a.list_faces(CollectionId="staff", MaxResults=1)
        rest = b.list_faces(CollectionId="staff", NextToken=first["NextToken"], MaxResults=10)
        listed = [f["FaceId"] for f in first["Faces"] + rest["Faces"]]
        assert sorted(listed) == sorted(all_face_ids(b, "staff")) and len(listed) == 3

        # Deleting on one server takes the user out of the other's searches at once.
        b.delete_user(CollectionId="staff", UserId="kit_harington")
        found = a.search_users_by_image(
            CollectionId="staff", Image=image(photos, "kit_harington", 2), UserMatchThreshold=0
        )
        assert "kit_harington" not in [m["User"]["UserId"] for m in found["UserMatches"]]
        b.delete_faces(CollectionId="staff", FaceIds=listed)  # two belong to users: refused
        counts = [c.describe_collection(CollectionId="staff") for c in (a, b)]
        assert [(c["FaceCount"], c["UserCount"]) for c in counts] == [(2, 2), (2, 2)]
        b.untag_resource(ResourceArn=arn, TagKeys=["site"])
        assert a.list_tags_for_resource(ResourceArn=arn)["Tags"] == {}


def test_sigkill_mid_index_faces_loses_no_acknowledged_face(
    database: str, photos: Path, tmp_path: Path
) -> None:
    photo_paths = sorted((photos / "people" / "barack_obama").glob("*"))[:16]
    acknowledged: list[str] = []
    with serving(database, tmp_path / "survivor.log", "--threads", "2") as (url_b, _):
        b = rekognition(url_b, LOCAL)
        b.create_collection(CollectionId="busy")
        with serving(database, tmp_path / "victim.log", "--threads", "2") as (url_a, victim):
            a = rekognition(url_a, LOCAL)

            def index(paths: list[Path]) -> None:
                for path in paths:
                    try:
                        answer = a.index_faces(
                            CollectionId="busy", Image={"Bytes": path.read_bytes()}
                        )
                    except (ClientError, EndpointConnectionError, ConnectionError):
                        return
                    except Exception:  # the connection cut mid-answer: not acknowledged
                        return
                    acknowledged.extend(r["Face"]["FaceId"] for r in answer["FaceRecords"])

            workers = [threading.Thread(target=index, args=(photo_paths[i::2],)) for i in (0, 1)]
            for worker in workers:
                worker.start()
            deadline = time.monotonic() + 120
            while len(acknowledged) < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            victim.kill()  # SIGKILL, with IndexFaces calls in flight
            victim.wait()
            for worker in workers:
                worker.join(60)
        assert len(acknowledged) >= 4
        stored = all_face_ids(b, "busy")
        assert set(acknowledged) <= set(stored)
        # Nothing half-written: the counts agree and every stored face is searchable.
        assert b.describe_collection(CollectionId="busy")["FaceCount"] == len(stored)
        matches = b.search_faces(CollectionId="busy", FaceId=stored[0], FaceMatchThreshold=0)
        assert len(matches["FaceMatches"]) == len(stored) - 1
        # The survivor keeps serving writes too.
        b.index_faces(CollectionId="busy", Image=image(photos, "joe_biden", 1))
        assert len(all_face_ids(b, "busy")) == len(stored) + 1


def test_database_outage_fails_fast_and_recovers(postgres, database: str, tmp_path: Path) -> None:
    with serving(database, tmp_path / "server.log", "--threads", "2") as (url, _):
        client = rekognition(url, LOCAL)
        client.create_collection(CollectionId="steady")
        postgres.stop()
        try:
            started = time.monotonic()
            with pytest.raises(ClientError) as failure:
                client.describe_collection(CollectionId="steady")
            assert time.monotonic() - started < 10
            error = failure.value.response["Error"]
            assert error["Code"] == "InternalServerError"
            assert "unavailable" in error["Message"] and "postgres:" not in error["Message"]
            with pytest.raises(urllib.error.HTTPError) as health:
                urllib.request.urlopen(url + "/health", timeout=20)
            assert health.value.code == 503
        finally:
            postgres.start()
        # Back by itself, no restart: the pool reconnects.
        deadline = time.monotonic() + 30
        while True:
            try:
                described = client.describe_collection(CollectionId="steady")
                break
            except ClientError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert described["FaceCount"] == 0
        client.create_collection(CollectionId="after")
        assert client.list_collections()["CollectionIds"] == ["after", "steady"]
