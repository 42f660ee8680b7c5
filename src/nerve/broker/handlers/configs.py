"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs: topics, the broker, its loggers,
groups (Kafka 4's group configs) and client-metrics subscriptions, answered as Kafka 4.4 does
(names, values, sources, synonyms, types and error texts). The definitions are Kafka's
(``config_defs``); topic rules are in ``topic_configs``, runtime-changed ones in
``dynamic_configs``."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nerve.broker import topic_configs
from nerve.broker.config_defs import (
    BROKER_CONFIGS,
    CLIENT_METRICS_CONFIGS,
    GROUP_CONFIGS,
    TOPIC_CONFIGS,
    ConfigDef,
    ConfigType,
)
from nerve.broker.dynamic_configs import RUNTIME_BROKER_CONFIGS
from nerve.broker.errors import ApiError, ErrorCode
from nerve.broker.handlers.metadata import NO_THROTTLE
from nerve.broker.topic_configs import (
    DEFAULT_CONFIG,
    TOPIC_CONFIG,
    BrokerLevels,
    Synonyms,
)
from nerve.protocol import codec

if TYPE_CHECKING:
    from nerve.broker.server import Broker

# ConfigResource.Type ids.
RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4
RESOURCE_BROKER_LOGGER = 8
RESOURCE_CLIENT_METRICS = 16
RESOURCE_GROUP = 32

# ConfigSource values beyond the topic and broker ones.
DYNAMIC_BROKER_LOGGER_CONFIG = 6
CLIENT_METRICS_CONFIG = 7
GROUP_CONFIG = 8

OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT = 0, 1, 2, 3
_OP_NAMES = {OP_SET: "SET", OP_DELETE: "DELETE", OP_APPEND: "APPEND", OP_SUBTRACT: "SUBTRACT"}

# Kafka's log4j levels, and the Python level each maps to (FATAL and TRACE have none).
_LOG_LEVELS = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "FATAL": logging.CRITICAL,
}
_LEVEL_NAMES = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARN",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "FATAL",
}
# Group configs whose broker-level default has another name than group.<name>.
_GROUP_SYNONYMS = {"streams.assignor.name": "group.streams.assignors"}


@dataclass(frozen=True)
class Entry:
    """One described config, independent of the DescribeConfigs version."""

    name: str
    value: str | None
    source: int
    synonyms: tuple[Synonyms, ...] = ()
    config_type: int = 0
    read_only: bool = False
    sensitive: bool = False


def config_source(broker: Broker, name: str, overrides: Mapping[str, str]) -> int:
    """The ConfigSource of a topic config (CreateTopics reports it per config)."""
    if name in overrides:
        return TOPIC_CONFIG
    (described,) = topic_configs.describe(overrides, broker.config.levels, (name,))
    return described.source


# -- describing -----------------------------------------------------------------------------


def _topic_entries(broker: Broker, name: str) -> list[Entry]:
    topic = broker.topics.get(name)
    if topic is None:
        raise ApiError(ErrorCode.unknown_topic_or_partition, f"The topic '{name}' does not exist.")
    return [
        Entry(d.name, d.value, d.source, d.synonyms, d.definition.type)
        for d in topic_configs.describe(topic.configs, broker.config.levels)
    ]


def _broker_static(broker: Broker) -> dict[str, str]:
    """What nerve was started with, as Kafka's server.properties would say it: settings given
    with --config, and nerve's own values where they differ from Kafka's defaults."""
    out = dict(broker.config.static_settings)
    for name, value in broker.config.nerve_values().items():
        definition = BROKER_CONFIGS.get(name)
        if name not in out and (definition is None or definition.default != value):
            out[name] = value
    return out


def _broker_entries(broker: Broker, resource_name: str) -> list[Entry]:
    level = broker.dynamic_configs.broker_level(resource_name)
    config = broker.config
    names: Iterable[str]
    if resource_name == "":
        # The cluster-wide dynamic defaults alone, as Kafka lists them.
        names = sorted(level)
        levels = BrokerLevels({}, config.dynamic_default, {})
    else:
        own = sorted(set(config.nerve_values()) - set(BROKER_CONFIGS))  # log.fsync.policy
        names = [n for n, d in sorted(BROKER_CONFIGS.items()) if not d.internal] + own
        levels = BrokerLevels(config.dynamic_broker, config.dynamic_default, _broker_static(broker))
    out = []
    for name in names:
        definition = BROKER_CONFIGS.get(name) or ConfigDef(
            name, ConfigType.STRING, None, None, False
        )
        synonyms = topic_configs.broker_synonyms(name, levels)
        if resource_name == "":
            synonyms = [s for s in synonyms if s.source != DEFAULT_CONFIG]
        value = synonyms[0].value if synonyms else None
        source = synonyms[0].source if synonyms else DEFAULT_CONFIG
        if definition.sensitive:
            value = None
            synonyms = [Synonyms(s.name, None, s.source) for s in synonyms]
        out.append(
            Entry(
                name,
                value,
                source,
                tuple(synonyms),
                definition.type,
                read_only=name not in RUNTIME_BROKER_CONFIGS,
                sensitive=definition.sensitive,
            )
        )
    return out


def _logger_entries(broker: Broker, resource_name: str) -> list[Entry]:
    broker.dynamic_configs.broker_level(resource_name or str(broker.node_id))
    ours = (n for n in logging.root.manager.loggerDict if n == "nerve" or n.startswith("nerve."))
    names = ["root", *sorted(ours)]
    out = []
    for name in names:
        logger = logging.getLogger() if name == "root" else logging.getLogger(name)
        level = _LEVEL_NAMES.get(logger.getEffectiveLevel(), "INFO")
        out.append(Entry(name, level, DYNAMIC_BROKER_LOGGER_CONFIG))
    return out


def _group_entries(broker: Broker, group_id: str) -> list[Entry]:
    overrides = broker.dynamic_configs.groups.get(group_id, {})
    out = []
    for name, definition in sorted(GROUP_CONFIGS.items()):
        if definition.internal:
            continue
        broker_name = _GROUP_SYNONYMS.get(name, f"group.{name}")
        if broker_name not in BROKER_CONFIGS:
            broker_name = name
        default = broker.dynamic_configs.broker_value(broker_name)
        if default is None or broker_name == name:
            default = definition.default
        if name in _GROUP_SYNONYMS and default:
            default = default.split(",")[0]
        synonyms = [Synonyms(broker_name, default, DEFAULT_CONFIG)]
        if name in overrides:
            synonyms.insert(0, Synonyms(name, overrides[name], GROUP_CONFIG))
        value, source = synonyms[0].value, synonyms[0].source
        out.append(Entry(name, value, source, tuple(synonyms), definition.type))
    return out


def _client_metrics_entries(broker: Broker, name: str) -> list[Entry]:
    overrides = broker.dynamic_configs.client_metrics.get(name, {})
    out = []
    for config, definition in sorted(CLIENT_METRICS_CONFIGS.items()):
        if config in overrides:
            value = overrides[config]
            out.append(
                Entry(
                    config,
                    value,
                    CLIENT_METRICS_CONFIG,
                    (Synonyms(config, value, CLIENT_METRICS_CONFIG),),
                    definition.type,
                )
            )
        else:
            out.append(Entry(config, definition.default, DEFAULT_CONFIG, (), definition.type))
    return out


_DESCRIBERS = {
    RESOURCE_TOPIC: _topic_entries,
    RESOURCE_BROKER: _broker_entries,
    RESOURCE_BROKER_LOGGER: _logger_entries,
    RESOURCE_GROUP: _group_entries,
    RESOURCE_CLIENT_METRICS: _client_metrics_entries,
}


def handle_describe_configs(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(32, header.api_version, True)
    include_synonyms = getattr(request, "include_synonyms", False)
    results = []
    for resource in request.resources:
        code, message, configs = ErrorCode.none, None, ()
        try:
            describer = _DESCRIBERS.get(resource.resource_type)
            if describer is None:
                raise ApiError(
                    ErrorCode.invalid_request,
                    f"Unsupported resource type: {resource.resource_type}",
                )
            keys = resource.configuration_keys
            configs = tuple(
                codec.make(
                    module,
                    "DescribeConfigsResourceResult",
                    name=e.name,
                    value=e.value,
                    read_only=e.read_only,
                    config_source=e.source,
                    is_sensitive=e.sensitive,
                    synonyms=tuple(
                        codec.make(
                            module, "DescribeConfigsSynonym", name=s.name, value=s.value,
                            source=s.source,
                        )
                        for s in e.synonyms
                    ) if include_synonyms else (),
                    config_type=e.config_type,
                    documentation=None,
                )
                for e in describer(broker, resource.resource_name)
                if keys is None or e.name in keys
            )  # fmt: skip
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


# -- altering -------------------------------------------------------------------------------


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


def _current(broker: Broker, resource: Any) -> dict[str, str]:
    """The settings a resource has of its own (what AlterConfigs replaces)."""
    kind, name = resource.resource_type, resource.resource_name
    if kind == RESOURCE_TOPIC:
        topic = broker.topics.get(name)
        if topic is None:
            raise ApiError(
                ErrorCode.unknown_topic_or_partition, f"The topic '{name}' does not exist."
            )
        return dict(topic.configs)
    if kind == RESOURCE_BROKER:
        return dict(broker.dynamic_configs.broker_level(name, altering=True))
    if kind == RESOURCE_GROUP:
        return dict(broker.dynamic_configs.groups.get(name, {}))
    if kind == RESOURCE_CLIENT_METRICS:
        return dict(broker.dynamic_configs.client_metrics.get(name, {}))
    raise ApiError(ErrorCode.invalid_request, f"Unsupported resource type: {kind}")


def _store(broker: Broker, resource: Any, configs: dict[str, str], validate_only: bool) -> None:
    """Check ``configs`` as the resource's complete set of its own settings, then keep it."""
    kind, name = resource.resource_type, resource.resource_name
    dynamic = broker.dynamic_configs
    if kind == RESOURCE_TOPIC:
        broker.topics.set_configs(name, configs, validate_only)
        return
    if kind == RESOURCE_BROKER:
        level = dynamic.broker_level(name, altering=True)
        changes: dict[str, str | None] = {n: None for n in level if n not in configs}
        changes.update(configs)
        checked = dynamic.check_broker(changes)
        if not validate_only:
            dynamic.set_broker(level, checked)
            broker.topics.refresh_log_configs()
        return
    if kind == RESOURCE_GROUP:
        if not name:
            raise ApiError(ErrorCode.invalid_request, "A group config needs a group id")
        checked_group = {k: v for k, v in dynamic.check_group(configs).items() if v is not None}
        if not validate_only:
            dynamic.set_group(name, checked_group)
        return
    if kind == RESOURCE_CLIENT_METRICS:
        if not name:
            raise ApiError(ErrorCode.invalid_request, "Subscription name can't be empty")
        checked_metrics = {
            k: v for k, v in dynamic.check_client_metrics(configs).items() if v is not None
        }
        if not validate_only:
            dynamic.set_client_metrics(name, checked_metrics)
        return
    raise ApiError(ErrorCode.invalid_request, f"Unsupported resource type: {kind}")


def handle_alter_configs(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    """AlterConfigs replaces the whole set of a resource's own settings."""
    module = codec.schema_module(33, header.api_version, True)
    results = []
    for resource in request.resources:
        code, message = ErrorCode.none, None
        try:
            if resource.resource_type == RESOURCE_BROKER_LOGGER:
                raise ApiError(
                    ErrorCode.invalid_request,
                    "AlterConfigs does not support BROKER_LOGGER; use IncrementalAlterConfigs",
                )
            _current(broker, resource)
            configs = {c.name: c.value for c in resource.configs}
            if any(v is None for v in configs.values()) and (
                resource.resource_type == RESOURCE_TOPIC
            ):
                nulls = [n for n, v in configs.items() if v is None]
                raise ApiError(
                    ErrorCode.invalid_request,
                    f"Null value not supported for topic configs: {','.join(nulls)}",
                )
            kept = {n: v for n, v in configs.items() if v is not None}
            _store(broker, resource, kept, request.validate_only)
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
            if resource.resource_type == RESOURCE_BROKER_LOGGER:
                _alter_loggers(broker, resource, request.validate_only)
            else:
                configs = _current(broker, resource)
                definitions = _definitions(resource.resource_type)
                for change in resource.configs:
                    _apply(broker, resource, configs, definitions, change)
                _store(broker, resource, configs, request.validate_only)
        except ApiError as exc:
            code, message = exc.code, exc.message
        results.append((resource, code, message))
    return _alter_response(module, results, "IncrementalAlterConfigsResponse")


def _definitions(kind: int) -> Mapping[str, ConfigDef]:
    return {
        RESOURCE_TOPIC: TOPIC_CONFIGS,
        RESOURCE_BROKER: BROKER_CONFIGS,
        RESOURCE_GROUP: GROUP_CONFIGS,
        RESOURCE_CLIENT_METRICS: CLIENT_METRICS_CONFIGS,
    }[kind]


def _apply(
    broker: Broker,
    resource: Any,
    configs: dict[str, str],
    definitions: Mapping[str, ConfigDef],
    change: Any,
) -> None:
    name, op, value = change.name, change.config_operation, change.value
    if resource.resource_type == RESOURCE_TOPIC and name not in TOPIC_CONFIGS:
        raise ApiError(ErrorCode.invalid_config, f"Unknown topic config name: {name}")
    if op == OP_SET:
        if value is None:
            raise ApiError(ErrorCode.invalid_request, f"Null value not supported for : {name}")
        configs[name] = value
    elif op == OP_DELETE:
        configs.pop(name, None)
    elif op in (OP_APPEND, OP_SUBTRACT):
        definition = definitions.get(name)
        if definition is None or definition.type != ConfigType.LIST:
            raise ApiError(
                ErrorCode.invalid_config,
                f"Config value {_OP_NAMES[op].lower()} is not allowed for config key: {name}",
            )
        if name in configs:
            current = configs[name]
        elif resource.resource_type == RESOURCE_TOPIC:
            current = broker.topics.effective_configs({})[name]
        else:
            current = definition.default or ""
        items = [v for v in (s.strip() for s in current.split(",")) if v]
        given = [v.strip() for v in (value or "").split(",") if v.strip()]
        if op == OP_APPEND:
            items += [v for v in given if v not in items]
        else:
            items = [v for v in items if v not in given]
        configs[name] = ",".join(items)
    else:
        raise ApiError(ErrorCode.invalid_request, f"Unknown alter configs operation {op}")


def _alter_loggers(broker: Broker, resource: Any, validate_only: bool) -> None:
    """Change the level of nerve's loggers at runtime, as Kafka does with log4j's."""
    broker.dynamic_configs.broker_level(resource.resource_name)
    changes: list[tuple[logging.Logger, int | None]] = []
    for change in resource.configs:
        name, op, value = change.name, change.config_operation, change.value
        known = name == "root" or name in logging.root.manager.loggerDict
        if not known:
            raise ApiError(ErrorCode.invalid_config, f"Logger {name} does not exist!")
        logger = logging.getLogger() if name == "root" else logging.getLogger(name)
        if op == OP_SET:
            if value not in _LOG_LEVELS:
                raise ApiError(
                    ErrorCode.invalid_config,
                    f"Cannot set the log level of {name} to {value} as it is not a supported "
                    "log level. Valid log levels are DEBUG, ERROR, FATAL, INFO, TRACE, WARN",
                )
            changes.append((logger, _LOG_LEVELS[value]))
        elif op == OP_DELETE:
            if name == "root":
                raise ApiError(ErrorCode.invalid_config, "Removing the log level of the root "
                               "logger is not allowed")  # fmt: skip
            changes.append((logger, None))
        else:
            raise ApiError(
                ErrorCode.invalid_request,
                f"{_OP_NAMES.get(op, op)} operation is not allowed for the BROKER_LOGGER resource",
            )
    if validate_only:
        return
    for logger, level in changes:
        logger.setLevel(logging.NOTSET if level is None else level)
        logging.getLogger("nerve.broker").info(
            "log level of %s set to %s", logger.name, _LEVEL_NAMES.get(level or 0, "inherited")
        )


__all__ = [
    "config_source",
    "handle_alter_configs",
    "handle_describe_configs",
    "handle_incremental_alter_configs",
]


def handle_list_config_resources(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    """ListConfigResources (kafka-configs and kafka-client-metrics --list): the resources
    that have configs; v0 lists client-metrics subscriptions only, v1 the types asked for
    (all when none is named)."""
    module = codec.schema_module(74, header.api_version, True)
    kinds = set(getattr(request, "resource_types", ()) or ())
    if header.api_version == 0:
        kinds = {RESOURCE_CLIENT_METRICS}
    dynamic = broker.dynamic_configs
    found: list[tuple[str, int]] = []
    if not kinds or RESOURCE_BROKER_LOGGER in kinds:
        found.append((str(broker.node_id), RESOURCE_BROKER_LOGGER))
    if not kinds or RESOURCE_BROKER in kinds:
        found.append((str(broker.node_id), RESOURCE_BROKER))
    if not kinds or RESOURCE_TOPIC in kinds:
        found += [(name, RESOURCE_TOPIC) for name in sorted(broker.topics.topics)]
    if not kinds or RESOURCE_CLIENT_METRICS in kinds:
        found += [(name, RESOURCE_CLIENT_METRICS) for name in sorted(dynamic.client_metrics)]
    if not kinds or RESOURCE_GROUP in kinds:
        found += [(name, RESOURCE_GROUP) for name in sorted(dynamic.groups)]
    unsupported = kinds - set(_DESCRIBERS)
    return codec.make(
        module,
        "ListConfigResourcesResponse",
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.unsupported_version if unsupported else ErrorCode.none,
        config_resources=()
        if unsupported
        else tuple(
            codec.make(module, "ConfigResource", resource_name=n, resource_type=t) for n, t in found
        ),
    )
