"""Consumer groups with real clients: confluent-kafka consumers in separate processes sharing a
topic, joining, leaving and being killed; kafka-python and aiokafka group consumers; committed
offsets across a broker restart; the AdminClient's view of groups."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from tests._broker import BrokerProcess
from tests._ck import Out, create_topic, produce_ok
from tests.conftest import BrokerFactory, TopicNameFactory

WORKER = Path(__file__).with_name("_group_worker.py")
REPO = Path(__file__).resolve().parents[2]
INITIAL_DELAY_MS = 300


@pytest.fixture(scope="module")
def group_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    root = tmp_path_factory.mktemp("groups")
    proc = BrokerProcess(
        root / "data", configs={"group.initial.rebalance.delay.ms": INITIAL_DELAY_MS}
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.close()


class Worker:
    """One ``_group_worker.py`` process and what it reported so far."""

    def __init__(
        self, bootstrap: str, topic: str, group: str, assignor: str, instance_id: str = ""
    ) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        argv = [sys.executable, str(WORKER), bootstrap, topic, group, assignor]
        self.proc = subprocess.Popen(
            argv + ([instance_id] if instance_id else []),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.assigned: list[int] = []
        self.consumed: list[tuple[int, int, str]] = []
        self.events: list[dict[str, object]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            self.events.append(event)
            if "assigned" in event:
                self.assigned = list(event["assigned"])
            if "consumed" in event:
                p, o, v = event["consumed"]
                self.consumed.append((p, o, v))

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def balanced(workers: list[Worker], partitions: int) -> bool:
    """Every partition owned by exactly one worker, and shares differ by at most one."""
    owned = [p for w in workers for p in w.assigned]
    sizes = [len(w.assigned) for w in workers]
    return sorted(owned) == list(range(partitions)) and max(sizes) - min(sizes) <= 1


class CommitWatcher:
    """Polls the group's committed offsets and records every value each partition took."""

    def __init__(self, bootstrap: str, group: str) -> None:
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.group = group
        self.history: dict[int, list[int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(0.2)

    def poll(self) -> dict[int, int]:
        request = [ConsumerGroupTopicPartitions(self.group)]
        result = self.admin.list_consumer_group_offsets(request)[self.group].result(timeout=10)
        current = {tp.partition: tp.offset for tp in result.topic_partitions if tp.offset >= 0}
        for p, o in current.items():
            seen = self.history.setdefault(p, [])
            if not seen or seen[-1] != o:
                seen.append(o)
        return current

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.mark.slow
@pytest.mark.parametrize("assignor", ["range", "cooperative-sticky"])
def test_replicas_share_partitions_through_join_and_sigkill_and_lose_nothing(
    group_broker: BrokerProcess, topic_name: TopicNameFactory, assignor: str
) -> None:
    bootstrap = group_broker.bootstrap
    topic, group = topic_name(), topic_name("group")
    create_topic(bootstrap, topic, partitions=6)
    workers = [Worker(bootstrap, topic, group, assignor) for _ in range(3)]
    watcher = CommitWatcher(bootstrap, group)
    try:
        wait_for(lambda: balanced(workers, 6), 30, "three members with two partitions each")
        assert sorted(len(w.assigned) for w in workers) == [2, 2, 2]

        produce_ok(bootstrap, topic, [f"first-{i}".encode() for i in range(300)])
        workers.append(Worker(bootstrap, topic, group, assignor))
        wait_for(lambda: balanced(workers, 6), 30, "a fourth member to get partitions")
        assert sorted(len(w.assigned) for w in workers) == [1, 1, 2, 2]

        victim = next(w for w in workers if w.assigned)
        victim.kill()
        survivors = [w for w in workers if w is not victim]
        # The victim's partitions move once its 6 s session times out.
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
        assert offsets == sorted(offsets), f"partition {partition} commits went back: {offsets}"
    assert len(watcher.history) == 6


def test_admin_client_lists_and_describes_groups_and_offsets(
    group_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    bootstrap = group_broker.bootstrap
    topic, group = topic_name(), topic_name("group")
    create_topic(bootstrap, topic, partitions=2)
    produce_ok(bootstrap, topic, [Out(v, partition=0) for v in (b"a", b"b", b"c")])
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": "describe-me",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        consumer.subscribe([topic])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 3 and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                got.append(message)
        assert [m.value() for m in got] == [b"a", b"b", b"c"]
        consumer.commit(message=got[-1], asynchronous=False)

        listed = admin.list_consumer_groups().result(timeout=10)
        assert group in {g.group_id for g in listed.valid}
        described = admin.describe_consumer_groups([group])[group].result(timeout=10)
        assert described.state.name == "STABLE"
        assert described.partition_assignor == "range"
        (member,) = described.members
        assert member.client_id == "describe-me"
        assert member.host.endswith("127.0.0.1")
        assert sorted(tp.partition for tp in member.assignment.topic_partitions) == [0, 1]

        offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
        committed = offsets[group].result(timeout=10).topic_partitions
        assert [(tp.topic, tp.partition, tp.offset) for tp in committed] == [(topic, 0, 3)]
    finally:
        consumer.close()
    described = admin.describe_consumer_groups([group])[group].result(timeout=10)
    assert described.state.name == "EMPTY"
    assert admin.delete_consumer_groups([group])[group].result(timeout=10) is None
    assert group not in {g.group_id for g in admin.list_consumer_groups().result(10).valid}


def test_committed_offsets_survive_a_broker_kill_and_the_group_resumes_there(
    broker_factory: BrokerFactory, topic_name: TopicNameFactory
) -> None:
    broker = broker_factory({"group.initial.rebalance.delay.ms": 0})
    topic, group = topic_name(), topic_name("group")
    create_topic(broker.bootstrap, topic, partitions=1)
    produce_ok(broker.bootstrap, topic, [f"m{i}".encode() for i in range(10)])

    def consumer() -> Consumer:
        c = Consumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        c.subscribe([topic])
        return c

    def take(c: Consumer, n: int) -> list[bytes]:
        got: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(got) < n and time.monotonic() < deadline:
            message = c.poll(0.2)
            if message is not None and not message.error():
                got.append(message.value())
                c.commit(message=message, asynchronous=False)
        return got

    first = consumer()
    try:
        assert take(first, 4) == [b"m0", b"m1", b"m2", b"m3"]
    finally:
        first.close()
    broker.kill()
    broker.restart()
    second = consumer()
    try:
        assert take(second, 6) == [f"m{i}".encode() for i in range(4, 10)]
        committed = second.committed([TopicPartition(topic, 0)], timeout=10)
        assert committed[0].offset == 10
    finally:
        second.close()


def test_kafka_python_group_consumers_split_partitions_and_resume_from_commits(
    group_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    from kafka import KafkaConsumer

    bootstrap = group_broker.bootstrap
    topic, group = topic_name(), topic_name("group")
    create_topic(bootstrap, topic, partitions=2)
    produce_ok(bootstrap, topic, [Out(f"a{i}".encode(), partition=0) for i in range(5)])
    produce_ok(bootstrap, topic, [Out(f"b{i}".encode(), partition=1) for i in range(5)])

    def consumer() -> KafkaConsumer:
        return KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
        )

    one, two = consumer(), consumer()
    try:
        got: dict[int, set[bytes]] = {0: set(), 1: set()}

        def settled() -> bool:
            split = len(one.assignment()) == len(two.assignment()) == 1
            return split and sum(map(len, got.values())) == 10

        deadline = time.monotonic() + 40
        while not settled() and time.monotonic() < deadline:
            for c in (one, two):
                # Longer than a join takes (the initial delay and the other member): a
                # kafka-python 3.0 leader whose poll times out mid-join starts the join over,
                # and with two consumers polled in turn the group then never settles.
                for tp, records in c.poll(timeout_ms=1000).items():
                    got[tp.partition].update(r.value for r in records)
        # A partition may be read twice while the group forms (nothing committed yet).
        assert got == {
            0: {f"a{i}".encode() for i in range(5)},
            1: {f"b{i}".encode() for i in range(5)},
        }
        assert len(one.assignment()) == len(two.assignment()) == 1
        one.commit()
        two.commit()
    finally:
        one.close()
        two.close()

    produce_ok(bootstrap, topic, [Out(b"a-late", partition=0)])
    again = consumer()
    try:
        late: list[bytes] = []
        deadline = time.monotonic() + 30
        while not late and time.monotonic() < deadline:
            for records in again.poll(timeout_ms=1000).values():
                late.extend(r.value for r in records)
        assert late == [b"a-late"]
    finally:
        again.close()


def test_aiokafka_group_consumer_commits_and_a_successor_resumes(
    group_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    from aiokafka import AIOKafkaConsumer

    bootstrap = group_broker.bootstrap
    topic, group = topic_name(), topic_name("group")
    create_topic(bootstrap, topic, partitions=3)
    produce_ok(bootstrap, topic, [Out(f"v{i}".encode(), key=b"k%d" % i) for i in range(9)])

    async def consume(n: int) -> list[bytes]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
        )
        await consumer.start()
        try:
            got: list[bytes] = []
            async with asyncio.timeout(30):
                while len(got) < n:
                    batches = await consumer.getmany(timeout_ms=200)
                    for records in batches.values():
                        got.extend(r.value for r in records)
            await consumer.commit()
            return got
        finally:
            await consumer.stop()

    assert sorted(asyncio.run(consume(9))) == sorted(f"v{i}".encode() for i in range(9))
    produce_ok(bootstrap, topic, [Out(b"after", key=b"k")])
    assert asyncio.run(consume(1)) == [b"after"]
