"""A process killed with SIGKILL in the middle of IndexFaces loses nothing it acknowledged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import facesearch

CHILD = textwrap.dedent(
    """
    import sys
    import facesearch

    data_dir, *photos = sys.argv[1:]
    images = [open(p, "rb").read() for p in photos]
    client = facesearch.client(data_dir=data_dir)
    i = 0
    while True:
        answer = client.index_faces(
            CollectionId="crash", Image={"Bytes": images[i % len(images)]},
            ExternalImageId=f"img{i}", QualityFilter="NONE",
        )
        ids = ",".join(r["Face"]["FaceId"] for r in answer["FaceRecords"])
        print(f"img{i} {ids}", flush=True)
        i += 1
    """
)


def test_sigkill_during_index_faces(tmp_path: Path, photos_dir: Path) -> None:
    data_dir = tmp_path / "data"
    setup = facesearch.client(data_dir=data_dir)
    setup.create_collection(CollectionId="crash")
    setup.close()
    photos = [
        photos_dir / "group/face_recognition_obama_and_biden.jpg",
        photos_dir / "people/bill_gates/1.jpg",
        photos_dir / "group/deepface_selfie_many_people.jpg",
    ]
    acknowledged: dict[str, list[str]] = {}
    for _ in range(2):  # kill, reopen, carry on, kill again
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(data_dir), *map(str, photos)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert child.stdout is not None
        start = len(acknowledged)
        while len(acknowledged) < start + 6:
            line = child.stdout.readline()
            assert line, "the indexing child died on its own"
            external_id, _, ids = line.strip().partition(" ")
            acknowledged[external_id + f"@{start}"] = ids.split(",")
        # The child is busy with its next IndexFaces now: kill it there.
        child.send_signal(signal.SIGKILL)
        child.wait()

    reopened = facesearch.client(data_dir=data_dir)
    stored = [
        face
        for page in reopened.get_paginator("list_faces").paginate(CollectionId="crash")
        for face in page["Faces"]
    ]
    stored_ids = {f["FaceId"] for f in stored}
    for ids in acknowledged.values():
        assert set(ids) <= stored_ids, "an acknowledged face was lost"
    # Nothing half-written: every image's faces are all there or none are.
    counts: dict[tuple[str, str], int] = {}
    for face in stored:
        key = (face["ImageId"], face["ExternalImageId"])
        counts[key] = counts.get(key, 0) + 1
    per_image = {}
    for (image_id, _), count in counts.items():
        per_image.setdefault(image_id, set()).add(count)
    assert all(len(sizes) == 1 for sizes in per_image.values()), per_image
    # The reopened store serves searches over every stored face.
    some_face = stored[0]["FaceId"]
    matches = reopened.search_faces(CollectionId="crash", FaceId=some_face, FaceMatchThreshold=0)
    assert len(matches["FaceMatches"]) == len(stored) - 1
    reopened.close()
