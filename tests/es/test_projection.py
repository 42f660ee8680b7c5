"""Issue 16 item 4: a projection keeps a read model in SQLite with its position in the same
transaction: stopped and started again it resumes where its database says, applying no event
twice and skipping none; an event its function cannot fold is recorded (and logged), not lost
silently, and does not hold back the others."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from nerve import Event, Service
from nerve.service import envelope
from nerve.service.config import RunConfig
from nerve.service.host import serve
from tests._broker import BrokerProcess

pytestmark = pytest.mark.slow


def _running(service: Service, config: RunConfig) -> tuple[threading.Thread, asyncio.Event, list]:
    stop_box: list = []
    started = threading.Event()

    def run() -> None:
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        stop_box.append((loop, stop))
        started.set()
        loop.run_until_complete(serve([service], config, stop))
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    return thread, stop_box[0][1], stop_box


def _stop(thread: threading.Thread, box: list) -> None:
    loop, stop = box[0]
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)


def test_a_projection_resumes_from_its_database_and_records_what_it_cannot_fold(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    topic = f"views-{uuid.uuid4().hex[:6]}.paid"

    class Paid(Event, topic=topic, key="customer"):
        customer: str
        amount: int

    database = tmp_path / "views.db"
    views = Service("views")

    @views.projection(Paid, database=database)
    def totals(event: Paid, db: sqlite3.Connection) -> None:
        if event.amount < 0:
            raise ValueError("a negative payment")
        db.execute("create table if not exists totals (customer text primary key, total int)")
        db.execute(
            "insert into totals values (?, ?) on conflict (customer) "
            "do update set total = total + excluded.total",
            (event.customer, event.amount),
        )

    producer = Producer({"bootstrap.servers": broker.bootstrap})

    def pay(customer: str, amount: int) -> None:
        event = Paid(customer=customer, amount=amount)
        meta = event.meta
        meta.source, meta.type = "/test", event.event_type
        producer.produce(
            topic,
            key=customer.encode(),
            value=event.model_dump_json().encode(),
            headers=envelope.to_headers(meta),
        )

    for i in range(300):
        pay(f"c{i % 7}", 1 + i % 5)
    pay("c0", -5)  # cannot be folded
    producer.flush(30)
    config = RunConfig(bootstrap_servers=broker.bootstrap, registry_url=None)
    thread, _, box = _running(views, config)
    totals.settled(config.kafka(), timeout=60)
    _stop(thread, box)
    for i in range(300, 500):
        pay(f"c{i % 7}", 1 + i % 5)
    producer.flush(30)
    thread, _, box = _running(views, config)
    totals.settled(config.kafka(), timeout=60)
    _stop(thread, box)
    want: dict[str, int] = {}
    for i in range(500):
        want[f"c{i % 7}"] = want.get(f"c{i % 7}", 0) + 1 + i % 5
    db = sqlite3.connect(database)
    assert dict(db.execute("select customer, total from totals").fetchall()) == want
    failures = db.execute("select topic, error from nerve_failures").fetchall()
    assert failures == [(topic, "ValueError: a negative payment")]
    (position,) = db.execute("select sum(next_offset) from nerve_positions").fetchone()
    assert position == 501
