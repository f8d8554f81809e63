"""Read replicas on loopback: search latency through a hot standby against the primary, a
writer's reads right after its own writes, the lag while writing, and the calls after the standby
stops (and once it is back).

A throwaway PostgreSQL and a streaming standby of it (``pg_basebackup -R``, tests/support); a few
real people enrolled from photos. SearchFaces by FaceId is timed through a library client on the
primary alone and one with ``store_replicas``, in alternating rounds (fair on a shared machine).
``--smoke``: one person, few calls, figures meaningless.

    PYTHONPATH=tests .venv/bin/python benchmarks/replicas.py [--calls 300] [--rounds 3] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from support.postgres import PostgresServer, StreamingReplica

import facesearch

REPO = Path(__file__).resolve().parent.parent
PHOTOS = Path(os.environ.get("FACESEARCH_TEST_PHOTOS", REPO.parent / "shared/datasets/faces"))
PEOPLE = ["barack_obama", "joe_biden", "kit_harington"]


def timed_searches(client: Any, face_ids: list[str], calls: int) -> list[float]:
    """Seconds of each of ``calls`` SearchFaces, over the faces in turn."""
    seconds = []
    for i in range(calls):
        start = time.perf_counter()
        client.search_faces(CollectionId="staff", FaceId=face_ids[i % len(face_ids)])
        seconds.append(time.perf_counter() - start)
    return seconds


def ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1e3:.2f} ms, p95 {p95 * 1e3:.2f} ms"


def index(client: Any, person: str, number: int) -> str:
    image = {"Bytes": (PHOTOS / "people" / person / f"{number}.jpg").read_bytes()}
    faces = client.index_faces(CollectionId="staff", Image=image, MaxFaces=1)["FaceRecords"]
    return str(faces[0]["Face"]["FaceId"])


def wait_until(check: Any, timeout: float = 30) -> float:
    """Seconds until ``check()`` is true."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise SystemExit("timed out")
        time.sleep(0.01)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="searches per round and client")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--writes", type=int, default=20, help="IndexFaces of the writer")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    people = PEOPLE[:1] if args.smoke else PEOPLE
    calls, rounds, writes = (20, 1, 2) if args.smoke else (args.calls, args.rounds, args.writes)

    with tempfile.TemporaryDirectory() as scratch:
        primary = PostgresServer(Path(scratch) / "primary")
        standby = StreamingReplica(primary, Path(scratch) / "standby")
        url = primary.new_database()
        replica_url = standby.url(urlsplit(url).path.lstrip("/"))
        plain = facesearch.client(store=url)
        routed = facesearch.client(store=url, store_replicas=[replica_url])
        writer = facesearch.client(store=url, store_replicas=[replica_url])
        try:
            plain.create_collection(CollectionId="staff")
            face_ids = [index(plain, person, n) for person in people for n in (1, 2)]
            wait_until(
                lambda: (
                    routed.describe_collection(CollectionId="staff")["FaceCount"] == len(face_ids)
                )
            )
            timed_searches(plain, face_ids, 20)  # warm both: indexes loaded, pools filled
            timed_searches(routed, face_ids, 20)
            on_primary: list[float] = []
            on_replica: list[float] = []
            for _ in range(rounds):
                on_primary += timed_searches(plain, face_ids, calls)
                on_replica += timed_searches(routed, face_ids, calls)
            status = routed.service.read_replicas()
            print(f"SearchFaces, primary alone:   {ms(on_primary)}")
            print(
                f"SearchFaces, through replica: {ms(on_replica)}  (p50 ratio "
                f"{statistics.median(on_replica) / statistics.median(on_primary):.2f}; "
                f"{status.replicas[0].reads} reads on the replica, {status.primary_reads} on "
                "the primary)"
            )

            # A writer's reads right after each of its writes: the primary until replayed.
            before = writer.service.read_replicas()
            lags = []
            for i in range(writes):
                index(writer, people[i % len(people)], 1 + i % 2)
                writer.describe_collection(CollectionId="staff")
                lags.append(routed.service.read_replicas().replicas[0].lag_bytes or 0)
            after = writer.service.read_replicas()
            to_primary = after.primary_reads - before.primary_reads
            to_replica = after.replicas[0].reads - before.replicas[0].reads
            print(
                f"{writes} IndexFaces, each read back at once: {to_primary} reads on the primary, "
                f"{to_replica} on the replica; lag measured meanwhile up to {max(lags)} bytes"
            )

            # The standby stopped in the middle of searches, then started again.
            standby.stop()
            stopped = timed_searches(routed, face_ids, calls)
            down = routed.service.read_replicas().replicas[0]
            alone = timed_searches(plain, face_ids, calls)
            print(
                f"replica stopped: first call {stopped[0] * 1e3:.1f} ms, the next "
                f"{len(stopped) - 1}: {ms(stopped[1:])} (replica up: {down.up}); "
                f"primary alone meanwhile: {ms(alone)}"
            )
            standby.start()
            back = wait_until(lambda: routed.service.read_replicas().replicas[0].up)
            print(f"replica started again: used again {back:.2f} s after pg_ctl start returned")
        finally:
            for client in (plain, routed, writer):
                client.close()
            standby.stop()
            primary.close()
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
