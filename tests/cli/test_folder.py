"""``index-faces --image-folder``: Ctrl-C, users from folder names, what the results name
(issue 22's rough edges 1 and 3), run as subprocesses on the embedded store."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from facesearch.vision.models import models_dir

FACESEARCH = str(Path(sys.executable).parent / "facesearch")
GROUP = "group/face_recognition_obama_and_biden.jpg"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """No AWS configuration, an empty HOME, the installed models, no warm process."""
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH")
    base = {key: os.environ[key] for key in keep if key in os.environ}
    home = tmp_path / "home"
    home.mkdir()
    return {
        **base,
        "HOME": str(home),
        "FACESEARCH_MODELS_DIR": str(models_dir()),
        "FACESEARCH_WARM": "0",
        "FACESEARCH_DATA_DIR": str(tmp_path / "data"),
    }


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FACESEARCH, *args], env=env, capture_output=True, text=True, timeout=180)


def listed(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = run(env, *args)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_ctrl_c_stops_after_the_photo_in_progress_and_says_how_to_resume(
    env: dict[str, str], tmp_path: Path, photos_dir: Path
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    photos = sorted((photos_dir / "people").glob("*/1.jpg"))
    for photo in photos:
        shutil.copy(photo, folder / f"{photo.parent.name}.jpg")
    assert run(env, "create-collection", "--collection-id", "c").returncode == 0
    enrol = ("index-faces", "--collection-id", "c", "--image-folder", str(folder), "--max-faces",
             "1", "--progress")  # fmt: skip
    process = subprocess.Popen(
        [FACESEARCH, *enrol], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    stderr = bytearray()

    def read() -> None:
        assert process.stderr is not None
        while chunk := process.stderr.read1(4096):
            stderr.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    deadline = time.monotonic() + 120
    while f"] 1/{len(photos)} ".encode() not in stderr:  # the first photo is indexed
        assert process.poll() is None and time.monotonic() < deadline, bytes(stderr)
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=120)  # stderr is the reader's alone: it reads to the end
    reader.join()
    text = stderr.decode()
    assert process.returncode == 130, text
    assert "Interrupted: " in text and "Run the same command again" in text
    indexed = len(listed(env, "list-faces", "--collection-id", "c")["Faces"])
    assert 1 <= indexed < len(photos)
    stated = int(text.split("Interrupted: ")[1].split(" of ")[0])
    assert stated == indexed

    resumed = run(env, *enrol)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{indexed} already indexed" in resumed.stderr
    faces = listed(env, "list-faces", "--collection-id", "c")["Faces"]
    assert len(faces) == len(photos)


def test_users_from_folder_names_and_results_that_name_their_photos(
    env: dict[str, str], tmp_path: Path, photos_dir: Path
) -> None:
    folder = tmp_path / "staff"
    for name in ("obama", "biden", "group"):
        (folder / name).mkdir(parents=True)
    shutil.copy(photos_dir / "people/barack_obama/1.jpg", folder / "obama" / "a.jpg")
    shutil.copy(photos_dir / "people/barack_obama/2.jpg", folder / "obama" / "b.jpg")
    shutil.copy(photos_dir / "people/joe_biden/1.jpg", folder / "biden" / "a.jpg")
    shutil.copy(photos_dir / GROUP, folder / "group" / "both.jpg")
    shutil.copy(photos_dir / "people/barack_obama/3.jpg", folder / "loose.jpg")
    assert run(env, "create-collection", "--collection-id", "staff").returncode == 0
    enrolled = run(env, "index-faces", "--collection-id", "staff", "--image-folder", str(folder),
                   "--recursive", "--max-faces", "1", "--user-from-folder",
                   "--progress")  # fmt: skip
    assert enrolled.returncode == 0, enrolled.stderr
    assert "biden/a.jpg" in enrolled.stderr  # the bar names the photo with its folder
    result = json.loads(enrolled.stdout)
    assert len(result["FaceRecords"]) == 5
    # The group photo's second face was not indexed (EXCEEDS_MAX_FACES); its entry says where
    # it came from.
    unindexed = result["UnindexedFaces"]
    assert unindexed and {face["ExternalImageId"] for face in unindexed} == {"group:both.jpg"}
    assert all("EXCEEDS_MAX_FACES" in face["Reasons"] for face in unindexed)

    users = listed(env, "list-users", "--collection-id", "staff")["Users"]
    assert sorted(user["UserId"] for user in users) == ["biden", "group", "obama"]
    for user, count in (("obama", 2), ("biden", 1), ("group", 1)):
        faces = listed(env, "list-faces", "--collection-id", "staff", "--user-id", user)["Faces"]
        assert len(faces) == count, user
    # The loose photo belongs to nobody.
    faces = listed(env, "list-faces", "--collection-id", "staff")["Faces"]
    loose = [f for f in faces if f["ExternalImageId"] == "loose.jpg"]
    assert len(loose) == 1 and "UserId" not in loose[0]

    # Without --max-faces a group photo indexes several faces: they are not put into one user.
    (tmp_path / "crowd" / "team").mkdir(parents=True)
    shutil.copy(photos_dir / GROUP, tmp_path / "crowd" / "team" / "both.jpg")
    assert run(env, "create-collection", "--collection-id", "crowd").returncode == 0
    crowd = run(env, "index-faces", "--collection-id", "crowd", "--image-folder",
                str(tmp_path / "crowd"), "--recursive", "--user-from-folder",
                "--progress")  # fmt: skip
    assert crowd.returncode == 254
    assert "1 photo: 1 indexed, 0 with no face indexed, 1 error, 0 already indexed" in crowd.stderr
    assert re.search(r"both\.jpg: [2-9] faces indexed, not associated with user team", crowd.stderr)
    assert listed(env, "list-users", "--collection-id", "crowd")["Users"] == []


def test_an_unknown_collection_is_the_index_faces_error(
    env: dict[str, str], tmp_path: Path, photos_dir: Path
) -> None:
    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy(photos_dir / "people/barack_obama/1.jpg", folder / "a.jpg")
    missing = run(env, "index-faces", "--collection-id", "nope", "--image-folder", str(folder))
    assert missing.returncode == 254
    assert "(ResourceNotFoundException) when calling the IndexFaces operation" in missing.stderr
    assert "ListFaces" not in missing.stderr
