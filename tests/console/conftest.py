"""A live system for the console's tests, started once per session: a broker, a registry,
four services of the finance example under ``nerve run`` (a causal chain across three of
them), Avro and Protobuf topics written by Confluent's own serializers, a dead letter, and the
console itself as ``nerve console``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests._broker import BrokerProcess
from tests._ck import create_topic
from tests._console import ConsoleProcess
from tests._registry import RegistryProcess

FINANCE = Path(__file__).parents[2] / "src" / "nerve" / "demo" / "finance"
SERVICES = ("transactions", "balances", "alerts", "notifier")
TAIL_TOPIC = "tailed.json"


@dataclass
class System:
    broker: BrokerProcess
    registry: RegistryProcess
    console: ConsoleProcess
    avro_topic: str
    protobuf_topic: str
    json_topic: str
    low_balance: dict[str, str]  # the ce_ headers of the LowBalance event the chain ended in
    services: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.console.url


def _headers(message: Any) -> dict[str, str]:
    return {k: (v or b"").decode() for k, v in message.headers() or ()}


def wait_for_record(bootstrap: str, topic: str, timeout: float = 90.0) -> Any:
    """The first record of ``topic`` (waiting for the topic and the record)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"wait-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 500,
        }
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                return message
        raise AssertionError(f"no record on {topic} within {timeout} s")
    finally:
        consumer.close()


def _seed_schemas(
    system_broker: BrokerProcess, registry: RegistryProcess, root: Path
) -> tuple[str, str, str]:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from tests.registry.test_serializers import PAYMENT_AVRO, PAYMENT_PROTO, _compile_proto

    client = SchemaRegistryClient({"url": registry.url})
    producer = Producer({"bootstrap.servers": system_broker.bootstrap, "linger.ms": 5})
    avro_topic, protobuf_topic, json_topic = "payments.avro", "payments.protobuf", "orders.json"
    for topic in (avro_topic, protobuf_topic):
        create_topic(system_broker.bootstrap, topic)
    create_topic(system_broker.bootstrap, json_topic, partitions=3)
    create_topic(system_broker.bootstrap, TAIL_TOPIC)  # the live tail tests write here
    avro = AvroSerializer(client, PAYMENT_AVRO)
    for i in range(30):
        value = avro(
            {"id": f"p{i}", "amount": float(i)},
            SerializationContext(avro_topic, MessageField.VALUE),
        )
        producer.produce(avro_topic, key=f"p{i}".encode(), value=value)
    module = _compile_proto(root, PAYMENT_PROTO)
    protobuf = ProtobufSerializer(module.Payment, client, {"use.deprecated.format": False})
    for i in range(10):
        message = module.Payment(id=f"q{i}", amount=float(i) + 0.5)
        message.labels["team"] = "blue"
        value = protobuf(message, SerializationContext(protobuf_topic, MessageField.VALUE))
        producer.produce(protobuf_topic, key=f"q{i}".encode(), value=value)
    for i in range(3000):
        status = "big" if i % 500 > 490 else "ok"
        producer.produce(
            json_topic,
            key=f"order-{i % 50}".encode(),
            value=f'{{"order": {i}, "total": {i % 500}, "status": "{status}"}}'.encode(),
            headers=[("source", b"seed")],
        )
    assert producer.flush(30) == 0
    return avro_topic, protobuf_topic, json_topic


def _start_services(
    system_broker: BrokerProcess, registry: RegistryProcess, root: Path
) -> list[subprocess.Popen[bytes]]:
    env = dict(os.environ, NERVE_DEMO_MAIL_DIR=str(root / "mail"), PYTHONUNBUFFERED="1")
    procs = []
    for name in SERVICES:
        log = (root / f"{name}.log").open("ab")
        command = [sys.executable, "-m", "nerve", "run", str(FINANCE / f"{name}.py"),
                   "-b", system_broker.bootstrap, "-r", registry.url,
                   "--state-dir", str(root / "state"),  # streams' state: this run's own
                   "-X", "session.timeout.ms=6000", "--metrics-port", "0"]  # fmt: skip
        procs.append(
            subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
        )
        log.close()
    return procs


def _seed_profile(bootstrap: str) -> Any:
    from nerve.demo.finance import workload
    from nerve.demo.finance.demo import send

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    [profile] = workload.profiles(1)
    send(producer, profile)
    assert producer.flush(10) == 0
    return profile


def _wait_started(root: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    for name in SERVICES:
        log = root / f"{name}.log"
        while b"started:" not in log.read_bytes():
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)


def _seed_finance(bootstrap: str, profile: Any) -> None:
    """A credit and a debit crossing the low-balance threshold: the chain transactions ->
    balances -> alerts -> notifier; and one malformed request for the dlq."""
    from nerve.demo.finance.demo import send
    from nerve.demo.finance.events import TransactionRequested
    from nerve.service import envelope
    from nerve.service.events import Meta

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    account = f"acct-{profile.user_id}"
    for kind, amount in (("credit", "150"), ("debit", "100")):
        send(
            producer,
            TransactionRequested(
                transaction_id=f"t-{kind}",
                account_id=account,
                user_id=profile.user_id,
                kind=kind,  # type: ignore[arg-type]
                amount=Decimal(amount),
                at=datetime.now(UTC),
            ),
        )
    meta = Meta(source="/tests/console", type=TransactionRequested.event_type)
    producer.produce(
        TransactionRequested.topic,
        key=account.encode(),
        value=b'{"transaction_id": "broken"}',
        headers=envelope.to_headers(meta),
    )
    assert producer.flush(10) == 0


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    root = tmp_path_factory.mktemp("console-system")
    broker = BrokerProcess(
        root / "broker" / "data", configs={"group.initial.rebalance.delay.ms": 0}
    )
    broker.start()
    registry = RegistryProcess(root / "registry", broker.bootstrap)
    services: list[subprocess.Popen[bytes]] = []
    registry.start()
    console = ConsoleProcess(root / "console", broker.bootstrap, registry.url)
    try:
        console.start()
        profile = _seed_profile(broker.bootstrap)
        services = _start_services(broker, registry, root)
        topics = _seed_schemas(broker, registry, root)
        _wait_started(root)
        _seed_finance(broker.bootstrap, profile)
        low = wait_for_record(broker.bootstrap, "finance.low-balance")
        wait_for_record(broker.bootstrap, "finance.transaction-requests.dlq")
        yield System(broker, registry, console, *topics, _headers(low), services)
    finally:
        for proc in services:
            proc.terminate()
        for proc in services:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        console.close()
        registry.close()
        broker.close()


def end_offsets(bootstrap: str, topic: str, partitions: int = 1) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"o-{uuid.uuid4().hex}"})
    try:
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        ]
    finally:
        consumer.close()
