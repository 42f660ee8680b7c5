"""Metadata: brokers, topics and partitions; the place where topics auto-create on first use."""

from __future__ import annotations

import datetime
import logging
import uuid
from types import ModuleType
from typing import TYPE_CHECKING, Any

from nerve.broker.authorization import NOT_REQUESTED, ResourceType, authorized_operations
from nerve.broker.errors import ApiError, ErrorCode
from nerve.broker.topics import Topic
from nerve.protocol import codec

if TYPE_CHECKING:
    from nerve.broker.server import Broker

log = logging.getLogger("nerve.broker")

ZERO_UUID = uuid.UUID(int=0)
NO_THROTTLE = datetime.timedelta(0)


def _topic_entry(module: ModuleType, broker: Broker, topic: Topic, operations: int) -> Any:
    partitions = tuple(
        codec.make(
            module,
            "MetadataResponsePartition",
            error_code=ErrorCode.none,
            partition_index=p.index,
            leader_id=broker.node_id,
            leader_epoch=0,
            replica_nodes=(broker.node_id,),
            isr_nodes=(broker.node_id,),
            offline_replicas=(),
        )
        for p in topic.partitions
    )
    return codec.make(
        module,
        "MetadataResponseTopic",
        error_code=ErrorCode.none,
        name=topic.name,
        topic_id=topic.topic_id,
        is_internal=topic.internal,
        partitions=partitions,
        topic_authorized_operations=operations,
    )


def _error_entry(module: ModuleType, name: str | None, topic_id: Any, code: ErrorCode) -> Any:
    return codec.make(
        module,
        "MetadataResponseTopic",
        error_code=code,
        name=name,
        topic_id=topic_id or ZERO_UUID,
        is_internal=False,
        partitions=(),
        topic_authorized_operations=NOT_REQUESTED,
    )


def handle_metadata(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    version = header.api_version
    module = codec.schema_module(3, version, True)
    topics = broker.topics
    requested = request.topics
    operations = authorized_operations(
        ResourceType.TOPIC, getattr(request, "include_topic_authorized_operations", False)
    )
    if requested is None or (version == 0 and not requested):
        entries = [
            _topic_entry(module, broker, t, operations) for t in list(topics.topics.values())
        ]
    else:
        allow_create = getattr(request, "allow_auto_topic_creation", True)
        entries = []
        for wanted in requested:
            name = getattr(wanted, "name", None)
            topic_id = getattr(wanted, "topic_id", None)
            if name is None and topic_id is not None and topic_id != ZERO_UUID:
                by_id = topics.by_id.get(topic_id)
                if by_id is None:
                    entries.append(_error_entry(module, None, topic_id, ErrorCode.unknown_topic_id))
                else:
                    entries.append(_topic_entry(module, broker, by_id, operations))
                continue
            if name is None:
                entries.append(_error_entry(module, None, None, ErrorCode.invalid_request))
                continue
            topic = topics.get(name)
            if topic is None and allow_create and broker.config.auto_create_topics_enable:
                # As Kafka 4: the request that creates the topic does not see it yet (its
                # answer is UNKNOWN_TOPIC_OR_PARTITION); the client's next one does. Code that
                # asks "does this topic exist?" never gets "yes" from the request creating it.
                # The topic is made off the event loop, a bounded batch at a time.
                try:
                    topics.auto_create(name)
                except ApiError as exc:
                    if exc.code != ErrorCode.topic_already_exists:
                        entries.append(_error_entry(module, name, None, exc.code))
                        continue
                entries.append(
                    _error_entry(module, name, None, ErrorCode.unknown_topic_or_partition)
                )
                continue
            if topic is None:
                entries.append(
                    _error_entry(module, name, None, ErrorCode.unknown_topic_or_partition)
                )
            else:
                entries.append(_topic_entry(module, broker, topic, operations))
    host, port = broker.advertised
    brokers = (
        codec.make(
            module,
            "MetadataResponseBroker",
            node_id=broker.node_id,
            host=host,
            port=port,
            rack=None,
        ),
    )
    return codec.make(
        module,
        "MetadataResponse",
        throttle_time=NO_THROTTLE,
        brokers=brokers,
        cluster_id=broker.cluster_id,
        controller_id=broker.node_id,
        topics=tuple(entries),
        cluster_authorized_operations=authorized_operations(
            ResourceType.CLUSTER, getattr(request, "include_cluster_authorized_operations", False)
        ),
        error_code=ErrorCode.none,
    )
