"""Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DescribeCluster."""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

from nerve.broker.authorization import ResourceType, authorized_operations
from nerve.broker.errors import ApiError, ErrorCode
from nerve.broker.handlers.configs import config_source
from nerve.broker.handlers.metadata import NO_THROTTLE, ZERO_UUID
from nerve.broker.topic_configs import DESCRIBED
from nerve.broker.topics import NewTopic, Topic
from nerve.protocol import codec

if TYPE_CHECKING:
    from nerve.broker.server import Broker


def handle_create_topics(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    """Check every topic at once (Kafka's limits apply to the whole request), then make the
    valid ones off the event loop; the answer waits until they are on disk."""
    module = codec.schema_module(19, header.api_version, True)
    limit = broker.config.max_partitions_per_request
    names = [wanted.name for wanted in request.topics]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    asked = sum(_partitions_asked(broker, wanted) for wanted in request.topics)
    checked: list[NewTopic | ApiError] = []
    for wanted in request.topics:
        try:
            if wanted.name in duplicates:
                raise ApiError(
                    ErrorCode.invalid_request,
                    f"Create topics request from client `{header.client_id}` contains multiple "
                    f"entries for the following topics: {', '.join(duplicates)}",
                )
            if asked > limit:
                raise ApiError(
                    ErrorCode.policy_violation,
                    "Excessively large number of partitions per request.",
                )
            checked.append(_check_topic(broker, wanted))
        except ApiError as exc:
            checked.append(exc)
    valid = [c for c in checked if isinstance(c, NewTopic)]
    # Kafka's controller writes one record per topic, partition and config, at most 10,000
    # (our limit) per request: past that, nothing of the request is made.
    if sum(1 + new.partitions + len(new.configs) for new in valid) > limit:
        refused = ApiError(
            ErrorCode.policy_violation, "Unable to perform excessively large batch operation."
        )
        checked = [refused if isinstance(c, NewTopic) else c for c in checked]
        valid = []
    if request.validate_only or not valid:
        return _create_topics_response(module, broker, request, checked, {})
    return _create_and_answer(module, broker, request, checked, valid)


async def _create_and_answer(
    module: ModuleType,
    broker: Broker,
    request: Any,
    checked: list[NewTopic | ApiError],
    valid: list[NewTopic],
) -> Any:
    made = await broker.topics.create_many(valid)
    return _create_topics_response(
        module, broker, request, checked, {new.name: m for new, m in zip(valid, made, strict=True)}
    )


def _partitions_asked(broker: Broker, wanted: Any) -> int:
    if wanted.assignments:
        return len(wanted.assignments)
    if wanted.num_partitions == -1:
        return broker.config.num_partitions
    return max(wanted.num_partitions, 0)


def _check_topic(broker: Broker, wanted: Any) -> NewTopic:
    num_partitions = wanted.num_partitions
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
    configs = {c.name: c.value for c in wanted.configs}
    return broker.topics.check_new(wanted.name, num_partitions, wanted.replication_factor, configs)


def _create_topics_response(
    module: ModuleType,
    broker: Broker,
    request: Any,
    checked: list[NewTopic | ApiError],
    made: dict[str, Topic | ApiError],
) -> Any:
    results = []
    for wanted, outcome in zip(request.topics, checked, strict=True):
        code, message = ErrorCode.none, None
        topic: Topic | None = None
        result = made.get(wanted.name, outcome) if isinstance(outcome, NewTopic) else outcome
        if isinstance(result, ApiError):
            code, message = result.code, result.message
        elif isinstance(result, Topic):
            topic = result
        overrides = (
            topic.configs
            if topic is not None
            else outcome.configs
            if isinstance(outcome, NewTopic)
            else {}
        )
        effective = (
            {n: broker.topics.effective_configs(overrides)[n] for n in DESCRIBED}
            if code == ErrorCode.none
            else {}
        )
        num_partitions = outcome.partitions if isinstance(outcome, NewTopic) else -1
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
    return _delete_topics(broker, header, request)


async def _delete_topics(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
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
                deleted = await broker.topics.delete_async(name or "")
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
    limit = broker.config.max_partitions_per_request
    checked: list[tuple[str, ApiError | None]] = []
    added = 0
    for wanted in request.topics:
        try:
            for assignment in wanted.assignments or ():
                if tuple(assignment.broker_ids) != (broker.node_id,):
                    raise ApiError(
                        ErrorCode.invalid_replica_assignment,
                        f"new partitions are assigned to brokers {list(assignment.broker_ids)}; "
                        f"this cluster has broker {broker.node_id} only",
                    )
            topic = broker.topics.check_add_partitions(wanted.name, wanted.count)
            added += wanted.count - len(topic.partitions)
            checked.append((wanted.name, None))
        except ApiError as exc:
            checked.append((wanted.name, exc))
    if added > limit:
        refused = ApiError(
            ErrorCode.policy_violation,
            "Excessively large number of additional partitions per request.",
        )
        checked = [(name, error or refused) for name, error in checked]
    if request.validate_only or all(error is not None for _, error in checked):
        return _create_partitions_response(module, checked)
    return _add_and_answer(module, broker, request, checked)


async def _add_and_answer(
    module: ModuleType, broker: Broker, request: Any, checked: list[tuple[str, ApiError | None]]
) -> Any:
    done: list[tuple[str, ApiError | None]] = []
    for wanted, (name, error) in zip(request.topics, checked, strict=True):
        if error is None:
            try:
                await broker.topics.add_partitions_async(name, wanted.count)
            except ApiError as exc:
                error = exc
        done.append((name, error))
    return _create_partitions_response(module, done)


def _create_partitions_response(
    module: ModuleType, results: list[tuple[str, ApiError | None]]
) -> Any:
    return codec.make(
        module,
        "CreatePartitionsResponse",
        throttle_time=NO_THROTTLE,
        results=tuple(
            codec.make(
                module,
                "CreatePartitionsTopicResult",
                name=name,
                error_code=error.code if error else ErrorCode.none,
                error_message=error.message if error else None,
            )
            for name, error in results
        ),
    )


def handle_describe_cluster(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(60, header.api_version, True)
    host, port = broker.advertised
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
