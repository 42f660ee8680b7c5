"""KIP-848's online migration both ways, with real clients, against Apache Kafka 4.4: a
classic (cooperative-sticky) librdkafka member is joined by a ``group.protocol=consumer``
member, which turns the group into a consumer group (the upgrade); when that member leaves,
only classic members remain and the group becomes a classic group again (the downgrade), its
classic members keep consuming and a further classic member joins it as any classic group.
Each step is described by the admin client on both brokers and must read the same."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient

from tests._ck import produce_ok
from tests.compat.test_groups import Worker, balanced, wait_for
from tests.conftest import Backend, TopicNameFactory
from tests.differential.test_differential import create


def description(kind: str, assignor: str, members: int) -> dict[str, Any]:
    return {"type": kind, "state": "STABLE", "assignor": assignor, "members": members}


CLASSIC_ONE = description("CLASSIC", "cooperative-sticky", 1)
CLASSIC_TWO = description("CLASSIC", "cooperative-sticky", 2)
UPGRADED = description("CONSUMER", "uniform", 2)


def described(admin: AdminClient, group: str) -> dict[str, Any]:
    d = admin.describe_consumer_groups([group])[group].result(timeout=20)
    return {
        "type": d.type.name,
        "state": d.state.name,
        "assignor": d.partition_assignor,
        "members": len(d.members),
    }


def committed(admin: AdminClient, group: str) -> int:
    """The sum of the group's committed offsets."""
    request = [ConsumerGroupTopicPartitions(group)]
    result = admin.list_consumer_group_offsets(request)[group].result(timeout=20)
    return sum(tp.offset for tp in result.topic_partitions if tp.offset >= 0)


def settled(admin: AdminClient, group: str, want: dict[str, Any]) -> dict[str, Any]:
    """The group's description once it reads ``want`` (or the last one read, after 60 s)."""
    seen: dict[str, Any] = {}

    def check() -> bool:
        time.sleep(0.2)
        seen.update(described(admin, group))
        return seen == want

    with contextlib.suppress(AssertionError):  # the final comparison says what differs
        wait_for(check, 60, f"the group to read {want}")
    return dict(seen)


@pytest.mark.slow
def test_a_group_upgrades_then_downgrades_when_its_last_consumer_member_leaves(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    bootstrap = backend.bootstrap
    topic, group = topic_name(), topic_name("group")
    create(backend, topic, 4)
    old = Worker(bootstrap, topic, group, "cooperative-sticky")
    workers = [old]
    # One admin client, used from this thread only (librdkafka clients made and dropped by
    # the hundred, or from a polling thread, crashed the interpreter now and then).
    admin = AdminClient({"bootstrap.servers": bootstrap})
    observed: dict[str, Any] = {}
    try:
        wait_for(lambda: balanced([old], 4), 60, "the classic member to own all four")
        observed["classic"] = settled(admin, group, CLASSIC_ONE)
        new = Worker(bootstrap, topic, group, "consumer:uniform")
        workers.append(new)
        wait_for(lambda: balanced([old, new], 4), 60, "classic and consumer member sharing")
        observed["upgraded"] = settled(admin, group, UPGRADED)
        produce_ok(bootstrap, topic, [f"first-{i}".encode() for i in range(100)])
        wait_for(
            lambda: len({v for w in workers for _, _, v in w.consumed}) >= 100,
            60,
            "the first 100 messages to be consumed",
        )
        new.stop()  # closes: ConsumerGroupHeartbeat with member epoch -1
        wait_for(lambda: balanced([old], 4), 60, "the classic member to own all four again")
        observed["downgraded"] = settled(admin, group, CLASSIC_ONE)
        other = Worker(bootstrap, topic, group, "cooperative-sticky")
        workers.append(other)
        wait_for(lambda: balanced([old, other], 4), 60, "two classic members sharing")
        observed["classic again"] = settled(admin, group, CLASSIC_TWO)
        produce_ok(bootstrap, topic, [f"second-{i}".encode() for i in range(100)])
        expected = {f"first-{i}" for i in range(100)} | {f"second-{i}" for i in range(100)}
        wait_for(
            lambda: expected <= {v for w in workers for _, _, v in w.consumed},
            60,
            "every produced message to be consumed",
        )
        wait_for(lambda: committed(admin, group) == 200, 30, "commits of all 200 offsets")
    finally:
        for w in workers:
            w.stop()
    assert observed == {
        "classic": CLASSIC_ONE,
        "upgraded": UPGRADED,
        "downgraded": CLASSIC_ONE,
        "classic again": CLASSIC_TWO,
    }


@pytest.mark.slow
def test_a_static_member_restarted_with_the_classic_protocol_downgrades_the_group_at_once(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    """KIP-345 across protocols: a static member of the consumer protocol closes (leaving
    with epoch -2, its partitions kept for its session) and comes back with the classic
    protocol, as a rolled-back deployment does. Its JoinGroup without a member id replaces
    it at once, and as the group then has only classic members it becomes a classic group,
    the returning member holding its old partitions, well within the 45 s session after
    which the departed member would have been removed anyway."""
    bootstrap = backend.bootstrap
    topic, group = topic_name(), topic_name("group")
    create(backend, topic, 4)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    classic = Worker(bootstrap, topic, group, "cooperative-sticky", instance_id="a")
    workers = [classic]
    observed: dict[str, Any] = {}
    try:
        wait_for(lambda: balanced([classic], 4), 60, "the classic member to own all four")
        modern = Worker(bootstrap, topic, group, "consumer:uniform", instance_id="b")
        workers.append(modern)
        wait_for(lambda: balanced([classic, modern], 4), 60, "the two members sharing")
        observed["upgraded"] = settled(admin, group, UPGRADED)
        held = sorted(modern.assigned)
        modern.stop()  # a static member's close: ConsumerGroupHeartbeat with epoch -2
        back = Worker(bootstrap, topic, group, "cooperative-sticky", instance_id="b")
        workers.append(back)
        wait_for(
            lambda: sorted(back.assigned) == held and balanced([classic, back], 4),
            30,
            "the returning classic member to hold its old partitions",
        )
        observed["rejoined"] = settled(admin, group, CLASSIC_TWO)
        produce_ok(bootstrap, topic, [f"after-{i}".encode() for i in range(100)])
        expected = {f"after-{i}" for i in range(100)}
        wait_for(
            lambda: expected <= {v for w in (classic, back) for _, _, v in w.consumed},
            60,
            "every message produced after the downgrade to be consumed",
        )
    finally:
        for w in workers:
            w.stop()
    assert observed == {"upgraded": UPGRADED, "rejoined": CLASSIC_TWO}
