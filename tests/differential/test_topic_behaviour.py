"""Topic configs that change what a broker does, on nerve and on Apache Kafka: compression.type
(the broker recompresses what the producer sent), message.timestamp.type=LogAppendTime and
max.message.bytes after recompression. The stored batches are read back raw (kio Fetch), so the
codec a broker chose is seen, not only what a client decompresses."""

from __future__ import annotations

import datetime
import time

import pytest
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, TopicPartition
from kio.schema.fetch.v12.request import FetchPartition, FetchRequest, FetchTopic
from kio.static.primitive import i32, i32Timedelta, i64

from nerve.protocol.records import decode_records, iter_batches
from tests._ck import Out, consumer, produce, produce_ok
from tests.broker._kio_client import KioClient
from tests.conftest import Backend, TopicNameFactory
from tests.differential.test_differential import create

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def stored_batches(backend: Backend, topic: str) -> list[tuple[int, int, list[bytes | None]]]:
    """(codec, timestamp type, values) of each batch partition 0 holds."""
    with KioClient(backend.bootstrap) as client:
        response = client.call(
            FetchRequest(
                max_wait=i32Timedelta.parse(datetime.timedelta(milliseconds=100)),
                min_bytes=i32(1),
                forgotten_topics_data=(),
                rack_id="",
                topics=(
                    FetchTopic(
                        topic=topic,
                        partitions=(
                            FetchPartition(
                                partition=i32(0),
                                fetch_offset=i64(0),
                                partition_max_bytes=i32(1 << 20),
                            ),
                        ),
                    ),
                ),
            )
        )
    data = response.responses[0].partitions[0].records or b""
    return [
        (header.compression, header.timestamp_type, [r.value for r in decode_records(view)])
        for header, view in iter_batches(data)
    ]


@pytest.mark.parametrize("target", ["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"])
def test_broker_recompresses_to_the_topics_compression_type(
    backend: Backend, topic_name: TopicNameFactory, target: str
) -> None:
    topic = topic_name()
    create(backend, topic, **{"compression.type": target})
    values = [b"value-%d " % i * 20 for i in range(50)]
    for sent in ("none", "lz4"):
        produce_ok(backend.bootstrap, topic, values, compression_type=sent, linger_ms=50)
    expected = {"producer": None, "uncompressed": 0}.get(target, CODECS.get(target))
    batches = stored_batches(backend, topic)
    codecs = [codec for codec, _, _ in batches]
    if expected is None:
        assert set(codecs) == {0, 3}  # each batch as its producer compressed it
    else:
        assert set(codecs) == {expected}
    assert sorted(v for _, _, vs in batches for v in vs) == sorted(values * 2)


def test_log_append_time_replaces_the_producers_timestamps(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create(backend, topic, **{"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    produce_ok(backend.bootstrap, topic, [Out(b"old", timestamp=1_000_000)])
    after = int(time.time() * 1000)
    ((_, timestamp_type, _),) = stored_batches(backend, topic)
    assert timestamp_type == 1
    cons = consumer(backend.bootstrap)
    try:
        cons.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 30
        message = None
        while message is None and time.monotonic() < deadline:
            message = cons.poll(0.5)
        assert message is not None and message.error() is None
        kind, stamp = message.timestamp()
        assert kind == TIMESTAMP_LOG_APPEND_TIME
        assert before - 1000 <= stamp <= after + 1000
    finally:
        cons.close()


def test_max_message_bytes_applies_to_the_recompressed_batch(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    """A batch that fits as the producer compressed it but not uncompressed is refused."""
    topic = topic_name()
    create(backend, topic, **{"compression.type": "uncompressed", "max.message.bytes": "4000"})
    result = produce(backend.bootstrap, topic, [b"a" * 20_000], compression_type="gzip")
    assert [e.name() for e, _ in result.failed] == ["MSG_SIZE_TOO_LARGE"]


def test_timestamps_outside_the_topics_bounds_are_refused(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    """Kafka refuses CreateTime records more than message.timestamp.after.max.ms (default an
    hour) ahead of its clock, or more than message.timestamp.before.max.ms behind it."""
    now = int(time.time() * 1000)
    default, bounded, stamped = topic_name(), topic_name("bounded"), topic_name("append")
    create(backend, default)
    create(backend, bounded, **{"message.timestamp.before.max.ms": "60000"})
    create(backend, stamped, **{"message.timestamp.type": "LogAppendTime"})

    def outcome(topic: str, timestamp: int) -> str:
        delivery = produce(backend.bootstrap, topic, [Out(b"v", timestamp=timestamp)],
                           linger_ms=0)  # fmt: skip
        return "ok" if delivery.ok else delivery.failed[0][0].name()

    assert outcome(default, now + 2 * 3_600_000) == "INVALID_TIMESTAMP"
    assert outcome(default, now + 60_000) == "ok"
    assert outcome(default, now - 365 * 86_400_000) == "ok"  # no bound into the past by default
    assert outcome(bounded, now - 3_600_000) == "INVALID_TIMESTAMP"
    assert outcome(bounded, now - 1_000) == "ok"
    assert outcome(stamped, now + 2 * 3_600_000) == "ok"  # the broker's clock replaces it
