"""Issue 11, item 12: SIGTERM stops the broker in seconds, and when it
cannot, the broker says what it is waiting for."""

from __future__ import annotations

import time

import pytest
from confluent_kafka.admin import NewTopic
from kio.schema.create_topics.v7.request import CreatableTopic, CreateTopicsRequest
from kio.static.primitive import i16, i32

from tests._ck import Out, admin, produce_ok
from tests.broker._kio_client import KioClient
from tests.conftest import BrokerFactory


@pytest.mark.slow
def test_a_broker_with_two_thousand_written_partitions_stops_in_seconds(
    broker_factory: BrokerFactory,
) -> None:
    broker = broker_factory()
    client = admin(broker.bootstrap)
    futures = client.create_topics([NewTopic(f"stop-{i}", 10, 1) for i in range(200)])
    for future in futures.values():
        future.result(120)
    for i in range(200):
        produce_ok(broker.bootstrap, f"stop-{i}", [Out(b"x", partition=p) for p in range(10)])
    started = time.monotonic()
    assert broker.stop() == 0
    took = time.monotonic() - started
    print(f"2,000 written partitions: stopped in {took:.1f} s")
    assert took < 10
    assert "stopped in" in broker.stderr_text()


NAMES = ("big", "bigger", "biggest", "huge")


@pytest.mark.slow
def test_a_stop_that_waits_says_what_for_and_leaves_no_half_topic(
    broker_factory: BrokerFactory,
) -> None:
    broker = broker_factory()
    with KioClient(broker.bootstrap) as client:
        # Queued one after the other: seconds of work (two were done within the first
        # second on a quiet machine, before the stop says what it waits for).
        for name in NAMES:
            wanted = CreatableTopic(
                name=name, num_partitions=i32(6000), replication_factor=i16(-1), assignments=(),
                configs=(),
            )  # fmt: skip
            client.send(CreateTopicsRequest(topics=(wanted,), validate_only=False))
        # Stop once the first creation is under way (on a loaded machine the broker may take
        # more than a moment to read the requests): its partition directories are appearing.
        deadline = time.monotonic() + 60
        while not any(broker.data_dir.glob("big-*")) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert any(broker.data_dir.glob("big-*")), "the creation never started"
        assert broker.stop(timeout=120) == 0
    log = broker.stderr_text()
    assert "waiting for the topic change in progress" in log
    broker.restart()
    topics = admin(broker.bootstrap).list_topics(timeout=30).topics
    for name in NAMES:
        assert name not in topics or len(topics[name].partitions) == 6000, "never half a topic"
