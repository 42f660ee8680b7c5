"""Issue 11, item 5: a batch a consumer could not read is refused on produce, so consumers with
CRC checks off (librdkafka's default) and on read every good record around the refused ones."""

from __future__ import annotations

import struct

import pytest
from crc32c import crc32c
from kafka import KafkaConsumer, TopicPartition

from nerve.protocol import records
from nerve.protocol.records import BATCH_HEADER_SIZE, encode_batch
from tests._broker import BrokerProcess
from tests._ck import Out, consume, create_topic, produce_ok
from tests.broker import _wire as w
from tests.conftest import TopicNameFactory


def _poison(codec_flag: int, count: int | None = None) -> bytes:
    """A batch whose CRC holds but which no consumer can read."""
    out = bytearray(encode_batch([(b"k", b"poison-%d" % i) for i in range(3)]))
    struct.pack_into(">h", out, 21, codec_flag)
    if count is not None:
        struct.pack_into(">i", out, 57, count)
    struct.pack_into(">I", out, 17, crc32c(bytes(out[21:])))
    return bytes(out)


POISON = [
    _poison(records.COMPRESSION_GZIP),
    _poison(records.COMPRESSION_ZSTD),
    _poison(7),
    _poison(records.COMPRESSION_NONE, count=5),
    encode_batch([(b"k", b"x")])[: BATCH_HEADER_SIZE + 1] + b"\x00" * 8,  # torn, CRC wrong
]


@pytest.fixture
def bootstrap(shared_broker: BrokerProcess) -> str:
    return shared_broker.bootstrap


def test_poison_batches_are_refused_and_consumers_read_every_good_record(
    bootstrap: str, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(bootstrap, topic)
    version = w.pick_version(w.api_versions(bootstrap), w.API_PRODUCE, 3, 8)
    produce_ok(bootstrap, topic, [Out(b"before-%d" % i) for i in range(3)], linger_ms=0)
    with w.connect(bootstrap) as sock:
        for n, poison in enumerate(POISON):
            sock.sendall(w.produce_request(n, version, topic, poison))
            _, error, _ = w.parse_produce_partition_error(w.recv_frame(sock))
            assert error in (w.CORRUPT_MESSAGE, 87), f"poison {n} was accepted"
    produce_ok(bootstrap, topic, [Out(b"after-%d" % i) for i in range(3)], linger_ms=0)
    want = [b"before-0", b"before-1", b"before-2", b"after-0", b"after-1", b"after-2"]

    for check_crcs in ("false", "true"):
        got = consume(bootstrap, topic, 6, idle=0.5, **{"check.crcs": check_crcs})
        assert [r.value for r in got] == want

    python_client = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=5000)
    try:
        python_client.assign([TopicPartition(topic, 0)])
        python_client.seek_to_beginning()
        assert [m.value for m in python_client][:6] == want
    finally:
        python_client.close()
