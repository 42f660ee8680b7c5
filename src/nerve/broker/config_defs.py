"""Kafka's config definitions: every topic, broker, group and client-metrics config, with its
type, default and validator, and values parsed and checked the way Kafka's ConfigDef does, error
texts included (clients and operators see the same message on nerve as on Kafka).

The definitions come from ``kafka_configs.json`` beside this file, which
``scripts/kafka-configs/generate`` dumps from Apache Kafka's own jars; nothing here is typed in
by hand except the messages of Kafka's validators, which the differential tests compare.
"""

from __future__ import annotations

import decimal
import enum
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

INT32 = (-(1 << 31), (1 << 31) - 1)
INT64 = (-(1 << 63), (1 << 63) - 1)
INT16 = (-(1 << 15), (1 << 15) - 1)
_INTEGER = re.compile(r"[+-]?[0-9]+")
_REPLICA = re.compile(r"[0-9]+:[0-9]+")


class ConfigType(enum.IntEnum):
    """ConfigDef.Type, numbered as DescribeConfigs v3+ reports it."""

    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


class ConfigValueError(ValueError):
    """A value Kafka would refuse; the message is Kafka's."""


@dataclass(frozen=True)
class Synonym:
    """A broker config that sets a topic config's default (``unit``: how it converts to ms)."""

    name: str
    unit: str  # none | hours | minutes


@dataclass(frozen=True)
class ConfigDef:
    name: str
    type: ConfigType
    default: str | None  # as DescribeConfigs shows it; None: no default
    validator: Mapping[str, Any] | None
    internal: bool
    synonyms: tuple[Synonym, ...] = ()
    update_mode: str = "read-only"  # brokers: read-only | per-broker | cluster-wide
    sensitive: bool = False

    def parse(self, raw: str) -> Any:
        """The typed value of ``raw``; raises ConfigValueError with Kafka's message."""
        value = _parse_type(self.name, self.type, raw)
        if self.validator is not None:
            _validate(self.name, self.validator, value)
        return value

    def normalize(self, raw: str) -> str:
        """``raw`` as Kafka describes it once parsed (trimmed, lists joined by commas)."""
        return to_string(self.parse(raw), self.type)


def _invalid(name: str, value: object, message: str | None) -> ConfigValueError:
    shown = java_string(value)
    text = f"Invalid value {shown} for configuration {name}"
    return ConfigValueError(f"{text}: {message}" if message else text)


def _parse_type(name: str, kind: ConfigType, raw: str) -> Any:
    trimmed = raw.strip()
    if kind == ConfigType.BOOLEAN:
        if trimmed.lower() in ("true", "false"):
            return trimmed.lower() == "true"
        raise _invalid(name, raw, "Expected value to be either true or false")
    if kind in (ConfigType.INT, ConfigType.LONG, ConfigType.SHORT):
        low, high = {ConfigType.INT: INT32, ConfigType.LONG: INT64, ConfigType.SHORT: INT16}[kind]
        if _INTEGER.fullmatch(trimmed) and low <= int(trimmed) <= high:
            return int(trimmed)
        raise _invalid(name, raw, f"Not a number of type {kind.name}")
    if kind == ConfigType.DOUBLE:
        try:
            if "_" in trimmed:
                raise ValueError
            return float(trimmed.rstrip("dDfF") if trimmed[-1:] in "dDfF" else trimmed)
        except ValueError:
            raise _invalid(name, raw, "Not a number of type DOUBLE") from None
    if kind == ConfigType.LIST:
        return [] if not trimmed else re.split(r"\s*,\s*", trimmed)
    return trimmed


def _validate(name: str, validator: Mapping[str, Any], value: Any) -> None:
    kind = validator["class"].rsplit("$", 1)[-1].rsplit(".", 1)[-1]
    if kind == "Range":
        low, high = validator.get("min"), validator.get("max")
        if low is not None and value < low:
            raise _invalid(name, value, f"Value must be at least {java_string(low)}")
        if high is not None and value > high:
            raise _invalid(name, value, f"Value must be no more than {java_string(high)}")
    elif kind == "ValidString":
        allowed = validator["validStrings"]
        if value not in allowed:
            raise _invalid(name, value, "String must be one of: " + ", ".join(allowed))
    elif kind == "CaseInsensitiveValidString":
        allowed = validator["validStrings"]
        if str(value).upper() not in {s.upper() for s in allowed}:
            raise _invalid(
                name, value, "String must be one of (case insensitive): " + ", ".join(allowed)
            )
    elif kind == "ValidList":
        _validate_list(name, validator, value)
    elif kind == "NonEmptyString":
        if not value:
            raise _invalid(name, value, "String must be non-empty")
    elif kind == "NonNullValidator":
        if value is None:
            raise _invalid(name, value, "Value must be non-null")
    elif kind == "ThrottledReplicaListValidator":
        if value != ["*"] and not all(_REPLICA.fullmatch(v.strip()) for v in value):
            raise _invalid(
                name,
                value,
                f"{name} must be the literal '*' or a list of replicas in the following format: "
                "[partitionId]:[brokerId],[partitionId]:[brokerId],...",
            )
    elif kind == "LambdaValidator":
        _validate_lambda(name, validator["text"], value)
    # Validators of broker internals nerve never applies (quorum voters, share groups' reset
    # strategy) keep Kafka's text in the data file; values of those are only stored.


def _validate_lambda(name: str, text: str, value: Any) -> None:
    """Kafka's lambda validators carry only their text; the one topics use is gzip's level."""
    if text == "[1,...,9] or -1" and value != -1 and not 1 <= value <= 9:
        raise _invalid(name, value, "Value must be between 1 and 9 or equal to -1")


def _validate_list(name: str, validator: Mapping[str, Any], value: list[str] | None) -> None:
    if value is None:
        if not validator.get("isNullAllowed", False):
            raise ConfigValueError(f"Configuration '{name}' values must not be null.")
        return
    allowed = validator.get("validString", {}).get("validStrings", [])
    if not value and not validator.get("isEmptyAllowed", True):
        include = ", ".join(allowed) if allowed else "any non-empty value"
        raise ConfigValueError(
            f"Configuration '{name}' must not be empty. Valid values include: {include}"
        )
    for item in value:
        if not item:
            raise ConfigValueError(f"Configuration '{name}' values must not be empty.")
        if allowed and item not in allowed:
            raise _invalid(name, item, "String must be one of: " + ", ".join(allowed))


def java_string(value: object) -> str:
    """``value`` as Java's toString prints it (messages quote parsed values that way)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, list):
        return "[" + ", ".join(java_string(v) for v in value) + "]"
    if value is None:
        return "null"
    return str(value)


def java_double(value: float) -> str:
    """Double.toString: plain between 10^-3 and 10^7, else computerized scientific notation."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    sign = "-" if math.copysign(1, value) < 0 else ""
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        text = f"{abs(value)!r}"
        if "e" in text:  # repr goes scientific below 1e-4; Java only below 1e-3
            text = f"{decimal.Decimal(text):f}"
        return sign + (text if "." in text else text + ".0")
    exact = decimal.Decimal(repr(abs(value))).normalize()  # the shortest round-trip digits
    digits = "".join(map(str, exact.as_tuple().digits))
    exponent = len(digits) + int(exact.as_tuple().exponent) - 1
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exponent}"


def to_string(value: Any, kind: ConfigType) -> str:
    """ConfigDef.convertToString: how a parsed value is stored and described."""
    if value is None:
        return ""
    if kind == ConfigType.LIST:
        return ",".join(value)
    if kind == ConfigType.BOOLEAN:
        return "true" if value else "false"
    if kind == ConfigType.DOUBLE:
        return java_double(value)
    return str(value)


@dataclass(frozen=True)
class KafkaConfigs:
    kafka_version: str
    topic: Mapping[str, ConfigDef]
    broker: Mapping[str, ConfigDef]
    group: Mapping[str, ConfigDef]
    client_metrics: Mapping[str, ConfigDef]


def _defs(entries: list[dict[str, Any]]) -> dict[str, ConfigDef]:
    return {
        e["name"]: ConfigDef(
            name=e["name"],
            type=ConfigType[e["type"]],
            default=e["default"],
            validator=e["validator"],
            internal=e["internal"],
            synonyms=tuple(Synonym(s["name"], s["unit"]) for s in e.get("synonyms", ())),
            update_mode=e.get("update_mode", "read-only"),
            sensitive=e.get("sensitive", False),
        )
        for e in entries
    }


@cache
def kafka_configs() -> KafkaConfigs:
    data = json.loads(resources.files("nerve.broker").joinpath("kafka_configs.json").read_text())
    return KafkaConfigs(
        kafka_version=data["kafka_version"],
        topic=_defs(data["topic"]),
        broker=_defs(data["broker"]),
        group=_defs(data["group"]),
        client_metrics=_defs(data["client_metrics"]),
    )


TOPIC_CONFIGS: Mapping[str, ConfigDef] = kafka_configs().topic
BROKER_CONFIGS: Mapping[str, ConfigDef] = kafka_configs().broker
GROUP_CONFIGS: Mapping[str, ConfigDef] = kafka_configs().group
CLIENT_METRICS_CONFIGS: Mapping[str, ConfigDef] = kafka_configs().client_metrics

__all__ = [
    "BROKER_CONFIGS",
    "CLIENT_METRICS_CONFIGS",
    "GROUP_CONFIGS",
    "TOPIC_CONFIGS",
    "ConfigDef",
    "ConfigType",
    "ConfigValueError",
    "Synonym",
    "java_double",
    "to_string",
]
