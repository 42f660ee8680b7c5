"""Fetch: byte ranges of segment files, with long polling on max.wait.ms and min.bytes.

Records are served exactly as stored (each batch's CRC-32C checked on its way out, once); the
broker never decodes them here. Fetch sessions
(KIP-227) are not kept: every response says session id 0, which clients read as "send full
fetch requests", a mode every client supports.
"""

from __future__ import annotations

import asyncio
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any

from nerve.broker.errors import ErrorCode
from nerve.broker.handlers.metadata import NO_THROTTLE
from nerve.broker.log.log import CorruptBatchError, OffsetOutOfRangeError
from nerve.protocol import codec

if TYPE_CHECKING:
    from nerve.broker.server import Broker
    from nerve.broker.topics import Partition

API_KEY = 1


def handle_fetch(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(API_KEY, header.api_version, True)
    response, size, partitions, served = _read(broker, module, request)
    wait_ms = request.max_wait.total_seconds() * 1000
    if size >= request.min_bytes or wait_ms <= 0 or not partitions:
        broker.metrics.fetched(served)
        return response
    return _long_poll(broker, module, request, partitions, time.monotonic() + wait_ms / 1000)


async def _long_poll(
    broker: Broker,
    module: ModuleType,
    request: Any,
    partitions: list[Partition],
    deadline: float,
) -> Any:
    loop = asyncio.get_running_loop()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        waiter: asyncio.Future[None] = loop.create_future()
        for partition in partitions:
            partition.waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter, remaining)
        except TimeoutError:
            break
        finally:
            for partition in partitions:
                partition.waiters.discard(waiter)
        response, size, partitions, served = _read(broker, module, request)
        if size >= request.min_bytes or not partitions:
            broker.metrics.fetched(served)
            return response
    response, _size, _partitions, served = _read(broker, module, request)
    broker.metrics.fetched(served)
    return response


def _read(
    broker: Broker, module: ModuleType, request: Any
) -> tuple[Any, int, list[Partition], list[tuple[str, int, int, int]]]:
    """One pass over the requested partitions; returns the response, its size, the
    partitions worth waiting on, and for the metrics (topic, bytes, partitions, failed
    partitions) of each known topic."""
    topics = broker.topics
    budget = request.max_bytes if request.max_bytes > 0 else 2**31 - 1
    read_committed = getattr(request, "isolation_level", 0) == 1
    total = 0
    watched: list[Partition] = []
    served: list[tuple[str, int, int, int]] = []
    topic_responses = []
    for fetch_topic in request.topics:
        name = getattr(fetch_topic, "topic", None)
        topic_id: Any = getattr(fetch_topic, "topic_id", None)
        topic = topics.get(name) if name is not None else topics.by_id.get(topic_id)
        unknown = (
            ErrorCode.unknown_topic_or_partition
            if name is not None
            else (ErrorCode.unknown_topic_id)
        )
        partition_responses = []
        topic_bytes = failed = 0
        for fetch_partition in fetch_topic.partitions:
            index = fetch_partition.partition
            code = ErrorCode.none
            data = b""
            high_watermark = last_stable = log_start = -1
            aborted: tuple[Any, ...] | None = () if read_committed else None
            if topic is None or not 0 <= index < len(topic.partitions):
                code = unknown
                failed += 1
            else:
                partition = topic.partitions[index]
                partition_log = partition.log
                high_watermark = partition_log.log_end_offset
                last_stable = partition_log.last_stable_offset
                log_start = partition_log.log_start_offset
                limit = min(fetch_partition.partition_max_bytes, budget)
                upper = last_stable if read_committed else high_watermark
                try:
                    if limit > 0 or total == 0:
                        # KIP-74: the first partition returns at least one whole batch even
                        # when it is larger than the limits, so a consumer always progresses.
                        data = partition_log.read_bytes(
                            fetch_partition.fetch_offset, max(limit, 1), upper
                        )
                        if read_committed:
                            # The consumer drops these producers' records itself.
                            aborted = tuple(
                                codec.make(
                                    module,
                                    "AbortedTransaction",
                                    producer_id=a.producer_id,
                                    first_offset=a.first_offset,
                                )
                                for a in partition_log.producers.aborted_between(
                                    fetch_partition.fetch_offset, upper
                                )
                            )
                except OffsetOutOfRangeError:
                    code = ErrorCode.offset_out_of_range
                    failed += 1
                except CorruptBatchError:
                    # Damaged on disk (logged once by the log): an error, never its bytes.
                    code = ErrorCode.corrupt_message
                    failed += 1
                else:
                    if data:
                        if total > 0 and len(data) > limit:
                            data = b""
                        total += len(data)
                        budget -= len(data)
                        topic_bytes += len(data)
                    watched.append(partition)
            partition_responses.append(
                codec.make(
                    module,
                    "PartitionData",
                    partition_index=index,
                    error_code=code,
                    high_watermark=high_watermark,
                    last_stable_offset=last_stable,
                    log_start_offset=log_start,
                    aborted_transactions=aborted,
                    preferred_read_replica=-1,
                    records=data,
                )
            )
        if topic is not None:
            served.append((topic.name, topic_bytes, len(fetch_topic.partitions), failed))
        topic_responses.append(
            codec.make(
                module,
                "FetchableTopicResponse",
                topic=name,
                topic_id=topic_id,
                partitions=tuple(partition_responses),
            )
        )
    response = codec.make(
        module,
        "FetchResponse",
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        session_id=0,
        responses=tuple(topic_responses),
        node_endpoints=(),
    )
    return response, total, watched, served
