"""DescribeClientQuotas and AlterClientQuotas: quotas per user, client id or IP, validated and
kept as Kafka keeps them (``<data-dir>/meta/configs.json``) and described back to admin tools
(kafka-configs, Admin.describeClientQuotas). nerve does not throttle: one developer's broker
has no tenants to keep apart, which docs/configuration.md says."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nerve.broker.errors import ApiError, ErrorCode
from nerve.broker.handlers.metadata import NO_THROTTLE
from nerve.protocol import codec

if TYPE_CHECKING:
    from nerve.broker.server import Broker

Entity = tuple[tuple[str, str | None], ...]

# Kafka's quota keys per entity kind, and whether their values are whole numbers.
_CLIENT_KEYS = {
    "producer_byte_rate": True,
    "consumer_byte_rate": True,
    "request_percentage": False,
    "controller_mutation_rate": False,
}
_IP_KEYS = {"connection_creation_rate": True}
_MATCH_EXACT, _MATCH_DEFAULT, _MATCH_SPECIFIED = 0, 1, 2


def _entity(data: Any) -> Entity:
    entity: dict[str, str | None] = {}
    for part in data:
        if part.entity_type in entity:
            raise ApiError(ErrorCode.invalid_request, f"Duplicate entity type {part.entity_type}")
        entity[part.entity_type] = part.entity_name
    if not entity:
        raise ApiError(ErrorCode.invalid_request, "Invalid empty client quota entity")
    unknown = set(entity) - {"user", "client-id", "ip"}
    if unknown:
        raise ApiError(
            ErrorCode.invalid_request, f"Unhandled client quota entity type: {sorted(unknown)[0]}"
        )
    if "ip" in entity and len(entity) > 1:
        raise ApiError(
            ErrorCode.invalid_request, "Invalid quota entity combination, IP entity should "
            "not be combined with User or ClientId"
        )  # fmt: skip
    return tuple(sorted(entity.items()))


def handle_alter_client_quotas(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(49, header.api_version, True)
    dynamic = broker.dynamic_configs
    # One answer per entity, as Kafka keys them: a repeated entity's answer is the refusal.
    answers: dict[Entity | int, tuple[Any, ErrorCode, str | None]] = {}
    for position, entry in enumerate(request.entries):
        code, message = ErrorCode.none, None
        key: Entity | int = position
        try:
            entity = _entity(entry.entity)
            key = entity
            if entity in answers:
                names = ", ".join(f"{t}={n}" for t, n in entity)
                raise ApiError(
                    ErrorCode.invalid_request,
                    f"Ignoring duplicate entity ClientQuotaEntity(entries={{{names}}})",
                )
            keys = _IP_KEYS if entity[0][0] == "ip" else _CLIENT_KEYS
            values = dict(dynamic.quotas.get(entity, {}))
            for op in entry.ops:
                if op.key not in keys:
                    raise ApiError(ErrorCode.invalid_request, f"Invalid configuration key {op.key}")
                if op.remove:
                    values.pop(op.key, None)
                    continue
                value = float(op.value)
                if value <= 0:
                    raise ApiError(
                        ErrorCode.invalid_request, f"Quota {op.key} must be greater than 0"
                    )
                if keys[op.key] and not value.is_integer():
                    raise ApiError(
                        ErrorCode.invalid_request, f"{op.key} cannot be a fractional value."
                    )
                values[op.key] = value
            if not request.validate_only:
                dynamic.set_quotas(entity, values)
        except ApiError as exc:
            code, message = exc.code, exc.message
        answers[key] = (entry, code, message)
    results = [
        codec.make(
            module,
            "EntryData",
            error_code=code,
            error_message=message,
            entity=tuple(
                codec.make(
                    module, "EntityData", entity_type=p.entity_type, entity_name=p.entity_name
                )
                for p in entry.entity
            ),
        )
        for entry, code, message in answers.values()
    ]
    return codec.make(
        module, "AlterClientQuotasResponse", throttle_time=NO_THROTTLE, entries=tuple(results)
    )


def _matches(entity: Entity, components: Any, strict: bool) -> bool:
    names = dict(entity)
    for component in components:
        if component.entity_type not in names:
            return False
        name = names[component.entity_type]
        if component.match_type == _MATCH_EXACT and name != component.match:
            return False
        if component.match_type == _MATCH_DEFAULT and name is not None:
            return False
        if component.match_type == _MATCH_SPECIFIED and name is None:
            return False
    return not strict or {c.entity_type for c in components} == set(names)


def handle_describe_client_quotas(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(48, header.api_version, True)
    entries = [
        codec.make(
            module,
            "EntryData",
            entity=tuple(
                codec.make(module, "EntityData", entity_type=t, entity_name=n) for t, n in entity
            ),
            values=tuple(
                codec.make(module, "ValueData", key=k, value=v) for k, v in sorted(values.items())
            ),
        )
        for entity, values in sorted(broker.dynamic_configs.quotas.items(), key=repr)
        if _matches(entity, request.components, request.strict)
    ]
    return codec.make(
        module,
        "DescribeClientQuotasResponse",
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        error_message="",
        entries=tuple(entries),
    )
