"""SearchUsersByImage end to end, and IndexFaces throughput, on the embedded store.

For collections of 1,000 and 100,000 users (a few real people enrolled from photos, the rest
filled with synthetic unit vectors, one face each, written straight to the store in bulk), real
photos probe SearchUsersByImage through the library API. The same probes are analysed alone in
the same run: the difference is what search adds beyond the face analysis (target: < 5 ms at
100,000 faces). Then IndexFaces photos per second on real photos. ``--smoke``: the 1,000-user
collection alone and SMOKE_PHOTOS photos to index, figures meaningless.

    .venv/bin/python benchmarks/search.py [--repeat 20] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
from scale import add_synthetic, enrol

import facesearch
from facesearch.vision import CURRENT

REPO = Path(__file__).resolve().parent.parent
PHOTOS = Path(os.environ.get("FACESEARCH_TEST_PHOTOS", REPO.parent / "shared/datasets/faces"))
ENROLLED = ["barack_obama", "joe_biden", "bill_gates", "madonna", "elton_john"]
SIZES = (1_000, 100_000)
SMOKE_PHOTOS = 3  # photos indexed for the throughput in a --smoke run


def percentiles(samples: list[float]) -> tuple[float, float]:
    """Median and p95, in milliseconds."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1e3, p95 * 1e3


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def fill(client, collection_id: str, count: int, dim: int) -> None:
    """Add ``count`` synthetic users of one random unit vector each, in bulk transactions."""
    store = client.service.state.store
    collection = store.get_collection(client.account_id, client.region, collection_id)
    rng = np.random.default_rng(7)
    for start in range(0, count, 10_000):
        size = min(10_000, count - start)
        vectors = rng.standard_normal((size, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        add_synthetic(store, collection, vectors, [f"synthetic-{start + i}" for i in range(size)])
    client.service.state.indexes.drop(collection)  # rebuilt from the store on first search


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed searches per size")
    parser.add_argument("--smoke", action="store_true", help="1,000 users, a few photos")
    args = parser.parse_args()
    sizes, indexed = (SIZES[:1], SMOKE_PHOTOS) if args.smoke else (SIZES, None)

    photos = {name: sorted((PHOTOS / "people" / name).glob("*.jpg"))[:4] for name in ENROLLED}
    probes = [p.read_bytes() for paths in photos.values() for p in paths[2:]]
    with tempfile.TemporaryDirectory() as data_dir:
        client = facesearch.client(data_dir=data_dir)
        analyzer = client.service.state.analyzer
        dim = analyzer.analyze(probes[0]).faces[0].embedding.shape[0]
        print(f"probes: {len(probes)} real photos; {args.repeat} timed searches per size")
        print(
            f"{'users':>8} {'search p50':>11} {'p95':>8} {'analysis p50':>13} "
            f"{'beyond analysis p50':>20} {'index alone':>12} {'found@80':>9}"
        )
        for size in sizes:
            collection_id = f"users-{size}"
            enrol(client, collection_id, photos)
            fill(client, collection_id, size - len(photos), dim)
            truth = [name for name, paths in photos.items() for _ in paths[2:]]

            def search(image: bytes, collection_id: str = collection_id) -> dict:
                return client.search_users_by_image(
                    CollectionId=collection_id, Image={"Bytes": image}
                )

            answers = [search(p) for p in probes]  # warm-up, builds the index
            found = sum(
                bool(a["UserMatches"]) and a["UserMatches"][0]["User"]["UserId"] == t
                for a, t in zip(answers, truth, strict=True)
            )
            # Each probe is analysed alone, then searched, back to back: the pair's
            # difference is the search's own cost, with little drift from machine load.
            analysis_times, search_times = [], []
            for i in range(args.repeat):
                probe = probes[i % len(probes)]
                analysis_times.append(timed(lambda p=probe: analyzer.analyze(p)))
                search_times.append(timed(lambda p=probe: search(p)))
            s50, s95 = percentiles(search_times)
            a50, _ = percentiles(analysis_times)
            beyond, _ = percentiles(
                [s - a for s, a in zip(search_times, analysis_times, strict=True)]
            )
            state = client.service.state
            index = state.index(
                state.store.get_collection(client.account_id, client.region, collection_id)
            )
            query = analyzer.analyze(probes[0]).faces[0].embedding
            bar = CURRENT.calibration.min_cosine(80)
            alone, _ = percentiles(
                [timed(partial(index.search_users, query, bar, 500)) for _ in range(args.repeat)]
            )
            print(
                f"{size:>8,} {s50:>9.1f}ms {s95:>6.1f}ms {a50:>11.1f}ms "
                f"{beyond:>18.1f}ms {alone:>10.2f}ms {found:>5}/{len(probes)}"
            )

        client.create_collection(CollectionId="throughput")
        paths = sorted((PHOTOS / "people" / "madonna").glob("*.jpg"))[:indexed]
        images = [p.read_bytes() for p in paths]
        elapsed = timed(
            lambda: [
                client.index_faces(CollectionId="throughput", Image={"Bytes": image})
                for image in images
            ]
        )
        print(
            f"IndexFaces: {len(images)} photos in {elapsed:.2f} s = "
            f"{len(images) / elapsed:.1f} photos/s"
        )
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
