"""What a new user of the ``facesearch`` command trips over (issue 11), run as subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.serve import free_port, wait_for_url

from facesearch.vision.models import models_dir

FACESEARCH = str(Path(sys.executable).parent / "facesearch")
OBAMA = ("people/barack_obama/1.jpg", "people/barack_obama/2.jpg", "people/barack_obama/3.jpg")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """No AWS configuration, an empty HOME, the installed models."""
    keep = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR", "FACESEARCH_WARM")
    base = {key: os.environ[key] for key in keep if key in os.environ}
    home = tmp_path / "home"
    home.mkdir()
    return {**base, "HOME": str(home), "FACESEARCH_MODELS_DIR": str(models_dir())}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FACESEARCH, *args], env=env, capture_output=True, text=True, timeout=120)


def test_models_live_outside_the_data_directory(
    env: dict[str, str], tmp_path: Path, photos_dir: Path
) -> None:
    photo = f"fileb://{photos_dir / OBAMA[0]}"
    # The default place is the user's cache directory, whatever the data directory.
    cache = tmp_path / "cache"
    (cache / "facesearch").mkdir(parents=True)
    (cache / "facesearch" / "models").symlink_to(models_dir(), target_is_directory=True)
    default = {k: v for k, v in env.items() if k != "FACESEARCH_MODELS_DIR"}
    default |= {"XDG_CACHE_HOME": str(cache), "FACESEARCH_DATA_DIR": str(tmp_path / "new-data")}
    found = run(default, "detect-faces", "--image-bytes", photo)
    assert found.returncode == 0, found.stderr
    assert len(json.loads(found.stdout)["FaceDetails"]) == 1

    # Missing models: a clear message naming the command that installs them, status 253.
    missing = env | {"FACESEARCH_MODELS_DIR": str(tmp_path / "no-models")}
    refused = run(missing, "detect-faces", "--image-bytes", photo, "--data-dir", str(tmp_path))
    assert refused.returncode == 253
    assert "facesearch setup-models" in refused.stderr
    assert "InternalServerError" not in refused.stderr
    serve = run(missing, "serve", "--port", str(free_port()), "--data-dir", str(tmp_path))
    assert serve.returncode == 2 and "facesearch setup-models" in serve.stderr


def test_success_prints_nothing_on_stderr(env: dict[str, str], tmp_path: Path, photos_dir):
    answer = run(
        env, "detect-faces", "--image-bytes", f"fileb://{photos_dir / OBAMA[0]}",
        "--attributes", "ALL", "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert answer.returncode == 0
    assert answer.stderr == ""


def test_concurrent_commands_on_one_data_directory(
    env: dict[str, str], tmp_path: Path, photos_dir: Path
) -> None:
    data = ("--data-dir", str(tmp_path / "data"))
    assert run(env, "create-collection", "--collection-id", "c", *data).returncode == 0
    searches = [
        subprocess.Popen(
            [
                FACESEARCH,
                "search-faces-by-image",
                "--collection-id",
                "c",
                "--image-bytes",
                f"fileb://{photos_dir / OBAMA[i % 3]}",
                *data,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    writer = subprocess.Popen(
        [FACESEARCH, "index-faces", "--collection-id", "c", "--image-bytes",
         f"fileb://{photos_dir / OBAMA[0]}", *data],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    for process in [*searches, writer]:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
    listed = run(env, "list-faces", "--collection-id", "c", *data)
    assert len(json.loads(listed.stdout)["Faces"]) == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("search-users-by-image", "--collection-id", "c", "--image-bytes", "fileb://{photo}",
          "--max-users", "1.5"), "argument --max-users: expected an integer, got '1.5'"),
        (("list-collections", "--query", "UserMatches["), "Bad value for --query"),
        (("list-collections", "--cli-read-timeout", "abc"),
         "argument --cli-read-timeout: expected a whole number of seconds"),
        (("detect-faces", "--image", "fileb://{photo}"),
         "argument --image takes a structure, not a file's bytes: use --image-bytes fileb://"),
    ],
)  # fmt: skip
def test_usage_mistakes_exit_252_with_a_usage_message(
    env: dict[str, str], tmp_path: Path, photos_dir: Path, args: tuple[str, ...], says: str
) -> None:
    photo = photos_dir / OBAMA[0]
    answer = run(env, *(a.format(photo=photo) for a in args), "--data-dir", str(tmp_path))
    assert answer.returncode == 252
    assert answer.stderr.startswith("usage: facesearch") or "usage: facesearch" in answer.stderr
    assert says in answer.stderr
    assert "Traceback" not in answer.stderr


def test_a_refused_key_says_where_it_came_from(env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    keys = {"FACESEARCH_ACCESS_KEY_ID": "AKIDSERVER", "FACESEARCH_SECRET_ACCESS_KEY": "s3cret"}
    server = subprocess.Popen(
        [FACESEARCH, "serve", "--port", str(port), "--data-dir", str(tmp_path / "server")],
        env=env | keys, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for_url(f"{endpoint}/health", server, 60, "facesearch serve")
        refused = run(env, "list-collections", "--endpoint-url", endpoint)
        assert refused.returncode == 254
        assert "UnrecognizedClientException" in refused.stderr
        assert "signed with facesearch's local key facesearch-local" in refused.stderr
        assert "AWS_ACCESS_KEY_ID" in refused.stderr
        wrong = env | {"AWS_ACCESS_KEY_ID": "AKIDOTHER", "AWS_SECRET_ACCESS_KEY": "x"}
        refused = run(wrong, "list-collections", "--endpoint-url", endpoint)
        assert refused.returncode == 254 and "(env)" in refused.stderr
        right = env | {"AWS_ACCESS_KEY_ID": "AKIDSERVER", "AWS_SECRET_ACCESS_KEY": "s3cret"}
        assert run(right, "list-collections", "--endpoint-url", endpoint).returncode == 0
    finally:
        server.terminate()
        server.wait(30)


def test_folder_enrolment_recurses_resumes_and_sums_up(
    env: dict[str, str], tmp_path: Path, photos_dir: Path
) -> None:
    folder = tmp_path / "staff"
    (folder / "biden").mkdir(parents=True)
    shutil.copy(photos_dir / OBAMA[0], folder / "obama.jpg")
    shutil.copy(photos_dir / "people/joe_biden/1.jpg", folder / "biden" / "1.jpg")
    noface = sorted((photos_dir / "noface").iterdir())[0]
    shutil.copy(noface, folder / f"nobody{noface.suffix}")
    data = ("--data-dir", str(tmp_path / "data"))
    assert run(env, "create-collection", "--collection-id", "c", *data).returncode == 0
    enrol = ("index-faces", "--collection-id", "c", "--image-folder", str(folder), "--progress")

    flat = run(env, *enrol, *data)
    assert flat.returncode == 0, flat.stderr
    ids = [r["Face"]["ExternalImageId"] for r in json.loads(flat.stdout)["FaceRecords"]]
    assert ids == ["obama.jpg"]

    deep = run(env, *enrol, "--recursive", *data)
    assert deep.returncode == 0, deep.stderr
    ids = [r["Face"]["ExternalImageId"] for r in json.loads(deep.stdout)["FaceRecords"]]
    assert ids == ["biden:1.jpg"]  # obama.jpg was indexed already: skipped
    assert "3 photos: 1 indexed, 1 with no face indexed, 0 errors, 1 already indexed" in (
        deep.stderr
    )
    listed = run(env, "list-faces", "--collection-id", "c", *data)
    assert len(json.loads(listed.stdout)["Faces"]) == 2


def test_help_describes_facesearch(env: dict[str, str]) -> None:
    top = run(env, "help", "--no-cli-pager")
    assert top.returncode == 0
    for text in ("facesearch serve", "facesearch setup-models", "--data-dir", "--store",
                 "Global Options", "search-users-by-image", "never has"):  # fmt: skip
        assert text in top.stdout, text
    for text in ("Custom Labels", "DetectLabels", "Stored Video"):
        assert text not in top.stdout, text
    detect = run(env, "detect-faces", "help", "--no-cli-pager")
    notes = detect.stdout.split("In facesearch")[1].split("Synopsis")[0]
    assert "never returns Beard, Mustache" in " ".join(notes.split())
    assert "adds AgeRange, Gender" in " ".join(notes.split())
    search = run(env, "search-users-by-image", "help", "--no-cli-pager")
    assert "Similarity is calibrated" in search.stdout
    assert "In facesearch" not in run(env, "list-collections", "help", "--no-cli-pager").stdout
