"""How soon a write acknowledged by one server process is searched by another (target: p99 within
1 s). Two ``facesearch serve`` processes share one PostgreSQL database; each IndexFaces of a real
photo through server A is followed at once by SearchFaces through server B until B's matches hold
the new face. Prints the time from A's answer to B's first answer that holds it, and how many of
B's searches that took. The throwaway database is tests/support/'s, so tests/ goes on the path:

    PYTHONPATH=tests .venv/bin/python benchmarks/visibility.py [--store postgresql://...]
        [--writes 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from scale import PHOTOS, first_answer, server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=None, help="a database URL (default: a throwaway one)")
    parser.add_argument("--writes", type=int, default=100)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}; cpus: {os.cpu_count()}")
    pg = None
    store = args.store
    if store is None:
        from support.postgres import PostgresServer

        pg = PostgresServer(Path(tempfile.mkdtemp(prefix="facesearch-visibility-")))
        store = pg.new_database()
    photos = sorted((PHOTOS / "people" / "barack_obama").glob("*"))
    with (
        server(["--store", store]) as (process_a, a, _),
        server(["--store", store]) as (
            process_b,
            b,
            _,
        ),
    ):
        first_answer(lambda: a.create_collection(CollectionId="visible"), process_a)
        first_answer(lambda: b.list_collections(), process_b)
        reference = a.index_faces(
            CollectionId="visible", Image={"Bytes": photos[0].read_bytes()}, MaxFaces=1
        )["FaceRecords"][0]["Face"]["FaceId"]
        delays, polls = [], []
        for i in range(args.writes):
            image = {"Bytes": photos[1 + i % (len(photos) - 1)].read_bytes()}
            answer = a.index_faces(
                CollectionId="visible", Image=image, ExternalImageId=f"w{i}", MaxFaces=1
            )
            written = time.perf_counter()
            new = answer["FaceRecords"][0]["Face"]["FaceId"]
            for attempt in range(1, 10_000):
                matches = b.search_faces(
                    CollectionId="visible", FaceId=reference, FaceMatchThreshold=0, MaxFaces=4096
                )["FaceMatches"]
                if new in {m["Face"]["FaceId"] for m in matches}:
                    delays.append(time.perf_counter() - written)
                    polls.append(attempt)
                    break
                if time.perf_counter() - written > 10:
                    raise RuntimeError(f"write {i} not visible on the other server after 10 s")
    ordered = sorted(delays)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    print(
        f"{len(delays)} writes on server A, searched on server B: visible after "
        f"p50 {statistics.median(ordered) * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms, "
        f"max {ordered[-1] * 1e3:.1f} ms; B's first search held it {polls.count(1)} times "
        f"of {len(polls)}"
    )
    print(f"load average after: {os.getloadavg()}")
    if pg is not None:
        pg.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
