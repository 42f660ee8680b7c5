"""Per-topic log settings, named and parsed as Kafka's topic configs are."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

CLEANUP_POLICIES = frozenset({"delete", "compact"})
TIMESTAMP_TYPES = ("CreateTime", "LogAppendTime")

# Kafka topic config name -> (LogConfig field, smallest legal value); integer settings only.
_INT_CONFIGS: dict[str, tuple[str, int]] = {
    "segment.bytes": ("segment_bytes", 14),
    "segment.ms": ("segment_ms", 1),
    "retention.ms": ("retention_ms", -1),
    "retention.bytes": ("retention_bytes", -1),
    "delete.retention.ms": ("delete_retention_ms", 0),
    "min.compaction.lag.ms": ("min_compaction_lag_ms", 0),
    "index.interval.bytes": ("index_interval_bytes", 0),
    "max.message.bytes": ("max_message_bytes", 0),
    "max.compaction.lag.ms": ("max_compaction_lag_ms", 1),
    "message.timestamp.before.max.ms": ("message_timestamp_before_max_ms", 0),
    "message.timestamp.after.max.ms": ("message_timestamp_after_max_ms", 0),
    "compression.gzip.level": ("compression_gzip_level", -1),
    "compression.lz4.level": ("compression_lz4_level", 1),
    "compression.zstd.level": ("compression_zstd_level", -131072),
}
_INT_MAX = (1 << 31) - 1
_INT32_CONFIGS = frozenset(
    {"segment.bytes", "index.interval.bytes", "max.message.bytes", "compression.gzip.level",
     "compression.lz4.level", "compression.zstd.level"}
)  # Kafka types these as int, the rest as long  # fmt: skip
# compression.type names -> the RecordBatch codec (attributes bits 0-2).
COMPRESSION_CODECS = {"uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


@dataclass
class LogConfig:
    """The settings a partition log obeys; field names mirror Kafka's topic config names."""

    segment_bytes: int = 1 << 30  # segment.bytes
    segment_ms: int = 7 * 24 * 3600 * 1000  # segment.ms
    retention_ms: int = 7 * 24 * 3600 * 1000  # retention.ms (-1 = forever)
    retention_bytes: int = -1  # retention.bytes (-1 = unlimited)
    cleanup_policy: str = "delete"  # cleanup.policy: delete | compact | compact,delete
    delete_retention_ms: int = 24 * 3600 * 1000  # delete.retention.ms
    min_compaction_lag_ms: int = 0  # min.compaction.lag.ms
    index_interval_bytes: int = 4096  # index.interval.bytes
    max_message_bytes: int = 1048588  # max.message.bytes
    message_timestamp_type: str = "CreateTime"  # message.timestamp.type
    max_compaction_lag_ms: int = (1 << 63) - 1  # max.compaction.lag.ms
    min_cleanable_dirty_ratio: float = 0.5  # min.cleanable.dirty.ratio
    # compression.type: producer (keep the producer's), uncompressed, gzip, snappy, lz4, zstd
    compression_type: str = "producer"
    # How far a CreateTime record's timestamp may lie before or after the broker's clock.
    message_timestamp_before_max_ms: int = (1 << 63) - 1
    message_timestamp_after_max_ms: int = 3_600_000
    compression_gzip_level: int = -1  # compression.gzip.level (-1: zlib's default)
    compression_lz4_level: int = 9  # compression.lz4.level
    compression_zstd_level: int = 3  # compression.zstd.level

    @property
    def compact(self) -> bool:
        return "compact" in self.cleanup_policy.split(",")

    @property
    def delete(self) -> bool:
        return "delete" in self.cleanup_policy.split(",")

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == "LogAppendTime"

    @classmethod
    def from_configs(cls, configs: Mapping[str, str]) -> LogConfig:
        """Build from Kafka names and string values; unknown names are ignored.

        Raises ValueError naming the setting when a value is malformed or out of range, so
        CreateTopics/AlterConfigs can hand the message straight back to the client.
        """
        config = cls()
        for name, raw in configs.items():
            if name in _INT_CONFIGS:
                attribute, minimum = _INT_CONFIGS[name]
                try:
                    value = int(str(raw).strip())
                except ValueError:
                    raise ValueError(f"{name} must be an integer, not {raw!r}") from None
                if value < minimum:
                    raise ValueError(f"{name} must be at least {minimum}, not {value}")
                if name in _INT32_CONFIGS and value > _INT_MAX:
                    raise ValueError(f"{name} must be at most {_INT_MAX}, not {value}")
                setattr(config, attribute, value)
            elif name == "cleanup.policy":
                # Empty (Kafka 4): neither delete nor compact, the log is kept whole.
                parts = [p.strip() for p in str(raw).split(",") if p.strip()]
                if any(p not in CLEANUP_POLICIES for p in parts):
                    raise ValueError(
                        f"cleanup.policy must be delete, compact or compact,delete, not {raw!r}"
                    )
                config.cleanup_policy = ",".join(sorted(set(parts)))
            elif name == "min.cleanable.dirty.ratio":
                config.min_cleanable_dirty_ratio = float(raw)
            elif name == "compression.type":
                config.compression_type = str(raw).strip()
            elif name == "message.timestamp.type":
                if raw not in TIMESTAMP_TYPES:
                    raise ValueError(
                        f"message.timestamp.type must be CreateTime or LogAppendTime, not {raw!r}"
                    )
                config.message_timestamp_type = raw
        # Kafka's internal override of segment.bytes below its 1 MiB floor (for tests).
        internal = str(configs.get("internal.segment.bytes") or "").strip()
        if internal:
            config.segment_bytes = max(int(internal), _INT_CONFIGS["segment.bytes"][1])
        return config

    @property
    def compression_codec(self) -> int | None:
        """The codec every batch is stored with, or None to keep the producer's."""
        return COMPRESSION_CODECS.get(self.compression_type)

    def compression_level(self, codec: int) -> int | None:
        return {1: self.compression_gzip_level, 3: self.compression_lz4_level,
                4: self.compression_zstd_level}.get(codec)  # fmt: skip

    @property
    def roll_ms(self) -> int:
        """Age at which the active segment rolls: segment.ms, and on a compacted topic no later
        than max.compaction.lag.ms, so no record waits longer than that to become cleanable."""
        if self.compact:
            return min(self.segment_ms, self.max_compaction_lag_ms)
        return self.segment_ms

    def to_configs(self) -> dict[str, str]:
        """The inverse of from_configs: every setting under its Kafka name, as a string."""
        out = {name: str(getattr(self, attr)) for name, (attr, _) in _INT_CONFIGS.items()}
        out["cleanup.policy"] = self.cleanup_policy
        out["message.timestamp.type"] = self.message_timestamp_type
        out["min.cleanable.dirty.ratio"] = repr(self.min_cleanable_dirty_ratio)
        out["compression.type"] = self.compression_type
        return out


assert {f.name for f in fields(LogConfig)} == {a for a, _ in _INT_CONFIGS.values()} | {
    "cleanup_policy",
    "message_timestamp_type",
    "min_cleanable_dirty_ratio",
    "compression_type",
}

TOPIC_CONFIG_DEFAULTS: dict[str, str] = LogConfig().to_configs()
"""Every topic config nerve knows, with its default value (for DescribeConfigs)."""
