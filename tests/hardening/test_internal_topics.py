"""Issue 11, item 10: nerve's own state in its internal topics survives what clients send.
DeleteRecords on them is refused (as Kafka), and so are config changes that would let retention
delete them (Kafka accepts those: docs/compatibility.md)."""

from __future__ import annotations

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from tests._broker import BrokerProcess
from tests._ck import Out, admin, produce_ok
from tests.conftest import TopicNameFactory


def _alter_error(bootstrap: str, topic: str, entries: list[ConfigEntry]) -> str:
    client = admin(bootstrap)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=entries)
    future = client.incremental_alter_configs([resource])[resource]
    try:
        future.result(30)
    except Exception as exc:
        return str(exc.args[0].str())
    return "NONE"


def test_retention_cannot_be_set_on_internal_topics(
    broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic, group = topic_name(), topic_name("group")
    produce_ok(broker.bootstrap, topic, [Out(b"x")])
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    consumer.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    consumer.close()
    set_op = AlterConfigOpType.SET
    for internal in ("__consumer_offsets", "__transaction_state"):
        harmful = [
            ("retention.ms", "1"),
            ("retention.bytes", "10"),
            ("cleanup.policy", "delete"),
            ("cleanup.policy", "compact,delete"),
        ]
        for name, value in harmful:
            entry = ConfigEntry(name, value, incremental_operation=set_op)
            error = _alter_error(broker.bootstrap, internal, [entry])
            assert "internal topic" in error, (internal, name, value, error)
        # Deleting the compact override would leave the broker's default, delete: refused too.
        entry = ConfigEntry("cleanup.policy", None, incremental_operation=AlterConfigOpType.DELETE)
        assert "must stay compact" in _alter_error(broker.bootstrap, internal, [entry])
        # What cannot delete anything is accepted.
        entry = ConfigEntry("min.cleanable.dirty.ratio", "0.2", incremental_operation=set_op)
        assert _alter_error(broker.bootstrap, internal, [entry]) == "NONE"
    broker.restart()
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    (committed,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
    consumer.close()
    assert committed.offset == 1
