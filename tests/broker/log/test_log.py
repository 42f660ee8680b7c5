"""PartitionLog on real files: appends, reads, rolls, indexes, recovery, retention, deletion."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from nerve.broker.log.config import TOPIC_CONFIG_DEFAULTS, LogConfig
from nerve.broker.log.index import OffsetIndex, TimeIndex
from nerve.broker.log.log import OffsetOutOfRangeError, PartitionLog
from nerve.protocol import records
from nerve.protocol.records import Record, decode_records, encode_batch, validate_batches

NOW = 1_700_000_000_000


def batch(
    count: int = 1, *, ts: int = NOW, size: int = 10, key: bytes | None = b"k", codec: int = 0
) -> bytearray:
    return bytearray(
        encode_batch(
            [Record(i, ts + i, key, b"v" * size) for i in range(count)],
            compression=codec,
        )
    )


def append(log: PartitionLog, data: bytearray, now: int = NOW) -> tuple[int, int]:
    return log.append(data, validate_batches(data), now)


def offsets(data: bytes) -> list[int]:
    return [r.offset for r in decode_records(data)]


@pytest.fixture
def open_log(tmp_path: Path) -> Iterator[type[PartitionLog]]:
    opened: list[PartitionLog] = []

    class Tracking(PartitionLog):
        @classmethod
        def open(cls, directory: Path, config: LogConfig) -> PartitionLog:
            log = PartitionLog.open(directory, config)
            opened.append(log)
            return log

    yield Tracking
    for log in opened:
        log.close()


def test_config_from_kafka_names() -> None:
    config = LogConfig.from_configs(
        {
            "segment.bytes": "1024",
            "retention.ms": "-1",
            "cleanup.policy": "delete,compact",
            "message.timestamp.type": "LogAppendTime",
            "unknown.thing": "x",
        }
    )
    assert config.segment_bytes == 1024
    assert config.retention_ms == -1
    assert config.cleanup_policy == "compact,delete"
    assert config.compact and config.delete and config.log_append_time
    with pytest.raises(ValueError, match=r"segment\.bytes must be an integer"):
        LogConfig.from_configs({"segment.bytes": "big"})
    with pytest.raises(ValueError, match=r"retention\.ms must be at least -1"):
        LogConfig.from_configs({"retention.ms": "-2"})
    with pytest.raises(ValueError, match=r"cleanup\.policy"):
        LogConfig.from_configs({"cleanup.policy": "forever"})
    with pytest.raises(ValueError, match=r"message\.timestamp\.type"):
        LogConfig.from_configs({"message.timestamp.type": "Now"})
    assert LogConfig.from_configs(TOPIC_CONFIG_DEFAULTS) == LogConfig()
    assert TOPIC_CONFIG_DEFAULTS["segment.bytes"] == str(1 << 30)
    assert TOPIC_CONFIG_DEFAULTS["cleanup.policy"] == "delete"


def test_append_read_round_trip_across_rolls(tmp_path: Path, open_log: type[PartitionLog]) -> None:
    log = open_log.open(tmp_path / "t-0", LogConfig(segment_bytes=1000, index_interval_bytes=100))
    expected: list[int] = []
    for i in range(50):
        first, last = append(log, batch(3, size=20))
        assert (first, last) == (i * 3, i * 3 + 2)
        expected.extend(range(first, last + 1))
    assert log.log_end_offset == 150
    assert log.segment_count > 5
    names = sorted(p.name for p in (tmp_path / "t-0").iterdir())
    assert "00000000000000000000.log" in names
    assert all(len(n.split(".")[0]) == 20 for n in names if not n.startswith("log-start"))
    # Everything, in order, across segments.
    assert offsets(log.read_bytes(0, 1 << 20)) == expected
    # From every middle offset: the first batch holds it.
    for offset in range(0, 150, 7):
        got = offsets(log.read_bytes(offset, 1))
        assert got[0] <= offset <= got[-1]
        assert len(got) == 3
    assert log.read_bytes(150, 1000) == b""
    with pytest.raises(OffsetOutOfRangeError):
        log.read(151, 1000)


def test_read_respects_max_bytes_with_whole_batches(
    tmp_path: Path, open_log: type[PartitionLog]
) -> None:
    log = open_log.open(tmp_path / "t-0", LogConfig(index_interval_bytes=256))
    sizes = []
    for _ in range(40):
        data = batch(2, size=30)
        sizes.append(len(data))
        append(log, data)
    for max_bytes in (1, sizes[0], sizes[0] + 1, 1000, 5000):
        result = log.read(0, max_bytes)
        raw = log.read_bytes(0, max_bytes)
        assert result.size == len(raw)
        expected = max(sizes[0], (max_bytes // sizes[0]) * sizes[0])
        assert len(raw) == min(expected, sum(sizes))
        assert validate_batches(raw)  # whole batches only


def test_kip74_oversized_batch(tmp_path: Path, open_log: type[PartitionLog]) -> None:
    log = open_log.open(tmp_path / "t-0", LogConfig())
    append(log, batch(1, size=10))
    append(log, batch(1, size=50_000))
    append(log, batch(1, size=10))
    data = log.read_bytes(1, 100)
    assert offsets(data) == [1]
    assert len(data) > 50_000
    # A non-first batch is never added beyond max_bytes.
    assert offsets(log.read_bytes(0, 1000)) == [0]


def test_offset_index_lookups(tmp_path: Path, open_log: type[PartitionLog]) -> None:
    log = open_log.open(tmp_path / "t-0", LogConfig(index_interval_bytes=200))
    for _ in range(100):
        append(log, batch(2, size=40))
    segment = log._segments[-1]
    index = segment.offset_index
    assert len(index) > 10
    assert index.positions[0] == 0
    for offset in range(200):
        found = segment.find_position(offset)
        assert found is not None
        pos, header = found
        assert header.base_offset <= offset <= header.last_offset
        assert index.lookup(offset) <= pos
    log.close()
    on_disk = OffsetIndex.load(segment.index_path, 0)
    assert on_disk is not None
    assert on_disk.offsets == index.offsets and on_disk.positions == index.positions
    assert segment.index_path.stat().st_size == 8 * len(index)
    assert segment.time_index_path.stat().st_size % 12 == 0


def test_time_index_and_offset_for_timestamp(tmp_path: Path, open_log: type[PartitionLog]) -> None:
    log = open_log.open(tmp_path / "t-0", LogConfig(segment_bytes=2000, index_interval_bytes=150))
    # Batch i holds two records at timestamps 1000*i and 1000*i + 1.
    for i in range(60):
        append(log, batch(2, ts=1000 * i, size=30))
    assert log.segment_count > 2
    assert log.offset_for_timestamp(0) == (0, 0)
    assert log.offset_for_timestamp(1) == (1, 1)
    assert log.offset_for_timestamp(2) == (1000, 2)
    assert log.offset_for_timestamp(30_001) == (30_001, 61)
    assert log.offset_for_timestamp(30_500) == (31_000, 62)
    assert log.offset_for_timestamp(59_001) == (59_001, 119)
    assert log.offset_for_timestamp(59_002) is None
    assert log.max_timestamp() == (59_001, 119)
    for segment in log._segments:
        assert segment.time_index.timestamps == sorted(set(segment.time_index.timestamps))
    # Unordered timestamps: the first record at or after the target wins, by offset.
    append(log, batch(1, ts=10_000_000))
    append(log, batch(1, ts=5_000_000))
    assert log.offset_for_timestamp(4_000_000) == (10_000_000, 120)
    assert log.max_timestamp() == (10_000_000, 120)


def test_max_timestamp_inside_a_batch(tmp_path: Path, open_log: type[PartitionLog]) -> None:
    log = open_log.open(tmp_path / "t-0", LogConfig())
    assert log.max_timestamp() is None
    assert log.offset_for_timestamp(0) is None
    items = [Record(0, 10, b"a", b"1"), Record(1, 50, b"b", b"2"), Record(2, 20, b"c", b"3")]
    data = bytearray(encode_batch(items))
    append(log, data)
    assert log.max_timestamp() == (50, 1)
    assert log.offset_for_timestamp(15) == (50, 1)


def test_log_append_time(tmp_path: Path, open_log: type[PartitionLog]) -> None:
    config = LogConfig(message_timestamp_type="LogAppendTime")
    log = open_log.open(tmp_path / "t-0", config)
    append(log, batch(3, ts=5), now=777_000)
    data = log.read_bytes(0, 1000)
    (header,) = validate_batches(data)
    assert header.timestamp_type == 1 and header.max_timestamp == 777_000
    assert {r.timestamp for r in decode_records(data)} == {777_000}
    assert log.offset_for_timestamp(700_000) == (777_000, 0)


def test_reopen_preserves_everything(tmp_path: Path, open_log: type[PartitionLog]) -> None:
    config = LogConfig(segment_bytes=1500, index_interval_bytes=100)
    log = open_log.open(tmp_path / "t-0", config)
    for i in range(40):
        append(log, batch(2, ts=100 * i, size=25, codec=i % 5))
    before = log.read_bytes(0, 1 << 20)
    bases = log.segment_base_offsets
    indexes = [(s.offset_index.offsets, s.time_index.timestamps) for s in log._segments]
    log.close()
    log = open_log.open(tmp_path / "t-0", config)
    assert log.log_end_offset == 80
    assert log.segment_base_offsets == bases
    assert log.read_bytes(0, 1 << 20) == before
    assert [(s.offset_index.offsets, s.time_index.timestamps) for s in log._segments] == indexes
    assert log.offset_for_timestamp(1550) == (1600, 32)
    assert append(log, batch(1)) == (80, 80)


def test_index_rebuilt_when_missing_or_wrong(tmp_path: Path, open_log: type[PartitionLog]) -> None:
    config = LogConfig(segment_bytes=1500, index_interval_bytes=100)
    directory = tmp_path / "t-0"
    log = open_log.open(directory, config)
    for i in range(40):
        append(log, batch(2, ts=100 * i, size=25))
    first = log._segments[0]
    expected_offsets = list(first.offset_index.offsets)
    expected_times = list(first.time_index.timestamps)
    before = log.read_bytes(0, 1 << 20)
    log.close()
    first.index_path.unlink()
    first.time_index_path.unlink()
    log = open_log.open(directory, config)
    assert first.index_path.exists() and first.time_index_path.exists()
    assert log._segments[0].offset_index.offsets == expected_offsets
    assert log._segments[0].time_index.timestamps == expected_times
    assert log.read_bytes(0, 1 << 20) == before
    log.close()
    # An index that points at the wrong place (e.g. a stale one) is also rebuilt.
    stale = OffsetIndex(0)
    stale.append(expected_offsets[-1] + 1, 0)
    stale.write(first.index_path)
    broken_time = TimeIndex(0)
    broken_time.write(first.time_index_path)
    log = open_log.open(directory, config)
    assert log._segments[0].offset_index.offsets == expected_offsets
    assert log._segments[0].max_timestamp == expected_times[-1]
    assert log.read_bytes(0, 1 << 20) == before


@pytest.mark.parametrize("damage", ["truncate", "garbage", "bad-crc", "torn-header"])
def test_torn_tail_is_truncated_on_open(
    tmp_path: Path, open_log: type[PartitionLog], damage: str
) -> None:
    directory = tmp_path / "t-0"
    log = open_log.open(directory, LogConfig())
    for _ in range(10):
        append(log, batch(2, size=50))
    good = log.read_bytes(0, 1 << 20)
    last_size = len(batch(2, size=50))
    path = log._segments[-1].path
    log.close()
    size = path.stat().st_size
    if damage == "truncate":
        os.truncate(path, size - 5)
        kept = 18
    elif damage == "garbage":
        with open(path, "ab") as f:
            f.write(os.urandom(100))
        kept = 20
    elif damage == "bad-crc":
        with open(path, "r+b") as f:
            f.seek(size - 3)
            f.write(b"\xff\xfe\xfd")
        kept = 18
    else:
        with open(path, "ab") as f:
            f.write(bytes(batch(1))[:30])
        kept = 20
    log = open_log.open(directory, LogConfig())
    assert log.log_end_offset == kept
    assert path.stat().st_size == kept // 2 * last_size
    assert log.read_bytes(0, 1 << 20) == good[: kept // 2 * last_size]
    assert append(log, batch(1)) == (kept, kept)
    assert offsets(log.read_bytes(0, 1 << 20)) == list(range(kept + 1))
    log.close()
    log = open_log.open(directory, LogConfig())
    assert log.log_end_offset == kept + 1


def test_only_tail_segment_is_recovered(tmp_path: Path, open_log: type[PartitionLog]) -> None:
    directory = tmp_path / "t-0"
    config = LogConfig(segment_bytes=500)
    log = open_log.open(directory, config)
    for _ in range(20):
        append(log, batch(1, size=100))
    assert log.segment_count > 2
    log.close()
    tail = sorted(directory.glob("*.log"))[-1]
    os.truncate(tail, 0)
    log = open_log.open(directory, config)
    assert log.log_end_offset == log.segment_base_offsets[-1]
    assert append(log, batch(1))[0] == log.segment_base_offsets[-1]


def test_roll_on_segment_ms(tmp_path: Path, open_log: type[PartitionLog]) -> None:
    log = open_log.open(tmp_path / "t-0", LogConfig(segment_ms=1000))
    append(log, batch(), now=NOW)
    append(log, batch(), now=NOW + 999)
    assert log.segment_count == 1
    append(log, batch(), now=NOW + 1000)
    assert log.segment_count == 2
    assert log.segment_base_offsets == [0, 2]


def test_compacted_topic_rolls_at_max_compaction_lag(
    tmp_path: Path, open_log: type[PartitionLog]
) -> None:
    """Kafka rolls a compacted log's active segment by min(segment.ms, max.compaction.lag.ms),
    so that no record stays uncleanable for longer than the lag."""
    config = LogConfig(cleanup_policy="compact", max_compaction_lag_ms=500)
    log = open_log.open(tmp_path / "c-0", config)
    append(log, batch(), now=NOW)
    append(log, batch(), now=NOW + 500)
    assert log.segment_base_offsets == [0, 1]
    deleting = open_log.open(tmp_path / "d-0", LogConfig(max_compaction_lag_ms=500))
    append(deleting, batch(), now=NOW)
    append(deleting, batch(), now=NOW + 500)
    assert deleting.segment_count == 1  # the lag means nothing without compaction


def test_retention_by_time(tmp_path: Path, open_log: type[PartitionLog]) -> None:
    config = LogConfig(segment_bytes=300, retention_ms=10_000)
    log = open_log.open(tmp_path / "t-0", config)
    for i in range(10):
        append(log, batch(1, ts=NOW + i * 1000, size=150))
    assert log.segment_count == 10
    # Segments whose newest record is older than now - retention go, oldest first.
    assert log.enforce_retention(NOW + 14_500) == 5
    assert log.log_start_offset == 5
    assert log.segment_base_offsets[0] == 5
    with pytest.raises(OffsetOutOfRangeError):
        log.read(4, 100)
    assert offsets(log.read_bytes(5, 1 << 20)) == [5, 6, 7, 8, 9]
    # Everything expired: the active segment is rolled and deleted too.
    assert log.enforce_retention(NOW + 100_000) == 5
    assert log.log_start_offset == log.log_end_offset == 10
    assert log.segment_count == 1
    assert log.read_bytes(10, 100) == b""
    assert append(log, batch())[0] == 10
    log.close()
    log = open_log.open(tmp_path / "t-0", config)
    assert (log.log_start_offset, log.log_end_offset) == (10, 11)


def test_retention_by_bytes(tmp_path: Path, open_log: type[PartitionLog]) -> None:
    one = len(batch(1, size=150))
    config = LogConfig(segment_bytes=one, retention_bytes=3 * one, retention_ms=-1)
    log = open_log.open(tmp_path / "t-0", config)
    for _ in range(8):
        append(log, batch(1, size=150))
    assert log.size_bytes == 8 * one
    assert log.enforce_retention(NOW) == 5
    assert log.size_bytes == 3 * one
    assert log.log_start_offset == 5
    assert log.enforce_retention(NOW) == 0


def test_retention_ignored_for_compact_only(tmp_path: Path, open_log: type[PartitionLog]) -> None:
    config = LogConfig(segment_bytes=300, retention_ms=1, cleanup_policy="compact")
    log = open_log.open(tmp_path / "t-0", config)
    for _ in range(3):
        append(log, batch(1, size=150))
    assert log.enforce_retention(NOW + 10**9) == 0


def test_delete_records(tmp_path: Path, open_log: type[PartitionLog]) -> None:
    config = LogConfig(segment_bytes=300)
    log = open_log.open(tmp_path / "t-0", config)
    for _ in range(10):
        append(log, batch(2, size=100))
    assert log.segment_count == 10
    assert log.delete_records(7) == 7
    assert log.log_start_offset == 7
    assert log.segment_base_offsets[0] == 6  # the segment holding offset 7 stays
    with pytest.raises(OffsetOutOfRangeError):
        log.read(6, 100)
    assert offsets(log.read_bytes(7, 1))[0] == 6  # whole batch, consumer skips below 7
    assert log.delete_records(3) == 7  # never moves backwards
    assert log.offset_for_timestamp(0) == (NOW + 1, 7)
    log.close()
    log = open_log.open(tmp_path / "t-0", config)
    assert log.log_start_offset == 7
    assert log.delete_records(20) == 20
    assert log.segment_count == 1
    assert log.read_bytes(20, 100) == b""
    assert append(log, batch())[0] == 20


def test_sync_and_dirty_tracking(tmp_path: Path, open_log: type[PartitionLog]) -> None:
    log = open_log.open(tmp_path / "t-0", LogConfig(segment_bytes=200))
    log.sync()  # nothing dirty: fine
    for _ in range(5):
        append(log, batch(1, size=100))
    assert log._dirty
    log.sync()
    assert not log._dirty


def test_sync_from_a_thread_while_appending(tmp_path: Path) -> None:
    """The broker fsyncs in a worker thread while the loop keeps appending and rolling."""
    import threading

    log = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_bytes=2000))
    stop = threading.Event()
    errors: list[BaseException] = []

    def syncer() -> None:
        try:
            while not stop.is_set():
                log.sync()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=syncer)
    thread.start()
    try:
        for _ in range(300):
            append(log, batch(2, size=50))
        log.enforce_retention(NOW)
    finally:
        stop.set()
        thread.join()
    assert not errors
    log.sync()
    assert not log._dirty
    assert log.log_end_offset == 600
    log.close()


def test_delete_removes_directory(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    append(log, batch())
    log.delete()
    assert not (tmp_path / "t-0").exists()


def test_compressed_batches_are_stored_as_sent(
    tmp_path: Path, open_log: type[PartitionLog]
) -> None:
    log = open_log.open(tmp_path / "t-0", LogConfig())
    for codec in (
        records.COMPRESSION_GZIP,
        records.COMPRESSION_SNAPPY,
        records.COMPRESSION_LZ4,
        records.COMPRESSION_ZSTD,
    ):
        sent = batch(5, codec=codec, size=200)
        first, _ = append(log, bytearray(sent))
        stored = log.read_bytes(first, 1)
        assert stored[8:] == bytes(sent[8:])  # only the base offset changed
        assert offsets(stored) == list(range(first, first + 5))
