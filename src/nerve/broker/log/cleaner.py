"""Log compaction: keep the latest record per key, drop expired tombstones, keep offsets.

Compaction is the one place the broker decodes records in bulk. It never renumbers: a retained
record keeps its offset, and a batch that lost records is re-encoded with its original base
offset and offset span, so consumers see gaps, never moved offsets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nerve.broker.log.segment import LogSegment, batch_damage
from nerve.protocol.records import (
    TIMESTAMP_LOG_APPEND_TIME,
    BatchHeader,
    Record,
    decode_records,
    encode_batch,
)


class DamagedBatchError(Exception):
    """A batch to compact fails its CRC-32C check: compacting it would re-encode damaged
    records under a fresh, valid CRC, so the partition is not compacted."""


def _intact(segment: LogSegment, position: int, header: BatchHeader, view: memoryview) -> None:
    reason = batch_damage(header, view)
    if reason is None:
        if position == segment.verified_end:
            segment.verified_end = position + header.size
        return
    raise DamagedBatchError(
        f"segment {segment.path.name} of {segment.directory.name}, batch at byte {position} "
        f"(offsets {header.base_offset}-{header.last_offset}): {reason}"
    )


@dataclass
class KeyMap:
    """The offset of the latest record of every key in the log."""

    latest: dict[bytes, int]

    @classmethod
    def build(cls, segments: list[LogSegment]) -> KeyMap:
        latest: dict[bytes, int] = {}
        for segment in segments:
            for pos, header, view in segment.batches(with_data=True):
                assert view is not None
                if pos >= segment.verified_end:
                    _intact(segment, pos, header, view)
                if header.is_control:
                    continue
                for record in decode_records(view):
                    if record.key is not None:
                        latest[record.key] = record.offset
        return cls(latest)


@dataclass
class CleanResult:
    """What cleaning one segment did; ``next_tombstone_expiry`` is when a retained tombstone
    becomes removable (for scheduling), or None if none was retained."""

    changed: bool
    bytes_in: int
    bytes_out: int
    next_tombstone_expiry: int | None


def _rebuild_batch(header: BatchHeader, kept: list[Record]) -> bytes:
    return encode_batch(
        kept,
        base_offset=header.base_offset,
        compression=header.compression,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
        is_transactional=header.is_transactional,
        timestamp_type=header.timestamp_type,
        base_timestamp=(
            header.max_timestamp
            if header.timestamp_type == TIMESTAMP_LOG_APPEND_TIME
            else header.base_timestamp
        ),
        last_offset_delta=header.last_offset_delta,
        partition_leader_epoch=header.partition_leader_epoch,
    )


def clean_segment(
    segment: LogSegment,
    key_map: KeyMap,
    now_ms: int,
    delete_retention_ms: int,
    dest: Path,
) -> CleanResult:
    """Write the compacted form of ``segment`` to ``dest`` (fsynced) and say if it differs.

    Tombstones (null values) that are the latest for their key are dropped once their timestamp
    is more than ``delete_retention_ms`` old, giving consumers that long to see the delete.
    Records without a key are kept: Kafka refuses them on compacted topics at produce time.
    """
    changed = False
    expiry: int | None = None
    out_size = 0
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    ok = False
    try:
        for pos, header, view in segment.batches(with_data=True):
            assert view is not None
            if pos >= segment.verified_end:
                _intact(segment, pos, header, view)
            data: bytes | memoryview = view
            if not header.is_control:
                kept_data = _clean_batch(header, view, key_map, now_ms, delete_retention_ms)
                if kept_data is None:
                    changed = True
                    continue
                data, batch_changed, batch_expiry = kept_data
                changed = changed or batch_changed
                if batch_expiry is not None:
                    expiry = batch_expiry if expiry is None else min(expiry, batch_expiry)
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            out_size += len(data)
        os.fsync(fd)
        ok = True
    finally:
        os.close(fd)
        if not ok:
            dest.unlink(missing_ok=True)  # a full disk must not keep half a cleaned segment
    return CleanResult(changed, segment.size, out_size, expiry)


def _clean_batch(
    header: BatchHeader,
    view: memoryview,
    key_map: KeyMap,
    now_ms: int,
    delete_retention_ms: int,
) -> tuple[bytes | memoryview, bool, int | None] | None:
    """The batch's retained form: (bytes, changed, earliest tombstone expiry), None if empty."""
    expiry: int | None = None
    records = decode_records(view)
    kept: list[Record] = []
    for record in records:
        if record.key is None:
            kept.append(record)
            continue
        if key_map.latest.get(record.key) != record.offset:
            continue
        if record.value is None:
            deadline = record.timestamp + delete_retention_ms
            if now_ms > deadline:
                continue
            expiry = deadline if expiry is None else min(expiry, deadline)
        kept.append(record)
    if len(kept) == len(records):
        return view, False, expiry
    if not kept:
        return None
    return _rebuild_batch(header, kept), True, expiry
