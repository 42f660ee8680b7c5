"""``group.max.size`` (classic groups) and ``group.consumer.max.size`` (KIP-848) against Apache
Kafka 4.4, with librdkafka: a member beyond the limit is refused with GROUP_MAX_SIZE_REACHED
and the group goes on without it; when a member leaves, the refused one gets in."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError
from confluent_kafka.admin import AdminClient, NewTopic

from tests._broker import BrokerProcess
from tests._kafka import KafkaProcess
from tests.conftest import DIFFERENTIAL_CONFIGS, TopicNameFactory

pytestmark = pytest.mark.slow

LIMITS = {**DIFFERENTIAL_CONFIGS, "group.max.size": 2, "group.consumer.max.size": 2}


@pytest.fixture(scope="module", params=["nerve", "kafka"])
def limited(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    data: Path = tmp_path_factory.mktemp(f"group-max-size-{request.param}") / "data"
    proc = KafkaProcess(data, configs=LIMITS) if request.param == "kafka" else None
    broker = proc or BrokerProcess(data, configs=LIMITS)
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.close()


def member(bootstrap: str, group: str, topic: str, protocol: str) -> Consumer:
    extra = {"session.timeout.ms": 6000} if protocol == "classic" else {}
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": protocol, **extra}
    )
    consumer.subscribe([topic])
    return consumer


def poll_all(consumers: list[Consumer], seconds: float, until: object = None) -> list[KafkaError]:
    """Poll every consumer for ``seconds`` (or until ``until()``); the errors the last one saw."""
    errors: list[KafkaError] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for consumer in consumers:
            message = consumer.poll(0.1)
            if message is not None and message.error() is not None and consumer is consumers[-1]:
                errors.append(message.error())
        if callable(until) and until():
            break
    return errors


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_a_member_beyond_the_limit_is_refused_and_gets_in_when_one_leaves(
    limited: str, topic_name: TopicNameFactory, protocol: str
) -> None:
    topic, group = topic_name(), topic_name("group")
    admin = AdminClient({"bootstrap.servers": limited})
    admin.create_topics([NewTopic(topic, 4, 1)])[topic].result(30)
    members = [member(limited, group, topic, protocol) for _ in range(2)]
    try:
        poll_all(members, 40, until=lambda: all(len(m.assignment()) == 2 for m in members))
        assert [len(m.assignment()) for m in members] == [2, 2]
        members.append(member(limited, group, topic, protocol))
        errors = poll_all(members, 8)
        assert errors, "the third member was not refused"
        if protocol == "classic":
            # Retried by the client, refused each time.
            assert {e.code() for e in errors} == {KafkaError.GROUP_MAX_SIZE_REACHED}
        else:
            # librdkafka makes the heartbeat's GROUP_MAX_SIZE_REACHED fatal to the consumer.
            assert errors[0].code() == KafkaError._FATAL
            assert "maximum size" in errors[0].str()
        assert [len(m.assignment()) for m in members] == [2, 2, 0]
        described = admin.describe_consumer_groups([group])[group].result(timeout=10)
        assert len(described.members) == 2
        if protocol == "classic":
            members.pop(0).close()
            poll_all(members, 40, until=lambda: all(len(m.assignment()) == 2 for m in members))
            assert [len(m.assignment()) for m in members] == [2, 2]
    finally:
        for m in members:
            m.close()
