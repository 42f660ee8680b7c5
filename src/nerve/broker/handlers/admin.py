"""Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DescribeCluster."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nerve.broker.authorization import ResourceType, authorized_operations
from nerve.broker.errors import ApiError, ErrorCode
from nerve.broker.handlers.configs import config_source
from nerve.broker.handlers.metadata import NO_THROTTLE, ZERO_UUID
from nerve.broker.topic_configs import DESCRIBED
from nerve.protocol import codec

if TYPE_CHECKING:
    from nerve.broker.server import Broker


def handle_create_topics(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(19, header.api_version, True)
    results = []
    for wanted in request.topics:
        code, message = ErrorCode.none, None
        topic = None
        num_partitions = wanted.num_partitions
        configs = {c.name: c.value for c in wanted.configs}
        try:
            if wanted.assignments:
                if num_partitions != -1 or wanted.replication_factor != -1:
                    raise ApiError(
                        ErrorCode.invalid_request,
                        "give either replica assignments or partitions and replication factor",
                    )
                for assignment in wanted.assignments:
                    if tuple(assignment.broker_ids) != (broker.node_id,):
                        raise ApiError(
                            ErrorCode.invalid_replica_assignment,
                            f"partition {assignment.partition_index} is assigned to brokers "
                            f"{list(assignment.broker_ids)}; this cluster has broker "
                            f"{broker.node_id} only",
                        )
                num_partitions = len(wanted.assignments)
            topic = broker.topics.create(
                wanted.name,
                num_partitions,
                wanted.replication_factor,
                configs,
                validate_only=request.validate_only,
            )
        except ApiError as exc:
            code, message = exc.code, exc.message
        effective = (
            {n: broker.topics.effective_configs(topic.configs if topic else configs)[n]
             for n in DESCRIBED}
            if code == ErrorCode.none
            else {}
        )  # fmt: skip
        if num_partitions == -1:
            num_partitions = broker.config.num_partitions
        overrides = topic.configs if topic is not None else configs
        results.append(
            codec.make(
                module,
                "CreatableTopicResult",
                name=wanted.name,
                topic_id=topic.topic_id if topic is not None else ZERO_UUID,
                error_code=code,
                error_message=message,
                topic_config_error_code=ErrorCode.none,
                num_partitions=num_partitions if code == ErrorCode.none else -1,
                replication_factor=1 if code == ErrorCode.none else -1,
                configs=()
                if not hasattr(module, "CreatableTopicConfigs")
                else tuple(
                    codec.make(
                        module,
                        "CreatableTopicConfigs",
                        name=name,
                        value=value,
                        read_only=False,
                        config_source=config_source(broker, name, overrides),
                        is_sensitive=False,
                    )
                    for name, value in sorted(effective.items())
                ),
            )
        )
    return codec.make(
        module, "CreateTopicsResponse", throttle_time=NO_THROTTLE, topics=tuple(results)
    )


def handle_delete_topics(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(20, header.api_version, True)
    if hasattr(request, "topic_names"):
        wanted = [(name, None) for name in request.topic_names]
    else:
        wanted = [(t.name, t.topic_id) for t in request.topics]
    results = []
    for name, topic_id in wanted:
        code, message = ErrorCode.none, None
        if name is None and topic_id is not None:
            topic = broker.topics.by_id.get(topic_id)
            if topic is None:
                code, message = ErrorCode.unknown_topic_id, f"unknown topic id {topic_id}"
            else:
                name = topic.name
        if code == ErrorCode.none:
            try:
                deleted = broker.topics.delete(name or "")
                topic_id = deleted.topic_id
                broker.groups.forget_topic(deleted.name)
            except ApiError as exc:
                code, message = exc.code, exc.message
        results.append(
            codec.make(
                module,
                "DeletableTopicResult",
                name=name,
                topic_id=topic_id or ZERO_UUID,
                error_code=code,
                error_message=message,
            )
        )
    return codec.make(
        module, "DeleteTopicsResponse", throttle_time=NO_THROTTLE, responses=tuple(results)
    )


def handle_create_partitions(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(37, header.api_version, True)
    results = []
    for wanted in request.topics:
        code, message = ErrorCode.none, None
        try:
            for assignment in wanted.assignments or ():
                if tuple(assignment.broker_ids) != (broker.node_id,):
                    raise ApiError(
                        ErrorCode.invalid_replica_assignment,
                        f"new partitions are assigned to brokers {list(assignment.broker_ids)}; "
                        f"this cluster has broker {broker.node_id} only",
                    )
            broker.topics.add_partitions(wanted.name, wanted.count, request.validate_only)
        except ApiError as exc:
            code, message = exc.code, exc.message
        results.append(
            codec.make(
                module,
                "CreatePartitionsTopicResult",
                name=wanted.name,
                error_code=code,
                error_message=message,
            )
        )
    return codec.make(
        module, "CreatePartitionsResponse", throttle_time=NO_THROTTLE, results=tuple(results)
    )


def handle_describe_cluster(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(60, header.api_version, True)
    host, port = broker.config.advertised
    return codec.make(
        module,
        "DescribeClusterResponse",
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        error_message=None,
        endpoint_type=1,
        cluster_id=broker.cluster_id,
        controller_id=broker.node_id,
        brokers=(
            codec.make(
                module,
                "DescribeClusterBroker",
                broker_id=broker.node_id,
                host=host,
                port=port,
                rack=None,
                is_fenced=False,
            ),
        ),
        cluster_authorized_operations=authorized_operations(
            ResourceType.CLUSTER, request.include_cluster_authorized_operations
        ),
    )
