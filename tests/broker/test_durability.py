"""What survives a crash or a restart: acknowledged records, topic metadata, configs.

Tail corruption is written into the segment files directly while the broker is down, using the
Kafka on-disk layout ``<data-dir>/<topic>-<partition>/<base offset, 20 digits>.log``.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Message
from confluent_kafka.admin import ConfigResource, ResourceType

from tests._broker import BrokerProcess
from tests._ck import (
    Out,
    admin,
    consume,
    create_topic,
    produce_ok,
    producer,
    topic_partitions,
    watermarks,
)
from tests.conftest import TopicNameFactory


def last_segment(data_dir: Path, topic: str, partition: int = 0) -> Path:
    partition_dir = data_dir / f"{topic}-{partition}"
    segments = sorted(partition_dir.glob("*.log"))
    assert segments, f"no segment files in {partition_dir}: {os.listdir(data_dir)}"
    return segments[-1]


def assert_offsets_contiguous_with_content(
    records: list[tuple[int, bytes | None]], expected: dict[int, bytes]
) -> None:
    offsets = [o for o, _ in records]
    assert offsets == list(range(len(records))), "offsets must be contiguous from 0"
    for offset, value in records:
        if offset in expected:
            assert value == expected[offset], f"offset {offset}"


def test_acks_all_writes_survive_sigkill(
    broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    sent = {i: f"durable-{i}".encode() * 4 for i in range(1000)}
    delivery = produce_ok(
        broker.bootstrap, topic, [Out(v, key=b"%d" % i) for i, v in sent.items()], flush_every=100
    )
    assert delivery.offsets() == list(range(1000))

    broker.kill()
    broker.restart()

    got = consume(broker.bootstrap, topic, 1000, idle=1.0)
    assert [(r.offset, r.value) for r in got] == list(sent.items())
    assert watermarks(broker.bootstrap, topic) == (0, 1000)


@pytest.mark.slow
def test_acks_all_writes_survive_sigkill_during_concurrent_produce(
    broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(broker.bootstrap, topic)
    acked: dict[int, bytes] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is None:
            with lock:
                acked[msg.offset() or 0] = msg.value() or b""

    prod = producer(broker.bootstrap, linger_ms=1, message_timeout_ms=5000, retries=0)

    def pump() -> None:
        i = 0
        while not stop.is_set():
            try:
                prod.produce(topic, value=f"inflight-{i}".encode(), on_delivery=on_delivery)
                i += 1
            except BufferError:
                pass
            prod.poll(0.001)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with lock:
            if len(acked) >= 3000:
                break
        time.sleep(0.01)
    broker.kill()  # mid-stream: requests are in flight
    time.sleep(0.5)
    stop.set()
    thread.join(10)
    prod.flush(10)  # remaining messages fail (broker gone); acks already recorded
    with lock:
        survivors = dict(acked)
    assert len(survivors) >= 3000, "the producer should have been acknowledged before the kill"

    broker.restart()

    low, high = watermarks(broker.bootstrap, topic)
    assert low == 0
    assert high >= max(survivors) + 1, "an acknowledged offset is beyond the recovered log end"
    got = consume(broker.bootstrap, topic, high, idle=1.0)
    assert_offsets_contiguous_with_content([(r.offset, r.value) for r in got], survivors)
    assert len(got) == high


@pytest.mark.parametrize("shutdown", ["sigterm", "sigkill"])
def test_garbage_appended_to_last_segment_is_not_served_and_log_stays_writable(
    broker: BrokerProcess, topic_name: TopicNameFactory, shutdown: str
) -> None:
    topic = topic_name()
    sent = [f"intact-{i}".encode() for i in range(50)]
    produce_ok(broker.bootstrap, topic, sent, flush_every=5)
    if shutdown == "sigterm":
        assert broker.stop() == 0
    else:
        broker.kill()

    segment = last_segment(broker.data_dir, topic)
    size = segment.stat().st_size
    with segment.open("ab") as f:
        f.write(os.urandom(1000))
    assert segment.stat().st_size == size + 1000

    broker.restart()

    assert watermarks(broker.bootstrap, topic) == (0, 50)
    after = produce_ok(broker.bootstrap, topic, [Out(b"after-restart-%d" % i) for i in range(5)])
    assert after.offsets() == list(range(50, 55))
    got = consume(broker.bootstrap, topic, 55, idle=1.0)
    assert [r.offset for r in got] == list(range(55))
    assert [r.value for r in got] == sent + [b"after-restart-%d" % i for i in range(5)]


def test_torn_last_batch_is_dropped_on_restart_and_offsets_continue_from_it(
    broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    sent = [f"record-{i}".encode() for i in range(20)]
    # One record per batch: cutting the file's tail tears exactly the last batch.
    produce_ok(broker.bootstrap, topic, sent, flush_every=1)
    broker.kill()

    segment = last_segment(broker.data_dir, topic)
    size = segment.stat().st_size
    os.truncate(segment, size - 7)

    broker.restart()

    assert watermarks(broker.bootstrap, topic) == (0, 19)
    got = consume(broker.bootstrap, topic, 19, idle=1.0)
    assert [(r.offset, r.value) for r in got] == list(enumerate(sent[:19]))
    after = produce_ok(broker.bootstrap, topic, [Out(b"replacement")])
    assert after.offsets() == [19]
    got = consume(broker.bootstrap, topic, 1, offset=19, idle=0.5)
    assert [(r.offset, r.value) for r in got] == [(19, b"replacement")]


def test_garbage_overwriting_last_batch_body_is_detected_by_crc_on_restart(
    broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    sent = [f"payload-number-{i}".encode() * 3 for i in range(10)]
    produce_ok(broker.bootstrap, topic, sent, flush_every=1)
    broker.kill()  # a crash: the broker must not trust the tail it finds

    segment = last_segment(broker.data_dir, topic)
    size = segment.stat().st_size
    # Keep the batch header (lengths look valid) but scramble the last bytes of its records.
    with segment.open("r+b") as f:
        f.seek(size - 10)
        f.write(bytes(b ^ 0xFF for b in segment.read_bytes()[size - 10 :]))

    broker.restart()

    low, high = watermarks(broker.bootstrap, topic)
    assert (low, high) == (0, 9)
    got = consume(broker.bootstrap, topic, 9, idle=1.0)
    assert [r.value for r in got] == sent[:9]


def test_clean_shutdown_and_restart_keeps_topics_partitions_configs_and_data(
    broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(
        broker.bootstrap,
        topic,
        partitions=4,
        configs={"retention.ms": 98765432, "cleanup.policy": "compact", "max.message.bytes": 5000},
    )
    produce_ok(broker.bootstrap, topic, [Out(b"p%d" % p, key=b"k", partition=p) for p in range(4)])

    assert broker.stop() == 0
    broker.restart()

    assert topic_partitions(broker.bootstrap, topic) == 4
    resource = ConfigResource(ResourceType.TOPIC, topic)
    client = admin(broker.bootstrap)
    (future,) = client.describe_configs([resource]).values()
    configs = future.result(30)
    assert configs["retention.ms"].value == "98765432"
    assert configs["cleanup.policy"].value == "compact"
    assert configs["max.message.bytes"].value == "5000"
    for p in range(4):
        got = consume(broker.bootstrap, topic, 1, partitions=[p])
        assert [(r.partition, r.value) for r in got] == [(p, b"p%d" % p)]


def test_sigterm_exits_zero_and_restart_after_sigkill_reuses_the_port(
    broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    port = broker.port
    topic = topic_name()
    produce_ok(broker.bootstrap, topic, [Out(b"x")])

    broker.kill()
    broker.restart()
    assert broker.port == port
    assert broker.stop() == 0
