"""The transaction coordinator: transactional ids, producer epochs, commit and abort.

A transactional producer gets its producer id and a fresh epoch from InitProducerId (which
fences any older incarnation and aborts what it left open), registers each partition before
writing to it (AddPartitionsToTxn) and its consumer group's offsets (AddOffsetsToTxn), and ends
with EndTxn. Ending writes the decision to ``__transaction_state`` (PrepareCommit/PrepareAbort),
a marker into every partition of the transaction, and then the completed state: a broker that
dies in between finishes the job at start from the prepared state. Transactions open longer
than their timeout are aborted with a bumped epoch, fencing the producer that forgot them.

On one broker every partition is local, so markers are plain appends and EndTxn completes
before it is answered; Kafka's asynchronous marker writers are not needed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nerve.broker import internal_topics
from nerve.broker.errors import ApiError, ErrorCode
from nerve.broker.groups.records import RecordFormatError, partition_for
from nerve.broker.txn import records as txn_records
from nerve.broker.txn.producer_ids import ProducerIdManager
from nerve.protocol import records
from nerve.protocol.records import BatchHeader

if TYPE_CHECKING:
    from nerve.broker.server import Broker
    from nerve.broker.topics import Partition, Topic

log = logging.getLogger("nerve.broker.txn")

STATE_TOPIC = "__transaction_state"
OFFSETS_TOPIC = "__consumer_offsets"
COORDINATOR_EPOCH = 0
_MAX_EPOCH = 32767


class TxnState(enum.IntEnum):
    """Kafka's transaction states, with the status codes ``__transaction_state`` stores."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def wire_name(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_"))


@dataclass
class TxnMetadata:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState = TxnState.EMPTY
    partitions: set[tuple[str, int]] = field(default_factory=set)
    start_ms: int = -1
    last_update_ms: int = -1


# What a coordinator that cannot write to its log answers (Kafka maps KAFKA_STORAGE_ERROR so).
_STORAGE = ErrorCode.not_coordinator


class TransactionCoordinator:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.config = broker.config
        self.producer_ids = ProducerIdManager(broker.config.data_dir)
        self.transactions: dict[str, TxnMetadata] = {}
        self._by_producer: dict[int, TxnMetadata] = {}
        self._topic: Topic | None = None
        self._timeout_task: asyncio.Task[None] | None = None

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        topic = internal_topics.ensure(
            self.broker,
            STATE_TOPIC,
            self.config.transaction_state_log_num_partitions,
            self.config.transaction_state_log_segment_bytes,
        )
        self._topic = topic
        self._load(topic)
        internal_topics.report_damage(topic, txn_records.decode_key, "transactional ids")
        for txn in list(self.transactions.values()):
            # A broker that died between deciding and completing finishes the job now.
            if txn.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
                self._complete(txn, txn.state == TxnState.PREPARE_COMMIT)
        if self.transactions:
            log.info("loaded %d transactional id(s)", len(self.transactions))
        self._timeout_task = asyncio.get_running_loop().create_task(self._timeout_loop())

    async def stop(self) -> None:
        if self._timeout_task is not None:
            self._timeout_task.cancel()

    # -- InitProducerId --------------------------------------------------------------------

    def init_producer_id(
        self,
        transactional_id: str | None,
        timeout_ms: int,
        producer_id: int = -1,
        producer_epoch: int = -1,
    ) -> tuple[ErrorCode, int, int]:
        """(error, producer id, epoch) for a producer starting or bumping its epoch."""
        try:
            return self._init_producer_id(transactional_id, timeout_ms, producer_id, producer_epoch)
        except OSError as exc:  # the id block could not be written (a full disk)
            log.error("cannot hand out a producer id: %s", exc)
            return _STORAGE, -1, -1

    def _init_producer_id(
        self,
        transactional_id: str | None,
        timeout_ms: int,
        producer_id: int,
        producer_epoch: int,
    ) -> tuple[ErrorCode, int, int]:
        if not transactional_id:
            return ErrorCode.none, self.producer_ids.next_id(), 0
        if not 0 < timeout_ms <= self.config.transaction_max_timeout_ms:
            return ErrorCode.invalid_transaction_timeout, -1, -1
        txn = self.transactions.get(transactional_id)
        if txn is None:
            txn = TxnMetadata(
                transactional_id, self.producer_ids.next_id(), 0, timeout_ms, TxnState.EMPTY
            )
            txn.last_update_ms = self.now_ms()
            try:
                self._persist(txn)
            except OSError as exc:
                self._cannot_write(txn, exc)
                return _STORAGE, -1, -1
            self._put(txn)
            log.info("transactional id %s: producer id %d", transactional_id, txn.producer_id)
            return ErrorCode.none, txn.producer_id, 0
        before = self._snapshot(txn)
        try:
            return self._init_existing(txn, timeout_ms, producer_id, producer_epoch)
        except OSError as exc:
            self._restore(txn, before, exc)
            return _STORAGE, -1, -1

    def _init_existing(
        self, txn: TxnMetadata, timeout_ms: int, producer_id: int, producer_epoch: int
    ) -> tuple[ErrorCode, int, int]:
        if producer_id >= 0 and (producer_id, producer_epoch) != (
            txn.producer_id,
            txn.producer_epoch,
        ):
            # KIP-360: only the current incarnation may ask to bump its own epoch.
            return ErrorCode.producer_fenced, -1, -1
        if txn.state == TxnState.ONGOING:
            # A new incarnation: abort what the old one left open, fencing it by epoch.
            self._bump_epoch(txn)
            self._end(txn, commit=False)
        else:
            self._bump_epoch(txn)
        txn.timeout_ms = timeout_ms
        txn.state = TxnState.EMPTY
        txn.partitions = set()
        txn.last_update_ms = self.now_ms()
        self._persist(txn)
        return ErrorCode.none, txn.producer_id, txn.producer_epoch

    def _bump_epoch(self, txn: TxnMetadata) -> None:
        if txn.producer_epoch + 1 >= _MAX_EPOCH:
            self._by_producer.pop(txn.producer_id, None)
            txn.producer_id = self.producer_ids.next_id()
            txn.producer_epoch = 0
            self._by_producer[txn.producer_id] = txn
        else:
            txn.producer_epoch += 1

    # -- adding to a transaction -----------------------------------------------------------

    def _validate(self, transactional_id: str, producer_id: int, epoch: int) -> TxnMetadata:
        txn = self.transactions.get(transactional_id)
        if txn is None or txn.producer_id != producer_id:
            raise ApiError(
                ErrorCode.invalid_producer_id_mapping,
                f"producer id {producer_id} does not belong to transactional id "
                f"{transactional_id!r}",
            )
        if epoch != txn.producer_epoch:
            raise ApiError(
                ErrorCode.producer_fenced,
                f"epoch {epoch} of {transactional_id!r} is fenced (current {txn.producer_epoch})",
            )
        if txn.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
            raise ApiError(ErrorCode.concurrent_transactions)
        return txn

    def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        epoch: int,
        wanted: Sequence[tuple[str, int]],
    ) -> dict[tuple[str, int], ErrorCode]:
        try:
            txn = self._validate(transactional_id, producer_id, epoch)
        except ApiError as exc:
            return dict.fromkeys(wanted, exc.code)
        missing = [tp for tp in wanted if self.broker.topics.partition(tp[0], tp[1]) is None]
        if missing:
            return {
                tp: ErrorCode.unknown_topic_or_partition
                if tp in missing
                else ErrorCode.operation_not_attempted
                for tp in wanted
            }
        before = self._snapshot(txn)
        try:
            self._begin(txn)
            txn.partitions.update(wanted)
            self._persist(txn)
        except OSError as exc:
            self._restore(txn, before, exc)
            return dict.fromkeys(wanted, _STORAGE)
        return dict.fromkeys(wanted, ErrorCode.none)

    def add_offsets(
        self, transactional_id: str, producer_id: int, epoch: int, group_id: str
    ) -> ErrorCode:
        try:
            txn = self._validate(transactional_id, producer_id, epoch)
        except ApiError as exc:
            return exc.code
        offsets_topic = self.broker.topics.get(OFFSETS_TOPIC)
        assert offsets_topic is not None
        before = self._snapshot(txn)
        try:
            self._begin(txn)
            partition = partition_for(group_id, len(offsets_topic.partitions))
            txn.partitions.add((OFFSETS_TOPIC, partition))
            self._persist(txn)
        except OSError as exc:
            self._restore(txn, before, exc)
            return _STORAGE
        return ErrorCode.none

    def _begin(self, txn: TxnMetadata) -> None:
        now = self.now_ms()
        if txn.state != TxnState.ONGOING:
            txn.state = TxnState.ONGOING
            txn.partitions = set()
            txn.start_ms = now
        txn.last_update_ms = now

    def check_produce(self, header: BatchHeader, partition: Partition) -> None:
        """A transactional batch is refused unless its partition is in the open transaction."""
        txn = self._by_producer.get(header.producer_id)
        where = f"{partition.topic.name}-{partition.index}"
        if txn is None:
            raise ApiError(
                ErrorCode.invalid_producer_id_mapping,
                f"no transaction uses producer id {header.producer_id}",
            )
        if header.producer_epoch != txn.producer_epoch:
            raise ApiError(
                ErrorCode.invalid_producer_epoch,
                f"producer {header.producer_id} epoch {header.producer_epoch} is fenced "
                f"(current {txn.producer_epoch}) on {where}",
            )
        if txn.state != TxnState.ONGOING or (partition.topic.name, partition.index) not in (
            txn.partitions
        ):
            raise ApiError(
                ErrorCode.invalid_txn_state,
                f"{where} was not added to the transaction of {txn.transactional_id!r}",
            )

    def check_offset_commit(self, transactional_id: str, producer_id: int, epoch: int) -> None:
        """TxnOffsetCommit needs AddOffsetsToTxn first; raises ApiError otherwise."""
        txn = self._validate(transactional_id, producer_id, epoch)
        if txn.state != TxnState.ONGOING:
            raise ApiError(ErrorCode.invalid_txn_state, "no transaction is open")

    # -- EndTxn and timeouts ---------------------------------------------------------------

    def end_txn(
        self, transactional_id: str, producer_id: int, epoch: int, commit: bool
    ) -> tuple[ErrorCode, asyncio.Future[None] | None]:
        try:
            txn = self._validate(transactional_id, producer_id, epoch)
        except ApiError as exc:
            return exc.code, None
        if txn.state == TxnState.COMPLETE_COMMIT:
            return (ErrorCode.none if commit else ErrorCode.invalid_txn_state), None
        if txn.state == TxnState.COMPLETE_ABORT:
            return (ErrorCode.none if not commit else ErrorCode.invalid_txn_state), None
        if txn.state != TxnState.ONGOING:
            return ErrorCode.invalid_txn_state, None
        before = self._snapshot(txn)
        try:
            self._end(txn, commit)
        except OSError as exc:
            if txn.state == (TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT):
                # The decision is on disk; markers are written again by the timeout loop,
                # and the client's retries get CONCURRENT_TRANSACTIONS until they are.
                log.error(
                    "transaction of %s: %s decided but its markers cannot be written yet: %s",
                    transactional_id,
                    "commit" if commit else "abort",
                    exc,
                )
            else:
                self._restore(txn, before, exc)
            return _STORAGE, None
        waiter = None
        if self.config.log_fsync_policy != "never":
            waiter = self.broker.group_commit.sync()
        return ErrorCode.none, waiter

    def _end(self, txn: TxnMetadata, commit: bool) -> None:
        prepare = TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT
        before = self._snapshot(txn)
        txn.state = prepare
        txn.last_update_ms = self.now_ms()
        try:
            self._persist(txn)
        except OSError:
            txn.state, txn.last_update_ms = before.state, before.last_update_ms
            raise
        self._complete(txn, commit)

    def _complete(self, txn: TxnMetadata, commit: bool) -> None:
        now = self.now_ms()
        batch = txn_records.marker_batch(
            txn.producer_id, txn.producer_epoch, commit, COORDINATOR_EPOCH
        )
        for topic, index in sorted(txn.partitions):
            partition = self.broker.topics.partition(topic, index)
            if partition is None:
                continue  # deleted meanwhile
            data = bytearray(batch)
            partition.log.append(data, records.validate_batches(data), now)
            self.broker.group_commit.mark_dirty(partition.log)
            partition.notify_waiters()
            if topic == OFFSETS_TOPIC:
                self.broker.groups.complete_transaction(txn.producer_id, commit)
        txn.state = TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT
        txn.last_update_ms = now
        count = len(txn.partitions)
        # As Kafka: a completed transaction holds no partitions (DescribeTransactions lists
        # none, and the state record says so).
        txn.partitions = set()
        self._persist(txn)
        log.info(
            "transaction of %s (producer %d epoch %d) %s over %d partition(s)",
            txn.transactional_id,
            txn.producer_id,
            txn.producer_epoch,
            "committed" if commit else "aborted",
            count,
        )

    def write_marker(
        self,
        partition: Partition,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        coordinator_epoch: int,
    ) -> ErrorCode:
        """WriteTxnMarkers (kafka-transactions abort): end a producer's transaction on one
        partition with a marker, whatever the coordinator knows of it (hanging transactions)."""
        entry = partition.log.producers.entries.get(producer_id)
        if entry is not None and producer_epoch < entry.epoch:
            return ErrorCode.invalid_producer_epoch
        batch = bytearray(
            txn_records.marker_batch(producer_id, producer_epoch, commit, coordinator_epoch)
        )
        partition.log.append(batch, records.validate_batches(batch), self.now_ms())
        self.broker.group_commit.mark_dirty(partition.log)
        partition.notify_waiters()
        if partition.topic.name == OFFSETS_TOPIC:
            self.broker.groups.complete_transaction(producer_id, commit)
        log.info(
            "%s marker written for producer %d epoch %d on %s-%d at an admin's request",
            "commit" if commit else "abort",
            producer_id,
            producer_epoch,
            partition.topic.name,
            partition.index,
        )
        return ErrorCode.none

    async def _timeout_loop(self) -> None:
        interval = self.config.transaction_abort_timed_out_transaction_cleanup_interval_ms
        while True:
            await asyncio.sleep(interval / 1000)
            try:
                self.abort_timed_out(self.now_ms())
            except OSError as exc:
                log.error("aborting timed-out transactions failed: %s", exc)
            except Exception:
                log.exception("aborting timed-out transactions failed")
            for txn in list(self.transactions.values()):
                if txn.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
                    try:  # decided, but a write failed (a full disk): finish it now
                        self._complete(txn, txn.state == TxnState.PREPARE_COMMIT)
                    except OSError as exc:
                        log.error("transaction of %s still cannot complete: %s",
                                  txn.transactional_id, exc)  # fmt: skip

    def abort_timed_out(self, now_ms: int) -> int:
        """Abort transactions open longer than their timeout, fencing their producer."""
        count = 0
        for txn in list(self.transactions.values()):
            if txn.state == TxnState.ONGOING and txn.start_ms + txn.timeout_ms <= now_ms:
                log.info(
                    "transaction of %s timed out after %d ms: aborting",
                    txn.transactional_id,
                    txn.timeout_ms,
                )
                self._bump_epoch(txn)
                self._end(txn, commit=False)
                count += 1
        return count

    # -- admin -----------------------------------------------------------------------------

    def describe(self, transactional_id: str) -> TxnMetadata | None:
        return self.transactions.get(transactional_id)

    def list(
        self,
        states: Sequence[str],
        producer_ids: Sequence[int],
        min_duration_ms: int = -1,
        id_pattern: re.Pattern[str] | None = None,
    ) -> list[TxnMetadata]:
        now = self.now_ms()
        wanted_states = set(states)
        wanted_ids = set(producer_ids)
        return [
            t
            for t in self.transactions.values()
            if (not wanted_states or t.state.wire_name in wanted_states)
            and (not wanted_ids or t.producer_id in wanted_ids)
            and (id_pattern is None or id_pattern.fullmatch(t.transactional_id) is not None)
            and (
                min_duration_ms < 0
                or (t.state == TxnState.ONGOING and now - t.start_ms >= min_duration_ms)
            )
        ]

    # -- persistence -----------------------------------------------------------------------

    def _put(self, txn: TxnMetadata) -> None:
        self.transactions[txn.transactional_id] = txn
        self._by_producer[txn.producer_id] = txn

    @staticmethod
    def _snapshot(txn: TxnMetadata) -> TxnMetadata:
        return dataclasses.replace(txn, partitions=set(txn.partitions))

    def _restore(self, txn: TxnMetadata, before: TxnMetadata, exc: OSError) -> None:
        """Undo a change whose record could not be written: memory stays what the log says."""
        if txn.producer_id != before.producer_id:
            self._by_producer.pop(txn.producer_id, None)
            self._by_producer[before.producer_id] = txn
        for f in dataclasses.fields(txn):
            setattr(txn, f.name, getattr(before, f.name))
        self._cannot_write(txn, exc)

    @staticmethod
    def _cannot_write(txn: TxnMetadata, exc: OSError) -> None:
        log.error(
            "transactional id %s: cannot write its state to %s (answered NOT_COORDINATOR, "
            "clients retry): %s",
            txn.transactional_id,
            STATE_TOPIC,
            exc,
        )

    def _persist(self, txn: TxnMetadata) -> None:
        assert self._topic is not None
        partitions: dict[str, list[int]] = {}
        for topic, index in sorted(txn.partitions):
            partitions.setdefault(topic, []).append(index)
        value = txn_records.TxnValue(
            txn.producer_id,
            txn.producer_epoch,
            txn.timeout_ms,
            int(txn.state),
            partitions,
            txn.last_update_ms,
            txn.start_ms,
        )
        pairs: list[tuple[bytes | None, bytes | None]] = [
            (txn_records.encode_key(txn.transactional_id), txn_records.encode_value(value))
        ]
        target = internal_topics.partition_of(self._topic, txn.transactional_id)
        internal_topics.append(self.broker, target, pairs)

    def _load(self, topic: Topic) -> None:
        for _, header, batch in internal_topics.replay(topic):
            if header.is_control:
                continue
            for record in records.decode_records(batch):
                transactional_id = txn_records.decode_key(record.key or b"")
                if transactional_id is None:
                    continue
                if record.value is None:
                    old = self.transactions.pop(transactional_id, None)
                    if old is not None:
                        self._by_producer.pop(old.producer_id, None)
                    continue
                try:
                    value = txn_records.decode_value(record.value)
                except RecordFormatError as exc:
                    log.warning("skipping state of %s: %s", transactional_id, exc)
                    continue
                old = self.transactions.get(transactional_id)
                if old is not None:
                    self._by_producer.pop(old.producer_id, None)
                self._put(
                    TxnMetadata(
                        transactional_id,
                        value.producer_id,
                        value.producer_epoch,
                        value.timeout_ms,
                        TxnState(value.status),
                        {(t, p) for t, ps in value.partitions.items() for p in ps},
                        value.start_ms,
                        value.last_update_ms,
                    )
                )
