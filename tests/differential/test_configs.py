"""Configs on nerve and on Apache Kafka 4.4: every topic config with its default, type, source
and synonyms; Kafka's validation and error texts; incremental changes; broker, group and
client-metrics resources. Requests go through kio, so every field of the answer is compared."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import NewTopic
from kio.schema.alter_configs.v2.request import AlterableConfig as LegacyConfig
from kio.schema.alter_configs.v2.request import AlterConfigsRequest
from kio.schema.alter_configs.v2.request import AlterConfigsResource as LegacyResource
from kio.schema.describe_configs.v4.request import DescribeConfigsRequest, DescribeConfigsResource
from kio.schema.incremental_alter_configs.v1.request import (
    AlterableConfig,
    AlterConfigsResource,
    IncrementalAlterConfigsRequest,
)
from kio.static.primitive import i8

from tests.broker._kio_client import KioClient
from tests.conftest import Backend, TopicNameFactory
from tests.differential.test_differential import admin, create

TOPIC, BROKER, CLIENT_METRICS, GROUP = 2, 4, 16, 32
T = TypeVar("T")
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def describe(backend: Backend, kind: int, name: str, keys: tuple[str, ...] | None = None) -> Any:
    with KioClient(backend.bootstrap) as client:
        response = client.call(
            DescribeConfigsRequest(
                resources=(
                    DescribeConfigsResource(
                        resource_type=i8(kind), resource_name=name, configuration_keys=keys
                    ),
                ),
                include_synonyms=True,
                include_documentation=False,
            )
        )
    (result,) = response.results
    return result


def entries(result: Any) -> dict[str, tuple[Any, ...]]:
    return {
        c.name: (
            c.value,
            c.config_source,
            c.config_type,
            c.read_only,
            c.is_sensitive,
            tuple((s.name, s.value, s.source) for s in c.synonyms),
        )
        for c in result.configs
    }


def alter(
    backend: Backend, kind: int, name: str, *changes: tuple[str, int, str | None]
) -> tuple[int, str | None]:
    with KioClient(backend.bootstrap) as client:
        response = client.call(
            IncrementalAlterConfigsRequest(
                resources=(
                    AlterConfigsResource(
                        resource_type=i8(kind),
                        resource_name=name,
                        configs=tuple(
                            AlterableConfig(name=n, config_operation=i8(op), value=v)
                            for n, op, v in changes
                        ),
                    ),
                ),
                validate_only=False,
            )
        )
    (result,) = response.responses
    return int(result.error_code), result.error_message


def settled(fetch: Callable[[], T], expected: T) -> T:
    """Kafka applies a config change through its metadata log, so a describe right after may
    still show the old value: ask again until it matches, for up to 30 s."""
    deadline = time.monotonic() + 30
    while (got := fetch()) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return got


def test_every_topic_config_described_with_kafkas_defaults(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create(backend, topic, **{"retention.ms": "1000", "cleanup.policy": "compact",
                              "compression.type": "lz4", "min.cleanable.dirty.ratio": "0.25",
                              "segment.bytes": " 2000000 "})  # fmt: skip
    result = describe(backend, TOPIC, topic)
    assert result.error_code == 0
    described = entries(result)
    assert len(described) == 37
    assert described == expected_topic_configs()


def expected_topic_configs() -> dict[str, tuple[Any, ...]]:
    """What Kafka 4.4 describes for the topic of the test above (names, values, sources,
    types, synonyms), written out so that both brokers are held to it."""
    long_max = "9223372036854775807"
    expected: dict[str, tuple[Any, ...]] = {}

    def add(name: str, value: str, kind: int, *synonyms: str, source: int = 5) -> None:
        chain = tuple((s, value, 5) for s in synonyms)
        expected[name] = (value, source, kind, False, False, chain)

    add("errors.deadletterqueue.group.enable", "false", 1)
    add("remote.copy.lag.bytes", "-1", 5, "log.remote.copy.lag.bytes")
    add("remote.log.delete.on.disable", "false", 1)
    add("leader.replication.throttled.replicas", "", 7)
    add("remote.storage.enable", "false", 1)
    add("segment.jitter.ms", "0", 5)
    add("remote.log.copy.disable", "false", 1)
    add("local.retention.ms", "-2", 5, "log.local.retention.ms")
    add("flush.ms", long_max, 5)
    add("follower.replication.throttled.replicas", "", 7)
    add("compression.lz4.level", "9", 3, "compression.lz4.level")
    add("compression.gzip.level", "-1", 3, "compression.gzip.level")
    add("remote.copy.lag.ms", "0", 5, "log.remote.copy.lag.ms")
    add("flush.messages", long_max, 5, "log.flush.interval.messages")
    add("compression.zstd.level", "3", 3, "compression.zstd.level")
    add("max.compaction.lag.ms", long_max, 5, "log.cleaner.max.compaction.lag.ms")
    add("file.delete.delay.ms", "60000", 5, "log.segment.delete.delay.ms")
    add("max.message.bytes", "1048588", 3, "message.max.bytes")
    add("min.compaction.lag.ms", "0", 5, "log.cleaner.min.compaction.lag.ms")
    add("message.timestamp.type", "CreateTime", 2, "log.message.timestamp.type")
    add("local.retention.bytes", "-2", 5, "log.local.retention.bytes")
    add("preallocate", "false", 1, "log.preallocate")
    add("index.interval.bytes", "4096", 3, "log.index.interval.bytes")
    add("unclean.leader.election.enable", "false", 1, "unclean.leader.election.enable")
    add("retention.bytes", "-1", 5, "log.retention.bytes")
    add("delete.retention.ms", "86400000", 5, "log.cleaner.delete.retention.ms")
    add("message.timestamp.after.max.ms", "3600000", 5, "log.message.timestamp.after.max.ms")
    add("max.decompressed.message.bytes", "2147483639", 3, "max.decompressed.message.bytes")
    add("message.timestamp.before.max.ms", long_max, 5, "log.message.timestamp.before.max.ms")
    add("segment.ms", "604800000", 5)
    add("segment.index.bytes", "10485760", 3, "log.index.size.max.bytes")
    # Kafka 4 sets min.insync.replicas=1 cluster-wide when it formats a KRaft cluster.
    expected["min.insync.replicas"] = ("1", 3, 3, False, False,
                                       (("min.insync.replicas", "1", 3),
                                        ("min.insync.replicas", "1", 5)))  # fmt: skip
    # The overrides: the topic's value first, then the broker default's chain.
    expected["retention.ms"] = ("1000", 1, 5, False, False, (("retention.ms", "1000", 1),))
    expected["cleanup.policy"] = ("compact", 1, 7, False, False,
                                  (("cleanup.policy", "compact", 1),
                                   ("log.cleanup.policy", "delete", 5)))  # fmt: skip
    expected["compression.type"] = ("lz4", 1, 2, False, False,
                                    (("compression.type", "lz4", 1),
                                     ("compression.type", "producer", 5)))  # fmt: skip
    ratio = (
        ("min.cleanable.dirty.ratio", "0.25", 1),
        ("log.cleaner.min.cleanable.ratio", "0.5", 5),
    )
    expected["min.cleanable.dirty.ratio"] = ("0.25", 1, 6, False, False, ratio)
    expected["segment.bytes"] = ("2000000", 1, 3, False, False,
                                 (("segment.bytes", "2000000", 1),
                                  ("log.segment.bytes", "1073741824", 5)))  # fmt: skip
    return expected


# (config, value) -> what Kafka 4.4 answers a CreateTopics with it (None: accepted).
INVALID_TOPIC_CONFIGS: list[tuple[dict[str, str], str | None]] = [
    ({"nope": "1"}, "Unknown topic config name: nope"),
    ({"segment.bytes": "1"},
     "Invalid value 1 for configuration segment.bytes: Value must be at least 1048576"),
    ({"segment.bytes": "x"},
     "Invalid value x for configuration segment.bytes: Not a number of type INT"),
    ({"index.interval.bytes": "99999999999"},
     "Invalid value 99999999999 for configuration index.interval.bytes: Not a number of type INT"),
    ({"retention.ms": "-5"},
     "Invalid value -5 for configuration retention.ms: Value must be at least -1"),
    ({"retention.bytes": "abc"},
     "Invalid value abc for configuration retention.bytes: Not a number of type LONG"),
    ({"cleanup.policy": "foo"},
     "Invalid value foo for configuration cleanup.policy: String must be one of: compact, delete"),
    ({"cleanup.policy": "compact,"}, "Configuration 'cleanup.policy' values must not be empty."),
    ({"cleanup.policy": ""}, None),
    ({"compression.type": "brotli"},
     "Invalid value brotli for configuration compression.type: String must be one of: "
     "uncompressed, zstd, lz4, snappy, gzip, producer"),
    ({"compression.gzip.level": "12"},
     "Invalid value 12 for configuration compression.gzip.level: Value must be between 1 and 9 "
     "or equal to -1"),
    ({"compression.zstd.level": "23"},
     "Invalid value 23 for configuration compression.zstd.level: Value must be no more than 22"),
    ({"min.cleanable.dirty.ratio": "1.5"},
     "Invalid value 1.5 for configuration min.cleanable.dirty.ratio: Value must be no more than 1"),
    ({"min.cleanable.dirty.ratio": "abc"},
     "Invalid value abc for configuration min.cleanable.dirty.ratio: Not a number of type DOUBLE"),
    ({"preallocate": "yes"},
     "Invalid value yes for configuration preallocate: Expected value to be either true or false"),
    ({"message.timestamp.type": "createtime"},
     "Invalid value createtime for configuration message.timestamp.type: String must be one of: "
     "CreateTime, LogAppendTime"),
    ({"leader.replication.throttled.replicas": "bad"},
     "Invalid value [bad] for configuration leader.replication.throttled.replicas: "
     "leader.replication.throttled.replicas must be the literal '*' or a list of replicas in the "
     "following format: [partitionId]:[brokerId],[partitionId]:[brokerId],..."),
    ({"follower.replication.throttled.replicas": "0:1,1:1"}, None),
    ({"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "5"},
     "conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)"),
    ({"remote.storage.enable": "true"},
     "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with "
     "remote log storage."),
    ({"segment.ms": "0"}, "Invalid value 0 for configuration segment.ms: Value must be at least 1"),
    ({"max.message.bytes": "-1"},
     "Invalid value -1 for configuration max.message.bytes: Value must be at least 0"),
    ({"local.retention.ms": "-3"},
     "Invalid value -3 for configuration local.retention.ms: Value must be at least -2"),
    ({"flush.messages": "0"},
     "Invalid value 0 for configuration flush.messages: Value must be at least 1"),
    ({"internal.segment.bytes": "100"}, None),
    ({"min.insync.replicas": "2", "unclean.leader.election.enable": "true"}, None),
    ({"file.delete.delay.ms": "1000", "segment.jitter.ms": "10", "preallocate": "true"}, None),
]  # fmt: skip


def test_topic_config_validation_and_error_texts(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    client = admin(backend)
    answers = []
    for configs, _ in INVALID_TOPIC_CONFIGS:
        new = NewTopic(topic_name(), 1, 1, config=configs)
        future = client.create_topics([new], validate_only=True, request_timeout=30)[new.topic]
        try:
            future.result(30)
            answers.append((configs, None))
        except KafkaException as exc:
            error = exc.args[0]
            assert error.name() == "INVALID_CONFIG"
            answers.append((configs, error.str()))
    assert answers == INVALID_TOPIC_CONFIGS


def test_incremental_alter_topic_configs(backend: Backend, topic_name: TopicNameFactory) -> None:
    topic = topic_name()
    create(backend, topic)
    keys = ("cleanup.policy", "retention.ms", "compression.type")

    def values() -> dict[str, tuple[str, int]]:
        return {
            c.name: (c.value, c.config_source)
            for c in describe(backend, TOPIC, topic, keys).configs
        }

    assert alter(backend, TOPIC, topic, ("cleanup.policy", APPEND, "compact")) == (0, None)
    assert alter(backend, TOPIC, topic, ("retention.ms", SET, "5000"),
                 ("compression.type", SET, "zstd")) == (0, None)  # fmt: skip
    expected = {
        "cleanup.policy": ("delete,compact", 1),
        "retention.ms": ("5000", 1),
        "compression.type": ("zstd", 1),
    }
    assert settled(values, expected) == expected
    assert alter(backend, TOPIC, topic, ("cleanup.policy", SUBTRACT, "delete"),
                 ("retention.ms", DELETE, None)) == (0, None)  # fmt: skip
    expected = {
        "cleanup.policy": ("compact", 1),
        "retention.ms": ("604800000", 5),
        "compression.type": ("zstd", 1),
    }
    assert settled(values, expected) == expected
    errors = [
        alter(backend, TOPIC, topic, ("retention.ms", APPEND, "1")),
        alter(backend, TOPIC, topic, ("nope", SET, "1")),
        alter(backend, TOPIC, topic, ("segment.bytes", SET, "12")),
        alter(backend, TOPIC, topic_name("missing"), ("retention.ms", SET, "1")),
    ]
    assert [code for code, _ in errors] == [40, 40, 40, 3]
    assert errors[1][1] == "Unknown topic config name: nope"
    assert errors[2][1] == (
        "Invalid value 12 for configuration segment.bytes: Value must be at least 1048576"
    )


def test_alter_configs_replaces_a_topics_overrides(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create(backend, topic, **{"retention.ms": "1000", "cleanup.policy": "compact"})
    with KioClient(backend.bootstrap) as client:
        response = client.call(
            AlterConfigsRequest(
                resources=(
                    LegacyResource(
                        resource_type=i8(TOPIC),
                        resource_name=topic,
                        configs=(LegacyConfig(name="segment.ms", value="60000"),),
                    ),
                ),
                validate_only=False,
            )
        )
    assert response.responses[0].error_code == 0

    def overridden() -> set[str]:
        return {c.name for c in describe(backend, TOPIC, topic).configs if c.config_source == 1}

    assert settled(overridden, {"segment.ms"}) == {"segment.ms"}


def test_describe_group_and_client_metrics_resources(backend: Backend) -> None:
    group = describe(backend, GROUP, "some-group")
    assert group.error_code == 0
    assert entries(group) == EXPECTED_GROUP_CONFIGS
    metrics = describe(backend, CLIENT_METRICS, "some-subscription")
    assert metrics.error_code == 0
    assert entries(metrics) == {
        "interval.ms": ("300000", 5, 3, False, False, ()),
        "match": ("", 5, 7, False, False, ()),
        "metrics": ("", 5, 7, False, False, ()),
    }


def _group(
    name: str, value: str, kind: int, synonym: str | None = None
) -> tuple[str, tuple[Any, ...]]:
    return name, (value, 5, kind, False, False, ((synonym or f"group.{name}", value, 5),))


EXPECTED_GROUP_CONFIGS = dict([
    _group("consumer.session.timeout.ms", "45000", 3),
    _group("consumer.heartbeat.interval.ms", "5000", 3),
    _group("consumer.assignment.interval.ms", "1000", 3),
    _group("share.session.timeout.ms", "45000", 3),
    _group("share.heartbeat.interval.ms", "5000", 3),
    _group("share.assignment.interval.ms", "1000", 3),
    _group("share.delivery.count.limit", "5", 3),
    _group("share.record.lock.duration.ms", "30000", 3),
    _group("share.partition.max.record.locks", "2000", 3),
    _group("share.auto.offset.reset", "latest", 2, "share.auto.offset.reset"),
    _group("share.isolation.level", "read_uncommitted", 2, "share.isolation.level"),
    _group("share.renew.acknowledge.enable", "true", 1, "share.renew.acknowledge.enable"),
    _group("streams.session.timeout.ms", "45000", 3),
    _group("streams.heartbeat.interval.ms", "5000", 3),
    _group("streams.assignment.interval.ms", "1000", 3),
    _group("streams.initial.rebalance.delay.ms", "3000", 3),
    _group("streams.num.standby.replicas", "0", 3),
    _group("streams.rack.aware.assignment.tags", "", 7),
    _group("streams.assignor.name", "sticky", 2, "group.streams.assignors"),
    _group("errors.deadletterqueue.copy.record.enable", "false", 1,
           "errors.deadletterqueue.copy.record.enable"),
    _group("errors.deadletterqueue.topic.name", "", 2, "errors.deadletterqueue.topic.name"),
])  # fmt: skip


def test_group_and_client_metrics_configs_altered_as_kafka_does(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    group, subscription = topic_name("group"), topic_name("metrics")
    answers = [
        alter(backend, GROUP, group, ("nope", SET, "1")),
        alter(backend, GROUP, group, ("consumer.session.timeout.ms", SET, "1000")),
        alter(backend, GROUP, group, ("consumer.session.timeout.ms", SET, "x")),
        alter(backend, GROUP, group, ("consumer.heartbeat.interval.ms", SET, "50000")),
        alter(backend, GROUP, group, ("share.auto.offset.reset", SET, "bogus")),
        alter(backend, GROUP, group, ("consumer.session.timeout.ms", SET, "50000")),
        alter(backend, CLIENT_METRICS, subscription, ("interval.ms", SET, "5")),
        alter(backend, CLIENT_METRICS, subscription, ("nope", SET, "5")),
        alter(backend, CLIENT_METRICS, subscription, ("interval.ms", SET, "1000")),
    ]
    assert answers == [
        (40, "Unknown group config name: nope"),
        (40, "consumer.session.timeout.ms must be in the range 45000 to 60000 inclusive."),
        (40, "Invalid value x for configuration consumer.session.timeout.ms: "
             "Not a number of type INT"),
        (40, "consumer.heartbeat.interval.ms must be in the range 5000 to 15000 inclusive."),
        (40, "Invalid value bogus for configuration share.auto.offset.reset: Invalid value "
             "`bogus` for configuration share.auto.offset.reset. The value must be either "
             "'earliest', 'latest' or of the format 'by_duration:<PnDTnHnMn.nS>'."),
        (0, None),
        (42, "Invalid value 5 for interval.ms, interval must be between 100 and 3600000 (1 hour)"),
        (42, "Unknown client metrics configuration: nope"),
        (0, None),
    ]  # fmt: skip
    expected = {
        "consumer.session.timeout.ms": ("50000", 8, 3, False, False,
                                        (("consumer.session.timeout.ms", "50000", 8),
                                         ("group.consumer.session.timeout.ms", "45000", 5)))
    }  # fmt: skip
    keys = ("consumer.session.timeout.ms",)
    assert settled(lambda: entries(describe(backend, GROUP, group, keys)), expected) == expected

    def interval() -> tuple[Any, ...]:
        return entries(describe(backend, CLIENT_METRICS, subscription, ("interval.ms",)))[
            "interval.ms"
        ][:2]

    assert settled(interval, ("1000", 7)) == ("1000", 7)


@pytest.fixture
def cluster_default_restored(backend: Backend) -> Iterator[Backend]:
    """The test changes a cluster-wide default of a broker the session shares: put it back."""
    try:
        yield backend
    finally:
        alter(backend, BROKER, "", ("log.retention.ms", DELETE, None))


def test_broker_configs_described_and_altered(
    cluster_default_restored: Backend, topic_name: TopicNameFactory
) -> None:
    backend = cluster_default_restored
    broker = entries(describe(backend, BROKER, "1"))
    # Kafka's broker configs, each with its type; the values of those neither side sets.
    kafka_defaults = {
        "log.retention.hours": ("168", 5, 3, True, False, (("log.retention.hours", "168", 5),)),
        "log.retention.ms": (None, 5, 5, False, False, ()),
        "message.max.bytes": ("1048588", 5, 3, False, False,
                              (("message.max.bytes", "1048588", 5),)),
        "compression.type": ("producer", 5, 2, False, False,
                             (("compression.type", "producer", 5),)),
        "min.insync.replicas": ("1", 3, 3, False, False,
                                (("min.insync.replicas", "1", 3), ("min.insync.replicas", "1", 5))),
        "ssl.truststore.password": (None, 5, 9, False, True, ()),
    }  # fmt: skip
    for name, expected in kafka_defaults.items():
        got = broker[name]
        if name == "ssl.truststore.password":
            assert got[:3] + got[4:] == expected[:3] + expected[4:]  # nerve cannot alter it
        else:
            assert got == expected, name
    assert broker["advertised.listeners"][0] == f"PLAINTEXT://{backend.bootstrap}"
    assert broker["node.id"][0] == "1"
    kafka_names = {"num.io.threads", "log.cleaner.threads", "sasl.enabled.mechanisms",
                   "group.consumer.session.timeout.ms", "transaction.max.timeout.ms"}  # fmt: skip
    assert kafka_names <= set(broker)

    topic = topic_name()
    create(backend, topic)
    errors = [
        alter(backend, BROKER, "1", ("num.partitions", SET, "3")),
        alter(backend, BROKER, "", ("log.retention.ms", SET, "x")),
        alter(backend, BROKER, "", ("log.retention.hours", SET, "1")),
        alter(backend, BROKER, "2", ("log.retention.ms", SET, "1")),
        alter(backend, BROKER, "x", ("log.retention.ms", SET, "1")),
    ]
    assert errors == [
        (42, "Cannot update these configs dynamically: [num.partitions]"),
        (42, "Invalid value x for configuration log.retention.ms: Not a number of type LONG"),
        (42, "Cannot update these configs dynamically: [log.retention.hours]"),
        (42, "Unexpected broker id, expected 1, but received 2"),
        (42, "Node id must be an integer, but it is: x"),
    ]
    assert alter(backend, BROKER, "", ("log.retention.ms", SET, "3600000")) == (0, None)
    # Kafka applies a cluster-wide change through its metadata log, a moment later.
    deadline = time.monotonic() + 30
    while "log.retention.ms" not in (cluster := entries(describe(backend, BROKER, ""))):
        assert time.monotonic() < deadline, "the cluster default never showed"
        time.sleep(0.1)
    chain = (("log.retention.ms", "3600000", 3),)
    assert cluster["log.retention.ms"] == ("3600000", 3, 5, False, False, chain)
    retention = entries(describe(backend, TOPIC, topic, ("retention.ms",)))["retention.ms"]
    # A topic's chain goes on to the defaults (the cluster's lists dynamic settings only).
    chain += (("log.retention.hours", "168", 5),)
    assert retention == ("3600000", 3, 5, False, False, chain)
