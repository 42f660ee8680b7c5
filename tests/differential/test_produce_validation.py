"""What a broker refuses inside a produced batch (issue 11 item 5, issue 12 item 2), spoken
directly (kio, Produce v11) to nerve and to Kafka: the same error codes for the same poison,
nothing of it stored, and per-record errors naming the keyless records of a compacted topic."""

from __future__ import annotations

import datetime
import struct

from crc32c import crc32c
from kio.schema.errors import ErrorCode
from kio.schema.produce.v11.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.static.primitive import i16, i32, i32Timedelta

from nerve.protocol import records
from nerve.protocol.records import BATCH_HEADER_SIZE, encode_batch
from tests.broker._kio_client import KioClient
from tests.conftest import Backend, TopicNameFactory
from tests.differential.test_differential import create


def _fields(batch: bytes, **changes: int) -> bytes:
    layout = {"attributes": (21, ">h"), "last_offset_delta": (23, ">i"), "count": (57, ">i")}
    out = bytearray(batch)
    for name, value in changes.items():
        pos, fmt = layout[name]
        struct.pack_into(fmt, out, pos, value)
    struct.pack_into(">I", out, 17, crc32c(bytes(out[21:])))
    return bytes(out)


def _body(batch: bytes, body: bytes) -> bytes:
    out = bytearray(batch[:BATCH_HEADER_SIZE]) + body
    struct.pack_into(">i", out, 8, len(out) - 12)
    struct.pack_into(">I", out, 17, crc32c(bytes(out[21:])))
    return bytes(out)


def _pairs(count: int, keyless: tuple[int, ...] = ()) -> list[tuple[bytes | None, bytes]]:
    return [(None if i in keyless else b"k%d" % i, b"v%d" % i) for i in range(count)]


PLAIN = encode_batch(_pairs(3))
GZIP = encode_batch(_pairs(3), compression=records.COMPRESSION_GZIP)
BODY = PLAIN[BATCH_HEADER_SIZE:]
CRC_BROKEN = PLAIN[:-2] + bytes([PLAIN[-2] ^ 0x55]) + PLAIN[-1:]
MAGIC = bytearray(PLAIN)
MAGIC[16] = 3

POISON = {
    "count above the offsets": _fields(PLAIN, count=4),
    "count below the offsets": _fields(PLAIN, count=2),
    "no records": _fields(PLAIN, count=0),
    "offset range too long": _fields(PLAIN, last_offset_delta=5),
    "compressed count wrong": _fields(GZIP, count=4),
    "last record cut short": _body(PLAIN, BODY[:-1]),
    "bytes after the records": _body(PLAIN, BODY + b"\x00\x00"),
    "crc broken": CRC_BROKEN,
    "unknown magic": bytes(MAGIC),
    "no whole batch": PLAIN[:40],
    "two batches": PLAIN + PLAIN,
    "control batch": _fields(PLAIN, attributes=0x20),
}
# Kafka answers these with UNKNOWN_SERVER_ERROR (its decompression throws an exception it does
# not map); nerve with INVALID_RECORD, which tells a client not to retry (docs/compatibility.md).
UNDECODABLE = {
    "gzip flag, plain payload": _fields(PLAIN, attributes=records.COMPRESSION_GZIP),
    "zstd flag, plain payload": _fields(PLAIN, attributes=records.COMPRESSION_ZSTD),
    "snappy flag, plain payload": _fields(PLAIN, attributes=records.COMPRESSION_SNAPPY),
    "lz4 flag, plain payload": _fields(PLAIN, attributes=records.COMPRESSION_LZ4),
    "codec 7": _fields(PLAIN, attributes=7),
    "gzip garbage": _body(GZIP, b"\x1f\x8b" + b"garbage" * 3),
}


def _produce(client: KioClient, topic: str, batch: bytes) -> tuple[ErrorCode, int, list, str]:
    response = client.call(
        ProduceRequest(
            acks=i16(-1),
            timeout=i32Timedelta.parse(datetime.timedelta(seconds=10)),
            topic_data=(
                TopicProduceData(
                    name=topic, partition_data=(PartitionProduceData(index=i32(0), records=batch),)
                ),
            ),
        )
    )
    p = response.responses[0].partition_responses[0]
    errors = [(e.batch_index, e.batch_index_error_message) for e in p.record_errors]
    return p.error_code, p.base_offset, errors, p.error_message


def test_poison_batches_are_refused_and_nothing_of_them_is_stored(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create(backend, topic)
    with KioClient(backend.bootstrap) as client:
        answers = {name: _produce(client, topic, batch)[0] for name, batch in POISON.items()}
        undecodable = {name: _produce(client, topic, b)[0] for name, b in UNDECODABLE.items()}
        # Trailing bytes too short to be a batch are ignored, the batch before them kept.
        trailing = _produce(client, topic, PLAIN + b"\x01\x02\x03")[:2]
        after = _produce(client, topic, PLAIN)[:2]
    assert answers == {
        "count above the offsets": ErrorCode.invalid_record,
        "count below the offsets": ErrorCode.invalid_record,
        "no records": ErrorCode.invalid_record,
        "offset range too long": ErrorCode.invalid_record,
        "compressed count wrong": ErrorCode.invalid_record,
        "last record cut short": ErrorCode.invalid_record,
        "bytes after the records": ErrorCode.invalid_record,
        "crc broken": ErrorCode.corrupt_message,
        "unknown magic": ErrorCode.corrupt_message,
        "no whole batch": ErrorCode.invalid_record,
        "two batches": ErrorCode.invalid_record,
        "control batch": ErrorCode.invalid_record,
    }
    refused = (
        ErrorCode.invalid_record if backend.name == "nerve" else ErrorCode.unknown_server_error
    )
    assert undecodable == dict.fromkeys(UNDECODABLE, refused)
    assert trailing == (ErrorCode.none, 0)
    assert after == (ErrorCode.none, 3), "none of the refused batches took an offset"


def test_keyless_records_on_a_compacted_topic_are_named_one_by_one(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create(backend, topic, **{"cleanup.policy": "compact"})
    with KioClient(backend.bootstrap) as client:
        plain = _produce(client, topic, encode_batch(_pairs(5, keyless=(1, 3))))
        zstd = _produce(
            client,
            topic,
            encode_batch(_pairs(4, keyless=(3,)), compression=records.COMPRESSION_ZSTD),
        )
        kept = _produce(client, topic, encode_batch(_pairs(2)))
    why = f"Compacted topic cannot accept message without key in topic partition {topic}-0"
    assert plain[:3] == (ErrorCode.invalid_record, -1, [(1, why), (3, why)])
    assert plain[3] == (
        "One or more records have been rejected due to 2 record errors in total, and only "
        f"showing the first three errors at most: [RecordError(batchIndex=1, message='{why}'), "
        f"RecordError(batchIndex=3, message='{why}')]"
    )
    assert zstd[:3] == (ErrorCode.invalid_record, -1, [(3, why)])
    assert kept[:2] == (ErrorCode.none, 0)
