"""PartitionLog: one partition's segments, appends, reads, retention, compaction and recovery.

Batches are stored exactly as producers sent them except for the base offset (outside the CRC),
and fetches are served as byte ranges of segment files, so nothing here decodes records on the
produce or fetch path. Everything runs on the event loop thread except :meth:`sync`, which the
broker runs in a worker thread for group commit.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import NamedTuple

from nerve.broker.log.cleaner import DamagedBatchError, KeyMap, clean_segment
from nerve.broker.log.config import LogConfig
from nerve.broker.log.segment import CLEANED_SUFFIX, LOG_SUFFIX, Damage, LogSegment
from nerve.broker.txn.producer_state import ProducerState
from nerve.protocol.records import BatchHeader, assign_offsets, decode_records

LOG_START_CHECKPOINT = "log-start-offset.checkpoint"
_log = logging.getLogger("nerve.broker")
_MAX_RELATIVE_OFFSET = (1 << 31) - 1


class OffsetOutOfRangeError(Exception):
    """A read below the log start offset or beyond the log end offset."""


class CorruptBatchError(Exception):
    """The batch a read must return first is damaged on disk (it fails its CRC-32C check):
    Kafka's CORRUPT_MESSAGE for the partition, never its bytes."""

    def __init__(self, damage: Damage) -> None:
        super().__init__(damage.reason)
        self.damage = damage


class ReadResult(NamedTuple):
    """Byte ranges of segment files holding whole batches: (fd, file position, length).

    The fds belong to the log: they stay open until :meth:`PartitionLog.close`, or, for segments
    that retention or compaction removed meanwhile, until the next such maintenance call.
    """

    chunks: list[tuple[int, int, int]]
    size: int


class PartitionLog:
    """The log of one partition: an ordered list of segments, the last one active."""

    def __init__(self, directory: Path, config: LogConfig, segments: list[LogSegment]) -> None:
        self.directory = directory
        self.config = config
        self._segments = segments
        self._bases = [s.base_offset for s in segments]
        self.log_start_offset = segments[0].base_offset
        self._dirty: set[LogSegment] = set()
        self._dir_dirty = False
        self._dirty_lock = threading.Lock()  # guards _dirty and _dir_dirty
        self._fd_lock = threading.Lock()  # held while fsyncing and while closing fds
        self._retired: list[LogSegment] = []
        self._clean_state: tuple[int, int] | None = None  # (log end, segments) at last clean
        self._clean_again_at: int | None = None  # when a skipped pass could change something
        self.producers = ProducerState()
        self.damage: list[Damage] = []  # what recovery cut out when the log was opened
        self._reported: set[tuple[str, int]] = set()  # damage found by reads, already logged
        self._compaction_stopped = False  # a damaged batch was found in what it would rewrite
        self._snapshot_end: int | None = None  # log end offset of the producer-state snapshot
        self._closed = False

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def open(cls, directory: Path, config: LogConfig, *, recover_all: bool = False) -> PartitionLog:
        """Open (creating if needed) the log in ``directory`` and recover its tail segment.

        With ``recover_all`` every segment is checked batch by batch, not only the tail (the
        broker's own topics, whose state is replayed at start, are small enough for that).
        What recovery cut out is in :attr:`damage`.
        """
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.iterdir():
            if leftover.name.endswith((CLEANED_SUFFIX, ".tmp")):
                leftover.unlink()
        bases = sorted(
            int(p.name[: -len(LOG_SUFFIX)])
            for p in directory.iterdir()
            if p.name.endswith(LOG_SUFFIX) and p.name[: -len(LOG_SUFFIX)].isdigit()
        )
        checkpoint = _read_checkpoint(directory / LOG_START_CHECKPOINT)
        segments: list[LogSegment] = []
        try:
            for i, base in enumerate(bases):
                tail = i == len(bases) - 1
                segments.append(
                    LogSegment.open(
                        directory,
                        base,
                        recover=tail or recover_all,
                        index_interval=config.index_interval_bytes,
                    )
                )
            if not segments:
                segments.append(LogSegment.create(directory, max(checkpoint or 0, 0)))
        except BaseException:
            for segment in segments:
                segment.close()
            raise
        log = cls(directory, config, segments)
        log.damage = [damage for segment in segments for damage in segment.damage]
        if checkpoint is not None:
            log.log_start_offset = min(max(checkpoint, log.log_start_offset), log.log_end_offset)
        log._load_producer_state()
        return log

    def _load_producer_state(self) -> None:
        """The last producer-state snapshot, brought up to the log end from batch headers."""
        state = ProducerState.load(self.directory)
        if state is None or not (self.log_start_offset <= state.end_offset <= self.log_end_offset):
            state = ProducerState()
            state.end_offset = self.log_start_offset
        else:
            self._snapshot_end = state.end_offset
        self.producers = state
        start = state.end_offset
        if start >= self.log_end_offset:
            return
        i = max(bisect.bisect_right(self._bases, start) - 1, 0)
        for segment in self._segments[i:]:
            for position, header, _ in segment.batches():
                if header.last_offset < start or header.producer_id < 0:
                    continue
                data = segment.read_batch(position, header) if header.is_control else None
                self._apply_producer_batch(header, data, header.max_timestamp)
        state.end_offset = self.log_end_offset

    def _apply_producer_batch(
        self, header: BatchHeader, data: bytes | bytearray | memoryview | None, now_ms: int
    ) -> None:
        if not header.is_control:
            self.producers.apply(header, now_ms)
            return
        marker = read_marker(data) if data is not None else None
        if marker is None:
            return
        commit, coordinator_epoch = marker
        self.producers.apply_marker(
            header.producer_id,
            header.producer_epoch,
            commit,
            coordinator_epoch,
            header.base_offset,
            now_ms,
        )

    # -- state ------------------------------------------------------------------------------

    @property
    def log_end_offset(self) -> int:
        """The next offset to assign (the high watermark, as there is a single replica)."""
        return self._segments[-1].next_offset

    @property
    def last_stable_offset(self) -> int:
        """Below this every transaction is decided: what read_committed consumers may see."""
        unstable = self.producers.first_unstable_offset()
        return self.log_end_offset if unstable is None else unstable

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    @property
    def segment_base_offsets(self) -> list[int]:
        return list(self._bases)

    def set_config(self, config: LogConfig) -> None:
        self.config = config
        self._clean_state = None

    # -- appending --------------------------------------------------------------------------

    def append(
        self, batches: bytearray, headers: list[BatchHeader], now_ms: int
    ) -> tuple[int, int]:
        """Assign offsets to validated batches and write them; returns (first, last) offset.

        Rolls to a new segment first when this write would overflow segment.bytes or the
        active segment is older than segment.ms. No fsync: :meth:`sync` does that.
        """
        if not headers:
            raise ValueError("append needs at least one batch")
        self._check_open()
        active = self._segments[-1]
        if self._should_roll(active, len(batches), now_ms, headers):
            active = self._roll()
        first = active.next_offset
        append_time = now_ms if self.config.log_append_time else None
        headers = assign_offsets(batches, headers, first, append_time)
        active.append(batches, headers, self.config.index_interval_bytes)
        position = 0
        for header in headers:
            if header.producer_id >= 0:
                data = memoryview(batches)[position : position + header.size]
                self._apply_producer_batch(header, data if header.is_control else None, now_ms)
            position += header.size
        self.producers.end_offset = headers[-1].last_offset + 1
        if active.created_ms is None:
            active.created_ms = now_ms
        with self._dirty_lock:
            self._dirty.add(active)
        return first, headers[-1].last_offset

    def _should_roll(
        self, active: LogSegment, size: int, now_ms: int, headers: list[BatchHeader]
    ) -> bool:
        if active.size == 0:
            return False
        if active.size + size > self.config.segment_bytes:
            return True
        if active.created_ms is None:
            # Reopened segment: like Kafka, age it from its first batch's timestamp.
            first = active.first_batch_timestamp
            active.created_ms = first if first is not None and first >= 0 else now_ms
        if now_ms - active.created_ms >= self.config.roll_ms:
            return True
        last_offset = active.next_offset + sum(h.last_offset_delta + 1 for h in headers) - 1
        return last_offset - active.base_offset > _MAX_RELATIVE_OFFSET

    def _roll(self) -> LogSegment:
        """Close the active segment for writing (indexes out, fsync) and start a new one."""
        old = self._segments[-1]
        old.write_indexes()
        old.sync()  # the fd stays open, so no need for _fd_lock (which a running sync holds)
        self.producers.snapshot(self.directory)
        self._snapshot_end = self.producers.end_offset
        with self._dirty_lock:
            self._dirty.discard(old)
            self._dir_dirty = True
        segment = LogSegment.create(self.directory, old.next_offset)
        self._segments.append(segment)
        self._bases.append(segment.base_offset)
        return segment

    # -- durability -------------------------------------------------------------------------

    def sync(self) -> None:
        """fsync every segment written since the last sync (and the directory after a roll).

        Called from a worker thread while the loop may append: appending to an fd that is being
        fsynced is safe, and the lock keeps retention and compaction from closing an fd under us.
        """
        with self._dirty_lock:
            dirty = list(self._dirty)
            self._dirty.clear()
            dir_dirty, self._dir_dirty = self._dir_dirty, False
        try:
            with self._fd_lock:
                for segment in dirty:
                    if segment.fd >= 0:
                        segment.sync()
                if dir_dirty:
                    _fsync_dir(self.directory)
        except BaseException:
            with self._dirty_lock:
                self._dirty.update(dirty)
                self._dir_dirty = self._dir_dirty or dir_dirty
            raise

    # -- reading ----------------------------------------------------------------------------

    def read(self, offset: int, max_bytes: int, max_offset: int | None = None) -> ReadResult:
        """Whole batches from the one holding ``offset``, up to ``max_bytes`` but at least one.

        KIP-74: the first batch is returned even when larger than ``max_bytes`` so a consumer
        always makes progress. Reading at the log end returns nothing. ``max_offset`` stops
        before the batch holding that offset (the last stable offset, for read_committed).
        The byte ranges are not CRC-checked: :meth:`read_bytes` is.
        """
        self._check_open()
        chunks = [
            (segment.fd, start, end - start)
            for segment, start, end in self._spans(offset, max_bytes, max_offset)
        ]
        return ReadResult(chunks, sum(length for _, _, length in chunks))

    def _spans(
        self, offset: int, max_bytes: int, max_offset: int | None
    ) -> list[tuple[LogSegment, int, int]]:
        if offset < self.log_start_offset or offset > self.log_end_offset:
            raise OffsetOutOfRangeError(
                f"offset {offset} is outside [{self.log_start_offset}, {self.log_end_offset}]"
            )
        spans: list[tuple[LogSegment, int, int]] = []
        total = 0
        if max_offset is None or max_offset > self.log_end_offset:
            max_offset = self.log_end_offset
        if offset >= max_offset:
            return spans
        i = max(bisect.bisect_right(self._bases, offset) - 1, 0)
        for segment in self._segments[i:]:
            if segment.size == 0:
                continue
            if spans:
                start = 0
            else:
                found = segment.find_position(offset)
                if found is None:
                    continue  # the offset fell in a gap left by compaction
                start = found[0]
            end = segment.span(start, max_bytes - total, force=not spans)
            stop = segment.base_offset <= max_offset < segment.next_offset
            if stop:
                cut = segment.find_position(max_offset)
                if cut is not None:
                    end = min(end, cut[0])
            if end > start:
                spans.append((segment, start, end))
                total += end - start
            if stop or total >= max_bytes or end < segment.size:
                break
        return spans

    def read_bytes(self, offset: int, max_bytes: int, max_offset: int | None = None) -> bytes:
        """:meth:`read` materialised into one bytes object, every batch checked on its way out.

        A batch that fails its CRC-32C check is never returned: the read stops before it, and
        raises :class:`CorruptBatchError` when it is the first (logged once per batch).
        """
        self._check_open()
        parts: list[bytes] = []
        for segment, start, end in self._spans(offset, max_bytes, max_offset):
            data, damage = segment.read_verified(start, end)
            parts.append(data)
            if damage is not None:
                self._report_read_damage(damage)
                if not any(parts):
                    raise CorruptBatchError(damage)
                break
        return b"".join(parts)

    def _report_read_damage(self, damage: Damage) -> None:
        key = (damage.segment.name, damage.start)
        if key in self._reported:
            return
        self._reported.add(key)
        offsets = (
            f"offsets {damage.first_lost}-{damage.last_lost}"
            if damage.first_lost >= 0 and damage.last_lost is not None
            else "an unknown offset range"
        )
        _log.error(
            "%s: segment %s is damaged at byte %d (%s): %s cannot be served; fetches there are "
            "answered CORRUPT_MESSAGE. Restore the file, or move consumers past it (seek, or "
            "DeleteRecords up to the next offset)",
            self.directory.name,
            damage.segment.name,
            damage.start,
            damage.reason,
            offsets,
        )

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """(timestamp, offset) of the first record with timestamp >= ``timestamp_ms``.

        Same order as :meth:`max_timestamp` and ListOffsets' response fields. The time index
        and batch headers narrow the search to one batch; only that batch is decoded.
        """
        self._check_open()
        for segment in self._segments:
            if segment.max_timestamp < timestamp_ms:
                continue
            below = segment.time_index.lookup(timestamp_ms)
            start = 0 if below is None else segment.offset_index.lookup(below + 1)
            for pos, header, _ in segment.batches(start):
                if (
                    header.max_timestamp < timestamp_ms
                    or header.last_offset < self.log_start_offset
                ):
                    continue
                for record in decode_records(segment.read_batch(pos, header)):
                    if record.offset >= self.log_start_offset and record.timestamp >= timestamp_ms:
                        return record.timestamp, record.offset
        return None

    def max_timestamp(self) -> tuple[int, int] | None:
        """(timestamp, offset) of the first record holding the log's largest timestamp."""
        self._check_open()
        best: LogSegment | None = None
        for segment in self._segments:
            if segment.size and (best is None or segment.max_timestamp > best.max_timestamp):
                best = segment
        if best is None or best.max_timestamp < 0:
            return None
        found = best.find_position(best.offset_of_max_timestamp)
        if found is not None:
            pos, header = found
            for record in decode_records(best.read_batch(pos, header)):
                if record.timestamp == best.max_timestamp:
                    return record.timestamp, record.offset
        return best.max_timestamp, best.offset_of_max_timestamp

    # -- deletion ---------------------------------------------------------------------------

    def delete_records(self, before_offset: int) -> int:
        """Move the log start offset to ``before_offset`` (DeleteRecords); returns the new start.

        Whole segments below it are deleted; the start is persisted in a checkpoint file.
        """
        self._check_open()
        self._close_retired()
        target = min(before_offset, self.log_end_offset)
        if target > self.log_start_offset:
            self._write_checkpoint(target)  # first: a failure (full disk) changes nothing
            self.log_start_offset = target
            self.producers.truncate_head(self.log_start_offset)
        count = 0
        while count < len(self._segments) - 1 and (
            self._segments[count + 1].base_offset <= self.log_start_offset
        ):
            count += 1
        self._delete_oldest(count)
        return self.log_start_offset

    def enforce_retention(self, now_ms: int) -> int:
        """Delete the oldest segments that breach retention.ms or retention.bytes.

        As in Kafka, a breaching active segment is rolled first so it can go too, leaving an
        empty active segment at the log end. Returns the number of segments deleted.
        """
        self._check_open()
        self._close_retired()
        segments = self._segments
        count = 0
        # Segments wholly below the log start offset (after DeleteRecords).
        while (
            count < len(segments) - 1 and segments[count + 1].base_offset <= self.log_start_offset
        ):
            count += 1
        if self.config.delete:
            retention_ms = self.config.retention_ms
            if retention_ms >= 0:
                while count < len(segments) and segments[count].size:
                    if now_ms - self._largest_timestamp(segments[count]) <= retention_ms:
                        break
                    count += 1
            if self.config.retention_bytes >= 0:
                excess = self.size_bytes - sum(s.size for s in segments[:count])
                excess -= self.config.retention_bytes
                while count < len(segments) and segments[count].size:
                    if excess - segments[count].size < 0:
                        break
                    excess -= segments[count].size
                    count += 1
        if count == 0:
            return 0
        if count == len(segments):
            self._roll()
        self._delete_oldest(count)
        return count

    @staticmethod
    def _largest_timestamp(segment: LogSegment) -> int:
        """The segment's max timestamp, or its file mtime if no batch carries one (Kafka)."""
        if segment.max_timestamp >= 0:
            return segment.max_timestamp
        return os.fstat(segment.fd).st_mtime_ns // 1_000_000

    def _delete_oldest(self, count: int) -> None:
        if count <= 0:
            return
        doomed = self._segments[:count]
        del self._segments[:count]
        del self._bases[:count]
        for segment in doomed:
            segment.delete_files()
            self._retire(segment)
        if self._segments[0].base_offset > self.log_start_offset:
            self.log_start_offset = self._segments[0].base_offset
            self._write_checkpoint()
            self.producers.truncate_head(self.log_start_offset)
        self._clean_state = None

    def _retire(self, segment: LogSegment) -> None:
        """Stop tracking a segment; its fd stays open until the next maintenance call so
        byte ranges handed out by :meth:`read` remain readable a while."""
        with self._dirty_lock:
            self._dirty.discard(segment)
        self._retired.append(segment)

    def _close_retired(self) -> None:
        if not self._retired:
            return
        with self._fd_lock:
            for segment in self._retired:
                segment.close()
        self._retired.clear()

    def _write_checkpoint(self, start: int | None = None) -> None:
        path = self.directory / LOG_START_CHECKPOINT
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(f"{self.log_start_offset if start is None else start}\n")
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    # -- compaction -------------------------------------------------------------------------

    def compact(self, now_ms: int) -> None:
        """Compact the closed segments if cleanup.policy includes compact.

        The latest record per key (judged over the whole log, active segment included) is kept,
        with its original offset; tombstones go once older than delete.retention.ms; segments
        newer than min.compaction.lag.ms are left alone. Each cleaned segment is written to a
        ``.cleaned`` file and renamed over the original.
        """
        self._check_open()
        if not self.config.compact or self._compaction_stopped:
            return
        self._close_retired()
        state = (self.log_end_offset, len(self._segments))
        if state == self._clean_state and (
            self._clean_again_at is None or now_ms < self._clean_again_at
        ):
            return  # nothing appended, no tombstone expired, no segment came of age
        again: list[int] = []
        cleanable: list[LogSegment] = []
        for segment in self._segments[:-1]:
            if now_ms - segment.max_timestamp < self.config.min_compaction_lag_ms:
                again.append(segment.max_timestamp + self.config.min_compaction_lag_ms)
                break
            cleanable.append(segment)
        if cleanable:
            try:
                key_map = KeyMap.build(self._segments)
                for segment in cleanable:
                    expiry = self._clean(segment, key_map, now_ms)
                    if expiry is not None:
                        again.append(expiry + 1)
            except DamagedBatchError as exc:
                self._compaction_stopped = True
                _log.error(
                    "compaction of %s stops until the broker restarts: %s. Compacting would "
                    "re-encode damaged records under a fresh, valid CRC",
                    self.directory.name,
                    exc,
                )
                return
        self._clean_state = (self.log_end_offset, len(self._segments))
        self._clean_again_at = min(again) if again else None

    def _clean(self, segment: LogSegment, key_map: KeyMap, now_ms: int) -> int | None:
        """Compact one closed segment in place; returns its earliest tombstone expiry."""
        dest = segment.path.with_name(segment.path.name + CLEANED_SUFFIX)
        result = clean_segment(segment, key_map, now_ms, self.config.delete_retention_ms, dest)
        if not result.changed:
            dest.unlink()
            return result.next_tombstone_expiry
        index = self._segments.index(segment)
        if result.bytes_out == 0 and index > 0:
            # An emptied segment other than the first just goes: its offsets are all gone.
            dest.unlink()
            del self._segments[index], self._bases[index]
            segment.delete_files()
            self._retire(segment)
            return None
        # Remove the indexes first: a crash then leaves either file with no index, which is
        # rebuilt on open, never a new log file with the old, wrong index.
        segment.index_path.unlink(missing_ok=True)
        segment.time_index_path.unlink(missing_ok=True)
        os.replace(dest, segment.path)
        _fsync_dir(self.directory)
        replacement = LogSegment.open(
            self.directory,
            segment.base_offset,
            recover=False,
            index_interval=self.config.index_interval_bytes,
        )
        replacement.created_ms = segment.created_ms
        replacement.verified_end = replacement.size  # written from checked batches
        self._segments[index] = replacement
        self._retire(segment)
        return result.next_tombstone_expiry

    # -- closing ----------------------------------------------------------------------------

    def close(self, *, flush: bool = True) -> None:
        """Write index files, fsync and close every file; the log is unusable afterwards.

        Without ``flush`` the files are only closed (a log about to be deleted).
        """
        if self._closed:
            return
        if not flush:
            self._closed = True
            with self._fd_lock:
                for segment in self._segments:
                    segment.close()
            self._close_retired()
            return
        try:
            for segment in self._segments:
                if segment.indexes_dirty:
                    segment.write_indexes()
            self.sync()
            self.producers.end_offset = self.log_end_offset
            empty = self.log_end_offset == self.log_start_offset and not self.producers.entries
            if self._snapshot_end != self.log_end_offset and not empty:
                # Unchanged since the last snapshot (or the one loaded): no need to rewrite it,
                # which matters when a broker with thousands of idle partitions stops.
                self.producers.snapshot(self.directory)
        finally:
            self._closed = True
            with self._fd_lock:
                for segment in self._segments:
                    segment.close()
            self._close_retired()

    def delete(self) -> None:
        """Close the log and remove its directory (DeleteTopics)."""
        with contextlib.suppress(OSError):
            self.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"partition log {self.directory} is closed")


def _read_checkpoint(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_marker(batch: bytes | bytearray | memoryview) -> tuple[bool, int] | None:
    """(commit?, coordinator epoch) of a control batch's transaction marker, or None.

    The marker record's key is (version int16, type int16: 0 abort, 1 commit); its value is
    (version int16, coordinator epoch int32).
    """
    try:
        (record,) = decode_records(batch)
    except ValueError:
        return None
    key, value = record.key or b"", record.value or b""
    if len(key) < 4 or key[2:4] not in (b"\x00\x00", b"\x00\x01"):
        return None
    coordinator_epoch = int.from_bytes(value[2:6], "big", signed=True) if len(value) >= 6 else -1
    return key[3] == 1, coordinator_epoch
