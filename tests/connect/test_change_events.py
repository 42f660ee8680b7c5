"""A nerve service consuming Debezium's change events as typed events: rows as models, the
operation and the source position, read from the JSON converter with and without schemas."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from pydantic import BaseModel

from nerve.connect import ChangeEvent, Source
from nerve.service import Service
from nerve.service.config import RunConfig
from nerve.service.runtime import ServiceRunner
from tests._connect import await_status
from tests._postgres import PostgresProcess
from tests.connect._topics import TopicReader
from tests.connect.conftest import ConnectCluster
from tests.connect.test_debezium import debezium_config, drop_slot


class Customer(BaseModel):
    id: int
    name: str
    email: str | None = None
    balance: Decimal


@contextmanager
def running(service: Service, bootstrap: str) -> Iterator[ServiceRunner]:
    """The service's runner on a loop of its own, stopped at the end."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = ServiceRunner(service, RunConfig(bootstrap_servers=bootstrap, registry_url=None))
    runner.start()
    stop = asyncio.Event()
    task = asyncio.run_coroutine_threadsafe(runner.run(stop), loop)
    try:
        yield runner
    finally:
        loop.call_soon_threadsafe(stop.set)
        task.result(30)
        runner.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def wait_for(items: list[object], count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(items) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(items) >= count, f"{len(items)} of {count}: {items}"


def test_service_reads_debezium_changes_as_typed_events(
    connect_on_nerve: ConnectCluster, postgres: PostgresProcess
) -> None:
    worker, name = connect_on_nerve.worker, f"dbz{uuid.uuid4().hex[:10]}"
    table = f"accounts_{name}"
    topic = f"{name}.public.{table}"
    postgres.execute(
        f"CREATE TABLE {table} (id int PRIMARY KEY, name text NOT NULL, email text,"
        " balance numeric(12, 2) NOT NULL)"
    )
    postgres.execute(f"ALTER TABLE {table} REPLICA IDENTITY FULL")
    postgres.execute(f"INSERT INTO {table} VALUES (1, 'ada', NULL, 10.50), (2, 'grace', NULL, 0)")

    class CustomerChanged(ChangeEvent[Customer], topic=topic):
        pass

    seen: list[CustomerChanged] = []
    service = Service(f"crm-{name}")

    @service.on(CustomerChanged)
    def changed(event: CustomerChanged) -> None:
        seen.append(event)

    # The schema-carrying envelope ({"schema", "payload"}), as most deployments configure it.
    config = debezium_config(
        postgres,
        table,
        name,
        **{
            "decimal.handling.mode": "string",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "true",
        },
    )
    worker.request("PUT", f"/connectors/{name}/config", config)
    dead = TopicReader(connect_on_nerve.bootstrap, f"{topic}.dlq")
    try:
        await_status(worker, name)
        with running(service, connect_on_nerve.bootstrap):
            wait_for(seen, 2)
            postgres.execute(f"UPDATE {table} SET balance = balance + 5 WHERE id = 1")
            postgres.execute(f"INSERT INTO {table} VALUES (3, 'edsger', 'ewd@example.com', 7)")
            postgres.execute(f"DELETE FROM {table} WHERE id = 2")  # and its tombstone
            wait_for(seen, 5)
            time.sleep(1)  # anything more (the tombstone) would arrive meanwhile
        assert [(e.op, e.row.id) for e in seen] == [
            ("r", 1),
            ("r", 2),
            ("u", 1),
            ("c", 3),
            ("d", 2),
        ]
        snapshot, _, update, insert, delete = seen
        assert snapshot.snapshot and not update.snapshot
        assert snapshot.after == Customer(id=1, name="ada", balance=Decimal("10.50"))
        assert update.before is not None and update.before.balance == Decimal("10.50")
        assert update.after is not None and update.after.balance == Decimal("15.50")
        assert insert.before is None and insert.row.email == "ewd@example.com"
        assert delete.deleted and delete.after is None and delete.row.name == "grace"
        assert [e.key for e in seen] == [{"id": 1}, {"id": 2}, {"id": 1}, {"id": 3}, {"id": 2}]
        # The source position: where in the WAL, which transaction, which table.
        assert isinstance(update.source, Source)
        assert update.source.connector == "postgresql" and update.source.name == name
        assert (update.source.db, update.source.schema_, update.source.table) == (
            postgres.database,
            "public",
            table,
        )
        positions = [e.source.position for e in (update, insert, delete)]
        assert positions == sorted(positions) and len(set(positions)) == 3
        assert update.source.txId and update.source.txId < insert.source.txId  # type: ignore[operator]
        # Offsets, not counts: the workers' transactions put commit markers between records.
        assert update.meta.topic == topic and update.meta.offset > seen[1].meta.offset  # type: ignore[operator]
        assert dead.rest(wait=2) == []  # the tombstone was no event, and no dead letter either
    finally:
        dead.close()
        worker.request("DELETE", f"/connectors/{name}")
        drop_slot(postgres, f"{name}_slot")
