"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics (and broker reads)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nerve.broker.config import TOPIC_TO_BROKER_CONFIG
from nerve.broker.errors import ApiError, ErrorCode
from nerve.broker.handlers.metadata import NO_THROTTLE
from nerve.broker.log.config import TOPIC_CONFIG_DEFAULTS
from nerve.protocol import codec

if TYPE_CHECKING:
    from nerve.broker.server import Broker

RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4

# Kafka's ConfigSource values.
DYNAMIC_TOPIC_CONFIG = 1
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5

# Kafka's ConfigType values, by config name (LONG unless listed).
_CONFIG_TYPES = {
    "cleanup.policy": 7,  # LIST
    "message.timestamp.type": 2,  # STRING
    "segment.bytes": 3,  # INT
    "max.message.bytes": 3,
    "index.interval.bytes": 3,
    "log.fsync.policy": 2,
    "auto.create.topics.enable": 1,  # BOOLEAN
}
_LONG = 5

OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT = 0, 1, 2, 3


def config_source(broker: Broker, name: str, overrides: Mapping[str, str]) -> int:
    if name in overrides:
        return DYNAMIC_TOPIC_CONFIG
    if name in broker.config.topic_defaults:
        return STATIC_BROKER_CONFIG
    return DEFAULT_CONFIG


def _synonyms(broker: Broker, module: Any, name: str, overrides: Mapping[str, str]) -> tuple:
    out = []
    if name in overrides:
        out.append((name, overrides[name], DYNAMIC_TOPIC_CONFIG))
    broker_name = TOPIC_TO_BROKER_CONFIG.get(name)
    if broker_name is not None:
        if name in broker.config.topic_defaults:
            out.append((broker_name, broker.config.topic_defaults[name], STATIC_BROKER_CONFIG))
        out.append((broker_name, TOPIC_CONFIG_DEFAULTS.get(name, ""), DEFAULT_CONFIG))
    return tuple(
        codec.make(module, "DescribeConfigsSynonym", name=n, value=v, source=s) for n, v, s in out
    )


def _describe_topic(broker: Broker, module: Any, resource: Any, include_synonyms: bool) -> tuple:
    topic = broker.topics.get(resource.resource_name)
    if topic is None:
        raise ApiError(
            ErrorCode.unknown_topic_or_partition, f"unknown topic {resource.resource_name!r}"
        )
    effective = broker.topics.effective_configs(topic.configs)
    keys = resource.configuration_keys
    return tuple(
        codec.make(
            module,
            "DescribeConfigsResourceResult",
            name=name,
            value=value,
            read_only=False,
            config_source=config_source(broker, name, topic.configs),
            is_sensitive=False,
            synonyms=_synonyms(broker, module, name, topic.configs) if include_synonyms else (),
            config_type=_CONFIG_TYPES.get(name, _LONG),
            documentation=None,
        )
        for name, value in sorted(effective.items())
        if keys is None or name in keys
    )


def _describe_broker(broker: Broker, module: Any, resource: Any) -> tuple:
    if resource.resource_name not in ("", str(broker.node_id)):
        raise ApiError(ErrorCode.invalid_request, f"unknown broker {resource.resource_name!r}")
    keys = resource.configuration_keys
    return tuple(
        codec.make(
            module,
            "DescribeConfigsResourceResult",
            name=name,
            value=value,
            read_only=True,
            config_source=STATIC_BROKER_CONFIG,
            is_sensitive=False,
            synonyms=(),
            config_type=_CONFIG_TYPES.get(name, _LONG),
            documentation=None,
        )
        for name, value in sorted(broker.config.broker_configs().items())
        if keys is None or name in keys
    )


def handle_describe_configs(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(32, header.api_version, True)
    include_synonyms = getattr(request, "include_synonyms", False)
    results = []
    for resource in request.resources:
        code, message, configs = ErrorCode.none, None, ()
        try:
            if resource.resource_type == RESOURCE_TOPIC:
                configs = _describe_topic(broker, module, resource, include_synonyms)
            elif resource.resource_type == RESOURCE_BROKER:
                configs = _describe_broker(broker, module, resource)
            else:
                raise ApiError(
                    ErrorCode.invalid_request,
                    f"resource type {resource.resource_type} is not described by nerve",
                )
        except ApiError as exc:
            code, message = exc.code, exc.message
        results.append(
            codec.make(
                module,
                "DescribeConfigsResult",
                error_code=code,
                error_message=message,
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
                configs=configs,
            )
        )
    return codec.make(
        module, "DescribeConfigsResponse", throttle_time=NO_THROTTLE, results=tuple(results)
    )


def _check_topic_resource(broker: Broker, resource: Any) -> None:
    if resource.resource_type == RESOURCE_BROKER:
        raise ApiError(
            ErrorCode.invalid_request,
            "nerve does not change broker configs at runtime; restart it with --config",
        )
    if resource.resource_type != RESOURCE_TOPIC:
        raise ApiError(
            ErrorCode.invalid_request, f"resource type {resource.resource_type} is not supported"
        )


def _alter_response(module: Any, results: list[tuple[Any, ErrorCode, str | None]], name: str):
    return codec.make(
        module,
        name,
        throttle_time=NO_THROTTLE,
        responses=tuple(
            codec.make(
                module,
                "AlterConfigsResourceResponse",
                error_code=code,
                error_message=message,
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
            )
            for resource, code, message in results
        ),
    )


def handle_alter_configs(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    """AlterConfigs replaces the whole set of a topic's overrides."""
    module = codec.schema_module(33, header.api_version, True)
    results = []
    for resource in request.resources:
        code, message = ErrorCode.none, None
        try:
            _check_topic_resource(broker, resource)
            configs = {c.name: c.value for c in resource.configs if c.value is not None}
            broker.topics.set_configs(resource.resource_name, configs, request.validate_only)
        except ApiError as exc:
            code, message = exc.code, exc.message
        results.append((resource, code, message))
    return _alter_response(module, results, "AlterConfigsResponse")


def handle_incremental_alter_configs(
    broker: Broker, header: codec.RequestHeader, request: Any
) -> Any:
    """IncrementalAlterConfigs changes only the named configs (set, delete, append, subtract)."""
    module = codec.schema_module(44, header.api_version, True)
    results = []
    for resource in request.resources:
        code, message = ErrorCode.none, None
        try:
            _check_topic_resource(broker, resource)
            topic = broker.topics.get(resource.resource_name)
            if topic is None:
                raise ApiError(
                    ErrorCode.unknown_topic_or_partition,
                    f"unknown topic {resource.resource_name!r}",
                )
            configs = dict(topic.configs)
            effective = broker.topics.effective_configs(configs)
            for change in resource.configs:
                _apply(configs, effective, change)
            broker.topics.set_configs(resource.resource_name, configs, request.validate_only)
        except ApiError as exc:
            code, message = exc.code, exc.message
        results.append((resource, code, message))
    return _alter_response(module, results, "IncrementalAlterConfigsResponse")


def _apply(configs: dict[str, str], effective: Mapping[str, str], change: Any) -> None:
    name, op, value = change.name, change.config_operation, change.value
    if name not in TOPIC_CONFIG_DEFAULTS:
        raise ApiError(ErrorCode.invalid_config, f"unknown topic config {name!r}")
    if op == OP_SET:
        if value is None:
            raise ApiError(ErrorCode.invalid_config, f"no value given to set {name}")
        configs[name] = value
    elif op == OP_DELETE:
        configs.pop(name, None)
    elif op in (OP_APPEND, OP_SUBTRACT):
        if _CONFIG_TYPES.get(name) != 7:
            raise ApiError(
                ErrorCode.invalid_config, f"{name} is not a list; it cannot be appended to"
            )
        items = [v for v in effective.get(name, "").split(",") if v]
        given = [v.strip() for v in (value or "").split(",") if v.strip()]
        if op == OP_APPEND:
            items += [v for v in given if v not in items]
        else:
            items = [v for v in items if v not in given]
        configs[name] = ",".join(items)
    else:
        raise ApiError(ErrorCode.invalid_request, f"unknown config operation {op}")
