"""Replica management a single node answers without having replicas to move: ElectLeaders
(every partition already has its only replica as leader), ListPartitionReassignments (none in
progress) and AlterPartitionReassignments (to broker 1 alone: nothing to do), with Kafka's
error codes and texts for unknown topics, partitions and brokers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nerve.broker.errors import ErrorCode
from nerve.broker.handlers.metadata import NO_THROTTLE
from nerve.protocol import codec

if TYPE_CHECKING:
    from nerve.broker.server import Broker


def handle_elect_leaders(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(43, header.api_version, True)
    results = []
    if request.topic_partitions is None:
        # Every partition: Kafka lists the topics with no partition that needed an election.
        results = [
            codec.make(module, "ReplicaElectionResult", topic=name, partition_result=())
            for name in sorted(broker.topics.topics)
            if not broker.topics.topics[name].internal
        ]
    for wanted in request.topic_partitions or ():
        topic = broker.topics.get(wanted.topic)
        partitions = []
        for index in wanted.partitions:
            if topic is None:
                code, message = (
                    ErrorCode.unknown_topic_or_partition,
                    f"No such topic as {wanted.topic}",
                )
            elif not 0 <= index < len(topic.partitions):
                code = ErrorCode.unknown_topic_or_partition
                message = f"No such partition as {wanted.topic}-{index}"
            else:
                code = ErrorCode.election_not_needed
                message = "Leader election not needed for topic partition."
            partitions.append(
                codec.make(
                    module,
                    "PartitionResult",
                    partition_id=index,
                    error_code=code,
                    error_message=message,
                )
            )
        results.append(
            codec.make(
                module,
                "ReplicaElectionResult",
                topic=wanted.topic,
                partition_result=tuple(partitions),
            )
        )
    return codec.make(
        module,
        "ElectLeadersResponse",
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        replica_election_results=tuple(results),
    )


def handle_list_partition_reassignments(
    broker: Broker, header: codec.RequestHeader, request: Any
) -> Any:
    module = codec.schema_module(46, header.api_version, True)
    return codec.make(
        module,
        "ListPartitionReassignmentsResponse",
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        error_message=None,
        topics=(),
    )


def handle_alter_partition_reassignments(
    broker: Broker, header: codec.RequestHeader, request: Any
) -> Any:
    module = codec.schema_module(45, header.api_version, True)
    responses = []
    for wanted in request.topics:
        topic = broker.topics.get(wanted.name)
        partitions = []
        for p in wanted.partitions:
            code, message = ErrorCode.none, None
            if topic is None:
                code = ErrorCode.unknown_topic_or_partition
                message = f"Unable to find a topic named {wanted.name}."
            elif not 0 <= p.partition_index < len(topic.partitions):
                code = ErrorCode.unknown_topic_or_partition
                message = f"Unable to find partition {wanted.name}:{p.partition_index}."
            elif p.replicas is None:
                code = ErrorCode.no_reassignment_in_progress  # a cancel: none is running
            else:
                stranger = next((r for r in p.replicas if r != broker.node_id), None)
                if stranger is not None:
                    code = ErrorCode.invalid_replica_assignment
                    message = (
                        f"The manual partition assignment includes broker {stranger}, but no "
                        "such broker is registered."
                    )
            partitions.append(
                codec.make(
                    module,
                    "ReassignablePartitionResponse",
                    partition_index=p.partition_index,
                    error_code=code,
                    error_message=message,
                )
            )
        responses.append(
            codec.make(
                module, "ReassignableTopicResponse", name=wanted.name, partitions=tuple(partitions)
            )
        )
    return codec.make(
        module,
        "AlterPartitionReassignmentsResponse",
        throttle_time=NO_THROTTLE,
        allow_replication_factor_change=getattr(request, "allow_replication_factor_change", True),
        error_code=ErrorCode.none,
        error_message=None,
        responses=tuple(responses),
    )
