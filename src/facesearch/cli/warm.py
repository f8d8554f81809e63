"""The command's warm process, client side: hand a command line to it, or start one.

A ``facesearch`` command spends most of its wall time getting ready (importing awscli, botocore,
OpenCV and LiteRT, loading the service model, reading the models and building networks) and
little on the call itself. After a command has run, it starts a warm process in the background
(:mod:`facesearch.cli.warm_process`) that is ready once and forks a copy of itself for each later
command line: the copy takes over the caller's standard streams, working directory, umask and
environment, runs the command as the command would, and its exit status comes back here. The
caller itself imports nothing heavier than the standard library's socket.

One warm process serves one user and one build of facesearch; it leaves after WARM_IDLE seconds
without a command. ``FACESEARCH_WARM=0`` turns it off (every command runs in its own process);
``facesearch warm status|stop`` shows or stops the running ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import site
import socket
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Seconds a warm process waits for a command before it leaves ($FACESEARCH_WARM_IDLE).
WARM_IDLE = 600.0
# Seconds a command waits for a warm process to take it; it is then still starting (its first
# preparation takes about a second, more on a busy machine).
TAKE_TIMEOUT = 60.0
# The environment that shapes what a warm process has ready: a command whose values differ
# (another models directory, another botocore data path, another stdio encoding) gets its own.
_SHAPING = (
    "FACESEARCH_MODELS_DIR",
    "XDG_CACHE_HOME",
    "HOME",
    "AWS_DATA_PATH",
    "PYTHONIOENCODING",
    "PYTHONUTF8",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
)
_HEADER = struct.Struct("!I")
_MAX_SOCKET_PATH = 107
_MAX_MESSAGE = 16 << 20  # a command line and its environment: far less


class WarmError(Exception):
    """A warm process took a command line but could not say how it ended."""


def enabled() -> bool:
    """Whether commands use (and start) warm processes: ``$FACESEARCH_WARM`` is not 0, on Linux
    (the warm process waits on its children with pidfd_open)."""
    if not (hasattr(os, "pidfd_open") and hasattr(socket, "send_fds")):
        return False
    return os.environ.get("FACESEARCH_WARM", "1").strip().lower() not in ("0", "off", "no")


def forwardable(argv: list[str]) -> bool:
    """Whether a warm process may run this command line: not help (its pager needs the
    terminal) nor prompting, nor the commands that are not operations."""
    if not argv or argv[0] in ("serve", "setup-models", "warm"):
        return False
    if any(arg in ("help", "--help", "-h", "--cli-auto-prompt") for arg in argv):
        return False
    return os.environ.get("AWS_CLI_AUTO_PROMPT", "off") == "off"


def runtime_dir() -> Path | None:
    """This user's folder of warm-process sockets, made private; None if it cannot be (someone
    else owns it, or others may write to it)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or os.environ.get("TMPDIR") or "/tmp"
    path = Path(base) / f"facesearch-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = path.lstat()
    except OSError:
        return None
    if info.st_uid != os.getuid() or info.st_mode & 0o077 or not path.is_dir():
        return None
    return path


def build_id() -> str:
    """What identifies this program: facesearch's files, the installed packages beside it (any
    pip install changes their folder) and the interpreter."""
    package = Path(__file__).resolve().parents[1]
    parts = [sys.executable, sys.version]
    for root, _, files in sorted(os.walk(package)):
        for name in sorted(files):
            if not name.endswith((".pyc", ".pyo")):
                info = os.stat(os.path.join(root, name))
                parts.append(f"{root}/{name}:{info.st_mtime_ns}:{info.st_size}")
    for folder in site.getsitepackages():
        try:
            parts.append(f"{folder}:{os.stat(folder).st_mtime_ns}")
        except OSError:
            continue
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def socket_path(build: str) -> Path | None:
    """Where the warm process of this build and environment listens; None without a private
    folder with room for a socket's path."""
    folder = runtime_dir()
    if folder is None:
        return None
    shaping = json.dumps([build, os.getuid(), [os.environ.get(k) for k in _SHAPING]])
    path = folder / f"warm-{hashlib.sha256(shaping.encode()).hexdigest()[:20]}.sock"
    # A socket's path has room for 107 bytes: a deeper folder means no warm process.
    return path if len(os.fsencode(path)) <= _MAX_SOCKET_PATH else None


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    """One length-prefixed JSON message, with file descriptors attached if given."""
    data = json.dumps(message).encode()
    payload = _HEADER.pack(len(data)) + data
    if fds:
        sent = socket.send_fds(sock, [payload], fds)
        payload = payload[sent:]
    sock.sendall(payload)


def receive(sock: socket.socket, max_fds: int = 0) -> tuple[dict[str, Any] | None, list[int]]:
    """One message and the descriptors sent with it; (None, []) if the peer closed first. Reads
    exactly the message's bytes: one sent right after it stays for the next call."""
    if max_fds:
        head, fds, _, _ = socket.recv_fds(sock, _HEADER.size, max_fds)
    else:
        head, fds = sock.recv(_HEADER.size), []
    whole = _exactly(sock, head, _HEADER.size)
    body = None
    if whole is not None:
        (size,) = _HEADER.unpack(whole)
        if size > _MAX_MESSAGE:
            raise OSError(f"a message of {size} bytes")
        body = _exactly(sock, b"", size)
    if body is None:
        for fd in fds:
            os.close(fd)
        return None, []
    return json.loads(body), fds


def _exactly(sock: socket.socket, start: bytes, size: int) -> bytes | None:
    """``start`` completed to ``size`` bytes from ``sock``; None if it closes first."""
    data = bytearray(start)
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


@dataclass(frozen=True)
class Place:
    """Where this command's warm process listens, and the environment the command started
    with (awscli changes AWS_DATA_PATH when imported; the warm process must see the original)."""

    path: Path
    env: dict[str, str]
    build: str


def place(argv: list[str]) -> Place | None:
    """The warm process this command line may use or start; None when it runs on its own
    (FACESEARCH_WARM=0, not forwardable, no private runtime folder). Call it before awscli is
    imported."""
    if not (enabled() and forwardable(argv)):
        return None
    build = build_id()
    path = socket_path(build)
    return None if path is None else Place(path, dict(os.environ), build)


def call(argv: list[str], where: Place) -> int | None:
    """Run a command line in this user's warm process and return its exit status; None when
    there is no warm process to take it (the caller runs it itself)."""
    sock = _connect(where.path)
    if sock is None:
        return None
    with sock:
        umask = os.umask(0o022)
        os.umask(umask)
        request = {
            "op": "run",
            "build": where.build,
            "argv": argv,
            "cwd": os.getcwd(),
            "env": where.env,
            "umask": umask,
        }
        try:
            send(sock, request, [0, 1, 2])
        except OSError:
            return None  # e.g. a standard stream is closed: run it here
        return _outcome(sock)


def _connect(path: Path) -> socket.socket | None:
    """A connection to the warm process listening at ``path``; None if none listens."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock


def _outcome(sock: socket.socket) -> int | None:
    """Wait for the command's exit status (None: it was not taken, so it never ran). Ctrl-C is
    passed on (the command stops as it would on its own); a second one leaves at once."""
    sock.settimeout(TAKE_TIMEOUT)
    try:
        taken, _ = receive(sock)
    except TimeoutError:
        # Not known to have run, nor known not to: running it here could run it twice.
        raise WarmError(f"no answer in {TAKE_TIMEOUT:.0f} s") from None
    if taken is None or not taken.get("taken"):
        return None  # refused (leaving, or another build) or closed: it never ran
    sock.settimeout(None)
    interrupted = False
    while True:
        try:
            ended, _ = receive(sock)
        except KeyboardInterrupt:
            if interrupted:
                return 130
            interrupted = True
            sock.shutdown(socket.SHUT_WR)  # the warm process interrupts the command
            continue
        if ended is None:
            raise WarmError("it ended before the command did")
        return int(ended["exit"])


def ask(op: str) -> dict[str, Any] | None:
    """``status`` or ``stop`` to this build's warm process; None if none is running."""
    path = socket_path(build_id())
    if path is None:
        return None
    sock = _connect(path)
    if sock is None:
        return None
    with sock:
        sock.settimeout(TAKE_TIMEOUT)
        send(sock, {"op": op})
        answer, _ = receive(sock)
        return answer


def start(where: Place) -> None:
    """Start this build's warm process in the background, unless one is running or starting
    (it holds a lock on its socket's lock file from start to end)."""
    path = where.path
    import fcntl
    import subprocess

    with open(path.with_suffix(".lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # running, or starting
        fcntl.flock(lock, fcntl.LOCK_UN)
    with open(path.with_suffix(".log"), "wb") as log:
        subprocess.Popen(
            # -P: no working directory on sys.path (a command's own process has none either),
            # and cwd /: the process must not hold the caller's directory.
            [sys.executable, "-P", "-m", "facesearch.cli.warm_process", str(path)],
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=where.env,
            start_new_session=True,
            close_fds=True,
        )


def main(argv: list[str]) -> int:
    """``facesearch warm status|stop``."""
    if argv not in (["status"], ["stop"]):
        sys.stderr.write("usage: facesearch warm status|stop\n")
        return 252
    answer = ask(argv[0])
    if answer is None:
        sys.stdout.write("no warm process is running\n")
        return 0
    sys.stdout.write(json.dumps(answer, indent=4) + "\n")
    return 0
