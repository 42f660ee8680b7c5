"""Sparse offset and time indexes, kept in memory and written in Kafka's file formats.

Indexes are small (one entry per ~4 KiB of log), so each segment holds its own in lists for
bisection and writes them out whole when it stops being the active segment or on close. A file is
written to a temporary name and renamed, so after a crash an index file is either complete or
missing; a missing or inconsistent one is rebuilt by scanning the segment.
"""

from __future__ import annotations

import bisect
import os
import struct
from pathlib import Path

_OFFSET_ENTRY = struct.Struct(">ii")  # relative offset, file position
_TIME_ENTRY = struct.Struct(">qi")  # timestamp, relative offset


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class OffsetIndex:
    """Maps a batch's last offset to the file position where the batch starts (sparse)."""

    __slots__ = ("base_offset", "offsets", "positions")

    def __init__(self, base_offset: int) -> None:
        self.base_offset = base_offset
        self.offsets: list[int] = []  # absolute last offsets, ascending
        self.positions: list[int] = []  # file positions, ascending

    def __len__(self) -> int:
        return len(self.offsets)

    def append(self, last_offset: int, position: int) -> None:
        self.offsets.append(last_offset)
        self.positions.append(position)

    def lookup(self, offset: int) -> int:
        """A file position at or before the first batch that can hold ``offset``.

        An entry (last, pos) means the batch at pos ends at ``last``, so the scan may start at the
        greatest entry whose batch ends before ``offset``: no batch before it holds the target.
        """
        i = bisect.bisect_left(self.offsets, offset) - 1
        return self.positions[i] if i >= 0 else 0

    def truncate_to_position(self, position: int) -> None:
        """Forget entries for batches at or after ``position`` (the file was cut there)."""
        i = bisect.bisect_left(self.positions, position)
        del self.offsets[i:], self.positions[i:]

    def to_bytes(self) -> bytes:
        pack = _OFFSET_ENTRY.pack
        base = self.base_offset
        return b"".join(
            pack(o - base, p) for o, p in zip(self.offsets, self.positions, strict=True)
        )

    def write(self, path: Path) -> None:
        _write_atomically(path, self.to_bytes())

    @classmethod
    def load(cls, path: Path, base_offset: int) -> OffsetIndex | None:
        """Read an index file; None if it is missing or not even well-formed."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if len(data) % _OFFSET_ENTRY.size:
            return None
        index = cls(base_offset)
        last_offset = last_position = -1
        for rel, pos in _OFFSET_ENTRY.iter_unpack(data):
            offset = base_offset + rel
            if rel < 0 or offset <= last_offset or pos <= last_position:
                return None
            index.append(offset, pos)
            last_offset, last_position = offset, pos
        return index


class TimeIndex:
    """Maps a max timestamp so far to the last offset of the batch that reached it (sparse).

    Timestamps only grow along the index, so ``lookup`` can bisect. The last entry always holds
    the segment's largest timestamp once the segment is closed, which retention relies on.
    """

    __slots__ = ("base_offset", "offsets", "timestamps")

    def __init__(self, base_offset: int) -> None:
        self.base_offset = base_offset
        self.timestamps: list[int] = []
        self.offsets: list[int] = []

    def __len__(self) -> int:
        return len(self.timestamps)

    def maybe_append(self, timestamp: int, offset: int) -> None:
        """Add an entry if it raises the maximum (entries stay strictly increasing)."""
        if self.timestamps and timestamp <= self.timestamps[-1]:
            return
        self.timestamps.append(timestamp)
        self.offsets.append(offset)

    def lookup(self, timestamp: int) -> int | None:
        """Offset of the last entry whose timestamp is below ``timestamp``: no batch up to that
        offset holds a timestamp >= ``timestamp``. None if no entry is below it."""
        i = bisect.bisect_left(self.timestamps, timestamp) - 1
        return self.offsets[i] if i >= 0 else None

    @property
    def last(self) -> tuple[int, int] | None:
        return (self.timestamps[-1], self.offsets[-1]) if self.timestamps else None

    def truncate_to_offset(self, offset: int) -> None:
        """Forget entries for offsets at or after ``offset``."""
        i = bisect.bisect_left(self.offsets, offset)
        del self.timestamps[i:], self.offsets[i:]

    def to_bytes(self) -> bytes:
        pack = _TIME_ENTRY.pack
        base = self.base_offset
        return b"".join(
            pack(t, o - base) for t, o in zip(self.timestamps, self.offsets, strict=True)
        )

    def write(self, path: Path) -> None:
        _write_atomically(path, self.to_bytes())

    @classmethod
    def load(cls, path: Path, base_offset: int) -> TimeIndex | None:
        """Read an index file; None if it is missing or not well-formed."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if len(data) % _TIME_ENTRY.size:
            return None
        index = cls(base_offset)
        for ts, rel in _TIME_ENTRY.iter_unpack(data):
            offset = base_offset + rel
            if rel < 0 or (index.timestamps and (ts <= index.timestamps[-1])):
                return None
            if index.offsets and offset < index.offsets[-1]:
                return None
            index.timestamps.append(ts)
            index.offsets.append(offset)
        return index
