"""A key search goes to the key's partition: the console's hashes agree with where the real
clients put keys (librdkafka's default CRC32 partitioner, the Java client's murmur2 as
librdkafka and kafka-python implement it)."""

from __future__ import annotations

import random

from confluent_kafka import Producer

from nerve.console.scans import key_partitions, murmur2
from tests._broker import BrokerProcess
from tests._ck import create_topic
from tests.conftest import TopicNameFactory


def test_murmur2_is_kafkas() -> None:
    from kafka.partitioner.default import murmur2 as kafka_python_murmur2

    rng = random.Random(3)
    keys = [b"", b"a", b"21", b"foobar", *(rng.randbytes(rng.randrange(1, 40)) for _ in range(300))]
    for key in keys:
        # kafka-python returns the unsigned form of the same 32 bits
        assert murmur2(key) & 0xFFFFFFFF == kafka_python_murmur2(key) & 0xFFFFFFFF, key


def test_key_partitions_hold_where_producers_put_keys(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(shared_broker.bootstrap, topic, partitions=7)
    keys = [f"key-{i}".encode() for i in range(60)]
    placed: dict[tuple[str, bytes], int] = {}
    for partitioner in ("consistent_random", "murmur2_random"):
        producer = Producer(
            {"bootstrap.servers": shared_broker.bootstrap, "partitioner": partitioner}
        )

        def report(error: object, message: object, partitioner: str = partitioner) -> None:
            assert error is None
            placed[(partitioner, message.key())] = message.partition()  # type: ignore[attr-defined]

        for key in keys:
            producer.produce(topic, key=key, value=b"v", on_delivery=report)
        assert producer.flush(10) == 0
    assert len(placed) == 2 * len(keys)
    for (_, key), partition in placed.items():
        assert partition in key_partitions(key, 7), key
