"""Debezium 3.6's PostgreSQL connector on Kafka Connect, on nerve and on Apache Kafka: the
initial snapshot, then inserts, updates and deletes as they commit, a column added while it
streams, and a connector stopped and resumed carrying on where it left off; the Debezium JDBC
sink writing a topic of change events into a table."""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
import pytest

from tests._connect import ConnectWorker, await_status
from tests._postgres import PostgresProcess
from tests.connect._topics import TopicReader
from tests.connect.conftest import ConnectCluster

POSTGRES_SOURCE = "io.debezium.connector.postgresql.PostgresConnector"
JDBC_SINK = "io.debezium.connector.jdbc.JdbcSinkConnector"


def debezium_config(pg: PostgresProcess, table: str, prefix: str, **extra: str) -> dict[str, str]:
    return {
        "connector.class": POSTGRES_SOURCE,
        "tasks.max": "1",
        "database.hostname": "127.0.0.1",
        "database.port": str(pg.port),
        "database.user": pg.user,
        "database.password": "unused",  # trust authentication; Debezium asks for one
        "database.dbname": pg.database,
        "topic.prefix": prefix,
        "plugin.name": "pgoutput",
        "slot.name": f"{prefix}_slot",
        "publication.name": f"{prefix}_pub",
        "publication.autocreate.mode": "filtered",
        "table.include.list": f"public.{table}",
        "snapshot.mode": "initial",
        **extra,
    }


def ops(events: list[tuple[Any, Any]]) -> list[str | None]:
    return [value["op"] if value else None for _, value in events]


def afters(events: list[tuple[Any, Any]]) -> list[Any]:
    return [value["after"] if value else None for _, value in events]


def new_name() -> str:
    return f"dbz{uuid.uuid4().hex[:10]}"


def drop_slot(pg: PostgresProcess, slot: str) -> None:
    """Debezium leaves its slot behind when deleted; a slot left behind pins WAL."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            pg.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                " WHERE slot_name = %s",
                (slot,),
            )
            return
        except psycopg.errors.ObjectInUse:
            time.sleep(0.5)


def test_debezium_snapshot_then_streams_inserts_updates_deletes_and_a_new_column(
    connect_cluster: ConnectCluster, postgres: PostgresProcess
) -> None:
    worker, name = connect_cluster.worker, new_name()
    table = f"customers_{name}"
    postgres.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text NOT NULL, email text)")
    postgres.execute(f"ALTER TABLE {table} REPLICA IDENTITY FULL")  # before images of updates
    postgres.execute(
        f"INSERT INTO {table} VALUES (1, 'ada', 'ada@example.com'), (2, 'grace', NULL),"
        " (3, 'edsger', 'ewd@example.com')"
    )
    worker.request("PUT", f"/connectors/{name}/config", debezium_config(postgres, table, name))
    reader = TopicReader(connect_cluster.bootstrap, f"{name}.public.{table}")
    try:
        await_status(worker, name)
        snapshot = reader.take(3)
        assert ops(snapshot) == ["r", "r", "r"], snapshot
        assert [key for key, _ in snapshot] == [{"id": 1}, {"id": 2}, {"id": 3}]
        assert afters(snapshot)[1] == {"id": 2, "name": "grace", "email": None}
        assert snapshot[0][1]["source"]["snapshot"] in ("first", "true")

        postgres.execute(f"INSERT INTO {table} VALUES (4, 'barbara', 'bl@example.com')")
        postgres.execute(f"UPDATE {table} SET email = 'grace@example.com' WHERE id = 2")
        postgres.execute(f"DELETE FROM {table} WHERE id = 3")
        changes = reader.take(4)  # the delete is followed by its tombstone
        assert ops(changes) == ["c", "u", "d", None], changes
        insert, update, delete, tombstone = (value for _, value in changes)
        assert insert["before"] is None
        assert insert["after"] == {"id": 4, "name": "barbara", "email": "bl@example.com"}
        assert update["before"] == {"id": 2, "name": "grace", "email": None}
        assert update["after"]["email"] == "grace@example.com"
        assert delete["before"]["id"] == 3 and delete["after"] is None
        assert changes[3][0] == {"id": 3} and tombstone is None
        lsns = [value["source"]["lsn"] for value in (insert, update, delete)]
        assert lsns == sorted(lsns) and len(set(lsns)) == 3
        assert insert["source"]["table"] == table and insert["source"]["txId"] > 0

        postgres.execute(f"ALTER TABLE {table} ADD COLUMN phone text")
        postgres.execute(f"INSERT INTO {table} VALUES (5, 'alan', NULL, '+44 1234')")
        (added,) = reader.take(1)
        assert added[1]["after"] == {"id": 5, "name": "alan", "email": None, "phone": "+44 1234"}
        assert reader.rest() == []
    finally:
        reader.close()
        worker.request("DELETE", f"/connectors/{name}")
        drop_slot(postgres, f"{name}_slot")


def test_debezium_connector_stopped_and_resumed_carries_on_where_it_left_off(
    connect_on_nerve: ConnectCluster, postgres: PostgresProcess
) -> None:
    worker, name = connect_on_nerve.worker, new_name()
    table = f"orders_{name}"
    postgres.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, total numeric(10, 2))")
    postgres.execute(f"INSERT INTO {table} SELECT i, i * 1.5 FROM generate_series(1, 50) i")
    worker.request(
        "PUT",
        f"/connectors/{name}/config",
        debezium_config(postgres, table, name, **{"decimal.handling.mode": "string"}),
    )
    reader = TopicReader(connect_on_nerve.bootstrap, f"{name}.public.{table}")
    try:
        await_status(worker, name)
        assert ops(reader.take(50)) == ["r"] * 50
        postgres.execute(f"INSERT INTO {table} SELECT i, i FROM generate_series(51, 60) i")
        assert [a["id"] for a in afters(reader.take(10))] == list(range(51, 61))

        # Stopped: the task goes and its offsets stay; rows committed meanwhile wait in the slot.
        worker.request("PUT", f"/connectors/{name}/stop")
        await_stopped(worker, name)
        postgres.execute(f"INSERT INTO {table} SELECT i, i FROM generate_series(61, 80) i")
        postgres.execute(f"UPDATE {table} SET total = 0 WHERE id = 1")
        worker.request("PUT", f"/connectors/{name}/resume")
        await_status(worker, name)
        resumed = reader.take(21)
        assert ops(resumed) == ["c"] * 20 + ["u"], resumed
        assert [a["id"] for a in afters(resumed)] == [*range(61, 81), 1]
        assert afters(resumed)[-1] == {"id": 1, "total": "0.00"}
        # A restart of the task resumes too: no second snapshot, nothing again.
        worker.request("POST", f"/connectors/{name}/restart?includeTasks=true")
        await_status(worker, name)
        postgres.execute(f"INSERT INTO {table} VALUES (81, 81)")
        assert [a["id"] for a in afters(reader.take(1))] == [81]
        assert reader.rest() == []
    finally:
        reader.close()
        worker.request("DELETE", f"/connectors/{name}")
        drop_slot(postgres, f"{name}_slot")


def await_stopped(worker: ConnectWorker, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = worker.request("GET", f"/connectors/{name}/status")
        if status["connector"]["state"] == "STOPPED" and not status["tasks"]:
            return
        time.sleep(0.3)
    raise AssertionError(f"{name} not stopped: {status}")


@pytest.mark.slow
def test_debezium_jdbc_sink_writes_change_events_into_a_table(
    connect_on_nerve: ConnectCluster, postgres: PostgresProcess
) -> None:
    worker, name = connect_on_nerve.worker, new_name()
    table, copy = f"items_{name}", f"items_copy_{name}"
    topic = f"{name}.public.{table}"
    postgres.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, label text, qty int)")
    postgres.execute(f"INSERT INTO {table} SELECT i, 'item ' || i, i FROM generate_series(1, 20) i")
    # The sink needs each record's schema: both connectors use the JSON converter with schemas.
    with_schemas = {
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "true",
        "value.converter.schemas.enable": "true",
    }
    worker.request(
        "PUT",
        f"/connectors/{name}/config",
        {**debezium_config(postgres, table, name), **with_schemas},
    )
    worker.request(
        "PUT",
        f"/connectors/{name}-sink/config",
        {
            "connector.class": JDBC_SINK,
            "tasks.max": "1",
            "topics": topic,
            "connection.url": f"jdbc:postgresql://127.0.0.1:{postgres.port}/{postgres.database}",
            "connection.username": postgres.user,
            "connection.password": "unused",
            "insert.mode": "upsert",
            "primary.key.mode": "record_key",
            "delete.enabled": "true",
            "schema.evolution": "basic",
            "collection.name.format": copy,
            **with_schemas,
        },
    )
    try:
        await_status(worker, name)
        await_status(worker, f"{name}-sink")
        postgres.execute(f"UPDATE {table} SET qty = qty * 10 WHERE id <= 5")
        postgres.execute(f"DELETE FROM {table} WHERE id > 15")
        postgres.execute(f"INSERT INTO {table} VALUES (100, 'new', 1)")
        want = postgres.execute(f"SELECT id, label, qty FROM {table} ORDER BY id")
        got = await_rows(postgres, f"SELECT id, label, qty FROM {copy} ORDER BY id", want)
        assert got == want
    finally:
        for connector in (name, f"{name}-sink"):
            worker.request("DELETE", f"/connectors/{connector}")
        drop_slot(postgres, f"{name}_slot")


def await_rows(
    pg: PostgresProcess, sql: str, want: list[tuple[object, ...]], timeout: float = 60
) -> list[tuple[object, ...]]:
    deadline = time.monotonic() + timeout
    got: list[tuple[object, ...]] = []
    while time.monotonic() < deadline:
        try:
            got = pg.execute(sql)
        except psycopg.errors.UndefinedTable:
            got = []
        if got == want:
            break
        time.sleep(0.5)
    return got
