"""Produce: validate each batch as Kafka does, append it as sent, acknowledge per acks.

Validation reads the 61-byte header, checks the CRC-32C over the bytes, and walks the records'
length prefixes (decompressing first if the batch is compressed), so that nothing is stored that
a consumer could not read; only compacted topics decode whole records, to refuse null keys,
naming each one in the response's record errors as Kafka does.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from types import ModuleType
from typing import TYPE_CHECKING, Any

from nerve.broker.errors import ApiError, ErrorCode, RecordErrors
from nerve.broker.handlers.metadata import NO_THROTTLE
from nerve.protocol import codec, records
from nerve.protocol.records import CorruptRecordError, InvalidRecordError

if TYPE_CHECKING:
    from nerve.broker.log.config import LogConfig
    from nerve.broker.server import Broker
    from nerve.broker.topics import Partition
    from nerve.protocol.records import BatchHeader

log = logging.getLogger("nerve.broker")

API_KEY = 0
_LONG_MAX = (1 << 63) - 1
_NO_TIMESTAMP = -1


def _append(
    broker: Broker, partition: Partition, data: bytes | memoryview | None, now_ms: int
) -> int:
    """Validate and append one partition's records; returns the base offset."""
    if partition.topic.internal:
        raise ApiError(
            ErrorCode.invalid_topic_exception,
            f"cannot append to internal topic {partition.topic.name}",
        )
    if not data:
        raise ApiError(ErrorCode.invalid_record, "produce request carries no record batch")
    try:
        headers = records.validate_batches(data, partial_tail=True)
    except InvalidRecordError as exc:
        raise ApiError(ErrorCode.invalid_record, str(exc)) from None
    except CorruptRecordError as exc:
        raise ApiError(ErrorCode.corrupt_message, str(exc)) from None
    if len(headers) != 1:
        raise ApiError(
            ErrorCode.invalid_record,
            f"produce requests must carry exactly one whole record batch per partition, "
            f"got {len(headers)}",
        )
    header = headers[0]
    if header.size < len(data):
        # Kafka ignores what follows the batch when it is too short to be one; so do we.
        log.info(
            "ignored %d bytes after the record batch of a produce to %s-%d",
            len(data) - header.size,
            partition.topic.name,
            partition.index,
        )
        data = memoryview(data)[: header.size]
    config = partition.topic.log_config
    if len(data) > config.max_message_bytes:
        raise ApiError(
            ErrorCode.message_too_large,
            f"batch of {len(data)} bytes exceeds max.message.bytes ({config.max_message_bytes})",
        )
    if header.is_control:
        raise ApiError(ErrorCode.invalid_record, "clients may not write control batches")
    batch = bytearray(data)
    try:
        records.check_records(batch, header, broker.config.socket_request_max_bytes)
    except InvalidRecordError as exc:
        raise ApiError(ErrorCode.invalid_record, str(exc)) from None
    if header.producer_id >= 0:
        where = f"{partition.topic.name}-{partition.index}"
        if header.is_transactional:
            broker.transactions.check_produce(header, partition)
        duplicate = partition.log.producers.check(header, where)
        if duplicate is not None:
            # Already written: acknowledge it again with its offset (idempotence).
            return duplicate.first_offset
    elif header.is_transactional:
        raise ApiError(ErrorCode.invalid_record, "a transactional batch needs a producer id")
    if config.compact:
        _check_keys(partition, batch)
    _check_timestamps(config, batch, header, now_ms)
    target = config.compression_codec
    if target is not None and target != header.compression:
        # compression.type differs from the producer's: recompress, as Kafka does, and check
        # the size again, since the batch may have grown.
        try:
            batch = records.recompress_batch(batch, target, config.compression_level(target))
        except CorruptRecordError as exc:
            raise ApiError(ErrorCode.corrupt_message, str(exc)) from None
        headers = [records.read_batch_header(batch)]
        if len(batch) > config.max_message_bytes:
            raise ApiError(
                ErrorCode.message_too_large,
                f"batch of {len(batch)} bytes once compressed with {config.compression_type} "
                f"exceeds max.message.bytes ({config.max_message_bytes})",
            )
    first, last = partition.log.append(batch, headers, now_ms)
    counters = broker.metrics.topic(partition.topic.name)
    counters.bytes_in += len(data)  # as received, as Kafka counts it (before recompression)
    counters.messages_in += last - first + 1
    broker.group_commit.mark_dirty(partition.log)
    partition.notify_waiters()
    return first


def _check_keys(partition: Partition, batch: bytearray) -> None:
    """A compacted topic refuses records without a key, naming each (Kafka's record errors)."""
    try:
        decoded = records.decode_records(batch)
    except CorruptRecordError as exc:
        raise ApiError(ErrorCode.invalid_record, str(exc)) from None
    where = f"{partition.topic.name}-{partition.index}"
    errors = [
        (index, f"Compacted topic cannot accept message without key in topic partition {where}")
        for index, record in enumerate(decoded)
        if record.key is None
    ]
    if errors:
        raise RecordErrors(ErrorCode.invalid_record, errors)


def _check_timestamps(
    config: LogConfig, batch: bytearray, header: BatchHeader, now_ms: int
) -> None:
    """CreateTime records must lie within message.timestamp.before/after.max.ms of the broker's
    clock (Kafka's default refuses more than an hour ahead), each offender named as Kafka does.

    The batch's maxTimestamp answers the common case without decoding; records are decoded
    only when it is too far ahead, or when a bound into the past is set."""
    if config.log_append_time:
        return
    low = now_ms - config.message_timestamp_before_max_ms
    high = now_ms + config.message_timestamp_after_max_ms
    unbounded_past = config.message_timestamp_before_max_ms == _LONG_MAX
    if header.max_timestamp <= high and unbounded_past:
        return
    try:
        decoded = records.decode_records(batch)
    except CorruptRecordError as exc:
        raise ApiError(ErrorCode.invalid_record, str(exc)) from None
    errors = [
        (index, f"Timestamp {r.timestamp} of message with offset {index} is out of range. "
                f"The timestamp should be within [{low}, {high}]")
        for index, r in enumerate(decoded)
        if r.timestamp != _NO_TIMESTAMP and not low <= r.timestamp <= high
    ]  # fmt: skip
    if errors:
        raise RecordErrors(ErrorCode.invalid_timestamp, errors)


def handle_produce(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    version = header.api_version
    module = codec.schema_module(API_KEY, version, True)
    acks = request.acks
    now_ms = broker.now_ms()
    log_append_time = (
        datetime.datetime.fromtimestamp(now_ms / 1000, tz=datetime.UTC) if version >= 2 else None
    )
    wrote = False
    topic_responses = []
    for topic_data in request.topic_data:
        name = getattr(topic_data, "name", None)
        topic_id: Any = getattr(topic_data, "topic_id", None)
        topic = broker.topics.get(name) if name is not None else broker.topics.by_id.get(topic_id)
        unknown = ErrorCode.unknown_topic_or_partition if name else ErrorCode.unknown_topic_id
        counters = broker.metrics.topic(topic.name) if topic is not None else None
        partition_responses = []
        for partition_data in topic_data.partition_data:
            index = partition_data.index
            code = ErrorCode.none
            message = None
            record_errors: list[tuple[int, str]] = []
            base_offset = -1
            append_time = None
            log_start = -1
            if acks not in (0, 1, -1):
                code = ErrorCode.invalid_required_acks
            elif topic is None or not 0 <= index < len(topic.partitions):
                code = unknown
            else:
                partition = topic.partitions[index]
                assert counters is not None
                counters.produce_requests += 1
                try:
                    base_offset = _append(broker, partition, partition_data.records, now_ms)
                    wrote = True
                    if partition.topic.log_config.message_timestamp_type == "LogAppendTime":
                        append_time = log_append_time
                except ApiError as exc:
                    counters.failed_produce_requests += 1
                    code, message = exc.code, exc.message
                    if isinstance(exc, RecordErrors):
                        record_errors = exc.record_errors
                    log.info(
                        "refused produce to %s-%d from %s: %s",
                        topic.name,
                        index,
                        header.client_id,
                        message or code.name,
                    )
                except OSError as exc:
                    counters.failed_produce_requests += 1
                    code, message = ErrorCode.kafka_storage_error, str(exc)
                    log.error("append to %s-%d failed: %s", topic.name, index, exc)
                log_start = partition.log.log_start_offset
            partition_responses.append(
                _partition_response(
                    module, index, code, message, base_offset, append_time, log_start, record_errors
                )
            )
        topic_responses.append(
            codec.make(
                module,
                "TopicProduceResponse",
                name=name,
                topic_id=topic_id,
                partition_responses=tuple(partition_responses),
            )
        )
    if acks == 0:
        return None
    response = codec.make(
        module,
        "ProduceResponse",
        responses=tuple(topic_responses),
        throttle_time=NO_THROTTLE,
        node_endpoints=(),
    )
    policy = broker.config.log_fsync_policy
    if wrote and (policy == "always" or (policy == "acks-all" and acks == -1)):
        return _after_sync(broker.group_commit.sync(), response, module)
    return response


async def _after_sync(synced: asyncio.Future[None], response: Any, module: ModuleType) -> Any:
    try:
        await synced
    except OSError as exc:
        return _all_failed(response, module, str(exc))
    return response


def _all_failed(response: Any, module: ModuleType, message: str) -> Any:
    """The same response with every written partition turned into KAFKA_STORAGE_ERROR."""
    topics = []
    for topic in response.responses:
        partitions = tuple(
            _partition_response(
                module, p.index, ErrorCode.kafka_storage_error, message, -1, None, -1
            )
            if p.error_code == ErrorCode.none
            else p
            for p in topic.partition_responses
        )
        topics.append(
            codec.make(
                module,
                "TopicProduceResponse",
                name=getattr(topic, "name", None),
                topic_id=getattr(topic, "topic_id", None),
                partition_responses=partitions,
            )
        )
    return codec.make(
        module,
        "ProduceResponse",
        responses=tuple(topics),
        throttle_time=NO_THROTTLE,
        node_endpoints=(),
    )


def _partition_response(
    module: ModuleType,
    index: int,
    code: ErrorCode,
    message: str | None,
    base_offset: int,
    append_time: datetime.datetime | None,
    log_start: int,
    record_errors: list[tuple[int, str]] | None = None,
) -> Any:
    errors: tuple[Any, ...] = ()
    if record_errors and hasattr(module, "BatchIndexAndErrorMessage"):
        errors = tuple(
            codec.make(
                module,
                "BatchIndexAndErrorMessage",
                batch_index=batch_index,
                batch_index_error_message=text,
            )
            for batch_index, text in record_errors
        )
    return codec.make(
        module,
        "PartitionProduceResponse",
        index=index,
        error_code=code,
        base_offset=base_offset,
        log_append_time=append_time,
        log_start_offset=log_start,
        record_errors=errors,
        error_message=message,
    )
