"""Broker configuration: one typed object, set with Kafka's own config names where Kafka has one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nerve.broker.config_defs import BROKER_CONFIGS, TOPIC_CONFIGS, ConfigValueError
from nerve.broker.security.settings import is_security_setting
from nerve.broker.topic_configs import BrokerLevels, broker_default

# Topic config name -> the broker config that supplies its default (Kafka's first synonym).
TOPIC_TO_BROKER_CONFIG: dict[str, str] = {
    name: definition.synonyms[0].name
    for name, definition in TOPIC_CONFIGS.items()
    if definition.synonyms
}
# Every broker config that sets a topic config's default (log.retention.hours too).
_TOPIC_SYNONYMS = frozenset(s.name for d in TOPIC_CONFIGS.values() for s in d.synonyms)
# Set cluster-wide when a Kafka 4 KRaft cluster is formatted (KIP-966's eligible leader
# replicas need it), so DescribeConfigs shows it as a dynamic default there; nerve does the same.
FORMAT_TIME_DEFAULTS = {"min.insync.replicas": "1"}

FSYNC_POLICIES = ("acks-all", "always", "never")
# Kafka's ConsumerGroupMigrationPolicy values (group.consumer.migration.policy).
MIGRATION_POLICIES = ("bidirectional", "upgrade", "downgrade", "disabled")


class ConfigError(ValueError):
    """A setting with an unknown name or a value of the wrong kind."""


@dataclass
class BrokerConfig:
    """Everything the broker reads at start. Names in ``--config`` are Kafka's (see ``NAMES``)."""

    data_dir: Path = Path(".nerve")
    host: str = "127.0.0.1"
    port: int = 9092
    advertised_host: str | None = None
    advertised_port: int | None = None
    node_id: int = 1
    auto_create_topics_enable: bool = True
    num_partitions: int = 1
    message_max_bytes: int = 1048588
    socket_request_max_bytes: int = 100 * 1024 * 1024
    # Bytes that partly received requests may hold across all connections, -1 for no bound
    # (Kafka's default is -1; a bound keeps a flood of large requests from exhausting memory).
    queued_max_request_bytes: int = 100 * 1024 * 1024
    # A connection with nothing to do for this long is closed (Kafka's name and default).
    connections_max_idle_ms: int = 600_000
    # How long one request may take to arrive once it started (nerve's own setting): a peer
    # that starts requests and never finishes them (slow loris) is closed. Clients give up
    # on a request after their request.timeout.ms, 30 s by default, so none waits longer.
    socket_request_receive_timeout_ms: int = 30_000
    # Partitions one CreateTopics or CreatePartitions request may make (nerve's own name for
    # the limit Kafka's controller fixes at 10,000: POLICY_VIOLATION beyond it), also the
    # partitions one Metadata request may auto-create.
    max_partitions_per_request: int = 10_000
    log_retention_check_interval_ms: int = 300_000
    log_cleaner_backoff_ms: int = 15_000
    # Consumer groups (Kafka's names and defaults, but the offsets topic's partition count:
    # one partition is plenty for one broker and keeps the data dir small).
    group_initial_rebalance_delay_ms: int = 3_000
    group_min_session_timeout_ms: int = 6_000
    group_max_session_timeout_ms: int = 1_800_000
    group_max_size: int = 2_147_483_647  # members a classic group may have
    # The consumer group protocol (KIP-848): Kafka's names and defaults. Kafka bounds the
    # session timeout by group.consumer.min/max.session.timeout.ms (45 s to 60 s); nerve
    # takes any value, so tests and local runs can fail over faster.
    group_consumer_session_timeout_ms: int = 45_000
    group_consumer_heartbeat_interval_ms: int = 5_000
    group_consumer_assignors: str = "uniform,range"
    group_consumer_max_size: int = 2_147_483_647
    # Which way a group may move between the classic and the consumer protocol while it has
    # members (KIP-848's online migration): bidirectional, upgrade, downgrade or disabled.
    group_consumer_migration_policy: str = "bidirectional"
    # Share groups (KIP-932): Kafka's names and defaults.
    group_share_heartbeat_interval_ms: int = 5_000
    group_share_session_timeout_ms: int = 45_000
    group_share_record_lock_duration_ms: int = 30_000
    group_share_delivery_count_limit: int = 5
    offsets_topic_num_partitions: int = 1
    offsets_topic_segment_bytes: int = 104_857_600
    offsets_retention_minutes: int = 10_080
    offsets_retention_check_interval_ms: int = 600_000
    offset_metadata_max_bytes: int = 4_096
    # Producer ids and transactions (Kafka's names and defaults, but one state partition).
    transaction_max_timeout_ms: int = 900_000
    transaction_state_log_num_partitions: int = 1
    transaction_state_log_segment_bytes: int = 104_857_600
    transaction_abort_timed_out_transaction_cleanup_interval_ms: int = 10_000
    producer_id_expiration_ms: int = 86_400_000
    # When a write reaches the disk before its acknowledgement (docs/durability.md):
    # acks-all: fsync before acks=all responses (group commit); always: before acks=1 too;
    # never: leave it to the OS page cache (Kafka's default behaviour).
    log_fsync_policy: str = "acks-all"
    # Every setting given at start, by Kafka name (DescribeConfigs: STATIC_BROKER_CONFIG).
    static_settings: dict[str, str] = field(default_factory=dict)
    # Broker configs altered at runtime, for the cluster ("" resource) and for this broker
    # (resource "1"); kept in <data-dir>/meta/broker-configs.json by the broker.
    dynamic_default: dict[str, str] = field(default_factory=lambda: dict(FORMAT_TIME_DEFAULTS))
    dynamic_broker: dict[str, str] = field(default_factory=dict)
    # Listeners, TLS, SASL and authorization settings, by Kafka name (broker/security/);
    # none set: one PLAINTEXT listener on host:port and no authorizer.
    security: dict[str, str] = field(default_factory=dict)
    # The listeners once bound: (name, protocol, host, port, advertised host, advertised port).
    bound_listeners: list[tuple[str, str, str, int, str, int]] = field(default_factory=list)

    @property
    def advertised(self) -> tuple[str, int]:
        return (self.advertised_host or self.host, self.advertised_port or self.port)

    @property
    def levels(self) -> BrokerLevels:
        return BrokerLevels(self.dynamic_broker, self.dynamic_default, self.static_settings)

    @property
    def topic_defaults(self) -> dict[str, str]:
        """Topic config name -> its value from broker-level settings (only those set)."""
        out = {}
        for name, definition in TOPIC_CONFIGS.items():
            value = broker_default(definition, self.levels)
            if value is not None:
                out[name] = value
        return out

    def apply(self, settings: Mapping[str, str]) -> None:
        """Apply ``name=value`` settings with Kafka names; raises ConfigError on a bad one."""
        for name, value in settings.items():
            if is_security_setting(name):
                self.security[name] = value
                self.static_settings[name] = value
                continue
            if name in _TOPIC_SYNONYMS:
                try:
                    self.static_settings[name] = BROKER_CONFIGS[name].normalize(value)
                except ConfigValueError as exc:
                    raise ConfigError(str(exc)) from None
                continue
            attribute = NAMES.get(name)
            if attribute is None:
                raise ConfigError(f"unknown broker config {name!r}")
            current = getattr(self, attribute)
            setattr(self, attribute, _parse(name, value, current))
            self.static_settings[name] = value
        for name in (
            "connections.max.idle.ms",
            "socket.request.receive.timeout.ms",
            "max.partitions.per.request",
        ):
            if getattr(self, NAMES[name]) < 1:
                raise ConfigError(f"{name} must be positive, not {getattr(self, NAMES[name])}")
        if self.queued_max_request_bytes == 0 or self.queued_max_request_bytes < -1:
            raise ConfigError(
                "queued.max.request.bytes must be positive, or -1 for no bound, "
                f"not {self.queued_max_request_bytes}"
            )
        policy = self.group_consumer_migration_policy.strip().lower()
        if policy not in MIGRATION_POLICIES:
            raise ConfigError(
                "group.consumer.migration.policy must be one of "
                f"{', '.join(MIGRATION_POLICIES)} (any case), "
                f"not {self.group_consumer_migration_policy!r}"
            )
        self.group_consumer_migration_policy = policy
        if self.log_fsync_policy not in FSYNC_POLICIES:
            raise ConfigError(
                f"log.fsync.policy must be one of {', '.join(FSYNC_POLICIES)}, "
                f"not {self.log_fsync_policy!r}"
            )

    def nerve_values(self) -> dict[str, str]:
        """Broker configs whose value nerve decides (its settings, its listener), Kafka names."""
        host, port = self.advertised
        out = {name: _format(getattr(self, attr)) for name, attr in NAMES.items()}
        listeners = self.bound_listeners or [("PLAINTEXT", "PLAINTEXT", self.host, self.port,
                                              host, port)]  # fmt: skip
        out.update(
            {
                "broker.id": str(self.node_id),
                "listeners": ",".join(f"{n}://{h}:{p}" for n, _, h, p, _, _ in listeners),
                "advertised.listeners": ",".join(
                    f"{n}://{h}:{p}" for n, _, _, _, h, p in listeners
                ),
                "listener.security.protocol.map": ",".join(
                    f"{n}:{protocol}" for n, protocol, *_ in listeners
                ),
                "inter.broker.listener.name": listeners[0][0],
                "process.roles": "broker,controller",
                "log.dirs": str(self.data_dir),
                "offsets.topic.replication.factor": "1",
                "transaction.state.log.replication.factor": "1",
                "transaction.state.log.min.isr": "1",
            }
        )
        return out


NAMES: dict[str, str] = {
    "node.id": "node_id",
    "auto.create.topics.enable": "auto_create_topics_enable",
    "num.partitions": "num_partitions",
    "socket.request.max.bytes": "socket_request_max_bytes",
    "queued.max.request.bytes": "queued_max_request_bytes",
    "connections.max.idle.ms": "connections_max_idle_ms",
    "socket.request.receive.timeout.ms": "socket_request_receive_timeout_ms",
    "max.partitions.per.request": "max_partitions_per_request",
    "log.retention.check.interval.ms": "log_retention_check_interval_ms",
    "log.cleaner.backoff.ms": "log_cleaner_backoff_ms",
    "log.fsync.policy": "log_fsync_policy",
    "group.initial.rebalance.delay.ms": "group_initial_rebalance_delay_ms",
    "group.min.session.timeout.ms": "group_min_session_timeout_ms",
    "group.max.session.timeout.ms": "group_max_session_timeout_ms",
    "group.max.size": "group_max_size",
    "group.consumer.session.timeout.ms": "group_consumer_session_timeout_ms",
    "group.consumer.heartbeat.interval.ms": "group_consumer_heartbeat_interval_ms",
    "group.consumer.assignors": "group_consumer_assignors",
    "group.consumer.max.size": "group_consumer_max_size",
    "group.consumer.migration.policy": "group_consumer_migration_policy",
    "group.share.heartbeat.interval.ms": "group_share_heartbeat_interval_ms",
    "group.share.session.timeout.ms": "group_share_session_timeout_ms",
    "group.share.record.lock.duration.ms": "group_share_record_lock_duration_ms",
    "group.share.delivery.count.limit": "group_share_delivery_count_limit",
    "offsets.topic.num.partitions": "offsets_topic_num_partitions",
    "offsets.topic.segment.bytes": "offsets_topic_segment_bytes",
    "offsets.retention.minutes": "offsets_retention_minutes",
    "offsets.retention.check.interval.ms": "offsets_retention_check_interval_ms",
    "offset.metadata.max.bytes": "offset_metadata_max_bytes",
    "transaction.max.timeout.ms": "transaction_max_timeout_ms",
    "transaction.state.log.num.partitions": "transaction_state_log_num_partitions",
    "transaction.state.log.segment.bytes": "transaction_state_log_segment_bytes",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": (
        "transaction_abort_timed_out_transaction_cleanup_interval_ms"
    ),
    "producer.id.expiration.ms": "producer_id_expiration_ms",
}


def _parse(name: str, value: str, current: object) -> object:
    if isinstance(current, bool):
        lowered = value.strip().lower()
        if lowered not in ("true", "false"):
            raise ConfigError(f"{name} must be true or false, not {value!r}")
        return lowered == "true"
    if isinstance(current, int):
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, not {value!r}") from None
    return value


def _format(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_settings(pairs: list[str]) -> dict[str, str]:
    """``["a=b", ...]`` from the command line into a dict; raises ConfigError on a bad pair."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"expected NAME=VALUE, got {pair!r}")
        out[name.strip()] = value.strip()
    return out


__all__ = ["BrokerConfig", "ConfigError", "parse_settings"]
