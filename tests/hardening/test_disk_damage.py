"""Issue 11, items 6 and 7: damage on disk, replayed against a live broker. A flipped byte in the
middle of a segment costs that batch only (loudly, with a copy kept); in __consumer_offsets it
never silently rolls a group back; in an older segment it is never served as records."""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from nerve.protocol.records import iter_batches
from tests._broker import BrokerProcess
from tests._ck import Out, consumer, create_topic, produce_ok
from tests.conftest import BrokerFactory, TopicNameFactory


def batch_positions(segment: Path) -> list[tuple[int, int]]:
    """(file position, base offset) of every batch in a segment file."""
    data = segment.read_bytes()
    out, pos = [], 0
    for header, _ in iter_batches(data):
        out.append((pos, header.base_offset))
        pos += header.size
    return out


def flip_byte(segment: Path, position: int) -> None:
    with segment.open("r+b") as f:
        f.seek(position)
        byte = f.read(1)
        f.seek(position)
        f.write(bytes([byte[0] ^ 0x10]))


def read_all(bootstrap: str, topic: str, seconds: float = 8) -> tuple[list, list[str]]:
    """Every record a CRC-trusting consumer (librdkafka's default) gets, and its errors."""
    cons = consumer(bootstrap, **{"check.crcs": "false"})
    got, errors = [], []
    try:
        cons.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            msg = cons.poll(0.2)
            if msg is None:
                continue
            if msg.error() is not None:
                errors.append(msg.error().str())
                continue
            got.append((msg.offset(), msg.value()))
    finally:
        cons.close()
    return got, errors


def test_a_flipped_byte_mid_segment_costs_one_batch_not_the_rest(
    broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(broker.bootstrap, topic)
    sent = [b"acknowledged-%03d" % i for i in range(300)]
    produce_ok(broker.bootstrap, topic, [Out(v) for v in sent], flush_every=1)
    assert broker.stop() == 0
    segment = sorted((broker.data_dir / f"{topic}-0").glob("*.log"))[-1]
    position, base = batch_positions(segment)[150]
    assert base == 150
    flip_byte(segment, position + 70)
    broker.restart()

    got, _ = read_all(broker.bootstrap, topic)
    assert got == [(i, v) for i, v in enumerate(sent) if i != 150]
    log = broker.stderr_text()
    assert f"{topic}-0: segment {segment.name} is damaged at byte {position}" in log
    assert "offsets 150-150 are lost" in log
    copies = list(segment.parent.glob(f"{segment.name}.damaged-{position}"))
    assert len(copies) == 1 and b"ledged-150" in copies[0].read_bytes()  # flipped, but kept


def _commit(bootstrap: str, group: str, topic: str, offset: int) -> None:
    cons = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        cons.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        cons.close()


def _committed(bootstrap: str, group: str, topic: str) -> int:
    cons = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        (tp,) = cons.committed([TopicPartition(topic, 0)], timeout=10)
        return tp.offset
    finally:
        cons.close()


def test_damage_in_the_offsets_topic_never_rolls_a_group_back_silently(
    broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic, group = topic_name(), topic_name("group")
    create_topic(broker.bootstrap, topic)
    produce_ok(broker.bootstrap, topic, [Out(b"x%d" % i) for i in range(40)])
    for offset in (10, 20, 30):
        _commit(broker.bootstrap, group, topic, offset)
    assert broker.stop() == 0
    segment = sorted((broker.data_dir / "__consumer_offsets-0").glob("*.log"))[-1]
    # The batch holding the commit of 20, with the commit of 30 intact after it.
    second_commit = [p for p, _ in batch_positions(segment)][-2]
    flip_byte(segment, second_commit + 65)
    broker.restart()

    # Before: the log was cut at the damage and the group silently went back to 10.
    assert _committed(broker.bootstrap, group, topic) == 30
    log = broker.stderr_text()
    assert "__consumer_offsets-0 lost offsets" in log and group in log


def test_damage_in_an_older_segment_is_refused_not_served(
    broker_factory: BrokerFactory, topic_name: TopicNameFactory
) -> None:
    broker = broker_factory()
    topic = topic_name()
    create_topic(broker.bootstrap, topic, configs={"segment.ms": 20})
    sent = [b"record-%03d" % i for i in range(60)]
    for value in sent:
        produce_ok(broker.bootstrap, topic, [Out(value)])
        time.sleep(0.002)
    assert broker.stop() == 0
    segments = sorted((broker.data_dir / f"{topic}-0").glob("*.log"))
    assert len(segments) > 3
    older = next(s for s in segments[:-1] if batch_positions(s) and batch_positions(s)[0][1] >= 5)
    position, base = batch_positions(older)[0]
    flip_byte(older, position + 70)  # recovery scans only the tail segment
    broker.restart()

    got, errors = read_all(broker.bootstrap, topic)
    assert got == [(i, v) for i, v in enumerate(sent[:base])], "nothing garbled, nothing past it"
    assert errors, "the consumer is told"
    assert "cannot be served" in broker.stderr_text()
