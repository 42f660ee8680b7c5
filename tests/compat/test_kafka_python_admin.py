"""kafka-python's admin client against nerve and Apache Kafka: the broker configs that client
fixtures read (advertised listeners and the like), and the admin calls nerve answers for
tools: log dirs, producers, reassignments, SCRAM credentials, ACLs, cluster, config resources."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kafka import TopicPartition
from kafka.admin import (
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ConfigResource,
    ConfigResourceType,
    KafkaAdminClient,
    ResourcePattern,
    ResourceType,
)
from kafka.errors import SecurityDisabledError

from tests.conftest import Backend, TopicNameFactory
from tests.differential.test_differential import create


@pytest.fixture
def admin(backend: Backend) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=backend.bootstrap)
    try:
        yield client
    finally:
        client.close()


def test_broker_configs_that_client_fixtures_read(
    backend: Backend, admin: KafkaAdminClient
) -> None:
    described = admin.describe_configs(
        [ConfigResource(ConfigResourceType.BROKER, "1", configs=None)], config_filter="all"
    )["broker"]["1"]
    assert len(described) >= 350  # every broker config Kafka 4.4 defines
    assert described["advertised.listeners"]["value"] == f"PLAINTEXT://{backend.bootstrap}"
    assert f"PLAINTEXT://{backend.bootstrap}" in described["listeners"]["value"].split(",")
    seen = {
        name: (described[name]["value"], described[name]["config_source"],
               described[name]["config_type"])
        for name in ("num.partitions", "default.replication.factor",
                     "auto.create.topics.enable", "offsets.topic.replication.factor",
                     "broker.id", "node.id", "message.max.bytes")
    }  # fmt: skip
    assert seen == {
        "num.partitions": ("1", "DEFAULT_CONFIG", "INT"),
        "default.replication.factor": ("1", "DEFAULT_CONFIG", "INT"),
        "auto.create.topics.enable": ("true", "DEFAULT_CONFIG", "BOOLEAN"),
        "offsets.topic.replication.factor": ("1", "STATIC_BROKER_CONFIG", "SHORT"),
        "broker.id": ("1", "STATIC_BROKER_CONFIG", "INT"),
        "node.id": ("1", "STATIC_BROKER_CONFIG", "INT"),
        "message.max.bytes": ("1048588", "DEFAULT_CONFIG", "INT"),
    }
    assert described["log.dirs"]["config_source"] == "STATIC_BROKER_CONFIG"


def test_admin_calls_tools_make(
    backend: Backend, admin: KafkaAdminClient, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create(backend, topic)
    deadline = time.monotonic() + 30
    while True:  # Kafka creates a new partition's log a moment after the topic
        (dirs,) = admin.describe_log_dirs()
        (log_dir,) = dirs["log_dirs"]
        if topic in {t["name"] for t in log_dir["topics"]} or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert (dirs["broker"], log_dir["error_code"]) == (1, 0)
    assert topic in {t["name"] for t in log_dir["topics"]}
    producers = admin.describe_producers([TopicPartition(topic, 0)])
    assert producers[TopicPartition(topic, 0)].active_producers == []
    assert admin.list_partition_reassignments() == {}
    assert admin.describe_user_scram_credentials() == {}
    everything = ACLFilter(
        principal=None,
        host="*",
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePattern(ResourceType.TOPIC, topic),
    )
    with pytest.raises(SecurityDisabledError, match="No Authorizer is configured on the broker"):
        admin.describe_acls(everything)
    cluster = admin.describe_cluster()
    assert [b["broker_id"] for b in cluster["brokers"]] == [1]
    assert cluster["authorized_operations"] == ["CREATE", "ALTER", "DESCRIBE", "CLUSTER_ACTION",
                                                "DESCRIBE_CONFIGS", "ALTER_CONFIGS",
                                                "IDEMPOTENT_WRITE"]  # fmt: skip
    resources = admin.list_config_resources()
    assert (resources["broker"], resources["broker_logger"]) == (["1"], ["1"])
    assert topic in resources["topic"]
