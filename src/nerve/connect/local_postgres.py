"""PostgreSQL (Debian's packages, ``wal_level=logical``) run in a temporary folder, for the
CDC demo, the tests and the benchmarks: ``initdb``, then ``pg_ctl start`` on a free loopback
port, trust authentication for local connections and replication. PostgreSQL refuses to run
as root, so under root the cluster belongs to the ``postgres`` user (its folder in the system's
temp dir, which that user can enter). A throwaway cluster: fsync is off, so a crash of the
machine loses it (never a crash of a client).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

START_TIMEOUT_S = 60.0


class PostgresError(RuntimeError):
    pass


def bindir() -> Path:
    for version in ("15", "16", "17"):
        path = Path(f"/usr/lib/postgresql/{version}/bin")
        if (path / "initdb").exists():
            return path
    raise PostgresError(
        "PostgreSQL is not installed (Debian: apt-get install postgresql-15 postgresql-15-wal2json)"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def known_settings(bindir: Path) -> set[str]:
    """The names of the settings this server version has (older ones refuse unknown names)."""
    done = subprocess.run(
        [str(bindir / "postgres"), "--describe-config"], capture_output=True, text=True, timeout=60
    )
    return {line.split("\t", 1)[0] for line in done.stdout.splitlines()}


class PostgresProcess:
    """One PostgreSQL cluster with one database (``nerve``) owned by its superuser (``pgtest``)."""

    def __init__(
        self,
        *,
        settings: dict[str, str] | None = None,
        user: str = "pgtest",
        database: str = "nerve",
    ) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="nerve-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.port = _free_port()
        # Not "nerve": the default search_path is "$user", public, so once an es projection
        # creates its schema nerve, a role named nerve would create every unqualified table
        # there, not in public (where Debezium and nerve cdc look for public.<table>).
        self.user = user
        self.database = database
        self.settings = {
            "wal_level": "logical",
            "max_replication_slots": "20",
            "max_wal_senders": "20",
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            # Test data: a crash of the machine loses the cluster, never a crash of a client.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "32MB",
            **(settings or {}),
        }
        self._owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self._owner = pwd.getpwnam("postgres")
            os.chown(self.root, self._owner.pw_uid, self._owner.pw_gid)

    @property
    def dsn(self) -> str:
        return self.dsn_of(self.database)

    def dsn_of(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={database}"

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        cmd = list(argv)
        if self._owner is not None:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    def start(self) -> PostgresProcess:
        binaries = bindir()
        if not (self.data / "PG_VERSION").exists():
            done = self._run(
                str(binaries / "initdb"), "-D", str(self.data), "-U", self.user,
                "--auth=trust", "--encoding=UTF8", "--no-sync",
            )  # fmt: skip
            if done.returncode != 0:
                raise PostgresError(f"initdb failed: {done.stderr}")
            settings = dict(self.settings)
            if "output_plugin_libraries" in known_settings(binaries):
                # PostgreSQL 15.20 and later let a REPLICATION role use only the output plugins
                # listed here (pgoutput and test_decoding by default); nerve cdc uses wal2json.
                plugins = "'pgoutput, test_decoding, wal2json'"
                settings.setdefault("output_plugin_libraries", plugins)
            with (self.data / "postgresql.conf").open("a") as conf:
                conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
            with (self.data / "pg_hba.conf").open("w") as hba:
                hba.write("local all all trust\nhost all all 127.0.0.1/32 trust\n")
                hba.write("host replication all 127.0.0.1/32 trust\n")
        done = self._run(
            str(binaries / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_path), "-w",
            "-t", str(int(START_TIMEOUT_S)), "start",
        )  # fmt: skip
        if done.returncode != 0:
            raise PostgresError(f"pg_ctl start failed: {done.stderr}\n{self.log_tail()}")
        self._await_ready()
        return self

    def _await_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.dsn_of("postgres"), autocommit=True) as c:
                    exists = c.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
                    ).fetchone()
                    if not exists:
                        c.execute(f'CREATE DATABASE "{self.database}"')
                    return
            except psycopg.OperationalError:
                time.sleep(0.2)
        raise PostgresError(f"PostgreSQL not ready after {START_TIMEOUT_S}s:\n{self.log_tail()}")

    def execute(
        self, sql: str, params: tuple[object, ...] | None = None
    ) -> list[tuple[object, ...]]:
        """Run one statement in its own committed transaction; the rows it returns, if any."""
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(sql.encode(), params)
            return list(cur.fetchall()) if cur.description else []

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(bindir() / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
