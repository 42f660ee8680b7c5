"""Configs changed at runtime through AlterConfigs/IncrementalAlterConfigs on other resources
than topics: the broker (for the cluster, resource ``""``, or for this broker, ``"1"``), groups
(Kafka 4's group configs) and client-metrics subscriptions.

Kafka keeps them in its metadata log; nerve keeps them in ``<data-dir>/meta/configs.json``,
replaced atomically on every change. Each change is checked as Kafka checks it, with Kafka's
error texts; broker configs that nerve cannot apply at runtime are refused, not kept unused.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from nerve.broker.config import NAMES, BrokerConfig
from nerve.broker.config_defs import (
    BROKER_CONFIGS,
    CLIENT_METRICS_CONFIGS,
    GROUP_CONFIGS,
    TOPIC_CONFIGS,
    ConfigValueError,
)
from nerve.broker.errors import ApiError, ErrorCode

log = logging.getLogger("nerve.broker")

# Broker configs nerve applies at runtime: the defaults of topic configs (every topic without
# its own override follows at once) and the settings its background loops read each round.
_TOPIC_DEFAULTS = frozenset(s.name for d in TOPIC_CONFIGS.values() for s in d.synonyms)
RUNTIME_BROKER_CONFIGS = frozenset(
    name
    for name in _TOPIC_DEFAULTS | {"log.cleaner.backoff.ms", "producer.id.expiration.ms"}
    if BROKER_CONFIGS[name].update_mode != "read-only"
)

# Group configs whose bounds are broker configs: (broker minimum, broker maximum).
_GROUP_BOUNDS = {
    f"{kind}.{what}": (f"group.{kind}.min.{what}", f"group.{kind}.max.{what}")
    for kind in ("consumer", "share", "streams")
    for what in ("session.timeout.ms", "heartbeat.interval.ms")
}
_METRICS_INTERVAL = (100, 3_600_000)


class DynamicConfigs:
    """The runtime-changed configs of one broker and the file that keeps them."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.groups: dict[str, dict[str, str]] = {}
        self.client_metrics: dict[str, dict[str, str]] = {}
        # Client quotas by entity ((type, name or None for the default), ...), sorted.
        self.quotas: dict[tuple[tuple[str, str | None], ...], dict[str, float]] = {}
        self._file = Path(config.data_dir) / "meta" / "configs.json"

    def open(self) -> None:
        if not self._file.exists():
            return
        data = json.loads(self._file.read_text())
        self.config.dynamic_default.update(data.get("cluster", {}))
        self.config.dynamic_broker.update(data.get("broker", {}))
        self.groups = {k: dict(v) for k, v in data.get("groups", {}).items()}
        self.client_metrics = {k: dict(v) for k, v in data.get("client_metrics", {}).items()}
        self.quotas = {
            tuple((t, n) for t, n in q["entity"]): dict(q["values"]) for q in data.get("quotas", [])
        }
        self._apply_broker_attributes()

    def _save(self) -> None:
        data = {
            "version": 1,
            "cluster": self.config.dynamic_default,
            "broker": self.config.dynamic_broker,
            "groups": self.groups,
            "client_metrics": self.client_metrics,
            "quotas": [{"entity": list(e), "values": v} for e, v in sorted(self.quotas.items())],
        }
        self._file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._file.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._file)

    # -- broker -----------------------------------------------------------------------------

    def broker_level(self, resource_name: str, altering: bool = False) -> dict[str, str]:
        """The dict a BROKER resource name addresses: ``""`` the cluster, the node id this
        broker; Kafka's INVALID_REQUEST texts for anything else."""
        if resource_name == "":
            return self.config.dynamic_default
        try:
            broker_id = int(resource_name)
        except ValueError:
            what = "Node" if altering else "Broker"
            raise ApiError(
                ErrorCode.invalid_request,
                f"{what} id must be an integer, but it is: {resource_name}",
            ) from None
        if broker_id != self.config.node_id:
            expected = str(self.config.node_id) + ("" if altering else " or empty string")
            raise ApiError(
                ErrorCode.invalid_request,
                f"Unexpected broker id, expected {expected}, but received {resource_name}",
            )
        return self.config.dynamic_broker

    def check_broker(self, changes: Mapping[str, str | None]) -> dict[str, str | None]:
        """Validate broker config changes (None deletes); returns them normalized."""
        fixed = sorted(
            n for n in changes if n in BROKER_CONFIGS and n not in RUNTIME_BROKER_CONFIGS
        )
        if any(BROKER_CONFIGS[n].update_mode == "read-only" for n in fixed):
            names = ", ".join(n for n in fixed if BROKER_CONFIGS[n].update_mode == "read-only")
            raise ApiError(
                ErrorCode.invalid_request, f"Cannot update these configs dynamically: [{names}]"
            )
        if fixed:
            raise ApiError(
                ErrorCode.invalid_request,
                f"nerve cannot change these configs at runtime (a single node without "
                f"threads, listeners or security to reconfigure): [{', '.join(fixed)}]",
            )
        unknown = sorted(n for n in changes if n not in BROKER_CONFIGS)
        if unknown:
            raise ApiError(
                ErrorCode.invalid_config,
                f"Unknown broker configs, which nerve does not keep: [{', '.join(unknown)}]",
            )
        out: dict[str, str | None] = {}
        for name, value in changes.items():
            try:
                out[name] = None if value is None else BROKER_CONFIGS[name].normalize(value)
            except ConfigValueError as exc:
                raise ApiError(ErrorCode.invalid_request, str(exc)) from None
        return out

    def set_broker(self, level: dict[str, str], values: Mapping[str, str | None]) -> None:
        """Replace or update one level's settings (None deletes) and apply them."""
        for name, value in values.items():
            if value is None:
                level.pop(name, None)
            else:
                level[name] = value
        self._apply_broker_attributes()
        self._save()
        log.info("broker configs changed: %s", dict(values))

    def _apply_broker_attributes(self) -> None:
        """Broker configs that are BrokerConfig attributes take their dynamic value."""
        levels = (self.config.dynamic_broker, self.config.dynamic_default)
        for name in RUNTIME_BROKER_CONFIGS & NAMES.keys():
            value = next((lv[name] for lv in levels if name in lv), None)
            if value is None:
                value = self.config.static_settings.get(name)
            if value is not None:
                setattr(self.config, NAMES[name], int(value))

    # -- groups -----------------------------------------------------------------------------

    def check_group(self, changes: Mapping[str, str | None]) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for name, value in changes.items():
            definition = GROUP_CONFIGS.get(name)
            if definition is None or definition.internal:
                raise ApiError(ErrorCode.invalid_config, f"Unknown group config name: {name}")
            if value is None:
                out[name] = None
                continue
            try:
                parsed = definition.parse(value)
            except ConfigValueError as exc:
                raise ApiError(ErrorCode.invalid_config, str(exc)) from None
            if name == "share.auto.offset.reset" and not _share_reset_ok(parsed):
                raise ApiError(
                    ErrorCode.invalid_config,
                    f"Invalid value {parsed} for configuration {name}: Invalid value `{parsed}` "
                    f"for configuration {name}. The value must be either 'earliest', 'latest' "
                    "or of the format 'by_duration:<PnDTnHnMn.nS>'.",
                )
            bounds = _GROUP_BOUNDS.get(name)
            if bounds is not None:
                low, high = (int(self.broker_value(b) or 0) for b in bounds)
                if not low <= parsed <= high:
                    raise ApiError(
                        ErrorCode.invalid_config,
                        f"{name} must be in the range {low} to {high} inclusive.",
                    )
            out[name] = definition.normalize(value)
        return out

    def set_group(self, group_id: str, configs: dict[str, str]) -> None:
        if configs:
            self.groups[group_id] = configs
        else:
            self.groups.pop(group_id, None)
        self._save()

    def forget_group(self, group_id: str) -> None:
        """A deleted group's configs go with it, as in Kafka."""
        if self.groups.pop(group_id, None) is not None:
            self._save()

    # -- client metrics ---------------------------------------------------------------------

    def check_client_metrics(self, changes: Mapping[str, str | None]) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for name, value in changes.items():
            definition = CLIENT_METRICS_CONFIGS.get(name)
            if definition is None:
                raise ApiError(
                    ErrorCode.invalid_request, f"Unknown client metrics configuration: {name}"
                )
            if value is None:
                out[name] = None
                continue
            try:
                parsed = definition.parse(value)
            except ConfigValueError as exc:
                raise ApiError(ErrorCode.invalid_request, str(exc)) from None
            low, high = _METRICS_INTERVAL
            if name == "interval.ms" and not low <= parsed <= high:
                raise ApiError(
                    ErrorCode.invalid_request,
                    f"Invalid value {parsed} for interval.ms, interval must be between "
                    f"{low} and {high} (1 hour)",
                )
            out[name] = definition.normalize(value)
        return out

    def set_client_metrics(self, name: str, configs: dict[str, str]) -> None:
        if configs:
            self.client_metrics[name] = configs
        else:
            self.client_metrics.pop(name, None)
        self._save()

    # -- client quotas ----------------------------------------------------------------------

    def set_quotas(
        self, entity: tuple[tuple[str, str | None], ...], values: dict[str, float]
    ) -> None:
        if values:
            self.quotas[entity] = values
        else:
            self.quotas.pop(entity, None)
        self._save()

    # -- reading ----------------------------------------------------------------------------

    def broker_value(self, name: str) -> str | None:
        """A broker config's current value: dynamic for this broker, for the cluster, static,
        nerve's own value, else Kafka's default."""
        for level in (self.config.dynamic_broker, self.config.dynamic_default):
            if name in level:
                return level[name]
        if name in self.config.static_settings:
            return self.config.static_settings[name]
        nerve = self.config.nerve_values()
        if name in nerve:
            return nerve[name]
        definition = BROKER_CONFIGS.get(name)
        return definition.default if definition is not None else None


def _share_reset_ok(value: str) -> bool:
    if value in ("earliest", "latest"):
        return True
    return value.startswith("by_duration:") and value[len("by_duration:") :].startswith("P")
