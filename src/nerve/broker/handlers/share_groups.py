"""Share groups' APIs (KIP-932): ShareGroupHeartbeat, ShareGroupDescribe, ShareFetch,
ShareAcknowledge, and the offset admin APIs DescribeShareGroupOffsets, AlterShareGroupOffsets
and DeleteShareGroupOffsets (what kafka-share-groups.sh calls).

kio requests in, ``ShareProtocol`` calls (``broker/groups/share.py``), kio responses out.
ShareFetch long-polls like Fetch when nothing can be acquired yet.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from typing import TYPE_CHECKING, Any

from nerve.broker.authorization import ResourceType, authorized_operations
from nerve.broker.errors import ErrorCode
from nerve.broker.handlers.metadata import NO_THROTTLE
from nerve.protocol import codec

if TYPE_CHECKING:
    from nerve.broker.server import Broker
    from nerve.broker.topics import Partition

HEARTBEAT_KEY = 76
DESCRIBE_KEY = 77
FETCH_KEY = 78
ACKNOWLEDGE_KEY = 79
DESCRIBE_OFFSETS_KEY = 90
ALTER_OFFSETS_KEY = 91
DELETE_OFFSETS_KEY = 92
# Kafka answers a share-partition's leader epoch; nerve's partitions keep epoch 0.
_LEADER_EPOCH = 0


def handle_share_group_heartbeat(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(HEARTBEAT_KEY, header.api_version, True)
    result = broker.groups.share.heartbeat(
        request.group_id,
        request.member_id,
        request.member_epoch,
        request.rack_id,
        request.subscribed_topic_names,
        header.client_id or "",
        broker.client_host,
    )
    assignment = None
    if result.assignment is not None:
        assignment = codec.make(
            module,
            "Assignment",
            topic_partitions=tuple(
                codec.make(module, "TopicPartitions", topic_id=t, partitions=tuple(sorted(p)))
                for t, p in sorted(result.assignment.items())
            ),
        )
    ok = result.error == ErrorCode.none
    return codec.make(
        module,
        "ShareGroupHeartbeatResponse",
        throttle_time=NO_THROTTLE,
        error_code=result.error,
        error_message=result.message,
        member_id=result.member_id if ok else None,
        member_epoch=result.member_epoch if ok else -1,
        heartbeat_interval=datetime.timedelta(milliseconds=result.heartbeat_interval_ms),
        assignment=assignment,
    )


def _acks(partition: Any) -> list[tuple[int, int, list[int]]]:
    return [
        (b.first_offset, b.last_offset, list(b.acknowledge_types))
        for b in partition.acknowledgement_batches
    ]


def _node(broker: Broker, module: Any) -> tuple[Any, ...]:
    host, port = broker.config.advertised
    return (codec.make(module, "NodeEndpoint", node_id=broker.node_id, host=host, port=port),)


def _leader(broker: Broker, module: Any) -> Any:
    return codec.make(module, "LeaderIdAndEpoch", leader_id=broker.node_id, leader_epoch=0)


def handle_share_fetch(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(FETCH_KEY, header.api_version, True)
    share = broker.groups.share
    wanted = [(t.topic_id, p.partition_index) for t in request.topics for p in t.partitions]
    forgotten = [(t.topic_id, p) for t in request.forgotten_topics_data for p in t.partitions]
    group_id, member_id = request.group_id or "", request.member_id or ""
    sg, session, error = share.session(
        group_id, member_id, request.share_session_epoch, wanted, forgotten
    )
    lock = datetime.timedelta(milliseconds=share.lock_ms(request.group_id or ""))

    def top(code: ErrorCode) -> Any:
        return codec.make(
            module,
            "ShareFetchResponse",
            throttle_time=NO_THROTTLE,
            error_code=code,
            error_message=None,
            acquisition_lock_timeout=lock,
            responses=(),
            node_endpoints=(),
        )

    if error != ErrorCode.none or sg is None:
        return top(error)
    # Acknowledgements first, so that released records may be acquired again at once.
    ack_codes: dict[tuple[uuid.UUID, int], ErrorCode] = {}
    for t in request.topics:
        for p in t.partitions:
            if p.acknowledgement_batches:
                partition = _partition(broker, t.topic_id, p.partition_index)
                ack_codes[(t.topic_id, p.partition_index)] = (
                    ErrorCode.unknown_topic_or_partition
                    if partition is None
                    else share.acknowledge(group_id, sg, member_id, partition, _acks(p))
                )
    if session is None:  # the final fetch of a session (epoch -1): acknowledgements only
        return _fetch_response(broker, module, {}, ack_codes, lock)
    fetching = sorted(session.partitions, key=lambda k: (str(k[0]), k[1]))

    def attempt() -> dict[tuple[uuid.UUID, int], Any]:
        budget = request.max_bytes if request.max_bytes > 0 else 2**31 - 1
        records_left = request.max_records if request.max_records > 0 else 500
        out: dict[tuple[uuid.UUID, int], Any] = {}
        for key in fetching:
            partition = _partition(broker, *key)
            if partition is None:
                out[key] = ErrorCode.unknown_topic_or_partition
                continue
            if records_left <= 0 or budget <= 0:
                break
            got = share.acquire(group_id, sg, member_id, partition, records_left, budget)
            if got.ranges:
                out[key] = got
                budget -= len(got.records)
                records_left -= sum(last - first + 1 for first, last, _ in got.ranges)
        return out

    found = attempt()
    wait_ms = request.max_wait.total_seconds() * 1000
    if found or ack_codes or wait_ms <= 0 or not fetching:
        return _fetch_response(broker, module, found, ack_codes, lock)

    async def long_poll() -> Any:
        deadline = time.monotonic() + wait_ms / 1000
        watched = [p for key in fetching if (p := _partition(broker, *key)) is not None]
        loop = asyncio.get_running_loop()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return _fetch_response(broker, module, {}, ack_codes, lock)
            waiter: asyncio.Future[None] = loop.create_future()
            for partition in watched:
                partition.waiters.add(waiter)
            try:
                # Woken by new records; released or expired ones are looked for each 0.5 s.
                await asyncio.wait_for(waiter, min(remaining, 0.5))
            except TimeoutError:
                pass
            finally:
                for partition in watched:
                    partition.waiters.discard(waiter)
            if sg.members.get(member_id) is None:
                return top(ErrorCode.unknown_member_id)
            found = attempt()
            if found:
                return _fetch_response(broker, module, found, ack_codes, lock)

    return long_poll()


def _fetch_response(
    broker: Broker,
    module: Any,
    found: dict[tuple[uuid.UUID, int], Any],
    ack_codes: dict[tuple[uuid.UUID, int], ErrorCode],
    lock: datetime.timedelta,
) -> Any:
    by_topic: dict[uuid.UUID, list[Any]] = {}
    for key in sorted(set(found) | set(ack_codes), key=lambda k: (str(k[0]), k[1])):
        topic_id, index = key
        got = found.get(key)
        error = got if isinstance(got, ErrorCode) else ErrorCode.none
        acquired = got if got is not None and not isinstance(got, ErrorCode) else None
        by_topic.setdefault(topic_id, []).append(
            codec.make(
                module,
                "PartitionData",
                partition_index=index,
                error_code=error,
                error_message=None,
                acknowledge_error_code=ack_codes.get(key, ErrorCode.none),
                acknowledge_error_message=None,
                current_leader=_leader(broker, module),
                records=acquired.records if acquired is not None else b"",
                acquired_records=tuple(
                    codec.make(
                        module,
                        "AcquiredRecords",
                        first_offset=first,
                        last_offset=last,
                        delivery_count=count,
                    )
                    for first, last, count in (acquired.ranges if acquired else ())
                ),
            )
        )
    return codec.make(
        module,
        "ShareFetchResponse",
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        error_message=None,
        acquisition_lock_timeout=lock,
        responses=tuple(
            codec.make(module, "ShareFetchableTopicResponse", topic_id=t, partitions=tuple(parts))
            for t, parts in by_topic.items()
        ),
        node_endpoints=_node(broker, module),
    )


def _partition(broker: Broker, topic_id: uuid.UUID, index: int) -> Partition | None:
    topic = broker.topics.by_id.get(topic_id)
    if topic is None or not 0 <= index < len(topic.partitions):
        return None
    return topic.partitions[index]


def handle_share_acknowledge(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(ACKNOWLEDGE_KEY, header.api_version, True)
    share = broker.groups.share
    group_id, member_id = request.group_id or "", request.member_id or ""
    sg, _, error = share.session(group_id, member_id, request.share_session_epoch, (), ())
    # v2 (KIP-1222) answers the lock duration, as ShareFetch does; a response built without
    # it cannot be encoded, and the connection was closed instead of answering.
    lock = datetime.timedelta(milliseconds=share.lock_ms(group_id))
    if error != ErrorCode.none or sg is None:
        return codec.make(
            module,
            "ShareAcknowledgeResponse",
            throttle_time=NO_THROTTLE,
            error_code=error,
            error_message=None,
            acquisition_lock_timeout=lock,
            responses=(),
            node_endpoints=(),
        )
    responses = []
    for t in request.topics:
        parts = []
        for p in t.partitions:
            partition = _partition(broker, t.topic_id, p.partition_index)
            code = (
                ErrorCode.unknown_topic_or_partition
                if partition is None
                else share.acknowledge(group_id, sg, member_id, partition, _acks(p))
            )
            parts.append(
                codec.make(
                    module,
                    "PartitionData",
                    partition_index=p.partition_index,
                    error_code=code,
                    error_message=None,
                    current_leader=_leader(broker, module),
                )
            )
        responses.append(
            codec.make(
                module,
                "ShareAcknowledgeTopicResponse",
                topic_id=t.topic_id,
                partitions=tuple(parts),
            )
        )
    return codec.make(
        module,
        "ShareAcknowledgeResponse",
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        error_message=None,
        acquisition_lock_timeout=lock,
        responses=tuple(responses),
        node_endpoints=_node(broker, module),
    )


def handle_share_group_describe(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(DESCRIBE_KEY, header.api_version, True)
    operations = authorized_operations(ResourceType.GROUP, request.include_authorized_operations)
    names = {t.topic_id: t.name for t in broker.topics.topics.values()}
    described = []
    for group_id in request.group_ids:
        group = broker.groups.groups.get(group_id)
        sg = group.share if group is not None else None
        if sg is None:
            described.append(
                codec.make(
                    module,
                    "DescribedGroup",
                    error_code=ErrorCode.group_id_not_found,
                    error_message=f"Group {group_id} not found."
                    if group is None
                    else f"Group {group_id} is not a share group.",
                    group_id=group_id,
                    group_state="Dead",
                    group_epoch=-1,
                    assignment_epoch=-1,
                    assignor_name="",
                    members=(),
                    authorized_operations=operations,
                )
            )
            continue
        members = tuple(
            codec.make(
                module,
                "Member",
                member_id=m.member_id,
                rack_id=m.rack_id,
                member_epoch=m.member_epoch,
                client_id=m.client_id,
                client_host=m.client_host,
                subscribed_topic_names=m.subscribed_topic_names,
                assignment=codec.make(
                    module,
                    "Assignment",
                    topic_partitions=tuple(
                        codec.make(
                            module,
                            "TopicPartitions",
                            topic_id=t,
                            topic_name=names.get(t, ""),
                            partitions=tuple(sorted(p)),
                        )
                        for t, p in sorted(m.assigned.items(), key=lambda i: names.get(i[0], ""))
                        if p
                    ),
                ),
            )
            for m in sg.members.values()
        )
        described.append(
            codec.make(
                module,
                "DescribedGroup",
                error_code=ErrorCode.none,
                error_message=None,
                group_id=group_id,
                group_state=sg.state(),
                group_epoch=sg.group_epoch,
                assignment_epoch=sg.assignment_epoch,
                assignor_name="simple",
                members=members,
                authorized_operations=operations,
            )
        )
    return codec.make(
        module, "ShareGroupDescribeResponse", throttle_time=NO_THROTTLE, groups=tuple(described)
    )


def handle_describe_share_group_offsets(
    broker: Broker, header: codec.RequestHeader, request: Any
) -> Any:
    module = codec.schema_module(DESCRIBE_OFFSETS_KEY, header.api_version, True)
    groups = []
    for asked in request.groups:
        wanted = (
            None
            if asked.topics is None
            else [(t.topic_name, list(t.partitions)) for t in asked.topics]
        )
        found = broker.groups.share.start_offsets(asked.group_id, wanted) or []
        topics = tuple(
            codec.make(
                module,
                "DescribeShareGroupOffsetsResponseTopic",
                topic_name=name,
                topic_id=topic_id or uuid.UUID(int=0),
                partitions=tuple(
                    codec.make(
                        module,
                        "DescribeShareGroupOffsetsResponsePartition",
                        partition_index=index,
                        start_offset=start,
                        leader_epoch=_LEADER_EPOCH,
                        **({"lag": lag} if header.api_version >= 1 else {}),
                        error_code=ErrorCode.none,
                        error_message=None,
                    )
                    for index, start, lag in rows
                ),
            )
            for name, topic_id, rows in found
        )
        groups.append(
            codec.make(
                module,
                "DescribeShareGroupOffsetsResponseGroup",
                group_id=asked.group_id,
                topics=topics,
                error_code=ErrorCode.none,
                error_message=None,
            )
        )
    return codec.make(
        module,
        "DescribeShareGroupOffsetsResponse",
        throttle_time=NO_THROTTLE,
        groups=tuple(groups),
    )


def handle_alter_share_group_offsets(
    broker: Broker, header: codec.RequestHeader, request: Any
) -> Any:
    module = codec.schema_module(ALTER_OFFSETS_KEY, header.api_version, True)
    error, message, results = broker.groups.share.alter_start_offsets(
        request.group_id,
        [
            (t.topic_name, [(p.partition_index, p.start_offset) for p in t.partitions])
            for t in request.topics
        ],
    )
    responses = tuple(
        codec.make(
            module,
            "AlterShareGroupOffsetsResponseTopic",
            topic_name=name,
            topic_id=topic_id or uuid.UUID(int=0),
            partitions=tuple(
                codec.make(
                    module,
                    "AlterShareGroupOffsetsResponsePartition",
                    partition_index=index,
                    error_code=code,
                    error_message=None if code == ErrorCode.none else _message(code, name),
                )
                for index, code in rows
            ),
        )
        for name, topic_id, rows in results
    )
    return codec.make(
        module,
        "AlterShareGroupOffsetsResponse",
        throttle_time=NO_THROTTLE,
        error_code=error,
        error_message=message,
        responses=responses,
    )


def handle_delete_share_group_offsets(
    broker: Broker, header: codec.RequestHeader, request: Any
) -> Any:
    module = codec.schema_module(DELETE_OFFSETS_KEY, header.api_version, True)
    error, message, results = broker.groups.share.delete_start_offsets(
        request.group_id, [t.topic_name for t in request.topics]
    )
    responses = tuple(
        codec.make(
            module,
            "DeleteShareGroupOffsetsResponseTopic",
            topic_name=name,
            topic_id=topic_id or uuid.UUID(int=0),
            error_code=code,
            error_message=None if code == ErrorCode.none else _message(code, name),
        )
        for name, topic_id, code in results
    )
    return codec.make(
        module,
        "DeleteShareGroupOffsetsResponse",
        throttle_time=NO_THROTTLE,
        error_code=error,
        error_message=message,
        responses=responses,
    )


def _message(code: ErrorCode, topic: str) -> str:
    if code == ErrorCode.unknown_topic_or_partition:
        return f"Topic {topic} does not exist."
    return code.name
