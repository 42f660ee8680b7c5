"""A service as a work queue (``Service(..., share_group=True)``), on nerve and on Kafka 4.4:
two replicas share one partition, every record is handled and accepted once, a failing one is
released and tried again with a higher delivery count, one that keeps failing is dead-lettered
and rejected; nothing is left for the group afterwards."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from confluent_kafka import ShareConsumer

from nerve.service import Service, dead_letters
from nerve.service.config import RunConfig
from nerve.service.handlers import RawEvent
from nerve.service.runtime import ServiceRunner
from nerve.service.topic_reader import read_to_end
from tests._ck import create_topic, produce_ok
from tests.conftest import Backend, TopicNameFactory


class Running:
    """Service runners on an event loop in a thread of their own, as ``nerve run`` runs them."""

    def __init__(self, service: Service, bootstrap: str, replicas: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        config = RunConfig(bootstrap_servers=bootstrap, registry_url=None)
        self.runners = [ServiceRunner(service, config) for _ in range(replicas)]
        self.stop = asyncio.Event()
        self.tasks: list[object] = []

    def __enter__(self) -> Running:
        self.thread.start()
        for runner in self.runners:
            runner.start()
            self.tasks.append(asyncio.run_coroutine_threadsafe(runner.run(self.stop), self.loop))
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        for task in self.tasks:
            task.result(30)  # type: ignore[attr-defined]
        for runner in self.runners:
            runner.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def topic(backend: Backend, topic_name: TopicNameFactory) -> Iterator[str]:
    name = topic_name("jobs")
    create_topic(backend.bootstrap, name, partitions=1)
    yield name


def test_share_group_replicas_accept_release_and_dead_letter_each_record(
    backend: Backend, topic: str, topic_name: TopicNameFactory
) -> None:
    group = topic_name("workers")
    workers = Service(group, share_group=True)
    calls: Counter[str] = Counter()
    handled: dict[str, int] = {}
    lock = threading.Lock()

    @workers.on(topic, retries=2, backoff_s=0.01)  # three attempts in all
    def work(event: RawEvent) -> None:
        value = (event.value or b"").decode()
        with lock:
            calls[value] += 1
            attempt = calls[value]
        if value == "job-3" and attempt < 3:
            raise RuntimeError(f"job-3 not yet ({attempt})")
        if value == "job-7":
            raise ValueError("job-7 never works")
        time.sleep(0.01)  # slow enough for the second replica to take part
        with lock:
            assert value not in handled, f"{value} handled twice"
            handled[value] = attempt

    jobs = [f"job-{i}" for i in range(60)]
    produce_ok(backend.bootstrap, topic, [j.encode() for j in jobs])
    with Running(workers, backend.bootstrap, replicas=2):
        deadline = time.monotonic() + 60
        letters: list[object] = []
        while time.monotonic() < deadline:
            letters = read_to_end({"bootstrap.servers": backend.bootstrap}, topic + ".dlq") or []
            if len(handled) == len(jobs) - 1 and letters:
                break
            time.sleep(0.2)
        time.sleep(1.0)  # time for a redelivery that should not happen
    assert sorted(handled) == sorted(j for j in jobs if j != "job-7")
    assert handled["job-3"] == 3  # released twice, accepted on its third delivery
    assert calls["job-7"] == 3 and calls["job-3"] == 3
    assert {calls[j] for j in jobs if j not in ("job-3", "job-7")} == {1}
    [letter] = letters
    assert letter.value() == b"job-7"  # type: ignore[attr-defined]
    headers = letter.headers()  # type: ignore[attr-defined]
    assert dead_letters.header(headers, dead_letters.ATTEMPTS) == "3"
    assert dead_letters.header(headers, dead_letters.ERROR) == "job-7 never works"
    assert dead_letters.header(headers, dead_letters.SERVICE) == group

    # Everything was acknowledged (accepted or rejected): a new member gets nothing.
    member = ShareConsumer({"bootstrap.servers": backend.bootstrap, "group.id": group})
    try:
        member.subscribe([topic])
        left: list[bytes] = []
        until = time.monotonic() + 5
        while time.monotonic() < until:
            left += [m.value() for m in member.poll(0.5) if m.error() is None]
        assert left == []
    finally:
        member.close()


def test_a_new_share_group_service_starts_where_the_service_says(
    backend: Backend, topic: str, topic_name: TopicNameFactory
) -> None:
    """``start="latest"`` reads only what comes after it joined; ``earliest`` (the default)
    what was there before too, though a share group's own default is the log end."""
    produce_ok(backend.bootstrap, topic, [b"before"])
    seen: dict[str, list[bytes]] = {"earliest": [], "latest": []}
    services = []
    for start in ("earliest", "latest"):
        service = Service(topic_name(start), share_group=True, start=start)
        service.on(topic)(lambda event, into=seen[start]: into.append(event.value))
        services.append(service)
    with Running(services[0], backend.bootstrap, 1), Running(services[1], backend.bootstrap, 1):
        # A share partition's start is fixed when the group first fetches it, some seconds
        # after joining on Kafka: records go on arriving until the latest one sees one.
        deadline = time.monotonic() + 60
        sent = 0
        while time.monotonic() < deadline and not (seen["latest"] and len(seen["earliest"]) > sent):
            sent += 1
            produce_ok(backend.bootstrap, topic, [f"after-{sent}".encode()])
            time.sleep(0.5)
        time.sleep(1)
    after = [f"after-{i}".encode() for i in range(1, sent + 1)]
    assert seen["earliest"] == [b"before", *after]
    assert seen["latest"] and b"before" not in seen["latest"]
    assert seen["latest"] == after[-len(seen["latest"]) :]


def test_a_share_group_service_cannot_be_exactly_once_or_a_stream() -> None:
    with pytest.raises(ValueError, match="cannot be exactly_once"):
        Service("q", share_group=True, exactly_once=True)
    with pytest.raises(ValueError, match="own protocol"):
        Service("q", share_group=True, group_protocol="consumer")
    with pytest.raises(ValueError, match="not a share group"):
        Service("q", share_group=True).stream("jobs")
