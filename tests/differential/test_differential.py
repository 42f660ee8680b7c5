"""Differential tests: each runs against nerve and against Apache Kafka and asserts one answer.

What a client can observe is compared: metadata, offsets, timestamps lookups, error codes,
config defaults, group states, transactional visibility. A difference is fixed in nerve or
listed in docs/compatibility.md.
"""

from __future__ import annotations

import functools
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

from tests._ck import Out, produce, produce_ok, watermarks
from tests.conftest import Backend, TopicNameFactory


@functools.cache
def _admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def admin(backend: Backend) -> AdminClient:
    """One client per broker for the session (a dropped client cancels its futures)."""
    return _admin(backend.bootstrap)


def create(backend: Backend, topic: str, partitions: int = 1, **configs: str) -> None:
    new = NewTopic(topic, partitions, 1, config=configs)
    admin(backend).create_topics([new])[topic].result(30)
    # Kafka propagates new topics to its metadata cache asynchronously.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = admin(backend).list_topics(timeout=10).topics.get(topic)
        if found is not None and found.error is None and len(found.partitions) == partitions:
            return
        time.sleep(0.1)
    raise AssertionError(f"{topic} did not appear in metadata")


def error_name(future: object) -> str:
    try:
        future.result(30)  # type: ignore[attr-defined]
    except KafkaException as exc:
        return str(exc.args[0].name())
    return "NONE"


def test_metadata_of_a_new_topic(backend: Backend, topic_name: TopicNameFactory) -> None:
    topic = topic_name()
    create(backend, topic, 3)
    metadata = admin(backend).list_topics(timeout=10)
    assert list(metadata.brokers) == [1]
    described = metadata.topics[topic]
    assert sorted(described.partitions) == [0, 1, 2]
    for partition in described.partitions.values():
        assert (partition.leader, partition.replicas, partition.isrs) == (1, [1], [1])
        assert partition.error is None


def test_offsets_after_produce(backend: Backend, topic_name: TopicNameFactory) -> None:
    topic = topic_name()
    create(backend, topic, 2)
    first = produce_ok(backend.bootstrap, topic, [Out(b"a%d" % i, partition=1) for i in range(5)])
    second = produce_ok(backend.bootstrap, topic, [Out(b"b%d" % i, partition=1) for i in range(3)])
    assert first.offsets(1) == [0, 1, 2, 3, 4]
    assert second.offsets(1) == [5, 6, 7]
    assert watermarks(backend.bootstrap, topic, 1) == (0, 8)
    assert watermarks(backend.bootstrap, topic, 0) == (0, 0)


def test_list_offsets_by_timestamp(backend: Backend, topic_name: TopicNameFactory) -> None:
    topic = topic_name()
    create(backend, topic)
    now = int(time.time() * 1000)
    stamps = [now - 3000, now - 2000, now - 1000]
    produce_ok(backend.bootstrap, topic, [Out(b"x", timestamp=t) for t in stamps], linger_ms=0)
    consumer = Consumer({"bootstrap.servers": backend.bootstrap, "group.id": "unused"})
    try:
        queries = [now - 5000, now - 2500, now - 2000, now - 1500, now + 60_000]
        # One lookup per call: librdkafka merges queries for the same partition.
        found = [
            consumer.offsets_for_times([TopicPartition(topic, 0, q)], timeout=10)[0].offset
            for q in queries
        ]
        assert found == [0, 1, 1, 2, -1]
    finally:
        consumer.close()


def test_admin_error_codes(backend: Backend, topic_name: TopicNameFactory) -> None:
    client = admin(backend)
    topic, gone = topic_name(), topic_name("gone")
    create(backend, topic, 2)

    def create_error(new: NewTopic) -> str:
        return error_name(client.create_topics([new], request_timeout=30)[new.topic])

    codes = {
        "exists": create_error(NewTopic(topic, 1, 1)),
        "zero partitions": create_error(NewTopic(topic_name("z"), 0, 1)),
        "replication 3": create_error(NewTopic(topic_name("r"), 1, 3)),
        "bad name": create_error(NewTopic("no spaces allowed", 1, 1)),
        "unknown config": create_error(NewTopic(topic_name("c"), 1, 1, config={"nope": "1"})),
        "delete unknown": error_name(client.delete_topics([gone])[gone]),
        "shrink": error_name(client.create_partitions([NewPartitions(topic, 1)])[topic]),
    }
    assert codes == {
        "exists": "TOPIC_ALREADY_EXISTS",
        "zero partitions": "INVALID_PARTITIONS",
        "replication 3": "INVALID_REPLICATION_FACTOR",
        "bad name": "TOPIC_EXCEPTION",  # librdkafka's names for Kafka's codes
        "unknown config": "INVALID_CONFIG",
        "delete unknown": "UNKNOWN_TOPIC_OR_PART",
        "shrink": "INVALID_PARTITIONS",
    }


def test_message_larger_than_the_topic_allows(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create(backend, topic, **{"max.message.bytes": "1024"})
    delivery = produce(backend.bootstrap, topic, [b"x" * 4096], compression_type="none")
    assert [e.name() for e, _ in delivery.failed] == ["MSG_SIZE_TOO_LARGE"]


def test_topic_config_defaults_clients_read(backend: Backend, topic_name: TopicNameFactory) -> None:
    topic = topic_name()
    create(backend, topic)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin(backend).describe_configs([resource])[resource].result(30)
    wanted = [
        "cleanup.policy",
        "retention.ms",
        "retention.bytes",
        "segment.bytes",
        "segment.ms",
        "max.message.bytes",
        "delete.retention.ms",
        "min.compaction.lag.ms",
        "message.timestamp.type",
    ]
    assert {name: entries[name].value for name in wanted} == {
        "cleanup.policy": "delete",
        "retention.ms": "604800000",
        "retention.bytes": "-1",
        "segment.bytes": "1073741824",
        "segment.ms": "604800000",
        "max.message.bytes": "1048588",
        "delete.retention.ms": "86400000",
        "min.compaction.lag.ms": "0",
        "message.timestamp.type": "CreateTime",
    }
    assert all(entries[name].is_default for name in wanted)


def test_consumer_group_lifecycle(backend: Backend, topic_name: TopicNameFactory) -> None:
    topic, group = topic_name(), topic_name("group")
    create(backend, topic, 2)
    produce_ok(backend.bootstrap, topic, [Out(b"m%d" % i, partition=i % 2) for i in range(6)])
    consumer = Consumer(
        {
            "bootstrap.servers": backend.bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    client = admin(backend)
    try:
        consumer.subscribe([topic])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 6 and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                got.append(message)
        assert len(got) == 6
        consumer.commit(asynchronous=False)
        described = client.describe_consumer_groups([group])[group].result(30)
        assert (described.state.name, described.partition_assignor) == ("STABLE", "range")
        assert len(described.members) == 1
        assert error_name(client.delete_consumer_groups([group])[group]) == "NON_EMPTY_GROUP"
    finally:
        consumer.close()
    described = client.describe_consumer_groups([group])[group].result(30)
    assert described.state.name == "EMPTY"
    assert error_name(client.delete_consumer_groups([group])[group]) == "NONE"
    assert error_name(client.delete_consumer_groups([group])[group]) == "GROUP_ID_NOT_FOUND"


def test_read_committed_skips_aborted_transactions(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create(backend, topic)
    producer = Producer({"bootstrap.servers": backend.bootstrap, "transactional.id": topic})
    producer.init_transactions(30)
    for commit in (True, False, True):
        producer.begin_transaction()
        producer.produce(topic, b"kept" if commit else b"aborted")
        if commit:
            producer.commit_transaction(30)
        else:
            producer.flush(30)
            producer.abort_transaction(30)
    # Data and three markers: the log end counts the markers too.
    assert watermarks(backend.bootstrap, topic) == (0, 6)
    consumer = Consumer(
        {
            "bootstrap.servers": backend.bootstrap,
            "group.id": "unused",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        values, offsets = [], []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            if message.error():
                break
            values.append(message.value())
            offsets.append(message.offset())
        assert (values, offsets) == ([b"kept", b"kept"], [0, 4])
    finally:
        consumer.close()
