"""Consumer group APIs: kio requests in, ``GroupCoordinator`` calls, kio responses out.

FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
OffsetDelete, ListGroups, DescribeGroups, DeleteGroups. The rules live in
``broker/groups/coordinator.py``; this module only translates between versions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from nerve.broker.authorization import ResourceType, authorized_operations
from nerve.broker.errors import ErrorCode
from nerve.broker.groups.coordinator import JoinRequest, OffsetCommit
from nerve.broker.groups.group import GroupState, JoinResult, SyncResult
from nerve.broker.handlers.metadata import NO_THROTTLE, ZERO_UUID
from nerve.protocol import codec

if TYPE_CHECKING:
    from nerve.broker.server import Broker


def handle_find_coordinator(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    """This broker coordinates every group and transactional id (key types 0 and 1)."""
    module = codec.schema_module(10, header.api_version, True)
    host, port = broker.advertised
    node = {"node_id": broker.node_id, "host": host, "port": port}
    if hasattr(request, "coordinator_keys"):
        coordinators = tuple(
            codec.make(
                module,
                "Coordinator",
                key=key,
                error_code=ErrorCode.none,
                error_message=None,
                **node,
            )
            for key in request.coordinator_keys
        )
        return codec.make(
            module, "FindCoordinatorResponse", throttle_time=NO_THROTTLE, coordinators=coordinators
        )
    return codec.make(
        module,
        "FindCoordinatorResponse",
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        error_message=None,
        **node,
    )


def _when_ready(result: Any, build: Any) -> Any:
    """``build(result)`` now, or an awaitable of it when the coordinator must wait."""
    if isinstance(result, asyncio.Future):

        async def later() -> Any:
            return build(await result)

        return later()
    return build(result)


def handle_join_group(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    version = header.api_version
    module = codec.schema_module(11, version, True)
    session_ms = int(request.session_timeout.total_seconds() * 1000)
    rebalance = getattr(request, "rebalance_timeout", None)
    rebalance_ms = int(rebalance.total_seconds() * 1000) if rebalance is not None else session_ms
    result = broker.groups.join(
        JoinRequest(
            group_id=request.group_id,
            member_id=request.member_id,
            group_instance_id=getattr(request, "group_instance_id", None),
            client_id=header.client_id or "",
            client_host=broker.client_host,
            session_timeout_ms=session_ms,
            rebalance_timeout_ms=rebalance_ms if rebalance_ms > 0 else session_ms,
            protocol_type=request.protocol_type,
            protocols=[(p.name, p.metadata) for p in request.protocols],
            require_known_member_id=version >= 4,
            reason=getattr(request, "reason", None),
            supports_skip_assignment=version >= 9,
        )
    )

    def build(joined: JoinResult) -> Any:
        members = tuple(
            codec.make(
                module,
                "JoinGroupResponseMember",
                member_id=member_id,
                group_instance_id=instance_id,
                metadata=metadata,
            )
            for member_id, instance_id, metadata in joined.members
        )
        # Before v7 the protocol name is not nullable.
        protocol_name = joined.protocol_name
        if protocol_name is None and version < 7:
            protocol_name = ""
        return codec.make(
            module,
            "JoinGroupResponse",
            throttle_time=NO_THROTTLE,
            error_code=joined.error,
            generation_id=joined.generation,
            protocol_type=joined.protocol_type,
            protocol_name=protocol_name,
            leader=joined.leader,
            skip_assignment=joined.skip_assignment,
            member_id=joined.member_id,
            members=members,
        )

    return _when_ready(result, build)


def handle_sync_group(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(14, header.api_version, True)
    result = broker.groups.sync(
        request.group_id,
        request.generation_id,
        request.member_id,
        getattr(request, "group_instance_id", None),
        getattr(request, "protocol_type", None),
        getattr(request, "protocol_name", None),
        [(a.member_id, a.assignment) for a in request.assignments],
    )

    def build(synced: SyncResult) -> Any:
        return codec.make(
            module,
            "SyncGroupResponse",
            throttle_time=NO_THROTTLE,
            error_code=synced.error,
            protocol_type=synced.protocol_type,
            protocol_name=synced.protocol_name,
            assignment=synced.assignment,
        )

    return _when_ready(result, build)


def handle_heartbeat(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(12, header.api_version, True)
    code = broker.groups.heartbeat(
        request.group_id,
        request.generation_id,
        request.member_id,
        getattr(request, "group_instance_id", None),
    )
    return codec.make(module, "HeartbeatResponse", throttle_time=NO_THROTTLE, error_code=code)


def handle_leave_group(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(13, header.api_version, True)
    if hasattr(request, "members"):
        leaving = [(m.member_id, m.group_instance_id) for m in request.members]
    else:
        leaving = [(request.member_id, None)]
    results = broker.groups.leave(request.group_id, leaving)
    if not hasattr(request, "members"):
        return codec.make(
            module, "LeaveGroupResponse", throttle_time=NO_THROTTLE, error_code=results[0][2]
        )
    members = tuple(
        codec.make(
            module,
            "MemberResponse",
            member_id=member_id,
            group_instance_id=instance_id,
            error_code=code,
        )
        for member_id, instance_id, code in results
    )
    return codec.make(
        module,
        "LeaveGroupResponse",
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        members=members,
    )


def _topic_name(broker: Broker, topic: Any) -> str | None:
    """The topic a request names: by name, or from v10 on (KIP-848) by id; None if unknown."""
    name = getattr(topic, "name", None)
    if name is not None:
        return str(name)
    topic_id = getattr(topic, "topic_id", None)
    found = broker.topics.by_id.get(topic_id) if topic_id is not None else None
    return found.name if found is not None else None


def _topic_id(broker: Broker, name: str) -> Any:
    topic = broker.topics.get(name)
    return topic.topic_id if topic is not None else ZERO_UUID


def handle_offset_commit(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(8, header.api_version, True)
    names = [_topic_name(broker, t) for t in request.topics]
    commits = [
        OffsetCommit(
            topic=name,
            partition=p.partition_index,
            offset=p.committed_offset,
            leader_epoch=getattr(p, "committed_leader_epoch", -1),
            metadata=p.committed_metadata,
        )
        for t, name in zip(request.topics, names, strict=True)
        if name is not None
        for p in t.partitions
    ]
    errors, durable = broker.groups.commit_offsets(
        request.group_id,
        request.generation_id_or_member_epoch,
        request.member_id,
        getattr(request, "group_instance_id", None),
        commits,
        header.api_version,
    )

    def build(codes: list[ErrorCode]) -> Any:
        it = iter(codes)
        topics = tuple(
            codec.make(
                module,
                "OffsetCommitResponseTopic",
                name=t.name if hasattr(t, "name") else None,
                topic_id=getattr(t, "topic_id", None),
                partitions=tuple(
                    codec.make(
                        module,
                        "OffsetCommitResponsePartition",
                        partition_index=p.partition_index,
                        error_code=ErrorCode.unknown_topic_id if name is None else next(it),
                    )
                    for p in t.partitions
                ),
            )
            for t, name in zip(request.topics, names, strict=True)
        )
        return codec.make(module, "OffsetCommitResponse", throttle_time=NO_THROTTLE, topics=topics)

    if durable is None:
        return build(errors)
    return _after_sync(durable, errors, build)


async def _after_sync(durable: Awaitable[None], errors: list[ErrorCode], build: Any) -> Any:
    try:
        await durable
    except OSError:
        errors = [ErrorCode.kafka_storage_error if e == ErrorCode.none else e for e in errors]
    return build(errors)


def handle_offset_fetch(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    version = header.api_version
    module = codec.schema_module(9, version, True)
    stable = getattr(request, "require_stable", False)
    if hasattr(request, "groups"):
        groups = tuple(
            _fetched_group(
                broker,
                module,
                g.group_id,
                g.topics,
                batched=True,
                stable=stable,
                member=(getattr(g, "member_id", None), getattr(g, "member_epoch", -1)),
            )
            for g in request.groups
        )
        return codec.make(module, "OffsetFetchResponse", throttle_time=NO_THROTTLE, groups=groups)
    topics = _fetched_topics(
        broker, module, request.group_id, request.topics, batched=False, stable=stable
    )
    return codec.make(
        module,
        "OffsetFetchResponse",
        throttle_time=NO_THROTTLE,
        topics=topics,
        error_code=ErrorCode.none,
    )


def _fetched_group(
    broker: Broker,
    module: Any,
    group_id: str,
    topics: Any,
    *,
    batched: bool,
    stable: bool,
    member: tuple[str | None, int],
) -> Any:
    group = broker.groups.groups.get(group_id)
    if group is not None and group.consumer is not None:
        # v9+ (KIP-848): a member of a consumer group reads with its current epoch.
        error = broker.groups.consumer.fetch_error(group.consumer, *member)
        if error is not None:
            return codec.make(
                module, "OffsetFetchResponseGroup", group_id=group_id, topics=(), error_code=error
            )
    return codec.make(
        module,
        "OffsetFetchResponseGroup",
        group_id=group_id,
        topics=_fetched_topics(broker, module, group_id, topics, batched=batched, stable=stable),
        error_code=ErrorCode.none,
    )


def _fetched_topics(
    broker: Broker, module: Any, group_id: str, topics: Any, *, batched: bool, stable: bool
) -> tuple[Any, ...]:
    """With ``stable`` (KIP-447), offsets an open transaction is about to change are refused
    with UNSTABLE_OFFSET_COMMIT, so that the consumer retries instead of reading stale ones."""
    suffix = "s" if batched else ""  # v8+ names its nested classes in the plural
    out = []
    wanted = None
    if topics is not None:
        wanted = []
        for t in topics:
            name = _topic_name(broker, t)
            if name is not None:
                wanted.append((name, t.partition_indexes))
                continue
            # v10 names topics by id: one nerve does not know is refused per partition.
            out.append(
                codec.make(
                    module,
                    f"OffsetFetchResponseTopic{suffix}",
                    topic_id=t.topic_id,
                    partitions=tuple(
                        codec.make(
                            module,
                            f"OffsetFetchResponsePartition{suffix}",
                            partition_index=p,
                            committed_offset=-1,
                            committed_leader_epoch=-1,
                            metadata="",
                            error_code=ErrorCode.unknown_topic_id,
                        )
                        for p in t.partition_indexes
                    ),
                )
            )
    for topic, partitions in broker.groups.fetch_offsets(group_id, wanted):
        out.append(
            codec.make(
                module,
                f"OffsetFetchResponseTopic{suffix}",
                name=topic,
                topic_id=_topic_id(broker, topic),
                partitions=tuple(
                    codec.make(
                        module,
                        f"OffsetFetchResponsePartition{suffix}",
                        partition_index=p,
                        committed_offset=c.offset if c and not unstable else -1,
                        committed_leader_epoch=c.leader_epoch if c and not unstable else -1,
                        metadata=c.metadata if c and not unstable else "",
                        error_code=ErrorCode.unstable_offset_commit if unstable else ErrorCode.none,
                    )
                    for p, c in partitions
                    for unstable in (stable and broker.groups.is_unstable(group_id, topic, p),)
                ),
            )
        )
    return tuple(out)


def handle_offset_delete(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(47, header.api_version, True)
    code, results = broker.groups.delete_offsets(
        request.group_id,
        [(t.name, [p.partition_index for p in t.partitions]) for t in request.topics],
    )
    topics = tuple(
        codec.make(
            module,
            "OffsetDeleteResponseTopic",
            name=topic,
            partitions=tuple(
                codec.make(
                    module,
                    "OffsetDeleteResponsePartition",
                    partition_index=p,
                    error_code=c,
                )
                for p, c in partitions
            ),
        )
        for topic, partitions in results
    )
    return codec.make(
        module, "OffsetDeleteResponse", error_code=code, throttle_time=NO_THROTTLE, topics=topics
    )


def handle_list_groups(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(16, header.api_version, True)
    groups = broker.groups.list_groups(
        getattr(request, "states_filter", ()) or (), getattr(request, "types_filter", ()) or ()
    )
    listed = tuple(
        codec.make(
            module,
            "ListedGroup",
            group_id=g.group_id,
            protocol_type="consumer" if g.group_type != "classic" else g.protocol_type or "",
            group_state=g.state_name,
            group_type=g.group_type,
        )
        for g in groups
    )
    return codec.make(
        module,
        "ListGroupsResponse",
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        groups=listed,
    )


def handle_describe_groups(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    version = header.api_version
    module = codec.schema_module(15, version, True)
    operations = authorized_operations(
        ResourceType.GROUP, getattr(request, "include_authorized_operations", False)
    )
    described = []
    for group_id in request.groups:
        group = broker.groups.groups.get(group_id)
        if group is not None and (group.consumer is not None or group.share is not None):
            # A consumer or share group is not described here: v6 says so, as Kafka.
            described.append(
                codec.make(
                    module,
                    "DescribedGroup",
                    error_code=ErrorCode.group_id_not_found if version >= 6 else ErrorCode.none,
                    error_message=f"Group {group_id} is not a classic group."
                    if version >= 6
                    else None,
                    group_id=group_id,
                    group_state=GroupState.DEAD.value,
                    protocol_type="",
                    protocol_data="",
                    members=(),
                    authorized_operations=operations,
                )
            )
            continue
        if group is None:
            # v6 (KIP-1043) says so; older versions report the Dead state.
            code = ErrorCode.group_id_not_found if version >= 6 else ErrorCode.none
            described.append(
                codec.make(
                    module,
                    "DescribedGroup",
                    error_code=code,
                    error_message=f"Group {group_id} not found." if version >= 6 else None,
                    group_id=group_id,
                    group_state=GroupState.DEAD.value,
                    protocol_type="",
                    protocol_data="",
                    members=(),
                    authorized_operations=operations,
                )
            )
            continue
        stable = group.is_(GroupState.STABLE)
        members = tuple(
            codec.make(
                module,
                "DescribedGroupMember",
                member_id=m.member_id,
                group_instance_id=m.group_instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                # Metadata and assignment only mean something once the generation is settled.
                member_metadata=m.metadata_for(group.protocol) if stable else b"",
                member_assignment=m.assignment if stable else b"",
            )
            for m in group.members.values()
        )
        described.append(
            codec.make(
                module,
                "DescribedGroup",
                error_code=ErrorCode.none,
                error_message=None,
                group_id=group_id,
                group_state=group.state.value,
                protocol_type=group.protocol_type or "",
                protocol_data=(group.protocol or "") if stable else "",
                members=members,
                authorized_operations=operations,
            )
        )
    return codec.make(
        module, "DescribeGroupsResponse", throttle_time=NO_THROTTLE, groups=tuple(described)
    )


def handle_delete_groups(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(42, header.api_version, True)
    results = tuple(
        codec.make(module, "DeletableGroupResult", group_id=group_id, error_code=code)
        for group_id, code in broker.groups.delete_groups(request.groups_names)
    )
    return codec.make(module, "DeleteGroupsResponse", throttle_time=NO_THROTTLE, results=results)
