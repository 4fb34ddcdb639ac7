"""A real PostgreSQL server for the tests: started on a temp folder, stopped at the end.

The server listens only on a unix socket in its own temp folder (no TCP port to
collide with), runs as the ``postgres`` system user when the tests run as root
(``initdb`` and ``postgres`` refuse to run as root), and every wait has a timeout.
Tests can :meth:`PostgresServer.stop` and :meth:`PostgresServer.start` it mid-test
to see what a client does while the database is down.

Binaries: ``$LANGCHAIN_RUNTIME_PG_BIN``, else the newest ``/usr/lib/postgresql/*/bin``.
On a machine without them, install PostgreSQL (``apt-get install -y postgresql``) or
set ``LANGCHAIN_RUNTIME_SKIP_POSTGRES=1`` to skip the PostgreSQL tests knowingly.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

__all__ = ["SKIP_ENV", "PostgresServer", "PostgresUnavailable", "find_bindir"]

SKIP_ENV = "LANGCHAIN_RUNTIME_SKIP_POSTGRES"
_BIN_ENV = "LANGCHAIN_RUNTIME_PG_BIN"
_TIMEOUT = 60.0


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries here, or the server would not start."""


def find_bindir() -> Path:
    """The folder with ``initdb``, ``pg_ctl`` and ``postgres``."""
    explicit = os.environ.get(_BIN_ENV)
    candidates = (
        [explicit]
        if explicit
        else sorted(
            glob.glob("/usr/lib/postgresql/*/bin"),
            key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
            reverse=True,
        )
    )
    for folder in candidates:
        if folder and (Path(folder) / "postgres").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found (looked in $LANGCHAIN_RUNTIME_PG_BIN and "
        "/usr/lib/postgresql/*/bin). Install them with `apt-get install -y postgresql`, or "
        f"set {SKIP_ENV}=1 to skip the PostgreSQL tests."
    )


class PostgresServer:
    """One PostgreSQL server on a temp data folder and a unix socket.

    Example (as in the tests' ``postgres_server`` fixture)::

        server = PostgresServer()
        server.start()
        dsn = server.dsn()          # postgresql://postgres@/postgres?host=/tmp/...
        server.stop(); server.start()
        server.destroy()
    """

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir if bindir is not None else find_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="lcr-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log = self.root / "server.log"
        self.socket_dir.mkdir()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.socket_dir, "postgres", "postgres")
        self._initialized = False

    def _cmd(self, *args: str, timeout: float = _TIMEOUT) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        try:
            result = subprocess.run(
                [*prefix, *args],
                cwd=self.root,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PostgresUnavailable(f"{args[0]} did not finish in {timeout:g}s") from exc
        return result

    def _init(self) -> None:
        result = self._cmd(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        if result.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {result.stderr.strip()}")
        self._initialized = True

    def start(self, timeout: float = _TIMEOUT, *, durable: bool = False) -> None:
        """Start the server (initialising its data folder the first time); waits for it.

        The tests run it without WAL flushes; ``durable`` (benchmarks) flushes each
        commit as a production server does.
        """
        if not self._initialized:
            self._init()
        flush = "" if durable else "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        options = f"-k {self.socket_dir} -h '' {flush}-c max_connections=200"
        result = self._cmd(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            str(int(timeout)),
            "start",
            timeout=timeout + 10,
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise PostgresUnavailable(f"PostgreSQL did not start: {result.stderr.strip()}\n{log}")

    def stop(self, timeout: float = _TIMEOUT, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect clients, abort their transactions)."""
        result = self._cmd(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-m",
            mode,
            "-w",
            "-t",
            str(int(timeout)),
            "stop",
            timeout=timeout + 10,
        )
        if result.returncode != 0 and self.is_running():
            raise PostgresUnavailable(f"PostgreSQL did not stop: {result.stderr.strip()}")

    def is_running(self) -> bool:
        """True while the server's postmaster is up."""
        if not self._initialized:
            return False
        result = self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.data), "status")
        return result.returncode == 0

    def dsn(self, dbname: str = "postgres") -> str:
        """The URL to connect to ``dbname`` on this server."""
        return f"postgresql://postgres@/{dbname}?host={self.socket_dir}"

    def create_database(self) -> str:
        """A new, empty database; returns its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def destroy(self) -> None:
        """Stop the server if it runs, and delete its folder."""
        try:
            if self.is_running():
                self.stop(mode="immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
