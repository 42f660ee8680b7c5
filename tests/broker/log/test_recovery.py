"""Recovery at open (issue 11, item 6): a torn tail is truncated; damage with intact batches
after it is cut out alone, loudly, with a copy kept, and the batches after it are kept."""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path

import pytest

from nerve.broker.log.config import LogConfig
from nerve.broker.log.log import CorruptBatchError, PartitionLog
from nerve.protocol.records import Record, decode_records, encode_batch, validate_batches

NOW = 1_700_000_000_000


def fill(directory: Path, batches: int, config: LogConfig | None = None) -> list[int]:
    """A log of ``batches`` one-record batches; returns each batch's file position."""
    log = PartitionLog.open(directory, config or LogConfig())
    positions = []
    for i in range(batches):
        data = bytearray(encode_batch([Record(i, NOW + i, b"k%d" % i, b"value-%05d" % i * 3)]))
        positions.append(log._segments[-1].size)
        log.append(data, validate_batches(data), NOW)
    log.close()
    return positions


def flip(path: Path, position: int) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        byte = f.read(1)
        f.seek(position)
        f.write(bytes([byte[0] ^ 0x01]))


def values(log: PartitionLog) -> list[tuple[int, bytes | None]]:
    out = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        data = log.read_bytes(offset, 1 << 20)
        if not data:
            break
        got = decode_records(data)
        out += [(r.offset, r.value) for r in got]
        offset = got[-1].offset + 1
    return out


def segment(directory: Path) -> Path:
    return sorted(directory.glob("*.log"))[-1]


def test_a_flipped_byte_mid_segment_loses_that_batch_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "orders-0"
    positions = fill(directory, 300)
    path = segment(directory)
    flip(path, positions[150] + 70)  # inside batch 150's records
    with caplog.at_level(logging.ERROR, "nerve.broker"):
        log = PartitionLog.open(directory, LogConfig())
    try:
        got = values(log)
        assert [o for o, _ in got] == [o for o in range(300) if o != 150]
        assert log.log_end_offset == 300
        (damage,) = log.damage
        assert (damage.first_lost, damage.last_lost, damage.torn) == (150, 150, False)
        assert damage.start == positions[150] and damage.end == positions[151]
        cut = damage.end - damage.start
        assert damage.copy.read_bytes()[:12] == struct.pack(">qi", 150, cut - 12)
        message = caplog.text
        assert "orders-0" in message and path.name in message
        assert f"damaged at byte {positions[150]}" in message
        assert "offsets 150-150 are lost" in message and str(damage.copy) in message
        data = bytearray(encode_batch([Record(0, NOW, b"k", b"after")]))
        assert log.append(data, validate_batches(data), NOW)[0] == 300
    finally:
        log.close()
    again = PartitionLog.open(directory, LogConfig())  # the repaired file reopens cleanly
    assert not again.damage and again.log_end_offset == 301
    again.close()


def test_a_damaged_length_field_is_skipped_by_finding_the_next_intact_batch(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "t-0"
    positions = fill(directory, 50)
    path = segment(directory)
    with open(path, "r+b") as f:
        f.seek(positions[20] + 8)
        f.write(struct.pack(">i", 7))  # batchLength below the minimum
    log = PartitionLog.open(directory, LogConfig())
    try:
        assert [o for o, _ in values(log)] == [o for o in range(50) if o != 20]
        (damage,) = log.damage
        assert (damage.first_lost, damage.last_lost) == (20, 20)
    finally:
        log.close()


def test_several_damaged_batches_are_each_cut(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    positions = fill(directory, 40)
    for n in (5, 6, 30):
        flip(segment(directory), positions[n] + 65)
    log = PartitionLog.open(directory, LogConfig())
    try:
        assert [o for o, _ in values(log)] == [o for o in range(40) if o not in (5, 6, 30)]
        assert [(d.first_lost, d.last_lost) for d in log.damage] == [(5, 6), (30, 30)]
    finally:
        log.close()


@pytest.mark.parametrize("tail", ["half a batch", "zeros", "garbage"])
def test_a_torn_tail_is_truncated_and_said_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, tail: str
) -> None:
    directory = tmp_path / "t-0"
    fill(directory, 10)
    path = segment(directory)
    size = path.stat().st_size
    extra = {
        "half a batch": encode_batch([Record(10, NOW, b"k", b"v" * 100)])[:60],
        "zeros": bytes(4096),
        "garbage": b"\x00\x00\x00\x00\x00\x00\x00\x0a\x00\x00\x10\x00" + os.urandom(50),
    }[tail]
    with open(path, "ab") as f:
        f.write(extra)
    with caplog.at_level(logging.WARNING, "nerve.broker"):
        log = PartitionLog.open(directory, LogConfig())
    try:
        assert log.log_end_offset == 10 and path.stat().st_size == size
        (damage,) = log.damage
        assert damage.torn and damage.last_lost is None
        assert damage.copy.read_bytes() == extra
        assert "cut short" in caplog.text
    finally:
        log.close()


def test_a_damaged_last_batch_is_not_called_a_torn_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "t-0"
    positions = fill(directory, 10)
    flip(segment(directory), positions[9] + 70)
    with caplog.at_level(logging.ERROR, "nerve.broker"):
        log = PartitionLog.open(directory, LogConfig())
    try:
        assert log.log_end_offset == 9
        (damage,) = log.damage
        assert not damage.torn
        assert "in its last batch" in caplog.text and "offsets from 9 are lost" in caplog.text
    finally:
        log.close()


def test_recover_all_checks_older_segments_too(tmp_path: Path) -> None:
    directory = tmp_path / "__consumer_offsets-0"
    config = LogConfig(segment_bytes=2000)
    positions = fill(directory, 100, config)
    first = sorted(directory.glob("*.log"))[0]
    flip(first, positions[3] + 70)
    unchecked = PartitionLog.open(directory, config)
    assert not unchecked.damage  # only the tail is scanned by default
    unchecked.close()
    log = PartitionLog.open(directory, config, recover_all=True)
    try:
        assert [(d.first_lost, d.last_lost) for d in log.damage] == [(3, 3)]
        assert [o for o, _ in values(log)] == [o for o in range(100) if o != 3]
    finally:
        log.close()


# -- reads check what recovery did not (issue 11, item 7) ----------------------------------------


def test_damage_in_an_older_segment_is_never_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "t-0"
    config = LogConfig(segment_bytes=2000)
    positions = fill(directory, 100, config)
    flip(sorted(directory.glob("*.log"))[0], positions[7] + 70)
    log = PartitionLog.open(directory, config)  # only the tail is scanned at open
    try:
        assert not log.damage
        with caplog.at_level(logging.ERROR, "nerve.broker"):
            before = decode_records(log.read_bytes(0, 1 << 20))
            assert [r.offset for r in before] == list(range(7)), "stops before the damage"
            for _ in range(3):
                with pytest.raises(CorruptBatchError) as refused:
                    log.read_bytes(7, 1 << 20)
        assert (refused.value.damage.first_lost, refused.value.damage.last_lost) == (7, 7)
        assert caplog.text.count("damaged at byte") == 1, "logged once, not per fetch"
        assert "CORRUPT_MESSAGE" in caplog.text
        after = decode_records(log.read_bytes(8, 1 << 20))
        assert after[0].offset == 8
    finally:
        log.close()


def test_batches_are_checked_once(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    config = LogConfig(segment_bytes=2000)
    fill(directory, 60, config)
    log = PartitionLog.open(directory, config)
    try:
        old, tail = log._segments[0], log._segments[-1]
        assert old.verified_end == 0 and tail.verified_end == tail.size
        log.read_bytes(0, 1 << 20)
        assert old.verified_end == old.size
        data = bytearray(encode_batch([Record(0, NOW, b"k", b"new")]))
        log.append(data, validate_batches(data), NOW)
        assert log._segments[-1].verified_end == log._segments[-1].size
    finally:
        log.close()


def test_compaction_stops_at_a_damaged_batch_instead_of_laundering_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "t-0"
    config = LogConfig(segment_bytes=2000, cleanup_policy="compact", min_compaction_lag_ms=0)
    positions = fill(directory, 100, config)
    first = sorted(directory.glob("*.log"))[0]
    flip(first, positions[5] + 70)
    damaged = first.read_bytes()
    log = PartitionLog.open(directory, config)
    try:
        with caplog.at_level(logging.ERROR, "nerve.broker"):
            log.compact(NOW + 10**9)
            log.compact(NOW + 2 * 10**9)
        assert caplog.text.count("compaction of t-0 stops") == 1
        assert first.read_bytes() == damaged, "the damaged segment was left as it is"
    finally:
        log.close()
