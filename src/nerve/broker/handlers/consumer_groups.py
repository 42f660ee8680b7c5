"""The consumer group protocol's APIs (KIP-848): ConsumerGroupHeartbeat, ConsumerGroupDescribe.

kio requests in, ``ConsumerProtocol`` calls (``broker/groups/consumer.py``), kio responses out.
Topics travel by id; the rules live in the coordinator.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from nerve.broker.authorization import ResourceType, authorized_operations
from nerve.broker.errors import ErrorCode
from nerve.broker.groups.assignors import Assignment
from nerve.broker.groups.consumer import HeartbeatRequest
from nerve.broker.handlers.metadata import NO_THROTTLE
from nerve.protocol import codec

if TYPE_CHECKING:
    from nerve.broker.server import Broker

HEARTBEAT_KEY = 68
DESCRIBE_KEY = 69


def handle_consumer_group_heartbeat(
    broker: Broker, header: codec.RequestHeader, request: Any
) -> Any:
    module = codec.schema_module(HEARTBEAT_KEY, header.api_version, True)
    owned: Assignment | None = None
    if request.topic_partitions is not None:
        owned = {}
        for tp in request.topic_partitions:
            owned.setdefault(tp.topic_id, set()).update(tp.partitions)
    timeout = request.rebalance_timeout
    result = broker.groups.consumer.heartbeat(
        HeartbeatRequest(
            group_id=request.group_id,
            member_id=request.member_id,
            member_epoch=request.member_epoch,
            instance_id=request.instance_id,
            rack_id=request.rack_id,
            rebalance_timeout_ms=int(timeout.total_seconds() * 1000),
            subscribed_topic_names=request.subscribed_topic_names,
            subscribed_topic_regex=getattr(request, "subscribed_topic_regex", None),
            server_assignor=request.server_assignor,
            owned=owned,
            client_id=header.client_id or "",
            client_host=broker.client_host,
            version=header.api_version,
        )
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
    return codec.make(
        module,
        "ConsumerGroupHeartbeatResponse",
        throttle_time=NO_THROTTLE,
        error_code=result.error,
        error_message=result.message,
        member_id=result.member_id if result.error == ErrorCode.none else None,
        member_epoch=result.member_epoch if result.error == ErrorCode.none else -1,
        heartbeat_interval=datetime.timedelta(milliseconds=result.heartbeat_interval_ms),
        assignment=assignment,
    )


def handle_consumer_group_describe(
    broker: Broker, header: codec.RequestHeader, request: Any
) -> Any:
    module = codec.schema_module(DESCRIBE_KEY, header.api_version, True)
    operations = authorized_operations(ResourceType.GROUP, request.include_authorized_operations)
    names = {t.topic_id: t.name for t in broker.topics.topics.values()}

    def assignment(parts: Assignment) -> Any:
        return codec.make(
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
                for t, p in sorted(parts.items(), key=lambda item: names.get(item[0], ""))
                if p
            ),
        )

    described = []
    for group_id in request.group_ids:
        group = broker.groups.groups.get(group_id)
        if group is None or group.consumer is None:
            message = (
                f"Group {group_id} not found."
                if group is None
                else f"Group {group_id} is not a consumer group."
            )
            described.append(
                codec.make(
                    module,
                    "DescribedGroup",
                    error_code=ErrorCode.group_id_not_found,
                    error_message=message,
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
        cg = group.consumer
        assignors = broker.groups.consumer.assignors
        members = tuple(
            codec.make(
                module,
                "Member",
                member_id=m.member_id,
                instance_id=m.instance_id,
                rack_id=m.rack_id,
                member_epoch=m.member_epoch,
                client_id=m.client_id,
                client_host=m.client_host,
                subscribed_topic_names=m.subscribed_topic_names,
                subscribed_topic_regex=m.subscribed_topic_regex,
                assignment=assignment(m.assigned),
                target_assignment=assignment(cg.target.get(m.member_id, {})),
                member_type=0 if m.classic is not None else 1,  # 0: a classic member
            )
            for m in cg.members.values()
        )
        described.append(
            codec.make(
                module,
                "DescribedGroup",
                error_code=ErrorCode.none,
                error_message=None,
                group_id=group_id,
                group_state=cg.state(),
                group_epoch=cg.group_epoch,
                assignment_epoch=cg.assignment_epoch,
                assignor_name=cg.preferred_assignor(assignors[0] if assignors else "uniform"),
                members=members,
                authorized_operations=operations,
            )
        )
    return codec.make(
        module,
        "ConsumerGroupDescribeResponse",
        throttle_time=NO_THROTTLE,
        groups=tuple(described),
    )
