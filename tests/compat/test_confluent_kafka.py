"""confluent-kafka (librdkafka) against a real nerve broker: producer, consumer, admin client."""

from __future__ import annotations

import os
import time
from collections import defaultdict

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from tests._broker import BrokerProcess
from tests._ck import (
    Out,
    admin,
    consume,
    consumer,
    create_topic,
    produce,
    produce_ok,
    topic_names,
    topic_partitions,
    watermarks,
)
from tests.conftest import BrokerFactory, TopicNameFactory

# -- produce / consume round trips --------------------------------------------------------------


def test_keys_values_and_headers_round_trip_in_order(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    sent = [
        Out(
            f"value-{i}".encode(),
            key=f"key-{i % 7}".encode(),
            headers=[("trace", f"t{i}".encode()), ("dup", b"a"), ("dup", b"b")],
        )
        for i in range(200)
    ]
    delivery = produce_ok(shared_broker.bootstrap, topic, sent)
    assert delivery.offsets() == list(range(200))

    got = consume(shared_broker.bootstrap, topic, 200, idle=0.5)

    assert [r.offset for r in got] == list(range(200))
    assert [(r.key, r.value) for r in got] == [(o.key, o.value) for o in sent]
    assert [r.headers for r in got] == [o.headers for o in sent]


def test_null_values_null_keys_empty_values_and_null_header_values_survive(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    sent = [
        Out(None, key=b"tombstone-like"),
        Out(b"no key"),
        Out(b"", key=b""),
        Out(None),
        Out(b"header with null value", headers=[("h", None)]),
    ]
    produce_ok(shared_broker.bootstrap, topic, sent)

    got = consume(shared_broker.bootstrap, topic, len(sent), idle=0.5)

    assert [(r.key, r.value) for r in got] == [
        (b"tombstone-like", None),
        (None, b"no key"),
        (b"", b""),
        (None, None),
        (None, b"header with null value"),
    ]
    assert got[4].headers == [("h", None)]


@pytest.mark.parametrize("compression", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_round_trip(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory, compression: str
) -> None:
    topic = topic_name()
    # Compressible values, many per batch, so the batches really are compressed.
    sent = [Out(f"{compression} record {i} ".encode() * 20, key=b"k%d" % i) for i in range(500)]
    delivery = produce_ok(
        shared_broker.bootstrap,
        topic,
        sent,
        compression_type=compression,
        linger_ms=50,
    )
    assert delivery.offsets() == list(range(500))

    got = consume(shared_broker.bootstrap, topic, 500, idle=0.5)

    assert [r.offset for r in got] == list(range(500))
    assert [(r.key, r.value) for r in got] == [(o.key, o.value) for o in sent]


def test_one_megabyte_messages_round_trip_when_topic_allows_them(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(shared_broker.bootstrap, topic, configs={"max.message.bytes": 3_000_000})
    values = [os.urandom(1024 * 1024) for _ in range(3)]

    produce_ok(
        shared_broker.bootstrap,
        topic,
        [Out(v, key=b"big") for v in values],
        message_max_bytes=3_000_000,
        compression_type="none",
    )
    # Default consumer fetch limits (max.partition.fetch.bytes = 1 MiB) are smaller than one
    # batch: the broker must still return the first batch whole.
    got = consume(shared_broker.bootstrap, topic, 3, idle=0.5)

    assert [r.value for r in got] == values


def test_message_larger_than_topic_max_message_bytes_fails_with_msg_size_too_large(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(shared_broker.bootstrap, topic, configs={"max.message.bytes": 2048})

    delivery = produce(
        shared_broker.bootstrap,
        topic,
        [Out(os.urandom(8192), key=b"too-big")],
        compression_type="none",
    )

    assert not delivery.ok
    assert [err.code() for err, _ in delivery.failed] == [KafkaError.MSG_SIZE_TOO_LARGE]
    # The rejected batch left nothing behind; a message that fits is still accepted at 0.
    ok = produce_ok(shared_broker.bootstrap, topic, [Out(b"small")], compression_type="none")
    assert ok.offsets() == [0]


def test_keyed_records_on_32_partitions_stay_together_in_order(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(shared_broker.bootstrap, topic, partitions=32)
    keys = [f"user-{i}".encode() for i in range(64)]
    sent = [Out(f"{k.decode()}#{n}".encode(), key=k) for n in range(5) for k in keys]

    delivery = produce_ok(shared_broker.bootstrap, topic, sent)
    partition_of_key = {m.key(): m.partition() for m in delivery.ok}
    assert len(set(partition_of_key.values())) > 8, "keys should spread across partitions"

    got = consume(shared_broker.bootstrap, topic, len(sent), partitions=range(32), idle=0.5)

    assert len(got) == len(sent)
    by_key: dict[bytes, list[tuple[int, int, bytes | None]]] = defaultdict(list)
    for r in got:
        assert r.key is not None
        by_key[r.key].append((r.partition, r.offset, r.value))
    for key in keys:
        entries = by_key[key]
        assert {p for p, _, _ in entries} == {partition_of_key[key]}
        in_offset_order = [v for _, _, v in sorted(entries)]
        assert in_offset_order == [f"{key.decode()}#{n}".encode() for n in range(5)]
    per_partition: dict[int, list[int]] = defaultdict(list)
    for r in got:
        per_partition[r.partition].append(r.offset)
    for offsets in per_partition.values():
        assert sorted(offsets) == list(range(len(offsets)))


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_every_acks_setting_delivers_all_records(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory, acks: str
) -> None:
    topic = topic_name()
    create_topic(shared_broker.bootstrap, topic)
    sent = [Out(f"acks={acks} #{i}".encode()) for i in range(300)]

    delivery = produce_ok(shared_broker.bootstrap, topic, sent, acks=acks)
    assert len(delivery.ok) == 300
    if acks != "0":
        assert delivery.offsets() == list(range(300))

    got = consume(shared_broker.bootstrap, topic, 300, idle=0.5)
    assert [r.value for r in got] == [o.value for o in sent]


def test_produce_auto_creates_unknown_topic(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    assert topic not in topic_names(shared_broker.bootstrap)

    delivery = produce_ok(shared_broker.bootstrap, topic, [Out(b"first")])

    assert delivery.offsets() == [0]
    assert topic_partitions(shared_broker.bootstrap, topic) is not None
    assert [r.value for r in consume(shared_broker.bootstrap, topic, 1)] == [b"first"]


def test_produce_to_unknown_topic_fails_when_auto_create_is_disabled(
    broker_factory: BrokerFactory, topic_name: TopicNameFactory
) -> None:
    broker = broker_factory({"auto.create.topics.enable": "false"})
    topic = topic_name()

    delivery = produce(
        broker.bootstrap,
        topic,
        [Out(b"nowhere to go")],
        topic_metadata_propagation_max_ms=1000,
        message_timeout_ms=15000,
    )

    assert not delivery.ok
    codes = {err.code() for err, _ in delivery.failed}
    assert codes <= {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC}, codes
    assert codes
    assert topic not in topic_names(broker.bootstrap)
    # Explicit creation still works on such a broker.
    create_topic(broker.bootstrap, topic)
    assert produce_ok(broker.bootstrap, topic, [Out(b"now it exists")]).offsets() == [0]


# -- admin client -------------------------------------------------------------------------------


def _describe(bootstrap: str, topic: str) -> dict[str, ConfigEntry]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    client = admin(bootstrap)
    result = client.describe_configs([resource], request_timeout=30)
    (future,) = result.values()
    entries: dict[str, ConfigEntry] = future.result(30)
    return entries


def test_create_topics_with_partitions_and_configs(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    new = NewTopic(
        topic,
        num_partitions=3,
        replication_factor=1,
        config={"retention.ms": "123456", "cleanup.policy": "compact"},
    )

    client = admin(shared_broker.bootstrap)
    futures = client.create_topics([new], operation_timeout=30)
    assert futures[topic].result(30) is None

    assert topic_partitions(shared_broker.bootstrap, topic) == 3
    configs = _describe(shared_broker.bootstrap, topic)
    assert configs["retention.ms"].value == "123456"
    assert configs["cleanup.policy"].value == "compact"
    assert ConfigSource(configs["retention.ms"].source) == ConfigSource.DYNAMIC_TOPIC_CONFIG
    assert not configs["retention.ms"].is_default


@pytest.mark.parametrize(
    ("partitions", "replication", "expected"),
    [
        (0, 1, KafkaError.INVALID_PARTITIONS),
        (1, 3, KafkaError.INVALID_REPLICATION_FACTOR),
    ],
    ids=["zero-partitions", "replication-beyond-one-broker"],
)
def test_create_topics_rejects_invalid_layout_with_error_code(
    shared_broker: BrokerProcess,
    topic_name: TopicNameFactory,
    partitions: int,
    replication: int,
    expected: int,
) -> None:
    topic = topic_name()
    new = NewTopic(topic, num_partitions=partitions, replication_factor=replication)

    client = admin(shared_broker.bootstrap)
    future = client.create_topics([new], operation_timeout=30)[topic]
    with pytest.raises(KafkaException) as info:
        future.result(30)

    assert info.value.args[0].code() == expected
    assert topic not in topic_names(shared_broker.bootstrap)


def test_create_existing_topic_fails_with_topic_already_exists(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(shared_broker.bootstrap, topic, partitions=2)

    client = admin(shared_broker.bootstrap)
    future = client.create_topics([NewTopic(topic, num_partitions=5, replication_factor=1)])[topic]
    with pytest.raises(KafkaException) as info:
        future.result(30)

    assert info.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    assert topic_partitions(shared_broker.bootstrap, topic) == 2


def test_delete_topics_removes_topic_and_its_data(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    produce_ok(shared_broker.bootstrap, topic, [Out(b"doomed")] * 5)
    assert topic in topic_names(shared_broker.bootstrap)

    client = admin(shared_broker.bootstrap)
    futures = client.delete_topics([topic], operation_timeout=30)
    assert futures[topic].result(30) is None

    assert topic not in topic_names(shared_broker.bootstrap)
    # Re-creating the name gives an empty topic, not the old log.
    create_topic(shared_broker.bootstrap, topic)
    assert watermarks(shared_broker.bootstrap, topic) == (0, 0)


def test_delete_unknown_topic_fails_with_unknown_topic_or_part(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    client = admin(shared_broker.bootstrap)
    future = client.delete_topics([topic], operation_timeout=30)[topic]
    with pytest.raises(KafkaException) as info:
        future.result(30)
    assert info.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_create_partitions_grows_topic_and_new_partitions_accept_records(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(shared_broker.bootstrap, topic, partitions=2)
    client = admin(shared_broker.bootstrap)

    futures = client.create_partitions([NewPartitions(topic, 5)], operation_timeout=30)
    assert futures[topic].result(30) is None

    assert topic_partitions(shared_broker.bootstrap, topic) == 5
    delivery = produce_ok(shared_broker.bootstrap, topic, [Out(b"in p4", partition=4)])
    assert [(m.partition(), m.offset()) for m in delivery.ok] == [(4, 0)]
    got = consume(shared_broker.bootstrap, topic, 1, partitions=[4])
    assert [r.value for r in got] == [b"in p4"]


def test_create_partitions_cannot_shrink_topic(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(shared_broker.bootstrap, topic, partitions=4)

    client = admin(shared_broker.bootstrap)
    future = client.create_partitions([NewPartitions(topic, 2)])[topic]
    with pytest.raises(KafkaException) as info:
        future.result(30)

    assert info.value.args[0].code() == KafkaError.INVALID_PARTITIONS
    assert topic_partitions(shared_broker.bootstrap, topic) == 4


def test_describe_configs_reports_overrides_and_kafka_defaults(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(shared_broker.bootstrap, topic, configs={"segment.bytes": 1_048_576})

    configs = _describe(shared_broker.bootstrap, topic)

    assert configs["segment.bytes"].value == "1048576"
    assert not configs["segment.bytes"].is_default
    for name, default in [
        ("cleanup.policy", "delete"),
        ("retention.ms", "604800000"),
        ("retention.bytes", "-1"),
    ]:
        assert configs[name].value == default, name
        assert configs[name].is_default, name
    for name in ["max.message.bytes", "delete.retention.ms", "message.timestamp.type"]:
        assert name in configs


def test_alter_configs_replaces_topic_overrides(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(shared_broker.bootstrap, topic, configs={"retention.ms": 111111})
    resource = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.bytes": "99999"})

    client = admin(shared_broker.bootstrap)
    futures = client.alter_configs([resource], request_timeout=30)
    for future in futures.values():
        future.result(30)

    configs = _describe(shared_broker.bootstrap, topic)
    assert configs["retention.bytes"].value == "99999"
    # AlterConfigs is not incremental: overrides not named are dropped back to the default.
    assert configs["retention.ms"].value == "604800000"
    assert configs["retention.ms"].is_default


def test_incremental_alter_configs_sets_and_deletes_single_keys(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(shared_broker.bootstrap, topic, configs={"retention.ms": 111111})
    client = admin(shared_broker.bootstrap)

    resource = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.bytes", "77777", incremental_operation=AlterConfigOpType.SET),
        ],
    )
    for future in client.incremental_alter_configs([resource]).values():
        future.result(30)
    configs = _describe(shared_broker.bootstrap, topic)
    assert configs["retention.bytes"].value == "77777"
    assert configs["retention.ms"].value == "111111"  # untouched

    resource = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
        ],
    )
    for future in client.incremental_alter_configs([resource]).values():
        future.result(30)
    configs = _describe(shared_broker.bootstrap, topic)
    assert configs["retention.ms"].value == "604800000"
    assert configs["retention.ms"].is_default
    assert configs["retention.bytes"].value == "77777"


def test_alter_configs_rejects_unknown_key_and_keeps_old_values(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(shared_broker.bootstrap, topic, configs={"retention.ms": 222222})
    resource = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("no.such.config", "1", incremental_operation=AlterConfigOpType.SET),
        ],
    )

    client = admin(shared_broker.bootstrap)
    (future,) = client.incremental_alter_configs([resource]).values()
    with pytest.raises(KafkaException) as info:
        future.result(30)

    assert info.value.args[0].code() == KafkaError.INVALID_CONFIG
    assert _describe(shared_broker.bootstrap, topic)["retention.ms"].value == "222222"


def test_delete_records_moves_log_start_offset_and_consumers_start_there(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    produce_ok(shared_broker.bootstrap, topic, [Out(b"r%d" % i) for i in range(10)])

    client = admin(shared_broker.bootstrap)
    futures = client.delete_records([TopicPartition(topic, 0, 6)], request_timeout=30)
    (future,) = futures.values()
    assert future.result(30).low_watermark == 6

    assert watermarks(shared_broker.bootstrap, topic) == (6, 10)
    got = consume(shared_broker.bootstrap, topic, 4, idle=0.5)
    assert [(r.offset, r.value) for r in got] == [(i, b"r%d" % i) for i in range(6, 10)]


def test_describe_cluster_reports_the_single_broker(shared_broker: BrokerProcess) -> None:
    client = admin(shared_broker.bootstrap)
    result = client.describe_cluster(request_timeout=30).result(30)

    assert result.cluster_id
    assert len(result.nodes) == 1
    (node,) = result.nodes
    assert f"{node.host}:{node.port}" == shared_broker.bootstrap
    assert result.controller is not None
    assert result.controller.id == node.id


def test_watermarks_and_offsets_for_times_follow_record_timestamps(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    base = int(time.time() * 1000) - 3_600_000
    sent = [Out(b"t%d" % i, timestamp=base + i * 1000) for i in range(10)]
    produce_ok(shared_broker.bootstrap, topic, sent, flush_every=3)

    cons = consumer(shared_broker.bootstrap)
    try:
        assert cons.get_watermark_offsets(TopicPartition(topic, 0), 10, cached=False) == (0, 10)
        queries = [
            TopicPartition(topic, 0, base - 5000),  # before everything -> first record
            TopicPartition(topic, 0, base + 4000),  # exact timestamp of record 4
            TopicPartition(topic, 0, base + 6500),  # between records 6 and 7 -> 7
            TopicPartition(topic, 0, base + 60_000),  # after everything -> -1 (end)
        ]
        answers = [
            cons.offsets_for_times([q], timeout=10)[0] for q in queries
        ]  # one at a time: librdkafka merges duplicate partitions in one call
    finally:
        cons.close()
    assert [a.error for a in answers] == [None] * 4
    assert [a.offset for a in answers] == [0, 4, 7, -1]


def test_admin_list_offsets_earliest_latest_and_max_timestamp(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    base = int(time.time() * 1000) - 60_000
    sent = [Out(b"x%d" % i, timestamp=base + i) for i in range(8)]
    produce_ok(shared_broker.bootstrap, topic, sent, flush_every=2)
    client = admin(shared_broker.bootstrap)
    tp = TopicPartition(topic, 0)

    def list_offset(spec: OffsetSpec) -> int:
        (future,) = client.list_offsets({tp: spec}, request_timeout=30).values()
        return int(future.result(30).offset)

    assert list_offset(OffsetSpec.earliest()) == 0
    assert list_offset(OffsetSpec.latest()) == 8
    assert list_offset(OffsetSpec.for_timestamp(base + 3)) == 3
    assert list_offset(OffsetSpec.max_timestamp()) == 7


def test_consumer_seek_from_offset_in_middle_of_batch_skips_earlier_records(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    # One batch of 50 records: fetching offset 20 returns the whole batch, client must skip.
    produce_ok(shared_broker.bootstrap, topic, [Out(b"m%d" % i) for i in range(50)], linger_ms=200)

    got = consume(shared_broker.bootstrap, topic, 30, offset=20, idle=0.5)

    assert [r.offset for r in got] == list(range(20, 50))


def test_reading_beyond_high_watermark_waits_for_new_records(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    produce_ok(shared_broker.bootstrap, topic, [Out(b"old")])
    cons = consumer(shared_broker.bootstrap, fetch_wait_max_ms=5000)
    try:
        cons.assign([TopicPartition(topic, 0, 1)])
        early = cons.poll(1.0)
        assert early is None or early.error() is not None, "a record appeared before produce"
        produce_ok(shared_broker.bootstrap, topic, [Out(b"new")])
        deadline = time.monotonic() + 30
        msg = None
        while msg is None and time.monotonic() < deadline:
            msg = cons.poll(0.5)
            if msg is not None and msg.error() is not None:
                msg = None
        assert msg is not None
        assert (msg.offset(), msg.value()) == (1, b"new")
    finally:
        cons.close()


def test_consumer_from_beginning_on_empty_topic_sees_nothing(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(shared_broker.bootstrap, topic)
    cons = consumer(shared_broker.bootstrap)
    try:
        cons.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            msg = cons.poll(0.2)
            assert msg is None or msg.error() is not None
    finally:
        cons.close()
