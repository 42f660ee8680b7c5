"""``nerve cdc postgres``: logical decoding into Kafka without a JVM, in Debezium's envelope;
the snapshot and the stream meet without a gap or an overlap, and SIGKILLs mid-stream lose and
double nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import BaseModel

from nerve.connect import ChangeEvent
from nerve.connect.cdc import CaptureConfig, PostgresCapture
from nerve.service import catalog
from tests._broker import BrokerProcess
from tests._kafka import KafkaProcess
from tests._postgres import PostgresProcess
from tests.connect._topics import TopicReader


class Item(BaseModel):
    id: int
    label: str
    price: Decimal


def start_capture(pg: PostgresProcess, bootstrap: str, prefix: str, table: str, log: Path):
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nerve", "cdc", "postgres", pg.dsn, "--prefix", prefix,
             "--table", f"public.{table}", "-b", bootstrap],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return proc


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("backend_name", ["nerve", "kafka"])
def test_cdc_postgres_snapshot_then_stream_through_sigkills(
    backend_name: str, request: pytest.FixtureRequest, postgres: PostgresProcess, tmp_path: Path
) -> None:
    prefix, table = f"cdc{uuid.uuid4().hex[:8]}", f"items_{backend_name}"
    broker: BrokerProcess | KafkaProcess = request.getfixturevalue(
        "nerve_for_diff" if backend_name == "nerve" else "kafka"
    )
    bootstrap = broker.bootstrap
    postgres.execute(f"DROP TABLE IF EXISTS {table}")
    postgres.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, label text, price numeric(8, 2))")
    postgres.execute(f"INSERT INTO {table} SELECT i, 'old ' || i, i FROM generate_series(1, 100) i")
    log = tmp_path / "cdc.log"
    proc = start_capture(postgres, bootstrap, prefix, table, log)
    total = 600

    # Writes keep coming from before the slot exists to after the last kill: the snapshot's
    # consistent point falls somewhere among them.
    def write() -> None:
        for i in range(101, 101 + total):
            postgres.execute(f"INSERT INTO {table} VALUES (%s, %s, %s)", (i, f"new {i}", i))
            if i % 50 == 0:
                postgres.execute(f"UPDATE {table} SET price = price + 0.5 WHERE id = %s", (i - 1,))
            time.sleep(0.01)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(3):
            time.sleep(3)
            proc.kill()
            proc.wait(10)
            proc = start_capture(postgres, bootstrap, prefix, table, log)
        writer.join()
        reader = TopicReader(bootstrap, f"{prefix}.public.{table}")
        want_rows = 100 + total + total // 50
        events = reader.take(want_rows, timeout=120)
        extra = reader.rest(wait=3)
        reader.close()
    finally:
        proc.kill()
        proc.wait(10)
    assert extra == [], f"{len(extra)} changes twice\n{log.read_text()[-3000:]}"

    class ItemChanged(ChangeEvent[Item], topic=f"{prefix}.public.{table}"):
        pass

    changes = [ItemChanged.model_validate(value) for _, value in events]
    snapshot = [c for c in changes if c.snapshot]
    streamed = [c for c in changes if not c.snapshot]
    # The snapshot is every row committed before the slot's point; the stream is the rest.
    created = {c.row.id for c in streamed if c.op == "c"}
    in_snapshot = {c.row.id for c in snapshot}
    assert len(snapshot) == len(in_snapshot) and len(created) == len(
        [c for c in streamed if c.op == "c"]
    )
    lost = set(range(1, 101 + total)) - in_snapshot - created
    assert not lost, f"{len(lost)} rows lost, from {min(lost)}\n{log.read_text()[-3000:]}"
    assert not in_snapshot & created, "a row in the snapshot and in the stream"
    assert {c.row.id for c in streamed if c.op == "u"} <= set(range(1, 101 + total))
    final = {c.row.id: c.row for c in changes}
    rows = postgres.execute(f"SELECT id, label, price FROM {table} ORDER BY id")
    # (sorted: a snapshot reads rows in the table's physical order, not by key)
    assert sorted((r.id, r.label, r.price) for r in final.values()) == rows
    positions = [c.source.lsn for c in streamed]
    assert positions == sorted(positions)  # type: ignore[type-var]
    assert f"capturing public.{table}" in log.read_text()
    # It announced itself in the catalog: the database, then its topic (the lineage's source).
    announced = catalog.read({"bootstrap.servers": bootstrap})[f"cdc:{prefix}"]
    assert announced["connector"] == {
        "class": "nerve cdc postgres",
        "type": "source",
        "database": f"postgresql://127.0.0.1:{postgres.port}/{postgres.database}",
    }
    assert [e["topic"] for e in announced["emits"]] == [f"{prefix}.public.{table}"]
    postgres.execute(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
        (f"nerve_cdc_{prefix}",),
    )


def offset_records(bootstrap: str, prefix: str) -> list[dict[str, Any]]:
    from nerve.service.topic_reader import read_to_end

    records = read_to_end({"bootstrap.servers": bootstrap}, f"{prefix}.cdc-offsets", timeout_s=30)
    return [json.loads(m.value() or b"null") for m in records or ()]


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend_name", ["nerve", "kafka"])
def test_cdc_postgres_batches_whole_transactions_into_kafka_transactions(
    backend_name: str, request: pytest.FixtureRequest, postgres: PostgresProcess
) -> None:
    """200 single-row transactions waiting in the slot become 4 Kafka transactions of 50 (the
    offsets topic gets one record per Kafka transaction), and with ``batch_changes=0`` one each;
    a database transaction is never split across two."""
    broker: BrokerProcess | KafkaProcess = request.getfixturevalue(
        "nerve_for_diff" if backend_name == "nerve" else "kafka"
    )
    prefix, table = f"cdc{uuid.uuid4().hex[:8]}", f"batched_{backend_name}"
    postgres.execute(f"DROP TABLE IF EXISTS {table}")
    postgres.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, label text)")
    reader = TopicReader(broker.bootstrap, f"{prefix}.public.{table}")

    def capture_until(count: int, **batching: Any) -> None:
        capture = PostgresCapture(
            CaptureConfig(
                dsn=postgres.dsn,
                bootstrap_servers=broker.bootstrap,
                prefix=prefix,
                tables=[f"public.{table}"],
                batch_ms=60_000,
                **batching,
            )
        )
        runner = threading.Thread(target=capture.run)
        runner.start()
        try:
            got = reader.take(count, timeout=90)
            assert len(got) == count, f"{len(got)} of {count} changes"
        finally:
            capture.stop()
            runner.join(60)

    try:
        postgres.execute(f"INSERT INTO {table} VALUES (0, 'snapshot')")
        capture_until(1)  # the snapshot: the slot exists from now on
        assert len(offset_records(broker.bootstrap, prefix)) == 1
        # Waiting in the slot while no capture runs: all in the next look.
        for i in range(1, 201):
            postgres.execute(f"INSERT INTO {table} VALUES (%s, 'one')", (i,))
        # Two-row transactions: 49 changes, then 51 (the 25th transaction is not split).
        with psycopg.connect(postgres.dsn) as conn:
            for i in range(201, 401, 2):
                conn.execute(f"INSERT INTO {table} VALUES (%s, 'two'), (%s, 'two')", (i, i + 1))
                conn.commit()
        capture_until(400, batch_changes=50)
        batched = offset_records(broker.bootstrap, prefix)[1:]
        # 200 one-row transactions in 4 of 50; 100 two-row in 4 of 50 (the 50th change closes
        # the 25th transaction: 2 * 25 = 50).
        assert len(batched) == 8, batched
        for i in range(401, 421):
            postgres.execute(f"INSERT INTO {table} VALUES (%s, 'alone')", (i,))
        capture_until(20, batch_changes=0)
        assert len(offset_records(broker.bootstrap, prefix)) == 1 + 8 + 20
        # Each offset record is a commit LSN, in order, and ends past every change published.
        lsns = [int(r["lsn"]) for r in offset_records(broker.bootstrap, prefix)]
        assert lsns == sorted(lsns) and len(set(lsns)) == len(lsns)
        assert reader.rest(wait=2) == []
    finally:
        reader.close()
        postgres.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE slot_name = %s",
            (f"nerve_cdc_{prefix}",),
        )


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend_name", ["nerve", "kafka"])
def test_cdc_postgres_truncate_is_a_t_record_per_table(
    backend_name: str, request: pytest.FixtureRequest, postgres: PostgresProcess
) -> None:
    """TRUNCATE is Debezium's "t": one record per captured table, no key, no row; a table not
    captured that the same statement truncates gets nothing."""
    broker: BrokerProcess | KafkaProcess = request.getfixturevalue(
        "nerve_for_diff" if backend_name == "nerve" else "kafka"
    )
    prefix = f"cdc{uuid.uuid4().hex[:8]}"
    table, other = f"truncated_{backend_name}", f"not_captured_{backend_name}"
    for name in (table, other):
        postgres.execute(f"DROP TABLE IF EXISTS {name}")
        postgres.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, label text)")
    postgres.execute(f"INSERT INTO {table} VALUES (1, 'snapshot')")
    reader = TopicReader(broker.bootstrap, f"{prefix}.public.{table}")
    capture = PostgresCapture(
        CaptureConfig(
            dsn=postgres.dsn,
            bootstrap_servers=broker.bootstrap,
            prefix=prefix,
            tables=[f"public.{table}"],
        )
    )
    runner = threading.Thread(target=capture.run)
    runner.start()
    try:
        assert len(reader.take(1, timeout=90)) == 1  # the snapshot
        postgres.execute(f"INSERT INTO {table} VALUES (2, 'before')")
        postgres.execute(f"TRUNCATE {table}, {other}")
        postgres.execute(f"INSERT INTO {table} VALUES (3, 'after')")
        records = reader.take(3, timeout=60)
        extra = reader.rest(wait=2)
    finally:
        capture.stop()
        runner.join(60)
        reader.close()
        postgres.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE slot_name = %s",
            (f"nerve_cdc_{prefix}",),
        )
    assert extra == []
    assert [value["op"] for _, value in records] == ["c", "t", "c"]
    key, truncate = records[1]
    assert key is None and truncate["before"] is None and truncate["after"] is None
    assert truncate["source"]["table"] == table and truncate["source"]["txId"] is not None

    class Row(BaseModel):
        id: int
        label: str

    class Changed(ChangeEvent[Row], topic=f"{prefix}.public.{table}"):
        pass

    event = Changed.model_validate(truncate)
    assert event.op == "t" and not event.deleted and event.source.lsn is not None
    assert [Changed.model_validate(v).row.id for _, v in (records[0], records[2])] == [2, 3]
