"""Share groups (KIP-932) with the Java client's KafkaShareConsumer and librdkafka's
ShareConsumer, on nerve and on Kafka 4.4:
records are acquired, released records come back with a higher delivery count, rejected ones
never, accepted ones once."""

from __future__ import annotations

import time

import pytest

from tests._ck import create_topic
from tests.compat.test_java_client import java, run  # noqa: F401 (the java fixture)
from tests.conftest import Backend, TopicNameFactory


@pytest.mark.slow
def test_a_share_consumer_accepts_releases_and_rejects_records_as_on_kafka(
    backend: Backend,
    java: list[str],  # noqa: F811
    topic_name: TopicNameFactory,
) -> None:
    topic, group = topic_name(), topic_name("share")
    create_topic(backend.bootstrap, topic, partitions=1)
    assert run(java, "produce", backend.bootstrap, topic, "20") == ["produced 20"]
    lines = run(java, "share", backend.bootstrap, topic, group, "20")
    # Every commitSync (a ShareAcknowledge v2) answered without a failure: nerve used to close
    # the connection instead, so acknowledgements were lost and records came back.
    assert [line for line in lines if line.startswith("commit failed")] == []
    assert lines[0] == "released v0 1"
    assert "rejected v1 1" in lines
    accepted = sorted(line for line in lines if line.startswith("record "))
    # v0 comes back once released, its second delivery; the rest are delivered once each.
    assert accepted == sorted(["record v0 2"] + [f"record v{i} 1" for i in range(2, 20)])
    assert lines[-1] == "consumed 20"


def test_librdkafka_share_consumers_split_a_partition_and_redeliver_as_on_kafka(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    """confluent-kafka's ShareConsumer (librdkafka's KIP-932 client), explicit mode: two
    members read one partition together, every record accepted once overall; a released
    record comes back with a higher delivery count, a rejected one never."""
    from confluent_kafka import AcknowledgeType, ShareConsumer

    from tests._ck import produce_ok
    from tests.differential.test_share_groups import earliest

    topic, group = topic_name(), topic_name("share")
    create_topic(backend.bootstrap, topic, partitions=1)
    earliest(backend, group)
    produce_ok(backend.bootstrap, topic, [f"v{i}".encode() for i in range(40)])
    config = {
        "bootstrap.servers": backend.bootstrap,
        "group.id": group,
        "share.acknowledgement.mode": "explicit",
    }
    members = [ShareConsumer(config), ShareConsumer(config)]
    accepted: dict[str, int] = {}
    rejected: list[str] = []
    released = False
    try:
        for member in members:
            member.subscribe([topic])
        deadline = time.monotonic() + 60
        while len(accepted) + len(rejected) < 40 and time.monotonic() < deadline:
            for member in members:
                for message in member.poll(0.2):
                    if message.error() is not None:
                        continue
                    value = message.value().decode()
                    if value == "v0" and not released:
                        member.acknowledge(message, AcknowledgeType.RELEASE)
                        released = True
                    elif value == "v1":
                        member.acknowledge(message, AcknowledgeType.REJECT)
                        rejected.append(value)
                    else:
                        member.acknowledge(message, AcknowledgeType.ACCEPT)
                        assert value not in accepted, f"{value} accepted twice"
                        accepted[value] = message.delivery_count()
                member.commit_sync()
    finally:
        for member in members:
            member.close()
    assert rejected == ["v1"]
    assert sorted(accepted) == sorted(f"v{i}" for i in range(40) if i != 1)
    assert accepted["v0"] == 2
    assert {v: n for v, n in accepted.items() if v != "v0"} == {f"v{i}": 1 for i in range(2, 40)}
