"""The command's warm process (issue 11): commands it runs behave as in their own process.

Each test has its own runtime folder (XDG_RUNTIME_DIR), so its own warm process, stopped at the
end; commands run as subprocesses, as a user's shell runs them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from facesearch.cli import warm
from facesearch.vision.models import models_dir

FACESEARCH = str(Path(sys.executable).parent / "facesearch")
OBAMA = "people/barack_obama/1.jpg"


@pytest.fixture
def runtime() -> Iterator[Path]:
    """A runtime folder of the test's own, short (a socket's path has room for 107 bytes)."""
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        yield Path(folder)


@pytest.fixture
def env(tmp_path: Path, runtime: Path) -> Iterator[dict[str, str]]:
    """Warm processes on, in a runtime folder of this test's; no AWS configuration."""
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR")
    home = tmp_path / "home"
    home.mkdir()
    environment = {key: os.environ[key] for key in keep if key in os.environ} | {
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(runtime),
        "FACESEARCH_MODELS_DIR": str(models_dir()),
        "FACESEARCH_DATA_DIR": str(tmp_path / "data"),
        "FACESEARCH_WARM": "1",
    }
    yield environment
    run(environment, "warm", "stop")
    wait_for(lambda: not list(runtime.glob("*/*.sock")), "the warm process to leave")


def run(
    env: dict[str, str], *args: str, cwd: Path | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [FACESEARCH, *args], env=env, cwd=cwd, input=stdin, capture_output=True, timeout=120
    )


def wait_for(condition, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def status(env: dict[str, str]) -> dict[str, int] | None:
    answer = run(env, "warm", "status")
    assert answer.returncode == 0, answer.stderr
    return None if answer.stdout.startswith(b"no warm process") else json.loads(answer.stdout)


def started(env: dict[str, str]) -> dict[str, int]:
    """Run a first command (in its own process, which starts the warm one); wait until ready."""
    first = run(env, "list-collections")
    assert first.returncode == 0, first.stderr
    wait_for(lambda: status(env) is not None, "the warm process")
    answer = status(env)
    assert answer is not None
    return answer


def test_commands_in_the_warm_process_match_their_own_process(
    env: dict[str, str], tmp_path: Path, photos_dir: Path
) -> None:
    before = started(env)["CommandsRun"]
    assert run(env, "create-collection", "--collection-id", "c").returncode == 0
    cold = env | {"FACESEARCH_WARM": "0"}
    photo = (photos_dir / OBAMA).read_bytes()
    commands: list[tuple[tuple[str, ...], dict[str, object]]] = [
        # A relative path: the command's working directory is the caller's.
        (("search-users-by-image", "--collection-id", "c", "--image-bytes", f"fileb://{OBAMA}"),
         {"cwd": photos_dir}),
        (("detect-faces", "--image-bytes", "fileb:///dev/stdin", "--output", "text"),
         {"stdin": photo}),
        (("describe-collection", "--collection-id", "c", "--query", "FaceCount"), {}),
        (("describe-collection", "--collection-id", "missing"), {}),  # 254 and the error
        (("search-users", "--collection-id", "c", "--user-id", "u", "--max-users", "1.5"), {}),
        (("list-collections", "--data-dir", str(tmp_path / "other")), {}),
        (("--version",), {}),  # names the botocore imported: the pinned one, not awscli's copy
    ]  # fmt: skip
    for args, options in commands:
        warm_run = run(env, *args, **options)  # type: ignore[arg-type]
        own = run(cold, *args, **options)  # type: ignore[arg-type]
        assert (warm_run.returncode, warm_run.stdout, warm_run.stderr) == (
            own.returncode,
            own.stdout,
            own.stderr,
        ), args
    codes = [run(env, *args, **options).returncode for args, options in commands]  # type: ignore[arg-type]
    assert codes == [0, 0, 0, 254, 252, 0, 0]
    after = status(env)
    assert after is not None
    # The warm runs above (the own-process ones started no second warm process).
    assert after["CommandsRun"] - before >= 2 * len(commands)


def test_commands_on_a_postgresql_store(env: dict[str, str], postgres) -> None:
    """With $FACESEARCH_STORE the warm process itself holds no connection; each command opens
    its own, as in its own process."""
    env = env | {"FACESEARCH_STORE": postgres.new_database()}
    started(env)
    assert run(env, "create-collection", "--collection-id", "shared").returncode == 0
    cold = env | {"FACESEARCH_WARM": "0"}
    for args in (("list-collections",), ("describe-collection", "--collection-id", "shared")):
        warm_run, own = run(env, *args), run(cold, *args)
        assert warm_run.returncode == own.returncode == 0, warm_run.stderr
        assert warm_run.stdout == own.stdout
    assert json.loads(run(env, "list-collections").stdout)["CollectionIds"] == ["shared"]


def test_concurrent_commands_all_run(env: dict[str, str], photos_dir: Path) -> None:
    started(env)
    assert run(env, "create-collection", "--collection-id", "c").returncode == 0
    search = [FACESEARCH, "search-users-by-image", "--collection-id", "c",
              "--image-bytes", f"fileb://{photos_dir / OBAMA}"]  # fmt: skip
    processes = [
        subprocess.Popen(search, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0]
    assert all(stderr == b"" for _, stderr in outputs)
    assert len({stdout for stdout, _ in outputs}) == 1


def test_ctrl_c_interrupts_the_command(env: dict[str, str]) -> None:
    started(env)
    # Reads its image from a pipe that stays open: it waits until interrupted.
    command = subprocess.Popen(
        [FACESEARCH, "detect-faces", "--image-bytes", "fileb:///dev/stdin"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for(lambda: (status(env) or {}).get("CommandsRunning") == 1, "the command to run")
    command.send_signal(signal.SIGINT)
    command.communicate(timeout=30)
    assert command.returncode == 130
    wait_for(lambda: (status(env) or {}).get("CommandsRunning") == 0, "the command to end")


def test_an_idle_warm_process_leaves(env: dict[str, str], runtime: Path) -> None:
    env = env | {"FACESEARCH_WARM_IDLE": "1"}
    started(env)
    wait_for(lambda: not list(runtime.glob("*/*.sock")), "the idle process to leave")
    assert status(env) is None
    # The next command runs in its own process, and starts a warm process again.
    assert run(env, "list-collections").returncode == 0
    wait_for(lambda: status(env) is not None, "a new warm process")


def test_off_runs_every_command_in_its_own_process(env: dict[str, str], runtime: Path) -> None:
    env = env | {"FACESEARCH_WARM": "0"}
    assert run(env, "list-collections").returncode == 0
    time.sleep(1.0)
    assert not list(runtime.glob("*/*.sock"))


def test_what_runs_in_the_warm_process() -> None:
    assert warm.forwardable(["search-users-by-image", "--collection-id", "c"])
    for argv in (
        [],
        ["serve"],
        ["setup-models"],
        ["warm", "status"],
        ["detect-faces", "help"],
        ["--help"],
        ["index-faces", "--cli-auto-prompt"],
    ):
        assert not warm.forwardable(argv), argv


def test_each_models_folder_has_its_own_warm_process(
    monkeypatch: pytest.MonkeyPatch, runtime: Path
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    build = warm.build_id()
    monkeypatch.setenv("FACESEARCH_MODELS_DIR", "/one")
    one = warm.socket_path(build)
    monkeypatch.setenv("FACESEARCH_MODELS_DIR", "/two")
    assert one is not None and warm.socket_path(build) not in (None, one)
    # A runtime folder others may write to is not used, nor one too deep for a socket.
    (runtime / f"facesearch-{os.getuid()}").chmod(0o777)
    assert warm.socket_path(build) is None
    deep = runtime / ("deep" * 20)
    deep.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(deep))
    assert warm.socket_path(build) is None
    assert (deep / f"facesearch-{os.getuid()}").is_dir()  # made, but too deep for a socket


def test_messages_sent_back_to_back_are_read_one_by_one(tmp_path: Path) -> None:
    """A command that ends at once: "taken" and its exit status reach the caller together."""
    here, there = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with here, there, open(tmp_path / "file", "w") as passed:
        warm.send(there, {"op": "run", "argv": ["x" * 100_000]}, [passed.fileno()])
        warm.send(there, {"taken": True})
        warm.send(there, {"exit": 3})
        time.sleep(0.1)  # all of it waiting in the socket
        request, fds = warm.receive(here, 3)
        assert request is not None and len(request["argv"][0]) == 100_000 and len(fds) == 1
        os.close(fds[0])
        assert [warm.receive(here)[0] for _ in range(2)] == [{"taken": True}, {"exit": 3}]
        there.close()
        assert warm.receive(here) == (None, [])
