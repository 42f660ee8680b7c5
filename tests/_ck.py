"""Small confluent-kafka helpers shared by the tests: produce, read back, admin calls.

Every wait is bounded: a broker that stops answering fails the test with what was seen so far
instead of hanging it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

DEFAULT_TIMEOUT_S = 30.0

Headers = list[tuple[str, bytes | None]]


@dataclass(frozen=True)
class Out:
    """A record to produce."""

    value: bytes | None
    key: bytes | None = None
    headers: Headers | None = None
    partition: int | None = None
    timestamp: int | None = None


@dataclass(frozen=True)
class In:
    """A record read back."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp: int


@dataclass
class Delivery:
    ok: list[Message] = field(default_factory=list)
    failed: list[tuple[KafkaError, Message]] = field(default_factory=list)

    def offsets(self, partition: int = 0) -> list[int]:
        return sorted(m.offset() or 0 for m in self.ok if m.partition() == partition)


def producer(bootstrap: str, **config: Any) -> Producer:
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "linger.ms": 5,
        "acks": "all",
        "message.timeout.ms": 30000,
        "socket.timeout.ms": 10000,
    }
    conf.update({k.replace("_", "."): v for k, v in config.items()})
    return Producer(conf)


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[Out | bytes],
    *,
    flush_every: int | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    **config: Any,
) -> Delivery:
    """Produce every record, flush, and return the delivery reports (errors included)."""
    prod = producer(bootstrap, **config)
    delivery = Delivery()

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is None:
            delivery.ok.append(msg)
        else:
            delivery.failed.append((err, msg))

    for i, rec in enumerate(records):
        out = rec if isinstance(rec, Out) else Out(rec)
        kwargs: dict[str, Any] = {"value": out.value, "key": out.key, "on_delivery": on_delivery}
        if out.headers is not None:
            kwargs["headers"] = out.headers
        if out.partition is not None:
            kwargs["partition"] = out.partition
        if out.timestamp is not None:
            kwargs["timestamp"] = out.timestamp
        while True:
            try:
                prod.produce(topic, **kwargs)
                break
            except BufferError:
                prod.poll(0.1)
        prod.poll(0)
        if flush_every and (i + 1) % flush_every == 0:
            _flush(prod, timeout)
    _flush(prod, timeout)
    return delivery


def _flush(prod: Producer, timeout: float) -> None:
    remaining = prod.flush(timeout)
    assert remaining == 0, f"{remaining} messages still undelivered after {timeout}s"


def produce_ok(bootstrap: str, topic: str, records: Iterable[Out | bytes], **kw: Any) -> Delivery:
    delivery = produce(bootstrap, topic, records, **kw)
    assert not delivery.failed, f"delivery failed: {[str(e) for e, _ in delivery.failed[:5]]}"
    return delivery


def consumer(bootstrap: str, **config: Any) -> Consumer:
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        # librdkafka wants a group.id for a Consumer; we only ever assign(), never subscribe().
        "group.id": "nerve-tests-assign-only",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "socket.timeout.ms": 10000,
    }
    conf.update({k.replace("_", "."): v for k, v in config.items()})
    return Consumer(conf)


def _to_in(msg: Message) -> In:
    _, ts = msg.timestamp()
    raw = msg.headers() or []
    raw_headers = list(raw.items()) if isinstance(raw, dict) else list(raw)
    return In(
        topic=msg.topic() or "",
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        key=msg.key(),
        value=msg.value(),
        headers=[(k, v if isinstance(v, bytes | None) else v.encode()) for k, v in raw_headers],
        timestamp=ts,
    )


def consume(
    bootstrap: str,
    topic: str,
    count: int,
    *,
    partitions: Sequence[int] = (0,),
    offset: int = OFFSET_BEGINNING,
    timeout: float = DEFAULT_TIMEOUT_S,
    idle: float = 0.0,
    **config: Any,
) -> list[In]:
    """Read ``count`` records from the given partitions (assign mode), starting at ``offset``.

    With ``idle`` > 0, keep reading that long after ``count`` is reached to catch extras.
    """
    cons = consumer(bootstrap, **config)
    try:
        cons.assign([TopicPartition(topic, p, offset) for p in partitions])
        return _drain(cons, count, timeout, idle)
    finally:
        cons.close()


def _drain(cons: Consumer, count: int, timeout: float, idle: float) -> list[In]:
    got: list[In] = []
    errors: list[str] = []
    deadline = time.monotonic() + timeout
    idle_deadline: float | None = None
    while True:
        now = time.monotonic()
        if len(got) >= count:
            if idle_deadline is None:
                idle_deadline = now + idle
            if now >= idle_deadline:
                return got
        elif now > deadline:
            raise AssertionError(
                f"read {len(got)} of {count} records within {timeout}s; "
                f"client errors: {errors[-5:]}"
            )
        msg = cons.poll(0.2)
        if msg is None:
            continue
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                continue
            if err.fatal():
                raise KafkaException(err)
            errors.append(str(err))
            continue
        got.append(_to_in(msg))


def admin(bootstrap: str, **config: Any) -> AdminClient:
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000}
    conf.update({k.replace("_", "."): v for k, v in config.items()})
    return AdminClient(conf)


def create_topic(
    bootstrap: str,
    topic: str,
    partitions: int = 1,
    configs: Mapping[str, str | int] | None = None,
) -> None:
    client = admin(bootstrap)
    new = NewTopic(
        topic,
        num_partitions=partitions,
        replication_factor=1,
        config={k: str(v) for k, v in (configs or {}).items()},
    )
    client.create_topics([new], operation_timeout=30)[topic].result(DEFAULT_TIMEOUT_S)
    # Apache Kafka answers before every broker's metadata cache has the topic: wait for it,
    # so that a request right after (a commit, a produce) does not see it missing.
    deadline = time.monotonic() + DEFAULT_TIMEOUT_S
    while topic_partitions(bootstrap, topic) != partitions:
        if time.monotonic() > deadline:
            raise AssertionError(f"{topic} did not appear in metadata")
        time.sleep(0.05)


def watermarks(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    cons = consumer(bootstrap)
    try:
        low, high = cons.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=10, cached=False
        )
        return int(low), int(high)
    finally:
        cons.close()


def topic_partitions(bootstrap: str, topic: str) -> int | None:
    """Partition count from Metadata, or None when the broker does not know the topic."""
    md = admin(bootstrap).list_topics(topic=topic, timeout=10)
    meta = md.topics.get(topic)
    if meta is None or meta.error is not None:
        return None
    return len(meta.partitions)


def topic_names(bootstrap: str) -> set[str]:
    return set(admin(bootstrap).list_topics(timeout=10).topics)


def broker_serves_clients(bootstrap: str, topic: str) -> None:
    """A real client can still produce to ``topic`` and read that very record back."""
    payload = f"still-alive-{time.monotonic_ns()}".encode()
    delivery = produce_ok(bootstrap, topic, [Out(payload, key=b"alive")])
    (msg,) = delivery.ok
    (got,) = consume(
        bootstrap, topic, 1, partitions=[msg.partition() or 0], offset=msg.offset() or 0
    )
    assert (got.key, got.value) == (b"alive", payload)


def read_to_end(bootstrap: str, topic: str, partition: int = 0, timeout: float = 30.0) -> list[In]:
    """Everything from the log start to the current high watermark (gaps allowed: compaction)."""
    low, high = watermarks(bootstrap, topic, partition)
    if high <= low:
        return []
    cons = consumer(bootstrap)
    got: list[In] = []
    try:
        cons.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout
        while not got or got[-1].offset < high - 1:
            assert time.monotonic() < deadline, (
                f"did not reach high watermark {high} within {timeout}s; "
                f"last offset {got[-1].offset if got else None}"
            )
            msg = cons.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            got.append(_to_in(msg))
        return got
    finally:
        cons.close()
