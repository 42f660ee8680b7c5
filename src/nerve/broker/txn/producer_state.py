"""Per-partition producer state: sequence numbers, epochs and open transactions.

An idempotent producer numbers its batches per partition; the broker remembers, for each
producer id, its epoch and its last five batches (sequence range and offsets), as Kafka does.
A batch seen before is acknowledged again with its original offset instead of being written
twice; a batch that skips ahead is refused with OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch is
refused as fenced. For transactions it also tracks where each producer's open transaction began
(the last stable offset is the smallest such offset) and keeps the index of aborted
transactions that read_committed fetches return.

The state is rebuilt from the log's batch headers, so it survives any restart; a snapshot at
clean shutdown and at every segment roll saves rescanning the whole log (``snapshot``/``load``).
"""

from __future__ import annotations

import json
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from nerve.broker.errors import ApiError, ErrorCode
from nerve.protocol.records import NO_PRODUCER_EPOCH, BatchHeader

CACHED_BATCHES = 5  # Kafka keeps the last five batches per producer (max.in.flight limit)
SNAPSHOT_SUFFIX = ".snapshot"  # <end offset, 20 digits>.snapshot, as Kafka names them
_INT32_MAX = 2**31 - 1


class BatchMetadata(NamedTuple):
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    timestamp: int


class AbortedTxn(NamedTuple):
    producer_id: int
    first_offset: int
    last_offset: int  # the offset of the abort marker


@dataclass
class ProducerEntry:
    producer_id: int
    epoch: int = NO_PRODUCER_EPOCH
    batches: deque[BatchMetadata] = field(default_factory=lambda: deque(maxlen=CACHED_BATCHES))
    last_timestamp: int = -1  # wall clock of the last write (producer id expiry)
    txn_first_offset: int | None = None  # first offset of the open transaction here
    coordinator_epoch: int = -1

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1


def _last_seq(header: BatchHeader) -> int:
    """Sequences wrap at Int32.MAX like Kafka's."""
    last = header.base_sequence + header.last_offset_delta
    return last - _INT32_MAX - 1 if last > _INT32_MAX else last


def _in_sequence(last_seq: int, next_seq: int) -> bool:
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == _INT32_MAX)


class ProducerState:
    """The producers of one partition. Not thread-safe: the event loop owns it."""

    def __init__(self) -> None:
        self.entries: dict[int, ProducerEntry] = {}
        self.aborted: list[AbortedTxn] = []
        self.end_offset = 0  # offsets below this have been applied

    # -- checks on produce -----------------------------------------------------------------

    def check(self, header: BatchHeader, topic_partition: str) -> BatchMetadata | None:
        """Validate an idempotent or transactional batch before it is written.

        Returns the cached metadata when the batch is a duplicate (to be acknowledged with its
        original offset, not written); raises ApiError when it must be refused.
        """
        pid, epoch = header.producer_id, header.producer_epoch
        entry = self.entries.get(pid)
        first_seq, last_seq = header.base_sequence, _last_seq(header)
        if entry is None or entry.epoch == NO_PRODUCER_EPOCH:
            # A producer this partition has not seen (or whose records retention removed):
            # any sequence is accepted, as in Kafka.
            return None
        if epoch < entry.epoch:
            raise ApiError(
                ErrorCode.invalid_producer_epoch,
                f"producer {pid} epoch {epoch} is older than the current epoch {entry.epoch} "
                f"on {topic_partition}",
            )
        if epoch > entry.epoch:
            if first_seq != 0:
                raise ApiError(
                    ErrorCode.out_of_order_sequence_number,
                    f"producer {pid} started epoch {epoch} on {topic_partition} with sequence "
                    f"{first_seq}, not 0",
                )
            return None
        for cached in entry.batches:
            if cached.first_seq == first_seq and cached.last_seq == last_seq:
                return cached
        if not _in_sequence(entry.last_seq, first_seq):
            raise ApiError(
                ErrorCode.out_of_order_sequence_number,
                f"producer {pid} epoch {epoch} sent sequence {first_seq} on {topic_partition}; "
                f"expected {entry.last_seq + 1}",
            )
        return None

    def check_transactional(self, header: BatchHeader, topic_partition: str) -> None:
        """A transactional batch needs its partition added to the transaction first."""
        entry = self.entries.get(header.producer_id)
        if entry is not None and entry.epoch > header.producer_epoch:
            raise ApiError(
                ErrorCode.invalid_producer_epoch,
                f"producer {header.producer_id} epoch {header.producer_epoch} is fenced "
                f"on {topic_partition}",
            )

    # -- applying the log ------------------------------------------------------------------

    def apply(self, header: BatchHeader, now_ms: int) -> None:
        """Record a data batch (offsets assigned) written by a producer with an id."""
        entry = self.entries.get(header.producer_id)
        if entry is None:
            entry = self.entries[header.producer_id] = ProducerEntry(header.producer_id)
        if header.producer_epoch != entry.epoch:
            entry.batches.clear()
            entry.epoch = header.producer_epoch
        entry.batches.append(
            BatchMetadata(
                header.base_sequence,
                _last_seq(header),
                header.base_offset,
                header.last_offset,
                header.max_timestamp,
            )
        )
        entry.last_timestamp = now_ms
        if header.is_transactional and entry.txn_first_offset is None:
            entry.txn_first_offset = header.base_offset
        self.end_offset = header.last_offset + 1

    def apply_marker(
        self,
        producer_id: int,
        epoch: int,
        commit: bool,
        coordinator_epoch: int,
        offset: int,
        now_ms: int,
    ) -> None:
        """A transaction marker at ``offset`` ends the producer's open transaction here."""
        entry = self.entries.get(producer_id)
        if entry is None:
            entry = self.entries[producer_id] = ProducerEntry(producer_id)
        if epoch > entry.epoch:
            entry.epoch = epoch
            entry.batches.clear()
        if entry.txn_first_offset is not None and not commit:
            self.aborted.append(AbortedTxn(producer_id, entry.txn_first_offset, offset))
        entry.txn_first_offset = None
        entry.coordinator_epoch = coordinator_epoch
        entry.last_timestamp = now_ms
        self.end_offset = offset + 1

    # -- questions from fetch ----------------------------------------------------------------

    def first_unstable_offset(self) -> int | None:
        """The first offset of the oldest open transaction, or None."""
        opened = [e.txn_first_offset for e in self.entries.values()]
        return min((o for o in opened if o is not None), default=None)

    def aborted_between(self, start: int, end: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping the offsets [start, end)."""
        return [a for a in self.aborted if a.last_offset >= start and a.first_offset < end]

    def has_open_transaction(self, producer_id: int) -> bool:
        entry = self.entries.get(producer_id)
        return entry is not None and entry.txn_first_offset is not None

    # -- housekeeping ----------------------------------------------------------------------

    def expire(self, now_ms: int, expiration_ms: int) -> int:
        """Forget producers idle for producer.id.expiration.ms (never one with an open txn)."""
        gone = [
            pid
            for pid, e in self.entries.items()
            if e.txn_first_offset is None and e.last_timestamp + expiration_ms <= now_ms
        ]
        for pid in gone:
            del self.entries[pid]
        return len(gone)

    def truncate_head(self, log_start_offset: int) -> None:
        """Drop aborted-transaction entries wholly below the log start."""
        self.aborted = [a for a in self.aborted if a.last_offset >= log_start_offset]

    def snapshot(self, directory: Path) -> None:
        """Write the state at ``end_offset`` atomically (clean shutdown, segment roll).

        Not fsynced: a snapshot only saves work at start (the log is the truth), and one that a
        crash left unreadable is ignored and the state rebuilt from the log; an fsync per
        partition made stopping a broker with thousands of them take tens of seconds.
        """
        data = {
            "version": 1,
            "end_offset": self.end_offset,
            "producers": [
                {
                    "id": e.producer_id,
                    "epoch": e.epoch,
                    "batches": [list(b) for b in e.batches],
                    "last_timestamp": e.last_timestamp,
                    "txn_first_offset": e.txn_first_offset,
                    "coordinator_epoch": e.coordinator_epoch,
                }
                for e in self.entries.values()
            ],
            "aborted": [list(a) for a in self.aborted],
        }
        path = directory / f"{self.end_offset:020d}{SNAPSHOT_SUFFIX}"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
        for older in _snapshots(directory):
            if older != path:
                older.unlink(missing_ok=True)

    @classmethod
    def load(cls, directory: Path) -> ProducerState | None:
        """The last snapshot, or None when there is none (or it cannot be read)."""
        found = _snapshots(directory)
        if not found:
            return None
        try:
            data = json.loads(found[-1].read_text())
        except (OSError, ValueError):
            return None
        state = cls()
        state.end_offset = int(data["end_offset"])
        for p in data["producers"]:
            entry = ProducerEntry(
                producer_id=p["id"],
                epoch=p["epoch"],
                last_timestamp=p["last_timestamp"],
                txn_first_offset=p["txn_first_offset"],
                coordinator_epoch=p["coordinator_epoch"],
            )
            entry.batches.extend(BatchMetadata(*b) for b in p["batches"])
            state.entries[entry.producer_id] = entry
        state.aborted = [AbortedTxn(*a) for a in data["aborted"]]
        return state


def _snapshots(directory: Path) -> list[Path]:
    """Snapshot files, oldest first."""
    return sorted(
        p
        for p in directory.glob(f"*{SNAPSHOT_SUFFIX}")
        if p.name[: -len(SNAPSHOT_SUFFIX)].isdigit()
    )
