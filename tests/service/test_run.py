"""``nerve run`` as real processes: two replicas of a service share the partitions, every
event is handled, and SIGTERM stops a replica gracefully."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from tests._broker import BrokerProcess
from tests._registry import RegistryProcess

SERVICE = textwrap.dedent(
    """
    from nerve import Event, Service

    class Ordered(Event, topic="run.orders", key="order_id", partitions=4):
        order_id: str
        qty: int

    class Packed(Event, topic="run.packed", key="order_id", partitions=4):
        order_id: str
        boxes: int

    packing = Service("run-packing", description="packs orders")

    @packing.on(Ordered, where=lambda e: e.qty > 0)
    def pack(event: Ordered) -> Packed:
        return Packed(order_id=event.order_id, boxes=(event.qty + 9) // 10)
    """
)


def start(path: Path, broker: BrokerProcess, registry: RegistryProcess) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "nerve", "run", str(path), "-b", broker.bootstrap, "-r",
         registry.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def packed(broker: BrokerProcess) -> set[str]:
    """The order ids on run.packed so far (empty before the service created the topic)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": "check", "enable.partition.eof": True}
    )
    try:
        topic = consumer.list_topics(timeout=10).topics.get("run.packed")
        if topic is None or not topic.partitions:
            return set()
        partitions = list(topic.partitions)
        consumer.assign([TopicPartition("run.packed", p, OFFSET_BEGINNING) for p in partitions])
        seen, ends = set(), 0
        while ends < len(partitions):
            message = consumer.poll(5)
            assert message is not None, "no end of partition within 5 s"
            if message.error():
                ends += 1
                continue
            seen.add(json.loads(message.value() or b"{}")["order_id"])
        return seen
    finally:
        consumer.close()


def produce(broker: BrokerProcess, ids: range) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in ids:
        body = json.dumps({"order_id": f"o{i}", "qty": i % 30}).encode()
        producer.produce("run.orders", key=f"o{i}".encode(), value=body)
    assert producer.flush(30) == 0


def test_replicas_share_partitions_and_stop_gracefully(
    shared_broker: BrokerProcess, shared_registry: RegistryProcess, tmp_path: Path
) -> None:
    path = tmp_path / "packing.py"
    path.write_text(SERVICE)
    first = start(path, shared_broker, shared_registry)
    second = start(path, shared_broker, shared_registry)
    try:
        # The replicas create run.orders with its 4 partitions and split them, two each.
        admin = AdminClient({"bootstrap.servers": shared_broker.bootstrap})
        assignments: list[int] = []
        deadline = time.monotonic() + 60
        while assignments != [2, 2] and time.monotonic() < deadline:
            time.sleep(0.5)
            group = admin.describe_consumer_groups(["run-packing"])["run-packing"].result(10)
            assignments = sorted(len(m.assignment.topic_partitions) for m in group.members)
        assert assignments == [2, 2]
        # Each replica's consumer says which service it is.
        assert {m.client_id for m in group.members} == {"run-packing"}

        produce(shared_broker, range(200))
        expected = {f"o{i}" for i in range(200) if i % 30}
        deadline = time.monotonic() + 60
        while packed(shared_broker) != expected and time.monotonic() < deadline:
            time.sleep(0.5)
        assert packed(shared_broker) == expected

        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
        produce(shared_broker, range(200, 260))
        expected |= {f"o{i}" for i in range(200, 260) if i % 30}
        deadline = time.monotonic() + 60
        while packed(shared_broker) != expected and time.monotonic() < deadline:
            time.sleep(0.5)
        assert packed(shared_broker) == expected
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    assert second.returncode == 0
    assert "running run-packing" in (second.stdout.read() if second.stdout else "")
    logged = second.stderr.read() if second.stderr else ""
    assert "service run-packing started" in logged
    assert "HTTP Request" not in logged  # the registry client's INFO lines are silenced


def test_an_unreachable_broker_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "packing.py"
    path.write_text(SERVICE)
    done = subprocess.run(
        [sys.executable, "-m", "nerve", "run", str(path), "-b", "127.0.0.1:1", "--no-registry"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "nerve run: run-packing: cannot reach Kafka at 127.0.0.1:1 within 10 s"
    ], done.stderr


def test_a_file_that_does_not_load_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text(
        "from nerve import Event\n\nclass X(Event, topic='x', key='nope'):\n    a: int\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "nerve", "run", str(path), "--no-registry"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith(f"nerve run: cannot load {path}: TypeError: X: key")
    assert "Traceback" not in done.stderr


def test_replicas_of_a_consumer_protocol_service_share_partitions(
    shared_broker: BrokerProcess, shared_registry: RegistryProcess, tmp_path: Path
) -> None:
    """``Service(..., group_protocol="consumer")``: the replicas form a KIP-848 group."""
    path = tmp_path / "packing.py"
    path.write_text(
        SERVICE.replace('"run.', '"run848.').replace(
            'Service("run-packing", description="packs orders")',
            'Service("run848-packing", description="packs orders", group_protocol="consumer")',
        )
    )
    first = start(path, shared_broker, shared_registry)
    second = start(path, shared_broker, shared_registry)
    try:
        admin = AdminClient({"bootstrap.servers": shared_broker.bootstrap})
        assignments: list[int] = []
        deadline = time.monotonic() + 60
        while assignments != [2, 2] and time.monotonic() < deadline:
            time.sleep(0.5)
            group = admin.describe_consumer_groups(["run848-packing"])["run848-packing"].result(10)
            assignments = sorted(len(m.assignment.topic_partitions) for m in group.members)
        assert assignments == [2, 2]
        assert group.type.name == "CONSUMER"
        producer = Producer({"bootstrap.servers": shared_broker.bootstrap})
        for i in range(100):
            body = json.dumps({"order_id": f"o{i}", "qty": i % 30}).encode()
            producer.produce("run848.orders", key=f"o{i}".encode(), value=body)
        assert producer.flush(30) == 0
        consumer_config = {"bootstrap.servers": shared_broker.bootstrap, "group.id": "check848"}
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        expected = {f"o{i}" for i in range(100) if i % 30}
        seen: set[str] = set()
        reader = Consumer({**consumer_config, "auto.offset.reset": "earliest"})
        try:
            deadline = time.monotonic() + 60
            while (
                not reader.list_topics("run848.packed", timeout=10)
                .topics["run848.packed"]
                .partitions
            ):
                assert time.monotonic() < deadline
                time.sleep(0.5)
            reader.assign([TopicPartition("run848.packed", p, OFFSET_BEGINNING) for p in range(4)])
            while seen != expected and time.monotonic() < deadline:
                message = reader.poll(0.5)
                if message is not None and not message.error():
                    seen.add(json.loads(message.value() or b"{}")["order_id"])
        finally:
            reader.close()
        assert seen == expected
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    assert first.returncode == 0 and second.returncode == 0


def test_an_unknown_group_protocol_is_refused() -> None:
    from nerve import Service

    with pytest.raises(ValueError, match="group_protocol must be 'classic' or 'consumer'"):
        Service("x", group_protocol="share")
