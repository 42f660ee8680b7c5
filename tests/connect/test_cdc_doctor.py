"""``nerve cdc doctor`` on real PostgreSQL servers: a ready one passes, and each setting that
stops change data capture is named with the statement that fixes it."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from tests._postgres import PostgresProcess, _bindir, _known_settings


def doctor(dsn: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nerve", "cdc", "doctor", dsn],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def unready_postgres() -> Iterator[PostgresProcess]:
    proc = PostgresProcess(settings={"wal_level": "replica"}).start()
    try:
        yield proc
    finally:
        proc.close()


def test_doctor_passes_a_ready_database_and_warns_of_what_to_mind(
    postgres: PostgresProcess,
) -> None:
    table = f"nokey_{uuid.uuid4().hex[:8]}"
    postgres.execute(f"CREATE TABLE {table} (a int)")
    try:
        done = doctor(postgres.dsn)
        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        assert "ok   wal_level: logical" in lines
        assert "ok   plugin pgoutput: a logical slot can use it" in lines
        assert "ok   plugin wal2json: a logical slot can use it" in lines
        assert f"ok   role: {postgres.user} may replicate" in lines
        assert (
            f"warn table: public.{table} has no primary key: its updates and deletes carry no row"
            in lines
        )
        assert lines[-1] == "ready for change data capture"
    finally:
        postgres.execute(f"DROP TABLE {table}")


def test_doctor_names_what_to_change(unready_postgres: PostgresProcess) -> None:
    unready_postgres.execute("CREATE ROLE plain LOGIN")
    done = doctor(unready_postgres.dsn)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    at = lines.index("FIX  wal_level: replica (the WAL lacks what logical decoding reads)")
    assert lines[at + 1] == "     -> ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL"
    assert lines[-1] == "1 to fix"

    plain = doctor(unready_postgres.dsn.replace(f"user={unready_postgres.user}", "user=plain"))
    assert plain.returncode == 1
    assert "FIX  role: plain has neither REPLICATION nor SUPERUSER" in plain.stdout
    assert '-> ALTER ROLE "plain" WITH REPLICATION;  (as a superuser)' in plain.stdout
    assert plain.stdout.splitlines()[-1] == "2 to fix"


def test_doctor_says_when_it_cannot_reach_the_database() -> None:
    done = doctor("host=127.0.0.1 port=1 dbname=none user=none connect_timeout=2")
    assert done.returncode == 2
    assert done.stderr.startswith("nerve cdc doctor: cannot check the database:")


def test_doctor_names_the_setting_that_keeps_out_wal2json() -> None:
    proc = PostgresProcess(settings={"output_plugin_libraries": "'pgoutput'"})
    if "output_plugin_libraries" not in _known_settings(_bindir()):
        proc.close()
        pytest.skip("this PostgreSQL lets every role use any output plugin (before 15.20)")
    proc.start()
    try:
        done = doctor(proc.dsn)
        lines = done.stdout.splitlines()
        refused = 'library "wal2json" may not be used as an output plugin'
        at = lines.index(f"warn plugin wal2json: {refused}")
        assert lines[at + 1] == (
            "     -> ALTER SYSTEM SET output_plugin_libraries = 'pgoutput, wal2json';"
            " SELECT pg_reload_conf();"
        )
        assert done.returncode == 0  # Debezium needs only pgoutput
    finally:
        proc.close()
