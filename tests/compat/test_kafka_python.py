"""kafka-python (pure-Python client) against a real nerve broker."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewPartitions, NewTopic
from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

from tests._broker import BrokerProcess
from tests.conftest import TopicNameFactory

Record = tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]]]


@pytest.fixture
def admin(shared_broker: BrokerProcess) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=shared_broker.bootstrap, request_timeout_ms=30000)
    try:
        yield client
    finally:
        client.close()


def _read(bootstrap: str, topic: str, count: int, partition: int = 0) -> list[Record]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        got: list[Record] = []
        deadline = time.monotonic() + 30
        while len(got) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got.extend((r.offset, r.key, r.value, list(r.headers)) for r in records)
        assert len(got) >= count, f"read {len(got)} of {count} records within 30s"
        return got
    finally:
        consumer.close()


@pytest.mark.parametrize(
    "settings",
    [{}, {"enable_idempotence": False}],
    # kafka-python 3 defaults to the idempotent producer (InitProducerId, sequence numbers).
    ids=["library-defaults-idempotent", "idempotence-disabled"],
)
def test_kafka_python_producer_records_with_keys_and_headers_read_back_in_assign_mode(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory, settings: dict[str, object]
) -> None:
    topic = topic_name()
    producer = KafkaProducer(
        bootstrap_servers=shared_broker.bootstrap, acks="all", linger_ms=5, **settings
    )
    try:
        futures = [
            producer.send(
                topic,
                key=f"k{i % 3}".encode(),
                value=f"v{i}".encode(),
                headers=[("idx", str(i).encode()), ("src", b"kafka-python")],
            )
            for i in range(50)
        ]
        producer.send(topic, key=b"tomb", value=None)
        producer.flush(30)
        offsets = [f.get(timeout=30).offset for f in futures]
    finally:
        producer.close(10)
    assert offsets == list(range(50))

    got = _read(shared_broker.bootstrap, topic, 51)

    assert [o for o, _, _, _ in got] == list(range(51))
    assert got[:50] == [
        (
            i,
            f"k{i % 3}".encode(),
            f"v{i}".encode(),
            [("idx", str(i).encode()), ("src", b"kafka-python")],
        )
        for i in range(50)
    ]
    assert got[50][1:3] == (b"tomb", None)


def test_kafka_python_gzip_batches_round_trip(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    # kafka-python ships only gzip without extra codec packages; librdkafka covers the rest.
    compression = "gzip"
    topic = topic_name()
    producer = KafkaProducer(
        bootstrap_servers=shared_broker.bootstrap,
        compression_type=compression,
        linger_ms=20,
        enable_idempotence=False,
    )
    try:
        for i in range(100):
            producer.send(topic, value=f"{compression}-{i}".encode() * 10)
        producer.flush(30)
    finally:
        producer.close(10)

    got = _read(shared_broker.bootstrap, topic, 100)

    assert [v for _, _, v, _ in got] == [f"{compression}-{i}".encode() * 10 for i in range(100)]


def test_kafka_python_admin_creates_grows_and_deletes_topic(
    shared_broker: BrokerProcess, admin: KafkaAdminClient, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()

    admin.create_topics(
        [
            NewTopic(
                topic,
                num_partitions=2,
                replication_factor=1,
                topic_configs={"retention.ms": "5000000"},
            )
        ]
    )
    assert topic in admin.list_topics()
    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])

    admin.create_partitions({topic: NewPartitions(total_count=3)})
    (described,) = admin.describe_topics([topic])
    assert len(described["partitions"]) == 3

    admin.delete_topics([topic])
    assert topic not in admin.list_topics()
    with pytest.raises(UnknownTopicOrPartitionError):
        admin.delete_topics([topic])
