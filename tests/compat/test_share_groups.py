"""Share groups (KIP-932) with the Java client's KafkaShareConsumer, on nerve and on Kafka 4.4:
records are acquired, released records come back with a higher delivery count, rejected ones
never, accepted ones once."""

from __future__ import annotations

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
    assert lines[0] == "released v0 1"
    assert "rejected v1 1" in lines
    accepted = sorted(line for line in lines if line.startswith("record "))
    # v0 comes back once released, its second delivery; the rest are delivered once each.
    assert accepted == sorted(["record v0 2"] + [f"record v{i} 1" for i in range(2, 20)])
    assert lines[-1] == "consumed 20"
