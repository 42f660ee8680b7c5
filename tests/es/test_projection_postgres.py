"""Issue 16 item 4 on PostgreSQL: a projection's view in a schema of its own, its position in
nerve.positions written in the same transaction as the update. A service SIGKILLed three times
mid-stream applies every event exactly once; a rebuild of a new version is built beside the
live view while the old code keeps it up to date, then switched in one transaction (readers
never miss the table), the old code stops, the new follows, and an on-demand rebuild of the same
version is followed by the running service."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from nerve import Event, Service
from nerve.es.views import Generation
from nerve.service import envelope
from nerve.service.config import RunConfig
from tests._broker import BrokerProcess
from tests._postgres import PostgresProcess
from tests.es.test_projection import _running, _stop

pytestmark = pytest.mark.slow


def _url(postgres: PostgresProcess) -> str:
    return f"postgresql://{postgres.user}@127.0.0.1:{postgres.port}/{postgres.database}"


def _topic(broker: BrokerProcess, prefix: str, partitions: int) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}.events"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(30)
    return name


def _produce(producer: Producer, topic: str, event: Event, key: str) -> None:
    meta = event.meta
    meta.source, meta.type = "/test", event.event_type
    producer.produce(
        topic,
        key=key.encode(),
        value=event.model_dump_json().encode(),
        headers=envelope.to_headers(meta),
    )


SERVICE = textwrap.dedent(
    """
    import time

    from nerve import Event, Service

    class Booked(Event, topic={topic!r}, key="account"):
        id: int
        account: str

    views = Service("pgkill")

    @views.projection(Booked, database={url!r})
    def {name}(event, db):
        time.sleep(0.003)  # slow enough to be killed mid-stream, three times
        db.execute("create table if not exists applied (id int primary key, n int not null)")
        db.execute(
            "insert into applied values (%s, 1) on conflict (id) do update set n = applied.n + 1",
            (event.id,),
        )
    """
)


def test_a_projection_into_postgresql_survives_sigkill(
    broker: BrokerProcess, postgres: PostgresProcess, tmp_path: Path
) -> None:
    topic = _topic(broker, "pgkill", 3)
    name = f"kill_{uuid.uuid4().hex[:6]}"
    path = tmp_path / "views.py"
    path.write_text(SERVICE.format(topic=topic, url=_url(postgres), name=name))

    class Booked(Event, topic=topic, key="account"):
        id: int
        account: str

    total = 2000
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(total):
        _produce(producer, topic, Booked(id=i, account=f"a{i % 11}"), f"a{i % 11}")
    producer.flush(30)
    # A killed member's partitions move after its session timeout: keep that short here.
    command = [sys.executable, "-m", "nerve", "run", str(path), "-b", broker.bootstrap,
               "--no-registry", "-X", "session.timeout.ms=6000"]  # fmt: skip

    def applied() -> int:
        rows = postgres.execute(
            "select count(*) from pg_tables where schemaname = %s and tablename = 'applied'",
            (name,),
        )
        if rows[0][0] == 0:
            return 0
        (count,) = postgres.execute(f'select count(*) from "{name}".applied')[0]
        return int(count)  # type: ignore[call-overload]

    def run() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    service = run()
    kills, seen = 0, 0
    try:
        deadline = time.monotonic() + 120
        while kills < 3 and time.monotonic() < deadline:
            time.sleep(0.3)
            now = applied()
            if seen < now < total:
                service.send_signal(signal.SIGKILL)
                service.wait(10)
                kills += 1
                seen = now
                service = run()
        while applied() < total and time.monotonic() < deadline + 60:
            time.sleep(0.5)
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(30)
    assert kills == 3, "the service finished before it could be killed three times"
    counts = dict(postgres.execute(f'select id, n from "{name}".applied'))
    assert sorted(counts) == list(range(total)), "an event was skipped"
    doubled = {i: n for i, n in counts.items() if n != 1}
    assert not doubled, f"{len(doubled)} events applied more than once"
    positions = postgres.execute(
        "select sum(next_offset) from nerve.positions where projection = %s", (name,)
    )
    assert positions[0][0] == total


def test_a_new_version_is_built_beside_the_live_view_and_switched(
    broker: BrokerProcess, postgres: PostgresProcess
) -> None:
    topic = _topic(broker, "pgre", 2)
    name = f"totals_{uuid.uuid4().hex[:6]}"

    class Paid(Event, topic=topic, key="customer"):
        customer: str
        amount: int

    url = _url(postgres)
    old, new = Service("pgre"), Service("pgre")

    @old.projection(Paid, database=url, name=name)
    def totals_v1(event: Paid, db: Any) -> None:
        db.execute("create table if not exists totals (customer text primary key, total int)")
        db.execute(
            "insert into totals values (%s, %s) on conflict (customer) "
            "do update set total = totals.total + excluded.total",
            (event.customer, event.amount),
        )

    @new.projection(Paid, database=url, name=name, version=2)
    def totals_v2(event: Paid, db: Any) -> None:  # a column more: a new version
        db.execute(
            "create table if not exists totals (customer text primary key, total int, payments int)"
        )
        db.execute(
            "insert into totals values (%s, %s, 1) on conflict (customer) do update set "
            "total = totals.total + excluded.total, payments = totals.payments + 1",
            (event.customer, event.amount),
        )

    producer = Producer({"bootstrap.servers": broker.bootstrap})
    sent: list[tuple[str, int]] = []

    def pay(n: int, pause: float = 0.0) -> None:
        for _ in range(n):
            i = len(sent)
            sent.append((f"c{i % 7}", 1 + i % 5))
            _produce(producer, topic, Paid(customer=f"c{i % 7}", amount=1 + i % 5), f"c{i % 7}")
            if pause:
                producer.flush(5)
                time.sleep(pause)
        producer.flush(30)

    config = RunConfig(bootstrap_servers=broker.bootstrap, registry_url=None)
    kafka = config.kafka()
    pay(400)
    thread, _, box = _running(old, config)
    totals_v1.settled(kafka, timeout=60)

    # Readers of <name>.totals all through the rebuild and switch.
    read_errors: list[str] = []
    reads = 0
    reading = threading.Event()

    def read() -> None:
        nonlocal reads
        with psycopg.connect(postgres.dsn, autocommit=True) as conn:
            while not reading.is_set():
                try:
                    conn.execute(f'select count(*), sum(total) from "{name}".totals').fetchone()
                    reads += 1
                except psycopg.Error as exc:
                    read_errors.append(str(exc))
                time.sleep(0.002)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    writer = threading.Thread(target=pay, args=(100, 0.01), daemon=True)
    writer.start()  # the old code keeps the live view up to date while the new one builds
    lines: list[str] = []
    live, was = totals_v2.rebuild(kafka, progress=lines.append)
    writer.join(30)
    assert live == Generation(2, 2) and was == Generation(1, 1), lines
    assert totals_v2.views.live() == Generation(2, 2)
    assert postgres.execute(
        "select count(*) from pg_namespace where nspname = %s", (f"{name}__g1",)
    ) == [(0,)], "the old view was not dropped"
    new_thread, _, new_box = _running(new, config)
    totals_v2.settled(kafka, timeout=60)

    def want() -> dict[str, tuple[int, int]]:
        folded: dict[str, tuple[int, int]] = {}
        for customer, amount in sent:
            total, count = folded.get(customer, (0, 0))
            folded[customer] = (total + amount, count + 1)
        return folded

    def view() -> dict[str, tuple[int, int]]:
        rows = postgres.execute(f'select customer, total, payments from "{name}".totals')
        return {str(c): (int(t), int(n)) for c, t, n in rows}  # type: ignore[call-overload]

    assert view() == want()
    _stop(thread, box)  # the old code stopped applying at the switch; a stop changes nothing

    # On demand, the same version: the running service follows the new generation.
    pay(50)
    live, was = totals_v2.rebuild(kafka, progress=lines.append)
    assert (live, was) == (Generation(3, 2), Generation(2, 2))
    pay(50)
    totals_v2.settled(kafka, timeout=60)
    assert view() == want()
    _stop(new_thread, new_box)
    reading.set()
    reader.join(10)
    assert reads > 0 and not read_errors, read_errors[:3]


def test_one_rebuild_of_a_postgresql_view_at_a_time(postgres: PostgresProcess) -> None:
    from nerve.es.views import ViewError, open_views

    name = f"once_{uuid.uuid4().hex[:6]}"
    first, second = (open_views(_url(postgres), name) for _ in range(2))
    with first.rebuilding(), pytest.raises(ViewError, match="another rebuild"), second.rebuilding():
        pass
    with second.rebuilding():  # released with the first
        pass


def test_a_rebuild_sigkilled_mid_way_resumes_and_applies_every_event_once(
    broker: BrokerProcess, postgres: PostgresProcess, tmp_path: Path
) -> None:
    topic = _topic(broker, "pgrekill", 2)
    name = f"rekill_{uuid.uuid4().hex[:6]}"
    path = tmp_path / "views.py"
    path.write_text(SERVICE.format(topic=topic, url=_url(postgres), name=name))

    class Booked(Event, topic=topic, key="account"):
        id: int
        account: str

    total = 1500
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(total):
        _produce(producer, topic, Booked(id=i, account=f"a{i % 11}"), f"a{i % 11}")
    producer.flush(30)
    command = [sys.executable, "-m", "nerve", "projection", "rebuild", str(path), name,
               "-b", broker.bootstrap]  # fmt: skip

    def built() -> int:
        found = postgres.execute(
            "select count(*) from pg_tables where schemaname = %s and tablename = 'applied'",
            (f"{name}__g1",),
        )
        if found[0][0] == 0:
            return 0
        return int(postgres.execute(f'select count(*) from "{name}__g1".applied')[0][0])  # type: ignore[call-overload]

    rebuild = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while built() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    rebuild.send_signal(signal.SIGKILL)
    rebuild.wait(10)
    part = built()
    assert 0 < part < total, "the rebuild finished before it could be killed"
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "resuming generation 1 (version 1)" in done.stdout, done.stdout
    assert "generation 1 (version 1) is live" in done.stdout, done.stdout
    counts = dict(postgres.execute(f'select id, n from "{name}".applied'))
    assert sorted(counts) == list(range(total)), "an event was skipped"
    assert all(n == 1 for n in counts.values()), "an event was applied twice"
    assert postgres.execute(
        "select count(*) from pg_namespace where nspname = %s", (f"{name}__g1",)
    ) == [(0,)]


def test_two_processes_writing_one_view_apply_each_event_once(
    broker: BrokerProcess, postgres: PostgresProcess
) -> None:
    """As when a replica that lost its partitions in a rebalance still finishes its batch: here
    two services (two consumer groups) both read every partition into one view, and the
    positions locked in each transaction let only one of them apply each event."""
    topic = _topic(broker, "pgtwo", 2)
    name = f"two_{uuid.uuid4().hex[:6]}"

    class Booked(Event, topic=topic, key="account"):
        id: int
        account: str

    def fold(event: Booked, db: Any) -> None:
        db.execute("create table if not exists applied (id int primary key, n int not null)")
        db.execute(
            "insert into applied values (%s, 1) on conflict (id) do update set n = applied.n + 1",
            (event.id,),
        )

    first, second = Service("pgtwo-a"), Service("pgtwo-b")
    projections = [s.projection(Booked, database=_url(postgres), name=name)(fold) for s in
                   (first, second)]  # fmt: skip
    config = RunConfig(bootstrap_servers=broker.bootstrap, registry_url=None)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    running = [_running(first, config), _running(second, config)]
    total = 3000
    for i in range(total):
        _produce(producer, topic, Booked(id=i, account=f"a{i % 13}"), f"a{i % 13}")
        if i % 100 == 0:
            producer.flush(5)
    producer.flush(30)
    for projection in projections:
        projection.settled(config.kafka(), timeout=60)
    for thread, _, box in running:
        _stop(thread, box)
    counts = dict(postgres.execute(f'select id, n from "{name}".applied'))
    assert sorted(counts) == list(range(total))
    doubled = {i: n for i, n in counts.items() if n != 1}
    assert not doubled, f"{len(doubled)} events applied by both"
