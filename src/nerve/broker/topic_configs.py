"""Topic configs as Kafka 4.4 defines them: every name accepted, stored, validated and described
with Kafka's defaults, types, error texts, sources and broker synonyms.

A topic config's value comes from the topic's override, else from its broker-level synonym
(``log.retention.hours`` for ``retention.ms``, converted to the topic's unit), else Kafka's
default. Which of them change what a single node does is in docs/configuration.md; the rest
(replication, tiered storage, flushing) are kept and described but have no effect here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from nerve.broker.config_defs import (
    BROKER_CONFIGS,
    TOPIC_CONFIGS,
    ConfigDef,
    ConfigValueError,
    Synonym,
)

# Kafka's ConfigSource values (DescribeConfigs).
TOPIC_CONFIG = 1
DYNAMIC_BROKER_CONFIG = 2
DYNAMIC_DEFAULT_BROKER_CONFIG = 3
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5

_UNIT_MS = {"none": 1, "minutes": 60_000, "hours": 3_600_000}

# Described topic configs: all but Kafka's internal ones (internal.segment.bytes).
DESCRIBED: tuple[str, ...] = tuple(sorted(n for n, d in TOPIC_CONFIGS.items() if not d.internal))


class TopicConfigError(ValueError):
    """A topic config Kafka refuses (INVALID_CONFIG); the message is Kafka's."""


@dataclass(frozen=True)
class BrokerLevels:
    """Broker-level settings by Kafka name, most specific first: those altered for this broker
    (``DYNAMIC_BROKER_CONFIG``), for the cluster (``DYNAMIC_DEFAULT_BROKER_CONFIG``), and those
    given at start (``STATIC_BROKER_CONFIG``)."""

    dynamic_broker: Mapping[str, str]
    dynamic_default: Mapping[str, str]
    static: Mapping[str, str]

    def levels(self) -> Iterator[tuple[Mapping[str, str], int]]:
        yield self.dynamic_broker, DYNAMIC_BROKER_CONFIG
        yield self.dynamic_default, DYNAMIC_DEFAULT_BROKER_CONFIG
        yield self.static, STATIC_BROKER_CONFIG


@dataclass(frozen=True)
class Synonyms:
    """One DescribeConfigs synonym: (name, value, source)."""

    name: str
    value: str | None
    source: int


def synonym_group(broker_name: str) -> tuple[Synonym, ...]:
    """Kafka's brokerConfigSynonyms: a broker config and the others that set the same thing."""
    for definition in TOPIC_CONFIGS.values():
        if any(s.name == broker_name for s in definition.synonyms):
            return definition.synonyms
    return (Synonym(broker_name, "none"),)


def broker_synonyms(broker_name: str, levels: BrokerLevels) -> list[Synonyms]:
    """Kafka's configSynonyms: each synonym set at each level, most specific first, then the
    defaults; entries before ``broker_name``'s own are dropped, as Kafka does."""
    group = [s.name for s in synonym_group(broker_name)]
    out: list[Synonyms] = []
    for values, source in levels.levels():
        out += [Synonyms(n, values[n], source) for n in group if n in values]
    for name in group:
        definition = BROKER_CONFIGS.get(name)
        if definition is not None and definition.default is not None:
            out.append(Synonyms(name, definition.default, DEFAULT_CONFIG))
    while out and out[0].name != broker_name:
        out.pop(0)
    return out


def _converted(synonym: Synonym, raw: str) -> str:
    if synonym.unit == "none":
        return raw
    return str(int(raw.strip()) * _UNIT_MS[synonym.unit])


def broker_default(definition: ConfigDef, levels: BrokerLevels) -> str | None:
    """The topic config's value from broker settings, or None when no synonym is set: the
    first synonym set at any level wins (log.retention.ms over .minutes over .hours)."""
    for synonym in definition.synonyms:
        for values, _source in levels.levels():
            if synonym.name in values:
                return _converted(synonym, values[synonym.name])
    return None


def validate(overrides: Mapping[str, str | None], levels: BrokerLevels) -> dict[str, str]:
    """Check a topic's overrides as Kafka's LogConfig.validate does; returns them normalized
    (trimmed, lists joined by commas). Raises TopicConfigError with Kafka's message."""
    for name in overrides:
        if name not in TOPIC_CONFIGS:
            raise TopicConfigError(f"Unknown topic config name: {name}")
    out: dict[str, str] = {}
    for name, raw in overrides.items():
        if raw is None:
            raise TopicConfigError(f"Null value not supported for topic configs: {name}")
        try:
            out[name] = TOPIC_CONFIGS[name].normalize(raw)
        except ConfigValueError as exc:
            raise TopicConfigError(str(exc)) from None
    merged = effective(out, levels)
    min_lag, max_lag = int(merged["min.compaction.lag.ms"]), int(merged["max.compaction.lag.ms"])
    if min_lag > max_lag:
        raise TopicConfigError(
            f"conflict topic config setting min.compaction.lag.ms ({min_lag}) > "
            f"max.compaction.lag.ms ({max_lag})"
        )
    if merged["remote.storage.enable"] == "true":
        raise TopicConfigError(
            "Tiered Storage functionality is disabled in the broker. Topic cannot be configured "
            "with remote log storage."
        )
    return out


def effective(overrides: Mapping[str, str], levels: BrokerLevels) -> dict[str, str]:
    """Every topic config (internal ones too) as the topic obeys it."""
    out: dict[str, str] = {}
    for name, definition in TOPIC_CONFIGS.items():
        if name in overrides:
            out[name] = overrides[name]
            continue
        from_broker = broker_default(definition, levels)
        out[name] = from_broker if from_broker is not None else (definition.default or "")
    return out


@dataclass(frozen=True)
class DescribedConfig:
    name: str
    value: str | None
    source: int
    synonyms: tuple[Synonyms, ...]
    definition: ConfigDef


def describe(
    overrides: Mapping[str, str],
    levels: BrokerLevels,
    names: tuple[str, ...] = DESCRIBED,
) -> list[DescribedConfig]:
    """DescribeConfigs of one topic: value, source and synonyms of each config, as Kafka's
    ConfigHelper builds them (a topic override first, then the first broker synonym's chain)."""
    values = effective(overrides, levels)
    out = []
    for name in names:
        definition = TOPIC_CONFIGS[name]
        synonyms: list[Synonyms] = []
        if name in overrides:
            synonyms.append(Synonyms(name, overrides[name], TOPIC_CONFIG))
        if definition.synonyms:
            synonyms += broker_synonyms(definition.synonyms[0].name, levels)
        source = synonyms[0].source if synonyms else DEFAULT_CONFIG
        out.append(DescribedConfig(name, values[name], source, tuple(synonyms), definition))
    return out
