"""The command's warm process: made ready once, it forks a copy of itself for each command line.

Started in the background by :func:`facesearch.cli.warm.start` as
``python -m facesearch.cli.warm_process SOCKET``. It listens on SOCKET at once (commands that
arrive while it gets ready wait), then imports the CLI, the service and the analyser, loads the
service model and endpoints into one botocore data loader, and reads the models and builds
one-thread networks (``Analyzer.prepare_for_fork``). Each command line then runs in a fork of
this ready process that takes over the caller's standard streams (passed over the socket),
working directory, umask and environment: the command runs exactly as in its own process, store
and all, and nothing one command does reaches another. The loop itself runs on one thread, as
forking from a process with other threads risks copying a lock that some thread holds.

It leaves after ``$FACESEARCH_WARM_IDLE`` seconds (default ``warm.WARM_IDLE``) without a command,
on SIGTERM or on ``facesearch warm stop``, always after the commands it runs have ended.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import io
import os
import selectors
import signal
import socket
import struct
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The driver before anything of awscli's: it imports botocore first, as a command in its own
# process does. Imported after awscli, "botocore" would be awscli's vendored copy (awscli 1.46
# aliases it with an import hook), another version than the one pinned.
from facesearch.cli import driver, warm


@dataclass
class _Running:
    """A command being run by a child process."""

    pid: int
    pidfd: int
    conn: socket.socket


def _log(message: str) -> None:
    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")
    sys.stderr.flush()


def _prepare() -> Any:
    """Everything a command needs before its call; returns the filled botocore data loader."""
    import awscli.handlers  # noqa: F401  (load_plugins imports it on first use: 70 ms)
    import botocore.session
    from awscli import EnvironmentVariables
    from PIL import Image

    from facesearch.vision.analyzer import get_analyzer
    from facesearch.vision.errors import ModelsMissingError

    Image.init()  # Pillow imports its format plugins on the first open: 20 ms
    loader = botocore.session.Session(EnvironmentVariables).get_component("data_loader")
    # One real command on a scratch store fills the loader with what every command loads. The
    # embedded store whatever $FACESEARCH_STORE says: this process must not hold a database
    # connection, nor its pool's threads, when it forks.
    shared_store = os.environ.pop("FACESEARCH_STORE", None)
    try:
        with tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stdout(io.StringIO()):
            driver.run(["list-collections", "--data-dir", scratch], loader=loader)
    finally:
        if shared_store is not None:
            os.environ["FACESEARCH_STORE"] = shared_store
    try:
        get_analyzer().prepare_for_fork()
    except ModelsMissingError as error:
        _log(f"models not ready, commands will say so: {error}")
    return loader


class WarmProcess:
    """The accept loop: takes command lines, forks, and reports each child's exit status."""

    def __init__(
        self,
        listener: socket.socket,
        lock: io.TextIOWrapper,
        path: Path,
        build: str,
        loader: Any,
        idle: float,
    ) -> None:
        self._listener = listener
        self._lock = lock  # closed in children: a command outliving this process must not hold it
        self._path = path
        self._build = build  # of the files this process imported
        self._loader = loader
        self._idle = idle
        self._selector = selectors.DefaultSelector()
        self._running: dict[int, _Running] = {}  # by pidfd
        self._stopping = False
        self._since = time.time()
        self._last = time.monotonic()
        self._served = 0
        self._wake = socket.socketpair()

    def serve(self) -> None:
        """Run until idle for ``idle`` seconds, or stopped, and no command is running."""
        self._selector.register(self._listener, selectors.EVENT_READ, self._accept)
        # SIGTERM wakes the loop through this pair (a handler alone would wait for select).
        for end in self._wake:
            end.setblocking(False)
        signal.set_wakeup_fd(self._wake[1].fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, lambda *_: None)
        self._selector.register(self._wake[0], selectors.EVENT_READ, self._woken)
        while self._running or not (self._stopping or time.monotonic() - self._last >= self._idle):
            waited = time.monotonic() - self._last
            timeout = None if self._running else max(0.0, self._idle - waited)
            for key, _ in self._selector.select(timeout):
                key.data(key.fileobj)
        self._stop()

    def _woken(self, wake_read: socket.socket) -> None:
        if signal.SIGTERM in wake_read.recv(64):  # the numbers of the signals caught
            self._stop()

    def _stop(self) -> None:
        """Take no more commands: the socket goes, so the next command starts a new process."""
        if not self._stopping:
            self._stopping = True
            self._selector.unregister(self._listener)
            self._listener.close()
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()

    def _accept(self, listener: socket.socket) -> None:
        conn, _ = listener.accept()
        pid, uid, _ = struct.unpack(
            "3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        )
        conn.settimeout(5.0)
        fds: list[int] = []
        try:
            if uid != os.getuid():  # the folder is private; this is a second lock
                raise OSError(f"peer {pid} runs as uid {uid}")
            request, fds = warm.receive(conn, 3)
            if request is None:
                raise OSError("closed before a request")
            self._last = time.monotonic()
            op = request.get("op")
            if op == "run" and len(fds) == 3:
                self._run(conn, request, fds)
                return
            if op == "status":
                warm.send(conn, self._status())
            elif op == "stop":
                warm.send(conn, self._status())
                self._stop()
            else:
                warm.send(conn, {"refused": f"unknown request {op!r}"})
        except OSError as error:
            _log(f"request dropped: {error}")
        for fd in fds:
            os.close(fd)
        conn.close()

    def _status(self) -> dict[str, Any]:
        return {
            "Pid": os.getpid(),
            "Socket": str(self._path),
            "Since": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self._since)),
            "CommandsRun": self._served,
            "CommandsRunning": len(self._running),
            "IdleTimeoutSeconds": self._idle,
        }

    def _run(self, conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
        if self._stopping or request.get("build") != self._build:
            warm.send(conn, {"refused": "leaving" if self._stopping else "another build"})
            # Files changed since this process imported them: make way for a new one.
            self._stop()
            raise OSError("refused")
        # Said before the fork: if the caller has gone meanwhile this fails and nothing runs.
        warm.send(conn, {"taken": True})
        sys.stdout.flush()
        sys.stderr.flush()  # a child must not inherit (and write out) this process's buffers
        pid = os.fork()
        if pid == 0:
            self._child(request, fds)
        for fd in fds:
            os.close(fd)
        conn.settimeout(None)
        pidfd = os.pidfd_open(pid)
        running = _Running(pid, pidfd, conn)
        self._running[pidfd] = running
        self._selector.register(pidfd, selectors.EVENT_READ, self._ended)
        self._selector.register(conn, selectors.EVENT_READ, lambda _: self._hang_up(running))

    def _hang_up(self, running: _Running) -> None:
        """The caller closed its side (Ctrl-C, or it died): interrupt the command, as Ctrl-C
        would have in its own process."""
        self._selector.unregister(running.conn)
        os.kill(running.pid, signal.SIGINT)

    def _ended(self, pidfd: int) -> None:
        running = self._running.pop(pidfd)
        _, status = os.waitpid(running.pid, 0)
        self._selector.unregister(pidfd)
        os.close(pidfd)
        with contextlib.suppress(KeyError):
            self._selector.unregister(running.conn)
        exit_code = os.waitstatus_to_exitcode(status)
        with contextlib.suppress(OSError):
            warm.send(running.conn, {"exit": exit_code if exit_code >= 0 else 128 - exit_code})
        running.conn.close()
        self._served += 1
        self._last = time.monotonic()

    def _child(self, request: dict[str, Any], fds: list[int]) -> None:
        """In the fork: become the caller's command, run it, exit with its status."""
        status = 255
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.set_wakeup_fd(-1)
            self._selector.close()
            for end in self._wake:
                end.close()
            self._lock.close()
            if not self._stopping:
                self._listener.close()
            for running in self._running.values():
                running.conn.close()
                os.close(running.pidfd)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            _reopen_standard_streams()
            os.chdir(request["cwd"])
            os.umask(int(request["umask"]))
            data_path = os.environ["AWS_DATA_PATH"]  # as awscli set it when imported here
            os.environ.clear()
            os.environ.update(request["env"])
            os.environ["AWS_DATA_PATH"] = data_path
            tempfile.tempdir = None  # found again from the caller's TMPDIR
            argv = [str(arg) for arg in request["argv"]]
            sys.argv = ["facesearch", *argv]
            status = driver.run(argv, loader=self._loader)
        except SystemExit as exit:
            status = exit.code if isinstance(exit.code, int) else 1
        except KeyboardInterrupt:
            status = 128 + signal.SIGINT
        except BaseException:
            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(status)


def _reopen_standard_streams() -> None:
    """sys.stdin/stdout/stderr over the caller's descriptors, buffered as Python would have
    buffered them there (line by line on a terminal), with this interpreter's encodings."""
    for name, fd, mode in (("stdin", 0, "r"), ("stdout", 1, "w"), ("stderr", 2, "w")):
        old = getattr(sys, name)
        stream = open(  # noqa: SIM115 (the stream lives as long as the process)
            fd,
            mode,
            encoding=old.encoding,
            errors=old.errors,
            closefd=False,
            newline=None if mode == "r" else "\n",
        )
        # Text mode gives a TextIOWrapper; typeshed can't tell from a mode held in a variable.
        assert isinstance(stream, io.TextIOWrapper)
        if mode == "w":
            stream.reconfigure(line_buffering=name == "stderr" or os.isatty(fd))
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def main(argv: list[str]) -> int:
    """Serve the warm process at the socket path ``argv[0]`` until idle."""
    path = Path(argv[0])
    lock = open(path.with_suffix(".lock"), "a")  # noqa: SIM115 (held for the process's life)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another one is running or starting
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a dead one's: the living one would hold the lock
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    started = time.monotonic()
    idle = float(os.environ.get("FACESEARCH_WARM_IDLE", warm.WARM_IDLE))
    build = warm.build_id()
    try:
        loader = _prepare()
        # Objects made so far stay as they are: the collector never touches them again, so
        # children do not copy the pages it would write to.
        gc.freeze()
        _log(f"ready in {time.monotonic() - started:.2f} s at {path} (pid {os.getpid()})")
        WarmProcess(listener, lock, path, build, loader, idle).serve()
    finally:
        with contextlib.suppress(FileNotFoundError):
            if path.exists():
                path.unlink()
    _log("left")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
