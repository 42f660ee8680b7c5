"""Delivery guarantees with real processes: exactly-once survives SIGKILL mid-stream, and an
idempotent handler skips an event id it has handled before."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from nerve.service import Event, Service
from nerve.testing import Platform
from tests._broker import BrokerProcess

EXACTLY_ONCE = textwrap.dedent(
    """
    import time

    from nerve import Event, Service

    class Debit(Event, topic="eos.debits", key="account", partitions=3):
        id: int
        account: str
        amount: int

    class Booked(Event, topic="eos.booked", key="account", partitions=3):
        id: int
        account: str
        cents: int

    ledger = Service("eos-ledger", exactly_once=True)

    @ledger.on(Debit)
    def book(event: Debit) -> Booked:
        time.sleep(0.005)  # slow enough to be killed mid-stream, three times
        return Booked(id=event.id, account=event.account, cents=event.amount * 100)
    """
)


def booked_ids(broker: BrokerProcess) -> Counter[int]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "eos-check",
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    try:
        topic = consumer.list_topics(timeout=10).topics.get("eos.booked")
        if topic is None or not topic.partitions:
            return Counter()
        consumer.assign(
            [TopicPartition("eos.booked", p, OFFSET_BEGINNING) for p in topic.partitions]
        )
        ids: Counter[int] = Counter()
        ends = 0
        while ends < len(topic.partitions):
            message = consumer.poll(5)
            assert message is not None
            if message.error():
                ends += 1
                continue
            ids[json.loads(message.value() or b"{}")["id"]] += 1
        return ids
    finally:
        consumer.close()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_exactly_once_survives_sigkill(broker: BrokerProcess, tmp_path: Path) -> None:
    path = tmp_path / "ledger.py"
    path.write_text(EXACTLY_ONCE)
    # A killed member's partitions move after its session timeout: keep that short here.
    command = [sys.executable, "-m", "nerve", "run", str(path), "-b", broker.bootstrap,
               "--no-registry", "-X", "session.timeout.ms=6000"]  # fmt: skip
    total = 3000
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})

    def run() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    service = run()
    time.sleep(2.0)  # it creates the topics with their partitions
    for i in range(total):
        body = json.dumps({"id": i, "account": f"acc{i % 17}", "amount": i % 50})
        producer.produce("eos.debits", key=f"acc{i % 17}".encode(), value=body.encode())
    producer.flush(30)
    kills = 0
    try:
        # Kill it three times while it works through the backlog, each time after it made
        # progress (so transactions are open or just committed when it dies).
        seen = 0
        # Each restart waits out the killed member's session; a loaded machine needs minutes.
        deadline = time.monotonic() + 300
        while kills < 3 and time.monotonic() < deadline:
            time.sleep(0.3)
            now = sum(booked_ids(broker).values())
            if now > seen and now < total:
                service.send_signal(signal.SIGKILL)
                service.wait(10)
                kills += 1
                seen = now
                service = run()
        ids = booked_ids(broker)
        while len(ids) < total and time.monotonic() < deadline:
            time.sleep(1)
            ids = booked_ids(broker)
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(30)
    assert kills == 3, f"killed {kills} times: " + (
        "the service finished before it could be killed three times"
        if time.monotonic() < deadline
        else f"{sum(booked_ids(broker).values())} of {total} booked when time ran out"
    )
    assert len(ids) == total
    duplicates = {i: n for i, n in ids.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} inputs booked more than once"


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    with Platform(registry=False) as running:
        yield running


class Signup(Event, topic="idem.signups", key="user"):
    user: str


class Welcome(Event, topic="idem.welcomes", key="user"):
    user: str


def test_idempotent_handler_skips_an_event_id_it_handled(platform: Platform) -> None:
    welcomer = Service("idem-welcomer")

    @welcomer.on(Signup, idempotent=True)
    def welcome(event: Signup) -> Welcome:
        return Welcome(user=event.user)

    platform.run(welcomer)
    first = Signup(user="ann")
    platform.emit(first)
    platform.expect(Welcome, count=1)
    again = Signup(user="ann")
    again.meta.id = first.meta.id  # a redelivery: same CloudEvents id
    platform.emit(again)
    platform.emit(Signup(user="bob"))
    platform.expect(Welcome, lambda w: w.user == "bob")
    platform.stop_services()
    assert [w.user for w in platform.expect(Welcome, count=2)] == ["ann", "bob"]

    # The ids survive a restart: they are kept in a compacted topic.
    restarted = Service("idem-welcomer")
    restarted.on(Signup, idempotent=True)(welcome)
    platform.run(restarted)
    platform.emit(again)
    platform.emit(Signup(user="cy"))
    platform.expect(Welcome, lambda w: w.user == "cy")
    platform.stop_services()
    assert [w.user for w in platform.expect(Welcome, count=3)] == ["ann", "bob", "cy"]
