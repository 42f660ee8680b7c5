"""The consumer group protocol (KIP-848) with real clients: librdkafka (confluent-kafka,
``group.protocol=consumer``) members in separate processes join, share partitions, lose one
to SIGKILL and rebalance incrementally; the Java client consumes and commits with it; the
group's members, epochs and assignments survive a broker restart."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from nerve.broker.config import BrokerConfig, ConfigError
from tests._broker import BrokerProcess
from tests._ck import create_topic, produce_ok
from tests.compat.test_groups import CommitWatcher, Worker, balanced, wait_for
from tests.compat.test_java_client import java, run  # noqa: F401 (the java fixture)
from tests.conftest import BrokerFactory, TopicNameFactory

# Short, so that a killed member's partitions move within the test's patience.
CONFIGS = {
    "group.consumer.session.timeout.ms": 6000,
    "group.consumer.heartbeat.interval.ms": 500,
}


@pytest.fixture(scope="module")
def consumer_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path_factory.mktemp("consumer-groups") / "data", configs=CONFIGS)
    proc.start()
    try:
        yield proc
    finally:
        proc.close()


@pytest.mark.slow
@pytest.mark.parametrize("assignor", ["uniform", "range"])
def test_members_share_partitions_through_join_and_sigkill_and_lose_nothing(
    consumer_broker: BrokerProcess, topic_name: TopicNameFactory, assignor: str
) -> None:
    bootstrap = consumer_broker.bootstrap
    topic, group = topic_name(), topic_name("group")
    create_topic(bootstrap, topic, partitions=6)
    workers = [Worker(bootstrap, topic, group, f"consumer:{assignor}") for _ in range(3)]
    watcher = CommitWatcher(bootstrap, group)
    try:
        wait_for(lambda: balanced(workers, 6), 30, "three members with two partitions each")
        settled = [list(w.assigned) for w in workers]

        produce_ok(bootstrap, topic, [f"first-{i}".encode() for i in range(300)])
        workers.append(Worker(bootstrap, topic, group, f"consumer:{assignor}"))
        wait_for(lambda: balanced(workers, 6), 30, "a fourth member to get partitions")
        assert sorted(len(w.assigned) for w in workers) == [1, 1, 2, 2]
        if assignor == "uniform":
            # Sticky: every first member kept what it still has; only what the newcomer
            # took moved.
            for before, w in zip(settled, workers, strict=False):
                assert set(w.assigned) <= set(before)
            moved = sum(
                len(set(b) - set(w.assigned)) for b, w in zip(settled, workers, strict=False)
            )
            assert moved == len(workers[3].assigned)

        victim = next(w for w in workers if w.assigned)
        victim.kill()
        survivors = [w for w in workers if w is not victim]
        wait_for(lambda: balanced(survivors, 6), 40, "the killed member's partitions to move")

        produce_ok(bootstrap, topic, [f"second-{i}".encode() for i in range(300)])
        expected = {f"first-{i}" for i in range(300)} | {f"second-{i}" for i in range(300)}

        def everything_consumed() -> bool:
            return expected <= {v for w in workers for _, _, v in w.consumed}

        wait_for(everything_consumed, 40, "every produced message to be consumed")
        wait_for(lambda: sum(watcher.poll().values()) == 600, 20, "commits of all 600 offsets")
    finally:
        for w in workers:
            w.stop()
        watcher.close()
    for partition, offsets in watcher.history.items():
        who = [
            (i, e)
            for i, w in enumerate(workers)
            for e in w.events
            if "assigned" in e or ("consumed" in e and e["consumed"][0] == partition)  # type: ignore[index]
        ]
        assert offsets == sorted(offsets), (
            f"partition {partition} commits went back: {offsets} {who[-80:]}"
        )
    assert len(watcher.history) == 6


def test_the_group_is_described_and_listed_as_a_consumer_group(
    consumer_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    bootstrap = consumer_broker.bootstrap
    topic, group = topic_name(), topic_name("group")
    create_topic(bootstrap, topic, partitions=3)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.protocol": "consumer",
            "client.id": "describe-me",
        }
    )
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 20
        while len(consumer.assignment()) < 3 and time.monotonic() < deadline:
            consumer.poll(0.1)
        assert len(consumer.assignment()) == 3
        described = admin.describe_consumer_groups([group])[group].result(timeout=10)
        assert described.type.name == "CONSUMER"
        assert described.state.name == "STABLE"
        assert described.partition_assignor == "uniform"
        (member,) = described.members
        assert member.client_id == "describe-me"
        assert sorted(tp.partition for tp in member.assignment.topic_partitions) == [0, 1, 2]
        listed = admin.list_consumer_groups().result(timeout=10).valid
        (ours,) = [g for g in listed if g.group_id == group]
        assert ours.type.name == "CONSUMER"
    finally:
        consumer.close()
    described = admin.describe_consumer_groups([group])[group].result(timeout=10)
    assert described.state.name == "EMPTY"
    assert admin.delete_consumer_groups([group])[group].result(timeout=10) is None


def test_a_regex_subscription_follows_topics_created_later(
    consumer_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    bootstrap = consumer_broker.bootstrap
    prefix, group = topic_name("rx"), topic_name("group")
    create_topic(bootstrap, f"{prefix}-a", partitions=1)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.protocol": "consumer",
            "topic.metadata.refresh.interval.ms": 500,
        }
    )
    try:
        consumer.subscribe([f"^{prefix}-.*"])
        deadline = time.monotonic() + 20
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.1)
        assert [tp.topic for tp in consumer.assignment()] == [f"{prefix}-a"]
        create_topic(bootstrap, f"{prefix}-b", partitions=2)
        create_topic(bootstrap, f"other-{prefix}", partitions=1)
        deadline = time.monotonic() + 20
        while len(consumer.assignment()) < 3 and time.monotonic() < deadline:
            consumer.poll(0.1)
        assert sorted((tp.topic, tp.partition) for tp in consumer.assignment()) == [
            (f"{prefix}-a", 0),
            (f"{prefix}-b", 0),
            (f"{prefix}-b", 1),
        ]
    finally:
        consumer.close()


def test_members_epochs_and_assignments_survive_a_broker_restart(
    broker_factory: BrokerFactory, topic_name: TopicNameFactory
) -> None:
    broker = broker_factory(CONFIGS)
    topic, group = topic_name(), topic_name("group")
    create_topic(broker.bootstrap, topic, partitions=4)
    produce_ok(broker.bootstrap, topic, [f"m{i}".encode() for i in range(8)])
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": group,
            "group.protocol": "consumer",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    try:
        consumer.subscribe([topic])
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 8 and time.monotonic() < deadline:
            message = consumer.poll(0.1)
            if message is not None and not message.error():
                got.append(message)
        assert len(got) == 8
        consumer.commit(asynchronous=False)
        before = admin.describe_consumer_groups([group])[group].result(timeout=10)
        broker.kill()
        broker.restart()
        after = AdminClient({"bootstrap.servers": broker.bootstrap})
        described = after.describe_consumer_groups([group])[group].result(timeout=10)
        assert [m.member_id for m in described.members] == [m.member_id for m in before.members]
        assert sorted(tp.partition for tp in described.members[0].assignment.topic_partitions) == [
            0,
            1,
            2,
            3,
        ]
        # The member goes on with its epoch: its heartbeats and commits are accepted.
        produce_ok(broker.bootstrap, topic, [b"late"])
        late = None
        deadline = time.monotonic() + 30
        while late is None and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                late = message
        assert late is not None and late.value() == b"late"
        consumer.commit(message=late, asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, late.partition())], timeout=10)
        assert committed[0].offset == late.offset() + 1
    except KafkaException:
        raise
    finally:
        consumer.close()


@pytest.mark.slow
def test_java_client_consumes_and_commits_with_the_consumer_protocol(
    consumer_broker: BrokerProcess,
    java: list[str],  # noqa: F811
    topic_name: TopicNameFactory,
) -> None:
    bootstrap = consumer_broker.bootstrap
    topic, group = topic_name(), topic_name("group")
    create_topic(bootstrap, topic, partitions=3)
    assert run(java, "produce", bootstrap, topic, "100") == ["produced 100"]
    consumed = run(java, "consume", bootstrap, topic, group, "100", "consumer")
    assert sorted(line for line in consumed if line.startswith("record ")) == sorted(
        f"record v{i}" for i in range(100)
    )
    assert consumed[-1] == "committed 100"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    described = admin.describe_consumer_groups([group])[group].result(timeout=10)
    assert described.type.name == "CONSUMER"
    assert described.state.name == "EMPTY"


@pytest.mark.slow
def test_a_classic_group_upgrades_member_by_member_and_loses_nothing(
    consumer_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    """A rolling upgrade: classic (cooperative-sticky) members are joined by members of the
    consumer protocol, which share the partitions with them, then replace them."""
    bootstrap = consumer_broker.bootstrap
    topic, group = topic_name(), topic_name("group")
    create_topic(bootstrap, topic, partitions=4)
    old = [Worker(bootstrap, topic, group, "cooperative-sticky") for _ in range(2)]
    watcher = CommitWatcher(bootstrap, group)
    new: list[Worker] = []
    try:
        wait_for(lambda: balanced(old, 4), 30, "two classic members with two partitions each")
        produce_ok(bootstrap, topic, [f"first-{i}".encode() for i in range(200)])
        new = [Worker(bootstrap, topic, group, "consumer:uniform") for _ in range(2)]
        wait_for(lambda: balanced(old + new, 4), 40, "classic and consumer members sharing")
        admin = AdminClient({"bootstrap.servers": bootstrap})
        described = admin.describe_consumer_groups([group])[group].result(timeout=10)
        assert described.type.name == "CONSUMER"
        assert len(described.members) == 4
        for w in old:
            w.stop()
        wait_for(lambda: balanced(new, 4), 40, "the consumer members to take over")
        produce_ok(bootstrap, topic, [f"second-{i}".encode() for i in range(200)])
        expected = {f"first-{i}" for i in range(200)} | {f"second-{i}" for i in range(200)}
        wait_for(
            lambda: expected <= {v for w in old + new for _, _, v in w.consumed},
            40,
            "every produced message to be consumed",
        )
        wait_for(lambda: sum(watcher.poll().values()) == 400, 20, "commits of all 400 offsets")
    finally:
        for w in old + new:
            w.stop()
        watcher.close()
    for partition, offsets in watcher.history.items():
        assert offsets == sorted(offsets), f"partition {partition} commits went back: {offsets}"


@pytest.mark.slow
def test_a_restarted_static_member_gets_its_partitions_back_without_moving_others(
    consumer_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    """KIP-345 with the consumer protocol: a static member that closes leaves with epoch -2;
    started again with its instance id within the session, it takes its old partitions and
    no other member's assignment changes."""
    bootstrap = consumer_broker.bootstrap
    topic, group = topic_name(), topic_name("group")
    create_topic(bootstrap, topic, partitions=4)
    workers = [
        Worker(bootstrap, topic, group, "consumer:uniform", f"replica-{i}") for i in range(2)
    ]
    try:
        wait_for(lambda: balanced(workers, 4), 30, "two static members with two partitions")
        before = [sorted(w.assigned) for w in workers]
        other_events = len(workers[1].events)
        workers[0].stop()
        workers[0] = Worker(bootstrap, topic, group, "consumer:uniform", "replica-0")
        wait_for(lambda: sorted(workers[0].assigned) == before[0], 20, "the old partitions")
        # The member that stayed saw no rebalance at all.
        assert [e for e in workers[1].events[other_events:] if "assigned" in e] == []
        assert sorted(workers[1].assigned) == before[1]
        admin = AdminClient({"bootstrap.servers": bootstrap})
        described = admin.describe_consumer_groups([group])[group].result(timeout=10)
        assert sorted(m.group_instance_id for m in described.members) == [
            "replica-0",
            "replica-1",
        ]
    finally:
        for w in workers:
            w.stop()


def group_type(admin: AdminClient, group: str) -> str:
    return str(admin.describe_consumer_groups([group])[group].result(timeout=10).type.name)


@pytest.mark.slow
def test_a_sigkilled_last_consumer_member_turns_the_group_classic_again(
    consumer_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    """The online downgrade when the last member of the consumer protocol is not closed but
    killed: once its session (6 s here) runs out, the two classic members are a classic group
    and share its partitions, their leader assigning (tests/differential/test_group_migration.py
    compares the closing case with Kafka 4.4)."""
    bootstrap = consumer_broker.bootstrap
    topic, group = topic_name(), topic_name("group")
    create_topic(bootstrap, topic, partitions=4)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    old = [Worker(bootstrap, topic, group, "cooperative-sticky") for _ in range(2)]
    workers = list(old)
    try:
        wait_for(lambda: balanced(old, 4), 30, "two classic members with two partitions each")
        new = Worker(bootstrap, topic, group, "consumer:uniform")
        workers.append(new)
        wait_for(lambda: balanced([*old, new], 4) and bool(new.assigned), 40, "three sharing")
        assert group_type(admin, group) == "CONSUMER"
        new.kill()
        wait_for(lambda: balanced(old, 4), 40, "the classic members to share all four")
        wait_for(lambda: group_type(admin, group) == "CLASSIC", 20, "a classic group again")
        produce_ok(bootstrap, topic, [f"m-{i}".encode() for i in range(100)])
        wait_for(
            lambda: {f"m-{i}" for i in range(100)} <= {v for w in old for _, _, v in w.consumed},
            30,
            "every message consumed by the classic members",
        )
    finally:
        for w in workers:
            w.stop()


@pytest.mark.slow
def test_the_migration_policy_upgrade_keeps_the_group_a_consumer_group(
    broker_factory: BrokerFactory, topic_name: TopicNameFactory
) -> None:
    """group.consumer.migration.policy=upgrade: no way back; the classic member left alone
    is still served by the consumer group; a value Kafka would not take refuses to start."""
    with pytest.raises(ConfigError, match=r"group\.consumer\.migration\.policy must be one of"):
        BrokerConfig().apply({"group.consumer.migration.policy": "sideways"})
    broker = broker_factory({**CONFIGS, "group.consumer.migration.policy": "UPGRADE"})
    bootstrap = broker.bootstrap
    topic, group = topic_name(), topic_name("group")
    create_topic(bootstrap, topic, partitions=2)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    old = Worker(bootstrap, topic, group, "cooperative-sticky")
    workers = [old]
    try:
        wait_for(lambda: balanced([old], 2), 30, "the classic member to own both")
        new = Worker(bootstrap, topic, group, "consumer:uniform")
        workers.append(new)
        wait_for(lambda: balanced([old, new], 2), 40, "a classic and a consumer member")
        assert group_type(admin, group) == "CONSUMER"
        new.stop()
        wait_for(lambda: balanced([old], 2), 40, "the classic member to own both again")
        time.sleep(1)
        assert group_type(admin, group) == "CONSUMER"
    finally:
        for w in workers:
            w.stop()


@pytest.mark.slow
def test_the_migration_policy_downgrade_refuses_an_upgrade(
    broker_factory: BrokerFactory, topic_name: TopicNameFactory
) -> None:
    """group.consumer.migration.policy=downgrade: a consumer-protocol member cannot join a
    classic group with members (GROUP_ID_NOT_FOUND); the classic member keeps everything."""
    broker = broker_factory({**CONFIGS, "group.consumer.migration.policy": "downgrade"})
    bootstrap = broker.bootstrap
    topic, group = topic_name(), topic_name("group")
    create_topic(bootstrap, topic, partitions=2)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    old = Worker(bootstrap, topic, group, "cooperative-sticky")
    new: Worker | None = None
    try:
        wait_for(lambda: balanced([old], 2), 30, "the classic member to own both")
        new = Worker(bootstrap, topic, group, "consumer:uniform")
        joined = new
        wait_for(
            lambda: any("error" in e for e in joined.events), 30, "the consumer member's error"
        )
        errors = [str(e["error"]) for e in joined.events if "error" in e]
        # librdkafka names the error by its text: GROUP_ID_NOT_FOUND, fatal for the member.
        assert any("The group id does not exist" in e for e in errors), errors
        assert joined.assigned == [] and sorted(old.assigned) == [0, 1]
        assert group_type(admin, group) == "CLASSIC"
    finally:
        old.stop()
        if new is not None:
            new.stop()


@pytest.mark.slow
def test_a_downgraded_group_is_still_classic_after_a_broker_restart(
    broker_factory: BrokerFactory, topic_name: TopicNameFactory
) -> None:
    """The downgrade is written to __consumer_offsets (the consumer group's records deleted,
    the classic group's metadata written): a restarted broker replays a classic group, which
    its classic member rejoins."""
    broker = broker_factory(CONFIGS)
    bootstrap = broker.bootstrap
    topic, group = topic_name(), topic_name("group")
    create_topic(bootstrap, topic, partitions=2)
    old = Worker(bootstrap, topic, group, "cooperative-sticky")
    workers = [old]
    try:
        wait_for(lambda: balanced([old], 2), 30, "the classic member to own both")
        new = Worker(bootstrap, topic, group, "consumer:uniform")
        workers.append(new)
        wait_for(lambda: balanced([old, new], 2), 40, "a classic and a consumer member")
        new.stop()
        admin = AdminClient({"bootstrap.servers": bootstrap})
        wait_for(
            lambda: (
                str(admin.describe_consumer_groups([group])[group].result(10).state.name)
                == "STABLE"
                and group_type(admin, group) == "CLASSIC"
            ),
            30,
            "a stable classic group again",
        )
        broker.restart()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        assert group_type(admin, group) == "CLASSIC"
        produce_ok(broker.bootstrap, topic, [f"m-{i}".encode() for i in range(50)])
        wait_for(
            lambda: {f"m-{i}" for i in range(50)} <= {v for _, _, v in old.consumed},
            40,
            "the classic member to consume after the restart",
        )
    finally:
        for w in workers:
            w.stop()
