"""aiokafka (asyncio client) against a real nerve broker."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests._broker import BrokerProcess
from tests.conftest import TopicNameFactory

Record = tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]]]


async def _produce(bootstrap: str, topic: str, n: int) -> list[int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sends = [
            await producer.send(
                topic,
                key=f"key-{i % 4}".encode(),
                value=f"value-{i}".encode(),
                headers=[("n", str(i).encode())],
            )
            for i in range(n)
        ]
        tombstone = await producer.send_and_wait(topic, key=b"gone", value=None)
        metadata = [await s for s in sends] + [tombstone]
        return [m.offset for m in metadata]
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, count: int) -> list[Record]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got: list[Record] = []
        deadline = time.monotonic() + 30
        while len(got) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(tp, timeout_ms=500)
            for records in batches.values():
                got.extend((r.offset, r.key, r.value, list(r.headers)) for r in records)
        assert len(got) >= count, f"read {len(got)} of {count} records within 30s"
        return got
    finally:
        await consumer.stop()


def test_aiokafka_records_with_keys_headers_and_tombstone_read_back_in_assign_mode(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()

    offsets = asyncio.run(_produce(shared_broker.bootstrap, topic, 40))
    got = asyncio.run(_consume(shared_broker.bootstrap, topic, 41))

    assert offsets == list(range(41))
    assert got[:40] == [
        (i, f"key-{i % 4}".encode(), f"value-{i}".encode(), [("n", str(i).encode())])
        for i in range(40)
    ]
    assert got[40][:3] == (40, b"gone", None)


async def _admin_round_trip(bootstrap: str, topic: str) -> tuple[bool, bool, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        listed_after_create = topic in await admin.list_topics()
        (description,) = await admin.describe_topics([topic])
        partitions = len(description["partitions"])
        await admin.delete_topics([topic])
        listed_after_delete = topic in await admin.list_topics()
        return listed_after_create, listed_after_delete, partitions
    finally:
        await admin.close()


def test_aiokafka_admin_creates_and_deletes_topic(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()

    created, still_there, partitions = asyncio.run(
        _admin_round_trip(shared_broker.bootstrap, topic)
    )

    assert created
    assert partitions == 3
    assert not still_there
