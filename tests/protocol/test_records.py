"""RecordBatch v2: validation, offset assignment, encode/decode round trips and interop."""

from __future__ import annotations

import struct

import pytest
from crc32c import crc32c

from nerve.protocol import records
from nerve.protocol.records import (
    BATCH_HEADER_SIZE,
    CorruptRecordError,
    Record,
    assign_offsets,
    decode_records,
    encode_batch,
    read_batch_header,
    validate_batches,
)

CODECS = [
    records.COMPRESSION_NONE,
    records.COMPRESSION_GZIP,
    records.COMPRESSION_SNAPPY,
    records.COMPRESSION_LZ4,
    records.COMPRESSION_ZSTD,
]


def sample_records(base: int = 0, count: int = 20) -> list[Record]:
    return [
        Record(
            offset=base + i,
            timestamp=1_700_000_000_000 + i * 7,
            key=None if i % 5 == 0 else f"key-{i}".encode(),
            value=None if i % 7 == 3 else (f"value-{i}-" * 20).encode(),
            headers=[("trace", f"{i}".encode()), ("empty", None)] if i % 2 else [],
        )
        for i in range(count)
    ]


def test_crc32c_check_value() -> None:
    # The standard CRC-32C check value: proves the library computes Castagnoli, not zlib CRC-32.
    assert crc32c(b"123456789") == 0xE3069283


def test_known_vector() -> None:
    """A batch built by hand from the spec, byte by byte, equals encode_batch's output."""
    record = bytes([0x10, 0x00, 0x00, 0x00, 0x02]) + b"k" + bytes([0x02]) + b"v" + b"\x00"
    tail = struct.pack(">hiqqqhii", 0, 0, 1000, 1000, -1, -1, -1, 1) + record
    crc = crc32c(tail)
    expected = struct.pack(">qiibI", 5, 49 + len(record), -1, 2, crc) + tail
    built = encode_batch([Record(5, 1000, b"k", b"v")])
    assert built == expected
    (header,) = validate_batches(expected)
    assert header.base_offset == 5
    assert header.size == len(expected) == BATCH_HEADER_SIZE + len(record)
    assert header.last_offset == 5
    assert decode_records(expected) == [Record(5, 1000, b"k", b"v", [])]


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_per_codec(codec: int) -> None:
    items = sample_records(base=100)
    data = encode_batch(items, compression=codec)
    (header,) = validate_batches(data)
    assert header.compression == codec
    assert header.base_offset == 100
    assert header.last_offset == 119
    assert header.records_count == 20
    assert header.base_timestamp == items[0].timestamp
    assert header.max_timestamp == items[-1].timestamp
    assert decode_records(data) == items
    if codec:
        assert len(data) < len(encode_batch(items))  # repetitive values do compress


def test_key_value_pairs_and_flags() -> None:
    data = encode_batch(
        [(b"a", b"1"), (None, b"2"), (b"c", None)],
        base_offset=10,
        base_timestamp=42,
        producer_id=7,
        producer_epoch=3,
        base_sequence=11,
        is_transactional=True,
    )
    (header,) = validate_batches(data)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (7, 3, 11)
    assert header.is_transactional and not header.is_control
    assert [(r.offset, r.timestamp, r.key, r.value) for r in decode_records(data)] == [
        (10, 42, b"a", b"1"),
        (11, 42, None, b"2"),
        (12, 42, b"c", None),
    ]


def test_snappy_raw_and_xerial_both_decode() -> None:
    import cramjam

    items = sample_records()
    raw_batch = bytearray(encode_batch(items))
    body = bytes(raw_batch[BATCH_HEADER_SIZE:])
    for compressed in (
        bytes(cramjam.snappy.compress_raw(body)),  # librdkafka style
        records._compress(records.COMPRESSION_SNAPPY, body),  # Java client style (xerial)
    ):
        batch = bytearray(raw_batch[:BATCH_HEADER_SIZE]) + compressed
        struct.pack_into(">i", batch, 8, len(batch) - 12)
        struct.pack_into(">h", batch, 21, records.COMPRESSION_SNAPPY)
        struct.pack_into(">I", batch, 17, crc32c(bytes(batch[21:])))
        validate_batches(batch)
        assert decode_records(batch) == items


def test_xerial_spans_many_blocks() -> None:
    big = [Record(0, 1, b"k", bytes(range(256)) * 1000)]
    data = encode_batch(big, compression=records.COMPRESSION_SNAPPY)
    assert data[BATCH_HEADER_SIZE : BATCH_HEADER_SIZE + 8] == b"\x82SNAPPY\x00"
    assert decode_records(data) == big


def test_crc_mismatch_is_rejected() -> None:
    data = bytearray(encode_batch(sample_records()))
    data[-1] ^= 0xFF
    with pytest.raises(CorruptRecordError, match="CRC"):
        validate_batches(data)


def test_truncated_buffers_are_rejected() -> None:
    data = encode_batch(sample_records())
    with pytest.raises(CorruptRecordError, match="truncated"):
        validate_batches(data[:40])
    with pytest.raises(CorruptRecordError, match="remain"):
        validate_batches(data[:-3])
    with pytest.raises(CorruptRecordError, match="truncated"):
        validate_batches(data + data[:30])
    with pytest.raises(CorruptRecordError):
        read_batch_header(data[:60])


def test_bad_magic_and_length_and_counts() -> None:
    data = bytearray(encode_batch(sample_records()))
    bad = bytearray(data)
    bad[16] = 1
    with pytest.raises(CorruptRecordError, match="magic"):
        validate_batches(bad)
    bad = bytearray(data)
    struct.pack_into(">i", bad, 8, 10)
    with pytest.raises(CorruptRecordError, match="batchLength"):
        validate_batches(bad)
    for field_pos, name in ((57, "record count"), (23, "lastOffsetDelta")):
        bad = bytearray(data)
        struct.pack_into(">i", bad, field_pos, -1)
        struct.pack_into(">I", bad, 17, crc32c(bytes(bad[21:])))
        with pytest.raises(CorruptRecordError, match=name):
            validate_batches(bad)


def test_empty_buffer_has_no_batches() -> None:
    assert validate_batches(b"") == []


def test_assign_offsets_keeps_crc_valid() -> None:
    a = encode_batch(sample_records(count=3))
    b = encode_batch(sample_records(count=5), compression=records.COMPRESSION_LZ4)
    buf = bytearray(a + b)
    headers = validate_batches(buf)
    updated = assign_offsets(buf, headers, 1000)
    assert [h.base_offset for h in updated] == [1000, 1003]
    assert validate_batches(buf) == updated
    assert [r.offset for r in decode_records(buf)] == list(range(1000, 1008))


def test_assign_offsets_log_append_time() -> None:
    buf = bytearray(encode_batch(sample_records(count=4), compression=records.COMPRESSION_ZSTD))
    (header,) = assign_offsets(buf, validate_batches(buf), 50, log_append_time_ms=99_000)
    assert header.timestamp_type == records.TIMESTAMP_LOG_APPEND_TIME
    assert header.max_timestamp == 99_000
    assert validate_batches(buf) == [header]
    assert {r.timestamp for r in decode_records(buf)} == {99_000}
    assert [r.offset for r in decode_records(buf)] == [50, 51, 52, 53]


def test_negative_timestamp_deltas_and_large_values() -> None:
    items = [
        Record(0, 5_000, b"a", b"x" * 70_000),
        Record(1, 1_000, b"b", b""),
        Record(3, 9_000, b"", None),
    ]
    data = encode_batch(items)
    (header,) = validate_batches(data)
    assert header.max_timestamp == 9_000
    assert header.last_offset_delta == 3
    assert decode_records(data) == items


def test_control_batch_flag() -> None:
    data = encode_batch([Record(0, 1, b"\x00\x00\x00\x01", b"\x00\x00")], is_control=True)
    (header,) = validate_batches(data)
    assert header.is_control


def test_interop_with_kafka_python() -> None:
    """Batches built by kafka-python decode here, and ours pass its CRC check and decoder."""
    default_records = pytest.importorskip("kafka.record.default_records")
    builder = default_records.DefaultRecordBatchBuilder(
        magic=2,
        compression_type=1,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    items = sample_records(count=10)
    for r in items:
        builder.append(r.offset, timestamp=r.timestamp, key=r.key, value=r.value, headers=r.headers)
    theirs = bytes(builder.build())
    (header,) = validate_batches(theirs)
    assert header.compression == records.COMPRESSION_GZIP
    assert decode_records(theirs) == items

    ours = encode_batch(items, compression=records.COMPRESSION_GZIP)
    batch = default_records.DefaultRecordBatch(ours)
    assert batch.validate_crc()
    decoded = [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in batch]
    assert decoded == [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in items]


# -- what Kafka checks inside a client's batch on append (issue 11, item 5) --------------------


def _rewrite(batch: bytes, **fields: int) -> bytes:
    """The batch with header fields changed and its CRC made right again."""
    layout = {"attributes": (21, ">h"), "last_offset_delta": (23, ">i"), "count": (57, ">i")}
    out = bytearray(batch)
    for name, value in fields.items():
        pos, fmt = layout[name]
        struct.pack_into(fmt, out, pos, value)
    struct.pack_into(">I", out, 17, crc32c(bytes(out[21:])))
    return bytes(out)


def _resized(batch: bytes, body: bytes) -> bytes:
    out = bytearray(batch[:BATCH_HEADER_SIZE]) + body
    struct.pack_into(">i", out, 8, len(out) - 12)
    struct.pack_into(">I", out, 17, crc32c(bytes(out[21:])))
    return bytes(out)


def _check(batch: bytes, limit: int = 1 << 24) -> None:
    (header,) = validate_batches(batch)
    records.check_records(batch, header, limit)


@pytest.mark.parametrize("codec", CODECS)
def test_sound_batches_of_every_codec_pass(codec: int) -> None:
    _check(encode_batch(sample_records(count=50), compression=codec))
    _check(encode_batch([Record(0, 1, b"k", bytes(9000)), Record(1, 1, None, b"")]))


@pytest.mark.parametrize(
    "codec", [records.COMPRESSION_GZIP, records.COMPRESSION_SNAPPY, 3, records.COMPRESSION_ZSTD]
)
def test_a_codec_flag_over_a_plain_payload_is_invalid(codec: int) -> None:
    plain = encode_batch(sample_records())
    with pytest.raises(records.InvalidRecordError, match="decompress"):
        _check(_rewrite(plain, attributes=codec))


@pytest.mark.parametrize("codec", [5, 6, 7])
def test_an_unknown_codec_is_invalid(codec: int) -> None:
    with pytest.raises(records.InvalidRecordError, match=f"codec {codec}"):
        _check(_rewrite(encode_batch(sample_records()), attributes=codec))


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"count": 21}, "spans offsets 0 to 19 but holds 21"),
        ({"count": 19}, "spans offsets 0 to 19 but holds 19"),
        ({"count": 0}, "at least one"),
        ({"last_offset_delta": 25}, "spans offsets 0 to 25"),
    ],
)
def test_a_count_that_does_not_match_the_offsets_is_invalid(fields: dict, match: str) -> None:
    for codec in (records.COMPRESSION_NONE, records.COMPRESSION_ZSTD):
        with pytest.raises(records.InvalidRecordError, match=match):
            _check(_rewrite(encode_batch(sample_records(), compression=codec), **fields))


def test_records_that_do_not_tile_the_batch_are_invalid() -> None:
    good = encode_batch(sample_records(count=3))
    body = good[BATCH_HEADER_SIZE:]
    with pytest.raises(records.InvalidRecordError, match="run past its end"):
        _check(_resized(good, body[:-1]))
    with pytest.raises(records.InvalidRecordError, match="2 bytes follow"):
        _check(_resized(good, body + b"\x00\x00"))
    with pytest.raises(records.InvalidRecordError, match="negative length"):
        _check(_resized(good, b"\x01" + body[1:]))  # zigzag 1 is -1
    huge = b"\xfe\xff\xff\xff\x0f"  # a length of 2^31 - 1
    with pytest.raises(records.InvalidRecordError, match="run past"):
        _check(_resized(good, huge + body[len(huge) :]))


def test_a_compressed_payload_whose_records_do_not_tile_it_is_invalid() -> None:
    good = encode_batch(sample_records(count=3))
    body = good[BATCH_HEADER_SIZE:] + b"\x00"
    with pytest.raises(records.InvalidRecordError, match="1 bytes follow"):
        compressed = records._compress(records.COMPRESSION_LZ4, body)
        _check(_rewrite(_resized(good, compressed), attributes=records.COMPRESSION_LZ4))


@pytest.mark.parametrize("codec", CODECS[1:])
def test_a_decompression_bomb_costs_at_most_the_limit(codec: int) -> None:
    bomb = encode_batch([Record(0, 1, b"k", bytes(8 << 20))], compression=codec)
    assert len(bomb) < 1 << 20
    with pytest.raises(records.InvalidRecordError, match="more than 1048576 bytes"):
        _check(bomb, limit=1 << 20)
    _check(bomb, limit=16 << 20)  # and the same batch under a limit it fits


def test_a_cut_short_last_batch_ends_the_scan_when_allowed() -> None:
    batch = encode_batch(sample_records(count=3))
    for tail in (b"\x01\x02\x03", batch[:40], batch[:-1]):
        assert len(validate_batches(batch + tail, partial_tail=True)) == 1
        with pytest.raises(CorruptRecordError):
            validate_batches(batch + tail)


def test_an_older_magic_is_invalid_and_an_unknown_one_corrupt() -> None:
    batch = bytearray(encode_batch(sample_records(count=3)))
    batch[16] = 1
    with pytest.raises(records.InvalidRecordError, match="magic 1"):
        validate_batches(batch)
    batch[16] = 3
    with pytest.raises(CorruptRecordError, match="magic 3") as refused:
        validate_batches(batch)
    assert not isinstance(refused.value, records.InvalidRecordError)


def test_runs_of_records_of_one_size_are_checked_as_strictly_as_a_walk() -> None:
    # 9,000 fixed-size records: runs of one length, broken where the offset delta's varint
    # grows (at 64 and 8,192), which the fast path skips in bulk.
    fixed = encode_batch([Record(i, 1, None, bytes(100)) for i in range(9000)])
    _check(fixed)
    (header,) = validate_batches(fixed)
    assert records._skip_runs(bytearray(fixed), BATCH_HEADER_SIZE, header.size, 9000)[1] == 0
    # A record of another size in the middle of a run: still valid, still accepted.
    odd = [Record(i, 1, None, bytes(100 if i != 500 else 37)) for i in range(2000)]
    _check(encode_batch(odd))
    # A record in the middle of a run claiming two bytes more: refused.
    body = bytearray(fixed[BATCH_HEADER_SIZE:])
    at = 0
    for _ in range(364):
        length, at = records._read_varint(body, at)
        at += length
    body[at] += 4  # record 364's length prefix, zigzag: two bytes more
    with pytest.raises(records.InvalidRecordError):
        _check(_resized(fixed, bytes(body)))
    # Varied sizes leave the fast path at once and are walked.
    varied = encode_batch([Record(i, 1, b"k", bytes(50 + i % 40)) for i in range(500)])
    assert records._skip_runs(bytearray(varied), BATCH_HEADER_SIZE, len(varied), 500)[1] == 499
    _check(varied)
