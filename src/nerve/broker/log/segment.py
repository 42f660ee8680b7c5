"""One log segment: a file of whole RecordBatches plus its sparse offset and time indexes."""

from __future__ import annotations

import bisect
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from crc32c import crc32c

from nerve.broker.log.index import OffsetIndex, TimeIndex
from nerve.protocol.records import (
    BATCH_HEADER_SIZE,
    BATCH_OVERHEAD,
    CRC_START,
    MAGIC,
    BatchHeader,
    read_batch_header,
)

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
CLEANED_SUFFIX = ".cleaned"
_SCAN_BLOCK = 1 << 20
_HEADER_BLOCK = 64 * 1024


def segment_name(base_offset: int) -> str:
    """Kafka's file stem: the base offset zero-padded to 20 digits."""
    return f"{base_offset:020d}"


def scan_batches(
    fd: int, start: int, end: int, *, with_data: bool = False, block: int = _SCAN_BLOCK
) -> Iterator[tuple[int, BatchHeader, memoryview | None]]:
    """Yield (position, header, batch bytes or None) for batches in [start, end) of a file.

    Reads in blocks, so walking headers costs few system calls. Stops silently at the first
    batch whose header is short or whose length is impossible or runs past ``end``; callers that
    care (recovery) compare the final position with ``end``. No CRC check here.
    """
    pos = start
    buf = b""
    buf_pos = start
    while end - pos >= BATCH_HEADER_SIZE:
        off = pos - buf_pos
        if off + BATCH_HEADER_SIZE > len(buf):
            buf = os.pread(fd, min(block, end - pos), pos)
            buf_pos, off = pos, 0
            if len(buf) < BATCH_HEADER_SIZE:
                return
        header = read_batch_header(buf, off)
        size = header.size
        if header.batch_length < BATCH_OVERHEAD or pos + size > end:
            return
        view: memoryview | None = None
        if with_data:
            if off + size > len(buf):
                buf = os.pread(fd, max(min(block, end - pos), size), pos)
                buf_pos, off = pos, 0
                if len(buf) < size:
                    return
            view = memoryview(buf)[off : off + size]
        yield pos, header, view
        pos += size


class LogSegment:
    """A segment file opened for append and pread, with in-memory indexes.

    ``size`` is the number of bytes of whole, valid batches; the file never holds more once the
    segment is open (recovery truncates torn tails).
    """

    def __init__(self, directory: Path, base_offset: int, fd: int, size: int) -> None:
        self.directory = directory
        self.base_offset = base_offset
        self.fd = fd
        self.size = size
        self.offset_index = OffsetIndex(base_offset)
        self.time_index = TimeIndex(base_offset)
        self.next_offset = base_offset  # one past the last offset held (base if empty)
        self.max_timestamp = -1
        self.offset_of_max_timestamp = -1  # last offset of the batch holding max_timestamp
        self.first_batch_timestamp: int | None = None
        self.created_ms: int | None = None  # time of the first append in this process
        self.bytes_since_index = 0
        self.indexes_dirty = False
        self._tracked_size = 0

    # -- paths ------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self.directory / (segment_name(self.base_offset) + LOG_SUFFIX)

    @property
    def index_path(self) -> Path:
        return self.directory / (segment_name(self.base_offset) + INDEX_SUFFIX)

    @property
    def time_index_path(self) -> Path:
        return self.directory / (segment_name(self.base_offset) + TIME_INDEX_SUFFIX)

    # -- lifecycle --------------------------------------------------------------------------

    @classmethod
    def create(cls, directory: Path, base_offset: int) -> LogSegment:
        path = directory / (segment_name(base_offset) + LOG_SUFFIX)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        os.ftruncate(fd, 0)
        segment = cls(directory, base_offset, fd, 0)
        segment.indexes_dirty = True
        for stale in (segment.index_path, segment.time_index_path):
            stale.unlink(missing_ok=True)
        return segment

    @classmethod
    def open(
        cls, directory: Path, base_offset: int, *, recover: bool, index_interval: int
    ) -> LogSegment:
        """Open an existing segment file.

        With ``recover`` (the tail segment) every batch is checked (length, magic, CRC-32C), the
        file is cut at the first bad one and the indexes are rebuilt from the scan. Otherwise the
        index files are trusted if they agree with the file, and rebuilt if not.
        """
        path = directory / (segment_name(base_offset) + LOG_SUFFIX)
        fd = os.open(path, os.O_RDWR | os.O_APPEND)
        size = os.fstat(fd).st_size
        segment = cls(directory, base_offset, fd, size)
        if recover:
            segment._recover(index_interval)
        elif not segment._load_indexes():
            segment._rebuild_indexes(index_interval)
        return segment

    def _recover(self, index_interval: int) -> None:
        valid_end = 0
        for pos, header, view in scan_batches(self.fd, 0, self.size, with_data=True):
            assert view is not None
            if header.magic != MAGIC or crc32c(view[CRC_START:]) != header.crc:
                break
            if header.last_offset_delta < 0 or header.base_offset < self.next_offset:
                break
            self._track(header, pos, index_interval)
            valid_end = pos + header.size
        if valid_end != self.size:
            os.ftruncate(self.fd, valid_end)
            os.fsync(self.fd)
            self.size = valid_end
        self.indexes_dirty = True

    def _rebuild_indexes(self, index_interval: int) -> None:
        for pos, header, _ in scan_batches(self.fd, 0, self.size):
            self._track(header, pos, index_interval)
        self.size = self._tracked_size  # never serve trailing bytes that are not a batch
        self.write_indexes()

    def _load_indexes(self) -> bool:
        """Adopt the index files if they agree with the segment file; False to rebuild."""
        offset_index = OffsetIndex.load(self.index_path, self.base_offset)
        time_index = TimeIndex.load(self.time_index_path, self.base_offset)
        if offset_index is None or time_index is None:
            return False
        if self.size == 0:
            return not (len(offset_index) or len(time_index))
        if not len(offset_index):
            return False
        if offset_index.positions[0] != 0:
            return False
        # The last entry must point at a batch that ends exactly at its recorded offset.
        position = offset_index.positions[-1]
        if position + BATCH_HEADER_SIZE > self.size:
            return False
        try:
            header = read_batch_header(os.pread(self.fd, BATCH_HEADER_SIZE, position))
        except ValueError:
            return False
        if header.magic != MAGIC or header.last_offset != offset_index.offsets[-1]:
            return False
        if position + header.size > self.size:
            return False
        first = read_batch_header(os.pread(self.fd, BATCH_HEADER_SIZE, 0))
        self.offset_index = offset_index
        self.time_index = time_index
        last = time_index.last
        if last is not None:
            self.max_timestamp, self.offset_of_max_timestamp = last
        self.first_batch_timestamp = first.max_timestamp
        # The exact last offset is not needed for closed segments: the next segment's base
        # bounds them. Use the last indexed batch as a lower bound.
        self.next_offset = header.last_offset + 1
        self._tracked_size = self.size
        return True

    # -- appending --------------------------------------------------------------------------

    def _track(self, header: BatchHeader, position: int, index_interval: int) -> None:
        """Account for a batch written (or found) at ``position``: indexes, timestamps, size."""
        if header.max_timestamp > self.max_timestamp:
            self.max_timestamp = header.max_timestamp
            self.offset_of_max_timestamp = header.last_offset
        if position == 0 or self.bytes_since_index >= index_interval:
            self.offset_index.append(header.last_offset, position)
            if self.max_timestamp >= 0:
                self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
            self.bytes_since_index = 0
        self.bytes_since_index += header.size
        if self.first_batch_timestamp is None:
            self.first_batch_timestamp = header.max_timestamp
        self.next_offset = header.last_offset + 1
        self._tracked_size = position + header.size

    def append(
        self, data: bytes | bytearray | memoryview, headers: list[BatchHeader], index_interval: int
    ) -> None:
        """Write whole batches at the end of the file (no fsync) and index them."""
        start = self.size
        view = memoryview(data)
        written = 0
        try:
            while written < len(view):
                written += os.write(self.fd, view[written:])
        except OSError:
            # Leave no partial batch behind: the in-memory state still describes the file.
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, start)
            raise
        position = start
        for header in headers:
            self._track(header, position, index_interval)
            position += header.size
        self.size = position
        self.indexes_dirty = True

    def _close_time_index(self) -> None:
        """Make the last time index entry the segment's maximum (retention reads it)."""
        if self.max_timestamp >= 0:
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)

    def write_indexes(self) -> None:
        """Write both index files (each atomically: temporary file, then rename)."""
        self._close_time_index()
        self.offset_index.write(self.index_path)
        self.time_index.write(self.time_index_path)
        self.indexes_dirty = False

    # -- reading ----------------------------------------------------------------------------

    def find_position(self, offset: int) -> tuple[int, BatchHeader] | None:
        """The first batch whose last offset is >= ``offset``: (position, header), or None."""
        start = self.offset_index.lookup(offset)
        for pos, header, _ in scan_batches(self.fd, start, self.size, block=_HEADER_BLOCK):
            if header.last_offset >= offset:
                return pos, header
        return None

    def span(self, start: int, max_bytes: int, *, force: bool = True) -> int:
        """End position of the whole batches from ``start`` that fit in ``max_bytes``.

        With ``force`` the first batch counts even if larger (KIP-74). Jumps ahead with the
        offset index, whose entries are batch starts, so only a few headers are read.
        """
        positions = self.offset_index.positions
        limit = start + max_bytes
        i = bisect.bisect_right(positions, limit) - 1
        cur = positions[i] if i >= 0 and positions[i] > start else start
        for pos, header, _ in scan_batches(self.fd, cur, self.size, block=_HEADER_BLOCK):
            end = pos + header.size
            if end > limit and (pos > start or not force):
                return pos
            cur = end
            if end >= limit:
                break
        return cur

    def read_batch(self, position: int, header: BatchHeader) -> bytes:
        return os.pread(self.fd, header.size, position)

    def batches(
        self, start: int = 0, *, with_data: bool = False
    ) -> Iterator[tuple[int, BatchHeader, memoryview | None]]:
        return scan_batches(self.fd, start, self.size, with_data=with_data)

    # -- housekeeping -----------------------------------------------------------------------

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def delete_files(self) -> None:
        for path in (self.path, self.index_path, self.time_index_path):
            path.unlink(missing_ok=True)
