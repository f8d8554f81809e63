"""The ``facesearch`` command line, run as a subprocess: embedded store and a live server.

Against the server, facesearch's output is compared with the real AWS CLI's (``aws rekognition``,
awscli v1 in the venv) for the same requests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support.serve import free_port, wait_for_url

from facesearch.vision.models import models_dir

BIN = Path(sys.executable).parent
FACESEARCH = str(BIN / "facesearch")
AWS = str(BIN / "aws")
LOCAL_KEYS = {
    "AWS_ACCESS_KEY_ID": "facesearch-local",
    "AWS_SECRET_ACCESS_KEY": "facesearch-local-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment with an empty HOME and no AWS configuration (the models stay found)."""
    home = tmp_path_factory.mktemp("home")
    keep = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR", "FACESEARCH_WARM")
    base = {key: os.environ[key] for key in keep if key in os.environ}
    return {**base, "HOME": str(home), "FACESEARCH_MODELS_DIR": str(models_dir())}


def run(
    env: dict[str, str], *args: str, stdin: str | None = None, program: str = FACESEARCH
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [program, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120
    )


def run_both(
    env: dict[str, str], *args: str
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """``facesearch ARGS`` and ``aws rekognition ARGS``, run side by side."""
    commands = [[FACESEARCH, *args], [AWS, "rekognition", *args]]
    processes = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for command in commands
    ]
    results = []
    for command, process in zip(commands, processes, strict=True):
        stdout, stderr = process.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(command, process.returncode, stdout, stderr))
    return results[0], results[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("store"))


def test_collections_on_the_embedded_store(env: dict[str, str], store: str) -> None:
    created = run(env, "create-collection", "--collection-id", "c1", "--data-dir", store)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["CollectionArn"].endswith(":collection/c1")
    described = run(
        env, "--output", "yaml", "describe-collection", "--collection-id", "c1", "--data-dir", store
    )
    assert yaml.safe_load(described.stdout)["FaceCount"] == 0
    missing = run(env, "describe-collection", "--collection-id", "nope", "--data-dir", store)
    assert missing.returncode == 254
    assert missing.stderr.strip() == (
        "An error occurred (ResourceNotFoundException) when calling the DescribeCollection "
        "operation: The collection id: nope does not exist"
    )


def test_region_picks_the_collections(env: dict[str, str], tmp_path: Path) -> None:
    # As on AWS, each region has its own collections; --region says which, as for the aws CLI.
    data = ["--data-dir", str(tmp_path)]
    ireland = run(
        env, "create-collection", "--collection-id", "door", "--region", "eu-west-1", *data
    )
    assert json.loads(ireland.stdout)["CollectionArn"].startswith("arn:aws:rekognition:eu-west-1:")
    assert json.loads(run(env, "list-collections", *data).stdout)["CollectionIds"] == []
    listed = run(env, "list-collections", "--region", "eu-west-1", *data)
    assert json.loads(listed.stdout)["CollectionIds"] == ["door"]
    # The same id in the default region is another collection.
    virginia = run(env, "create-collection", "--collection-id", "door", *data)
    assert ":us-east-1:" in json.loads(virginia.stdout)["CollectionArn"]


def test_cli_input_json_and_yaml_with_overrides(env: dict[str, str], store: str) -> None:
    document = json.dumps({"CollectionId": "from-json", "Tags": {"team": "json"}})
    created = run(
        env,
        "create-collection",
        "--cli-input-json",
        document,
        "--collection-id",
        "override",
        "--data-dir",
        store,
    )
    arn = json.loads(created.stdout)["CollectionArn"]
    assert arn.endswith(":collection/override")
    tags = run(env, "list-tags-for-resource", "--resource-arn", arn, "--data-dir", store)
    assert json.loads(tags.stdout)["Tags"] == {"team": "json"}

    yaml_file = Path(store).parent / "input.yaml"
    yaml_file.write_text("CollectionId: from-yaml\nTags:\n  team: yaml\n")
    created = run(
        env,
        "create-collection",
        "--cli-input-yaml",
        f"file://{yaml_file}",
        "--tags",
        "team=cli",
        "--data-dir",
        store,
        "--output",
        "text",
        "--query",
        "CollectionArn",
    )
    assert created.stdout.strip().endswith(":collection/from-yaml")
    tags = run(
        env, "list-tags-for-resource", "--resource-arn", created.stdout.strip(), "--data-dir", store
    )
    assert json.loads(tags.stdout)["Tags"] == {"team": "cli"}


def test_skeletons(env: dict[str, str]) -> None:
    assert json.loads(run(env, "create-user", "--generate-cli-skeleton").stdout) == {
        "CollectionId": "",
        "UserId": "",
        "ClientRequestToken": "",
    }
    yaml_input = run(env, "search-users", "--generate-cli-skeleton", "yaml-input")
    assert set(yaml.safe_load(yaml_input.stdout)) == {
        "CollectionId",
        "UserId",
        "FaceId",
        "UserMatchThreshold",
        "MaxUsers",
    }
    output = run(
        env,
        "describe-collection",
        "--collection-id",
        "x",
        "--generate-cli-skeleton",
        "output",
        "--output",
        "table",
    )
    assert output.returncode == 0 and "DescribeCollection" in output.stdout


def test_usage_errors_exit_252(env: dict[str, str], tmp_path: Path) -> None:
    shorthand = run(env, "create-collection", "--collection-id", "x", "--tags", "a=[")
    assert shorthand.returncode == 252
    assert "Error parsing parameter '--tags': Expected: ',', received: 'EOF'" in shorthand.stderr
    missing_file = run(env, "detect-faces", "--image-bytes", f"fileb://{tmp_path}/none.jpg")
    assert missing_file.returncode == 252
    assert "Unable to load paramfile fileb://" in missing_file.stderr
    unknown = run(env, "list-collections", "--bogus")
    assert unknown.returncode == 252 and "Unknown options: --bogus" in unknown.stderr
    required = run(env, "create-user", "--collection-id", "x")
    assert required.returncode == 252
    assert "facesearch: error: the following arguments are required: --user-id" in required.stderr
    bad_operation = run(env, "detect-labels")
    assert bad_operation.returncode == 252 and "Invalid choice" in bad_operation.stderr


def test_help_and_version(env: dict[str, str]) -> None:
    version = run(env, "--version")
    assert version.stdout.startswith("facesearch/")
    top = run(env, "help")
    assert top.returncode == 0 and "search-users-by-image" in top.stdout
    assert "detect-labels" not in top.stdout
    page = run(env, "index-faces", "--help", "--no-cli-pager")
    assert page.returncode == 0
    for text in (
        "--image-bytes",
        "--image-folder",
        "--data-dir",
        "yaml-stream",
        "facesearch index-faces",
    ):
        assert text in page.stdout


def test_faces_users_and_folders(
    env: dict[str, str], store: str, photos_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "enroll"
    folder.mkdir()
    obama = sorted((photos_dir / "people" / "barack_obama").iterdir())
    shutil.copy(obama[0], folder / "obama one.jpg")
    shutil.copy(obama[1], folder / "obama2.jpg")
    shutil.copy(photos_dir / "invalid" / "csv_text.jpg", folder / "broken.jpg")
    (folder / "notes.txt").write_text("not a photo")
    assert (
        run(env, "create-collection", "--collection-id", "faces", "--data-dir", store).returncode
        == 0
    )

    enrolled = run(
        env,
        "index-faces",
        "--collection-id",
        "faces",
        "--image-folder",
        str(folder),
        "--max-faces",
        "1",
        "--progress",
        "--data-dir",
        store,
    )
    assert enrolled.returncode == 254  # broken.jpg was rejected, the others indexed
    assert "broken.jpg: An error occurred (InvalidImageFormatException)" in enrolled.stderr
    assert "3/3" in enrolled.stderr
    records = json.loads(enrolled.stdout)["FaceRecords"]
    assert [r["Face"]["ExternalImageId"] for r in records] == ["obama_one.jpg", "obama2.jpg"]

    # --cli-auto-prompt asks for what is missing (stdin here); image members as a photo path.
    prompted = run(
        env,
        "create-user",
        "--collection-id",
        "faces",
        "--cli-auto-prompt",
        "--data-dir",
        store,
        stdin="obama\n",
    )
    assert prompted.returncode == 0, prompted.stderr
    assert "--user-id" in prompted.stderr
    face_ids = [r["Face"]["FaceId"] for r in records]
    associated = run(
        env,
        "associate-faces",
        "--collection-id",
        "faces",
        "--user-id",
        "obama",
        "--face-ids",
        *face_ids,
        "--data-dir",
        store,
    )
    assert associated.returncode == 0, associated.stderr
    found = run(
        env,
        "search-users-by-image",
        "--collection-id",
        "faces",
        "--cli-auto-prompt",
        "--data-dir",
        store,
        "--query",
        "UserMatches[0].User.UserId",
        "--output",
        "text",
        stdin=f"{obama[2]}\n",
    )
    assert found.stdout.strip() == "obama", found.stderr


@pytest.fixture(scope="module")
def server(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    data_dir = tmp_path_factory.mktemp("server")
    process = subprocess.Popen(
        [FACESEARCH, "serve", "--port", str(port), "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for_url(f"{endpoint}/health", process, 60, "facesearch serve")
        yield endpoint
    finally:
        process.terminate()
        process.wait(30)


def test_server_output_matches_the_aws_cli(
    env: dict[str, str], server: str, photos_dir: Path
) -> None:
    # No AWS configuration: facesearch falls back to the loopback server's local keys.
    remote = ("--endpoint-url", server)
    assert run(env, "create-collection", "--collection-id", "web", *remote).returncode == 0
    photo = next((photos_dir / "people" / "bill_gates").iterdir())
    indexed = run(
        env,
        "index-faces",
        "--collection-id",
        "web",
        "--image-bytes",
        f"fileb://{photo}",
        "--external-image-id",
        "gates",
        "--max-faces",
        "1",
        *remote,
    )
    assert indexed.returncode == 0, indexed.stderr
    aws_env = {**env, **LOCAL_KEYS}
    requests = [
        ("list-collections",),
        ("describe-collection", "--collection-id", "web"),
        ("list-faces", "--collection-id", "web"),
        ("search-faces-by-image", "--collection-id", "web", "--image-bytes", f"fileb://{photo}"),
    ]
    for request in requests:
        for output in ("json", "text", "table"):
            args = ["--output", output, *remote]
            ours = run(aws_env, *request, *args)
            theirs = run(aws_env, "rekognition", *request, *args, program=AWS)
            assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), request
    ours = run(aws_env, "describe-collection", "--collection-id", "nope", *remote)
    theirs = run(
        aws_env,
        "rekognition",
        "describe-collection",
        "--collection-id",
        "nope",
        *remote,
        program=AWS,
    )
    assert ours.stderr == theirs.stderr
    assert (ours.returncode, theirs.returncode) == (254, 255)  # v2's status vs v1's


def test_pagination(env: dict[str, str], server: str) -> None:
    remote = ("--endpoint-url", server, "--query", "CollectionIds")
    for name in ("page-a", "page-b"):
        assert run(env, "create-collection", "--collection-id", name, *remote).returncode == 0
    # Every page by default (--page-size 1: one call per collection), as the AWS CLI does.
    everything = json.loads(run(env, "list-collections", "--page-size", "1", *remote).stdout)
    assert {"page-a", "page-b"} <= set(everything) and len(everything) >= 2
    # --max-results is the API's own parameter: a single call.
    first = run(env, "list-collections", "--max-results", "1", "--endpoint-url", server)
    assert len(json.loads(first.stdout)["CollectionIds"]) == 1
    assert json.loads(first.stdout)["NextToken"]
    pages = run(
        env,
        "list-collections",
        "--max-results",
        "1",
        "--output",
        "yaml-stream",
        "--no-paginate",
        "--endpoint-url",
        server,
    )
    assert len(yaml.safe_load(pages.stdout)) == 1
    streamed = run(env, "list-collections", "--page-size", "1", "--output", "yaml-stream", *remote)
    assert yaml.safe_load(streamed.stdout) == [[name] for name in everything]
    # As in the AWS CLI, --no-paginate rules out the paging options.
    clash = run(env, "list-collections", "--no-paginate", "--page-size", "2", *remote)
    assert clash.returncode == 252 and "Cannot specify --no-paginate" in clash.stderr


def test_options_without_effect_are_reported(env: dict[str, str], server: str, store: str) -> None:
    embedded = run(env, "list-collections", "--cli-read-timeout", "5", "--data-dir", store)
    assert embedded.returncode == 0
    assert "warning: --cli-read-timeout has no effect" in embedded.stderr
    remote = run(env, "list-collections", "--endpoint-url", server, "--data-dir", store)
    assert remote.returncode == 0
    assert "warning: --data-dir has no effect" in remote.stderr


def test_folder_enrolment_in_parallel_against_a_server(
    env: dict[str, str], server: str, photos_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "parallel"
    folder.mkdir()
    photos = sorted((photos_dir / "people" / "barack_obama").glob("*.jpg"))[:6]
    for photo in photos:
        shutil.copy(photo, folder / photo.name)
    remote = ("--endpoint-url", server)
    assert run(env, "create-collection", "--collection-id", "parallel", *remote).returncode == 0
    enrolled = run(
        env,
        "index-faces",
        "--collection-id",
        "parallel",
        "--image-folder",
        str(folder),
        "--max-faces",
        "1",
        "--jobs",
        "3",
        *remote,
    )
    assert enrolled.returncode == 0, enrolled.stderr
    records = json.loads(enrolled.stdout)["FaceRecords"]
    # Merged in the folder's order, however the calls finished.
    assert [r["Face"]["ExternalImageId"] for r in records] == [p.name for p in photos]
    listed = run(env, "list-faces", "--collection-id", "parallel", *remote)
    assert len(json.loads(listed.stdout)["Faces"]) == len(photos)
    refused = run(
        env,
        "index-faces",
        "--collection-id",
        "parallel",
        "--image-folder",
        str(folder),
        "--jobs",
        "0",
        *remote,
    )
    assert refused.returncode == 252 and "--jobs must be at least 1" in refused.stderr


def test_store_option(env: dict[str, str], server: str, postgres) -> None:
    url = postgres.new_database()
    created = run(env, "create-collection", "--collection-id", "shared", "--store", url)
    assert created.returncode == 0, created.stderr
    listed = run(env, "list-collections", "--store", url, "--query", "CollectionIds")
    assert json.loads(listed.stdout) == ["shared"]
    remote = run(env, "list-collections", "--endpoint-url", server, "--store", url)
    assert "warning: --store has no effect" in remote.stderr
    bad = run(env, "list-collections", "--store", "mysql://nowhere/db")
    assert bad.returncode == 254 and "a store is a postgresql:// URL" in bad.stderr
