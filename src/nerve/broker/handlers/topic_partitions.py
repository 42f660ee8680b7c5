"""DescribeTopicPartitions (KIP-966): the Java admin client's describeTopics and kafka-topics
--describe page through topics' partitions with it, a cursor carrying them across requests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nerve.broker.authorization import ResourceType, authorized_operations
from nerve.broker.errors import ErrorCode
from nerve.broker.handlers.metadata import NO_THROTTLE, ZERO_UUID
from nerve.protocol import codec

if TYPE_CHECKING:
    from nerve.broker.server import Broker

# Kafka's max.request.partition.size.limit default: no answer holds more partitions.
PARTITION_LIMIT = 2000


def handle_describe_topic_partitions(
    broker: Broker, header: codec.RequestHeader, request: Any
) -> Any:
    module = codec.schema_module(75, header.api_version, True)
    topics = broker.topics
    names = sorted({t.name for t in request.topics}) if request.topics else sorted(topics.topics)
    cursor = request.cursor
    start_partition = 0
    if cursor is not None:
        names = [n for n in names if n >= cursor.topic_name]
        start_partition = cursor.partition_index
    budget = max(1, min(request.response_partition_limit, PARTITION_LIMIT))
    operations = authorized_operations(ResourceType.TOPIC)
    entries = []
    next_cursor = None
    for name in names:
        topic = topics.get(name)
        if topic is None:
            entries.append(
                codec.make(
                    module,
                    "DescribeTopicPartitionsResponseTopic",
                    error_code=ErrorCode.unknown_topic_or_partition,
                    name=name,
                    topic_id=ZERO_UUID,
                    is_internal=False,
                    partitions=(),
                    topic_authorized_operations=operations,
                )
            )
            continue
        first = start_partition if cursor is not None and name == cursor.topic_name else 0
        indexes = range(first, len(topic.partitions))
        if len(indexes) > budget:
            next_cursor = codec.make(
                module, "Cursor", topic_name=name, partition_index=indexes[budget]
            )
            indexes = indexes[:budget]
        budget -= len(indexes)
        entries.append(
            codec.make(
                module,
                "DescribeTopicPartitionsResponseTopic",
                error_code=ErrorCode.none,
                name=name,
                topic_id=topic.topic_id,
                is_internal=topic.internal,
                partitions=tuple(
                    codec.make(
                        module,
                        "DescribeTopicPartitionsResponsePartition",
                        error_code=ErrorCode.none,
                        partition_index=i,
                        leader_id=broker.node_id,
                        leader_epoch=0,
                        replica_nodes=(broker.node_id,),
                        isr_nodes=(broker.node_id,),
                        eligible_leader_replicas=(),
                        last_known_elr=(),
                        offline_replicas=(),
                    )
                    for i in indexes
                ),
                topic_authorized_operations=operations,
            )
        )
        if next_cursor is not None:
            break
        if budget == 0 and name != names[-1]:
            later = names[names.index(name) + 1]
            next_cursor = codec.make(module, "Cursor", topic_name=later, partition_index=0)
            break
    return codec.make(
        module,
        "DescribeTopicPartitionsResponse",
        throttle_time=NO_THROTTLE,
        topics=tuple(entries),
        next_cursor=next_cursor,
    )
