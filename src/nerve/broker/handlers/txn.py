"""Producer id and transaction APIs: kio requests in, ``TransactionCoordinator`` calls out.

InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit,
DescribeTransactions, ListTransactions. The rules are in ``broker/txn/coordinator.py``.
"""

from __future__ import annotations

import datetime
import re
from typing import TYPE_CHECKING, Any

from nerve.broker.errors import ApiError, ErrorCode
from nerve.broker.groups.coordinator import OffsetCommit
from nerve.broker.handlers.metadata import NO_THROTTLE
from nerve.protocol import codec

if TYPE_CHECKING:
    from nerve.broker.server import Broker


def _fenced_for(version: int, first_version_with_fenced: int, code: ErrorCode) -> ErrorCode:
    """PRODUCER_FENCED is newer than some API versions (KIP-588); those get the older code."""
    if code == ErrorCode.producer_fenced and version < first_version_with_fenced:
        return ErrorCode.invalid_producer_epoch
    return code


def handle_init_producer_id(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    version = header.api_version
    module = codec.schema_module(22, version, True)
    code, producer_id, epoch = broker.transactions.init_producer_id(
        request.transactional_id,
        int(request.transaction_timeout.total_seconds() * 1000),
        getattr(request, "producer_id", -1),
        getattr(request, "producer_epoch", -1),
    )
    response = codec.make(
        module,
        "InitProducerIdResponse",
        throttle_time=NO_THROTTLE,
        error_code=_fenced_for(version, 4, code),
        producer_id=producer_id,
        producer_epoch=epoch,
    )
    if code == ErrorCode.none and request.transactional_id:
        return _after_sync(broker, response)
    return response


def _after_sync(broker: Broker, response: Any) -> Any:
    """Answer once the coordinator's state records are on disk (per log.fsync.policy)."""
    if broker.config.log_fsync_policy == "never":
        return response

    async def later() -> Any:
        await broker.group_commit.sync()
        return response

    return later()


def handle_add_partitions_to_txn(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    version = header.api_version
    module = codec.schema_module(24, version, True)
    wanted = [(t.name, p) for t in request.v3_and_below_topics for p in t.partitions]
    results = broker.transactions.add_partitions(
        request.v3_and_below_transactional_id,
        request.v3_and_below_producer_id,
        request.v3_and_below_producer_epoch,
        wanted,
    )
    topics = tuple(
        codec.make(
            module,
            "AddPartitionsToTxnTopicResult",
            name=t.name,
            results_by_partition=tuple(
                codec.make(
                    module,
                    "AddPartitionsToTxnPartitionResult",
                    partition_index=p,
                    partition_error_code=_fenced_for(version, 2, results[(t.name, p)]),
                )
                for p in t.partitions
            ),
        )
        for t in request.v3_and_below_topics
    )
    response = codec.make(
        module,
        "AddPartitionsToTxnResponse",
        throttle_time=NO_THROTTLE,
        results_by_topic_v3_and_below=topics,
    )
    # Answered without waiting for an fsync: the transaction's data in that partition is only
    # acknowledged after an fsync that starts later (group commit), which covers this record
    # too, so a crash cannot leave durable data in a partition the transaction does not list.
    return response


def handle_add_offsets_to_txn(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    version = header.api_version
    module = codec.schema_module(25, version, True)
    code = broker.transactions.add_offsets(
        request.transactional_id, request.producer_id, request.producer_epoch, request.group_id
    )
    response = codec.make(
        module,
        "AddOffsetsToTxnResponse",
        throttle_time=NO_THROTTLE,
        error_code=_fenced_for(version, 2, code),
    )
    # No fsync wait, for the reason given in AddPartitionsToTxn: TxnOffsetCommit waits.
    return response


def handle_end_txn(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    version = header.api_version
    module = codec.schema_module(26, version, True)
    code, durable = broker.transactions.end_txn(
        request.transactional_id, request.producer_id, request.producer_epoch, request.committed
    )
    response = codec.make(
        module,
        "EndTxnResponse",
        throttle_time=NO_THROTTLE,
        error_code=_fenced_for(version, 2, code),
    )
    if durable is None:
        return response

    async def later() -> Any:
        await durable
        return response

    return later()


def handle_txn_offset_commit(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    version = header.api_version
    module = codec.schema_module(28, version, True)
    commits = [
        OffsetCommit(
            topic=t.name,
            partition=p.partition_index,
            offset=p.committed_offset,
            leader_epoch=getattr(p, "committed_leader_epoch", -1),
            metadata=p.committed_metadata,
        )
        for t in request.topics
        for p in t.partitions
    ]
    try:
        broker.transactions.check_offset_commit(
            request.transactional_id, request.producer_id, request.producer_epoch
        )
    except ApiError as exc:
        codes = [_fenced_for(version, 3, exc.code)] * len(commits)
    else:
        codes = broker.groups.txn_commit_offsets(
            request.group_id,
            request.producer_id,
            request.producer_epoch,
            getattr(request, "generation_id", -1),
            getattr(request, "member_id", ""),
            getattr(request, "group_instance_id", None),
            commits,
        )
    it = iter(codes)
    topics = tuple(
        codec.make(
            module,
            "TxnOffsetCommitResponseTopic",
            name=t.name,
            partitions=tuple(
                codec.make(
                    module,
                    "TxnOffsetCommitResponsePartition",
                    partition_index=p.partition_index,
                    error_code=next(it),
                )
                for p in t.partitions
            ),
        )
        for t in request.topics
    )
    response = codec.make(
        module, "TxnOffsetCommitResponse", throttle_time=NO_THROTTLE, topics=topics
    )
    if any(code == ErrorCode.none for code in codes):
        return _after_sync(broker, response)
    return response


def handle_describe_transactions(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(65, header.api_version, True)

    states = []
    for transactional_id in request.transactional_ids:
        txn = broker.transactions.describe(transactional_id)
        if txn is None:
            states.append(
                codec.make(
                    module,
                    "TransactionState",
                    error_code=ErrorCode.transactional_id_not_found,
                    transactional_id=transactional_id,
                    transaction_state="",
                    transaction_timeout=datetime.timedelta(0),
                    transaction_start_time=_epoch_ms(-1),
                    producer_id=-1,
                    producer_epoch=-1,
                    topics=(),
                )
            )
            continue
        by_topic: dict[str, list[int]] = {}
        for topic, index in sorted(txn.partitions):
            by_topic.setdefault(topic, []).append(index)
        states.append(
            codec.make(
                module,
                "TransactionState",
                error_code=ErrorCode.none,
                transactional_id=transactional_id,
                transaction_state=txn.state.wire_name,
                transaction_timeout=datetime.timedelta(milliseconds=txn.timeout_ms),
                transaction_start_time=_epoch_ms(txn.start_ms),
                producer_id=txn.producer_id,
                producer_epoch=txn.producer_epoch,
                topics=tuple(
                    codec.make(module, "TopicData", topic=t, partitions=tuple(ps))
                    for t, ps in by_topic.items()
                ),
            )
        )
    return codec.make(
        module,
        "DescribeTransactionsResponse",
        throttle_time=NO_THROTTLE,
        transaction_states=tuple(states),
    )


def _epoch_ms(ms: int) -> datetime.datetime:
    """kio writes this int64 field from a datetime; -1 (never) survives the round trip."""
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)


def handle_list_transactions(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(66, header.api_version, True)
    from nerve.broker.txn.coordinator import TxnState

    known = {s.wire_name for s in TxnState}
    wanted = list(request.state_filters)
    code = ErrorCode.none
    listed = []
    pattern = None
    # v2 (KIP-1152): a regular expression the whole transactional id must match, as Java's
    # Matcher.matches(); Python's syntax is close to Java's for the patterns people write.
    if getattr(request, "transactional_id_pattern", None):
        try:
            pattern = re.compile(request.transactional_id_pattern)
        except re.error:
            code = ErrorCode.invalid_regular_expression
    if code == ErrorCode.none:
        listed = broker.transactions.list(
            [s for s in wanted if s in known],
            list(request.producer_id_filters),
            getattr(request, "duration_filter", -1),
            pattern,
        )
    return codec.make(
        module,
        "ListTransactionsResponse",
        throttle_time=NO_THROTTLE,
        error_code=code,
        unknown_state_filters=tuple(s for s in wanted if s not in known),
        transaction_states=tuple(
            codec.make(
                module,
                "TransactionState",
                transactional_id=t.transactional_id,
                producer_id=t.producer_id,
                transaction_state=t.state.wire_name,
            )
            for t in listed
        ),
    )


def handle_describe_producers(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    """The producers each partition knows (kafka-transactions describe-producers and
    find-hanging): id, epoch, last sequence and timestamp, and where an open transaction began."""
    module = codec.schema_module(61, header.api_version, True)
    topics = []
    for wanted in request.topics:
        topic = broker.topics.get(wanted.name)
        partitions = []
        for index in wanted.partition_indexes:
            code, message, active = ErrorCode.none, None, ()
            if topic is None:
                code = ErrorCode.unknown_topic_or_partition
                message = "This server does not host this topic-partition."
            elif not 0 <= index < len(topic.partitions):
                code = ErrorCode.unknown_topic_or_partition  # Kafka gives no text here
            else:
                entries = topic.partitions[index].log.producers.entries.values()
                active = tuple(
                    codec.make(
                        module,
                        "ProducerState",
                        producer_id=e.producer_id,
                        producer_epoch=e.epoch,
                        last_sequence=e.last_seq,
                        last_timestamp=e.batches[-1].timestamp if e.batches else -1,
                        coordinator_epoch=e.coordinator_epoch,
                        current_txn_start_offset=(
                            e.txn_first_offset if e.txn_first_offset is not None else -1
                        ),
                    )
                    for e in sorted(entries, key=lambda e: e.producer_id)
                    if e.epoch >= 0
                )
            partitions.append(
                codec.make(
                    module,
                    "PartitionResponse",
                    partition_index=index,
                    error_code=code,
                    error_message=message,
                    active_producers=active,
                )
            )
        topics.append(
            codec.make(module, "TopicResponse", name=wanted.name, partitions=tuple(partitions))
        )
    return codec.make(
        module, "DescribeProducersResponse", throttle_time=NO_THROTTLE, topics=tuple(topics)
    )


def handle_write_txn_markers(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    """Markers an admin writes to end a hanging transaction (kafka-transactions abort); Kafka's
    coordinators send it to each other too, which one node never needs."""
    module = codec.schema_module(27, header.api_version, True)
    markers = []
    wrote = False
    for marker in request.markers:
        topics = []
        for wanted in marker.topics:
            results = []
            for index in wanted.partition_indexes:
                partition = broker.topics.partition(wanted.name, index)
                if partition is None:
                    code = ErrorCode.unknown_topic_or_partition
                else:
                    code = broker.transactions.write_marker(
                        partition,
                        marker.producer_id,
                        marker.producer_epoch,
                        marker.transaction_result,
                        marker.coordinator_epoch,
                    )
                    wrote = wrote or code == ErrorCode.none
                results.append(
                    codec.make(
                        module,
                        "WritableTxnMarkerPartitionResult",
                        partition_index=index,
                        error_code=code,
                    )
                )
            topics.append(
                codec.make(
                    module,
                    "WritableTxnMarkerTopicResult",
                    name=wanted.name,
                    partitions=tuple(results),
                )
            )
        markers.append(
            codec.make(
                module,
                "WritableTxnMarkerResult",
                producer_id=marker.producer_id,
                topics=tuple(topics),
            )
        )
    response = codec.make(module, "WriteTxnMarkersResponse", markers=tuple(markers))
    return _after_sync(broker, response) if wrote else response
