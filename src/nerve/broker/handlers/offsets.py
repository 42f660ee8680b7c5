"""ListOffsets, DeleteRecords and OffsetForLeaderEpoch: questions and changes about offsets."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from nerve.broker.errors import ErrorCode
from nerve.broker.handlers.metadata import NO_THROTTLE
from nerve.protocol import codec

if TYPE_CHECKING:
    from nerve.broker.server import Broker

_log = logging.getLogger("nerve.broker")

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL = -4
EARLIEST_PENDING_UPLOAD = -5
LATEST_TIERED = -6


def _lookup(broker: Broker, timestamp: int, log: Any, read_committed: bool) -> tuple[int, int]:
    """(timestamp, offset) for one ListOffsets query, as Kafka answers it."""
    if timestamp == LATEST:
        return -1, log.last_stable_offset if read_committed else log.log_end_offset
    if timestamp in (EARLIEST, EARLIEST_LOCAL):
        return -1, log.log_start_offset
    if timestamp in (EARLIEST_PENDING_UPLOAD, LATEST_TIERED):
        return -1, -1  # no tiered storage
    if timestamp == MAX_TIMESTAMP:
        found = log.max_timestamp()
        return found if found is not None else (-1, -1)
    found = log.offset_for_timestamp(timestamp)
    return found if found is not None else (-1, -1)


def handle_list_offsets(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(2, header.api_version, True)
    read_committed = getattr(request, "isolation_level", 0) == 1
    topics = []
    for wanted in request.topics:
        partitions = []
        for p in wanted.partitions:
            partition = broker.topics.partition(wanted.name, p.partition_index)
            code = ErrorCode.none
            timestamp = offset = -1
            if partition is None:
                code = ErrorCode.unknown_topic_or_partition
            else:
                timestamp, offset = _lookup(broker, p.timestamp, partition.log, read_committed)
            partitions.append(
                codec.make(
                    module,
                    "ListOffsetsPartitionResponse",
                    partition_index=p.partition_index,
                    error_code=code,
                    timestamp=timestamp,
                    offset=offset,
                    leader_epoch=0 if code == ErrorCode.none else -1,
                )
            )
        topics.append(
            codec.make(
                module, "ListOffsetsTopicResponse", name=wanted.name, partitions=tuple(partitions)
            )
        )
    return codec.make(
        module, "ListOffsetsResponse", throttle_time=NO_THROTTLE, topics=tuple(topics)
    )


def handle_delete_records(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(21, header.api_version, True)
    topics = []
    for wanted in request.topics:
        partitions = []
        for p in wanted.partitions:
            partition = broker.topics.partition(wanted.name, p.partition_index)
            code = ErrorCode.none
            low_watermark = -1
            if partition is None:
                code = ErrorCode.unknown_topic_or_partition
            elif partition.topic.internal:
                # As Kafka: the broker's own state (committed offsets, transactions) is not
                # the clients' to delete.
                code = ErrorCode.invalid_topic_exception
            else:
                log = partition.log
                # -1 means "up to the high watermark", as in Kafka.
                target = log.log_end_offset if p.offset == -1 else p.offset
                if not 0 <= target <= log.log_end_offset:
                    code = ErrorCode.offset_out_of_range
                else:
                    try:
                        low_watermark = log.delete_records(target)
                    except OSError as exc:
                        code = ErrorCode.kafka_storage_error
                        _log.error(
                            "DeleteRecords on %s-%d failed: %s", wanted.name, p.partition_index, exc
                        )
            partitions.append(
                codec.make(
                    module,
                    "DeleteRecordsPartitionResult",
                    partition_index=p.partition_index,
                    low_watermark=low_watermark,
                    error_code=code,
                )
            )
        topics.append(
            codec.make(
                module, "DeleteRecordsTopicResult", name=wanted.name, partitions=tuple(partitions)
            )
        )
    return codec.make(
        module, "DeleteRecordsResponse", throttle_time=NO_THROTTLE, topics=tuple(topics)
    )


def handle_offset_for_leader_epoch(
    broker: Broker, header: codec.RequestHeader, request: Any
) -> Any:
    """Every partition has had one leader epoch, 0, since it was created."""
    module = codec.schema_module(23, header.api_version, True)
    topics = []
    for wanted in request.topics:
        partitions = []
        for p in wanted.partitions:
            partition = broker.topics.partition(wanted.topic, p.partition)
            if partition is None:
                code, epoch, end = ErrorCode.unknown_topic_or_partition, -1, -1
            elif p.leader_epoch > 0:
                code, epoch, end = ErrorCode.fenced_leader_epoch, -1, -1
            else:
                code, epoch, end = ErrorCode.none, 0, partition.log.log_end_offset
            partitions.append(
                codec.make(
                    module,
                    "EpochEndOffset",
                    error_code=code,
                    partition=p.partition,
                    leader_epoch=epoch,
                    end_offset=end,
                )
            )
        topics.append(
            codec.make(
                module,
                "OffsetForLeaderTopicResult",
                topic=wanted.topic,
                partitions=tuple(partitions),
            )
        )
    return codec.make(
        module, "OffsetForLeaderEpochResponse", throttle_time=NO_THROTTLE, topics=tuple(topics)
    )
