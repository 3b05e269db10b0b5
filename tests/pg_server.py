"""A throwaway PostgreSQL server for the tests: initdb + pg_ctl in a temporary folder.

The server listens on 127.0.0.1 on a free port, trusts local connections (it holds nothing
but test data), runs without fsync, and is removed with its folder when the session ends.

- `CRM_TEST_PG_URL=postgresql+psycopg://user@host:port/db` uses a server you already run
  instead (each test gets its own schema there, dropped afterwards).
- `CRM_TEST_PG=require` (what `make test` sets) turns "no PostgreSQL here" into an error;
  the default `auto` skips the PostgreSQL variants with the reason; `off` skips them.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user that
the Debian package creates (`runuser -u postgres`), and the folder is handed to it.

Run `python -m tests.pg_server` to start one by hand: it prints the URL and waits for Ctrl+C.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_USER = "crm"
PG_DB = "crm_test"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries here, or the server did not start; the message says which."""


def _bin_dir() -> Path:
    """Folder holding initdb, pg_ctl and postgres (PATH first, then Debian's layout)."""
    candidates = []
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(Path(found).resolve().parent)
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in candidates:
        if all((folder / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or in "
        "/usr/lib/postgresql/*/bin; install them with `apt-get install -y postgresql-15` "
        "(make test does this when they are missing)"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One server process over a fresh cluster in a temporary folder."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.folder = Path(tempfile.mkdtemp(prefix="crm-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = 0
        self.run_as: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError as exc:
                raise PostgresUnavailable(
                    "running as root and there is no `postgres` user to run the server as "
                    "(the Debian package postgresql-15 creates it)"
                ) from exc
            self.run_as = "postgres"
            shutil.chown(self.folder, user="postgres")

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        command = [str(a) for a in args]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=self.folder
        )

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the test database."""
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{PG_DB}"

    def start(self) -> PostgresServer:
        """initdb, start on a free loopback port, create the test database; returns self."""
        init = self._run(
            self.bin / "initdb",
            "-D",
            self.data,
            "-U",
            PG_USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        if init.returncode:
            raise PostgresUnavailable(f"initdb failed: {init.stderr.strip()[-2000:]}")
        for _attempt in range(5):
            self.port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=200 -c shared_buffers=64MB"
            )
            started = self._run(
                self.bin / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60",
                "-o", options, "start",
            )  # fmt: skip
            if started.returncode == 0:
                break
        else:
            tail = self.log.read_text()[-2000:] if self.log.exists() else started.stderr
            raise PostgresUnavailable(f"the PostgreSQL server did not start: {tail}")
        self._create_database()
        return self

    def _create_database(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(
                    host="127.0.0.1", port=self.port, user=PG_USER, dbname="postgres",
                    autocommit=True,
                ) as conn:  # fmt: skip
                    conn.execute(f"CREATE DATABASE {PG_DB}")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        """Stop the server at once and delete its folder."""
        if self.data.exists():
            self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


if __name__ == "__main__":
    server = PostgresServer().start()
    print(f"CRM_DATABASE_URL={server.url}  (Ctrl+C stops and deletes it)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
