"""Issue 16 item 4: a projection keeps a read model in SQLite with its position in the same
transaction: stopped and started again it resumes where its database says, applying no event
twice and skipping none; an event its function cannot fold is recorded (and logged), not lost
silently, and does not hold back the others."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
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


VIEWS = textwrap.dedent(
    """
    from nerve import Event, Service

    class Paid(Event, topic={topic!r}, key="customer"):
        customer: str
        amount: int

    views = Service("sqlre")

    @views.projection(Paid, database={database!r}, version={version})
    def totals(event, db):
        db.execute("create table if not exists totals (customer text primary key, {columns})")
        db.execute("create index if not exists by_total on totals (total)")
        db.execute({upsert!r}, (event.customer, event.amount))
    """
)
V1 = {
    "version": 1,
    "columns": "total int",
    "upsert": "insert into totals values (?, ?) on conflict (customer) "
    "do update set total = total + excluded.total",
}
V2 = {
    "version": 2,
    "columns": "total int, payments int",
    "upsert": "insert into totals values (?, ?, 1) on conflict (customer) "
    "do update set total = total + excluded.total, payments = payments + 1",
}


def test_nerve_projection_rebuild_builds_a_new_version_beside_the_sqlite_view_and_switches(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    from nerve.service.host import load_services

    topic = f"sqlre-{uuid.uuid4().hex[:6]}.paid"
    database = tmp_path / "totals.db"
    v1, v2 = tmp_path / "views_v1.py", tmp_path / "views_v2.py"
    v1.write_text(VIEWS.format(topic=topic, database=str(database), **V1))
    v2.write_text(VIEWS.format(topic=topic, database=str(database), **V2))
    (old,) = load_services(v1)
    (old_totals,) = old.projections

    class Paid(Event, topic=topic, key="customer"):
        customer: str
        amount: int

    producer = Producer({"bootstrap.servers": broker.bootstrap})
    sent: list[tuple[str, int]] = []

    def pay(n: int, pause: float = 0.0) -> None:
        for _ in range(n):
            i = len(sent)
            event = Paid(customer=f"c{i % 7}", amount=1 + i % 5)
            sent.append((event.customer, event.amount))
            meta = event.meta
            meta.source, meta.type = "/test", event.event_type
            producer.produce(
                topic,
                key=event.customer.encode(),
                value=event.model_dump_json().encode(),
                headers=envelope.to_headers(meta),
            )
            if pause:
                producer.flush(5)
                time.sleep(pause)
        producer.flush(30)

    config = RunConfig(bootstrap_servers=broker.bootstrap, registry_url=None)
    pay(300)
    thread, _, box = _running(old, config)
    old_totals.settled(config.kafka(), timeout=60)

    read_errors: list[str] = []
    reads = 0
    reading = threading.Event()

    def read() -> None:  # a reader of totals.db all through the rebuild and switch
        nonlocal reads
        db = sqlite3.connect(database, timeout=60)
        while not reading.is_set():
            try:
                db.execute("select count(*), sum(total) from totals").fetchone()
                reads += 1
            except sqlite3.Error as exc:
                read_errors.append(str(exc))
            time.sleep(0.002)
        db.close()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    writer = threading.Thread(target=pay, args=(100, 0.01), daemon=True)
    writer.start()
    nerve = [sys.executable, "-m", "nerve"]
    done = subprocess.run(
        [*nerve, "projection", "rebuild", str(v2), "totals", "-b", broker.bootstrap],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    writer.join(30)
    assert done.returncode == 0, done.stderr
    assert "generation 2 (version 2) is live" in done.stdout, done.stdout
    assert not (tmp_path / "totals.rebuild.db").exists()
    (new,) = load_services(v2)
    (new_totals,) = new.projections
    new_thread, _, new_box = _running(new, config)
    pay(20)
    new_totals.settled(config.kafka(), timeout=60)
    _stop(thread, box)
    _stop(new_thread, new_box)
    reading.set()
    reader.join(10)
    want: dict[str, tuple[int, int]] = {}
    for customer, amount in sent:
        total, count = want.get(customer, (0, 0))
        want[customer] = (total + amount, count + 1)
    db = sqlite3.connect(database)
    rows = db.execute("select customer, total, payments from totals").fetchall()
    assert {c: (t, n) for c, t, n in rows} == want
    assert db.execute("select generation, version from nerve_projections").fetchall() == [(2, 2)]
    indexes = db.execute("select name from sqlite_master where type = 'index'").fetchall()
    assert ("by_total",) in indexes
    assert reads > 0 and not read_errors, read_errors[:3]
    listed = subprocess.run(
        [*nerve, "projection", "list", str(v1)], capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    row = listed.stdout.splitlines()[1].split()
    assert row[:4] == ["sqlre", "totals", "1", "2"], listed.stdout


def test_one_rebuild_of_a_sqlite_view_at_a_time(tmp_path: Path) -> None:
    from nerve.es.views import ViewError, open_views

    first, second = (open_views(tmp_path / "v.db", "totals") for _ in range(2))
    with first.rebuilding(), pytest.raises(ViewError, match="another rebuild"), second.rebuilding():
        pass
    with second.rebuilding():  # released with the first
        pass


def test_a_shared_sqlite_file_is_not_rebuilt(tmp_path: Path) -> None:
    from nerve.es.views import ViewError, open_views

    open_views(tmp_path / "v.db", "a").adopt(1)
    with pytest.raises(ViewError, match="each projection needs a file of its own"):
        open_views(tmp_path / "v.db", "b").start_build(1)
