"""Compaction: latest record per key survives with its offset; expired tombstones go."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nerve.broker.log.config import LogConfig
from nerve.broker.log.log import PartitionLog
from nerve.protocol import records
from nerve.protocol.records import Record, decode_records, encode_batch, validate_batches

NOW = 1_700_000_000_000
HOUR = 3_600_000


def put(log: PartitionLog, *pairs: tuple[bytes | None, bytes | None], ts: int = NOW) -> int:
    data = bytearray(
        encode_batch(
            [Record(i, ts, k, v) for i, (k, v) in enumerate(pairs)],
            compression=records.COMPRESSION_LZ4,
            producer_id=5,
            producer_epoch=0,
            base_sequence=0,
        )
    )
    return log.append(data, validate_batches(data), ts)[0]


def contents(log: PartitionLog) -> list[tuple[int, bytes | None, bytes | None]]:
    data = log.read_bytes(log.log_start_offset, 1 << 24)
    return [(r.offset, r.key, r.value) for r in decode_records(data)]


def config(**kwargs: Any) -> LogConfig:
    base: dict[str, Any] = {
        "segment_bytes": 200,
        "cleanup_policy": "compact",
        "delete_retention_ms": HOUR,
    }
    base.update(kwargs)
    return LogConfig(**base)


def test_keeps_latest_per_key_with_original_offsets(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "c-0", config())
    for round_ in range(5):
        for key in (b"a", b"b", b"c"):
            put(log, (key, f"{key.decode()}{round_}".encode()))
    put(log, (b"a", b"a-final"), (b"d", b"d0"))
    assert log.segment_count > 3
    before_end = log.log_end_offset
    size_before = log.size_bytes
    log.compact(NOW)
    got = contents(log)
    assert log.log_end_offset == before_end
    assert log.size_bytes < size_before
    latest = {key: (offset, value) for offset, key, value in got}
    assert latest == {
        b"a": (15, b"a-final"),
        b"b": (13, b"b4"),
        b"c": (14, b"c4"),
        b"d": (16, b"d0"),
    }
    # Nothing but the latest value of each key is left.
    assert len(got) == 4
    offsets = [o for o, _, _ in got]
    assert offsets == sorted(offsets)
    # Reads from an offset compacted away start at the next retained record.
    assert decode_records(log.read_bytes(2, 1))[0].offset >= 2
    # Appends continue; reopening keeps the compacted log and rebuilds nothing wrongly.
    put(log, (b"b", b"b5"))
    log.close()
    log = PartitionLog.open(tmp_path / "c-0", config())
    assert contents(log) == [*got, (17, b"b", b"b5")]
    assert not list((tmp_path / "c-0").glob("*.cleaned"))
    log.compact(NOW)
    assert [(o, k) for o, k, _ in contents(log)] == [(14, b"c"), (15, b"a"), (16, b"d"), (17, b"b")]
    log.close()


def test_partially_kept_batch_is_reencoded(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "c-0", config(segment_bytes=10_000))
    put(log, (b"x", b"1"), (b"y", b"1"), (b"z", b"1"))
    log._roll()
    put(log, (b"y", b"2"))
    log.compact(NOW)
    data = log.read_bytes(0, 1 << 20)
    headers = validate_batches(data)  # CRCs of the rebuilt batch are right
    first = headers[0]
    assert (first.base_offset, first.last_offset) == (0, 2)  # offset span preserved
    assert first.compression == records.COMPRESSION_LZ4
    assert (first.producer_id, first.producer_epoch) == (5, 0)
    assert [(r.offset, r.key) for r in decode_records(data)] == [(0, b"x"), (2, b"z"), (3, b"y")]
    log.close()


def test_tombstones_dropped_after_delete_retention(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "c-0", config())
    put(log, (b"a", b"1"))
    put(log, (b"b", b"1"))
    put(log, (b"a", None))  # tombstone for a
    put(log, (b"c", b"1"))
    put(log, (b"c", b"2"))  # ensures the tombstone's segment is closed
    log.compact(NOW + 1000)
    assert [(k, v) for _, k, v in contents(log)] == [(b"b", b"1"), (b"a", None), (b"c", b"2")]
    # Still inside delete.retention.ms: consumers can still see the delete.
    log.compact(NOW + HOUR)
    assert (b"a", None) in [(k, v) for _, k, v in contents(log)]
    log.compact(NOW + HOUR + 1)
    assert [(k, v) for _, k, v in contents(log)] == [(b"b", b"1"), (b"c", b"2")]
    log.close()


def test_active_segment_untouched_and_lag_respected(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "c-0", config(min_compaction_lag_ms=HOUR))
    for i in range(6):
        put(log, (b"k", str(i).encode()), ts=NOW + i)
    count = len(contents(log))
    log.compact(NOW + 10)  # everything is younger than the lag
    assert len(contents(log)) == count
    log.compact(NOW + 2 * HOUR)
    got = contents(log)
    # Closed segments lost every record (the latest is in the active one, left as is).
    assert got[-1][2] == b"5"
    assert len(got) < count
    assert all(o >= log.segment_base_offsets[-1] for o, _, _ in got)
    # Emptied segments are removed, except the first (it anchors the log start offset).
    assert log.segment_count == 2
    assert log.log_start_offset == 0
    assert decode_records(log.read_bytes(0, 1))[0].offset == log.segment_base_offsets[-1]
    log.close()


def test_leftover_cleaned_file_is_discarded(tmp_path: Path) -> None:
    directory = tmp_path / "c-0"
    log = PartitionLog.open(directory, config())
    for i in range(6):
        put(log, (b"k", str(i).encode()))
    before = contents(log)
    log.close()
    (directory / "00000000000000000000.log.cleaned").write_bytes(b"half-written")
    log = PartitionLog.open(directory, config())
    assert contents(log) == before
    assert not list(directory.glob("*.cleaned"))
    log.close()


def test_records_without_key_are_kept(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "c-0", config(segment_bytes=100))  # a batch a segment
    put(log, (None, b"orphan"))
    put(log, (b"a", b"1"))
    put(log, (b"a", b"2"))
    put(log, (b"a", b"3"))
    put(log, (b"z", b"1"))
    log.compact(NOW)
    assert [(k, v) for _, k, v in contents(log)] == [(None, b"orphan"), (b"a", b"3"), (b"z", b"1")]
    log.close()


def test_delete_policy_does_not_compact(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "c-0", config(cleanup_policy="delete"))
    for _ in range(5):
        put(log, (b"a", b"1"))
    log.compact(NOW)
    assert len(contents(log)) == 5
    log.close()
