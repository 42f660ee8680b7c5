"""Topics: the list (partitions, records, rate, retention), one topic's configs and
partitions, and creating, reconfiguring and deleting them through the AdminClient."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from nerve.console.cluster import Cluster, ConsoleError

# Configs shown in the list; describing more topics than this at once is skipped (one
# DescribeConfigs per page stays cheap).
_LIST_CONFIGS = ("retention.ms", "cleanup.policy")
_DESCRIBE_LIMIT = 500


@dataclass
class TopicRow:
    name: str
    partitions: int
    records: int  # sum over partitions of end - start (what is readable now)
    end: int  # sum of end offsets: how many were ever written
    rate: float | None  # records/s since the previous look
    retention_ms: str | None
    cleanup_policy: str | None
    internal: bool
    size: float | None = None  # bytes on disk, from the broker's metrics when it serves them


class Rates:
    """Records per second per topic, from the end offsets of two looks at the list: the
    console keeps the last look only (a few numbers per topic)."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def update(self, topic: str, end: int, now: float) -> float | None:
        with self._lock:
            before = self._last.get(topic)
            if before is None or now - before[0] < 1.0:
                if before is None:
                    self._last[topic] = (now, end)
                return None if before is None else self._rate(before, now, end)
            self._last[topic] = (now, end)
            return self._rate(before, now, end)

    @staticmethod
    def _rate(before: tuple[float, int], now: float, end: int) -> float | None:
        seconds = now - before[0]
        return (end - before[1]) / seconds if seconds > 0 else None


def internal(name: str) -> bool:
    return name.startswith("_")


def list_topics(cluster: Cluster, rates: Rates, show_internal: bool = False) -> list[TopicRow]:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    metadata = cluster.metadata()
    names = sorted(n for n in metadata.topics if show_internal or not internal(n))
    keys = [(n, p) for n in names for p in metadata.topics[n].partitions]
    lows: dict[tuple[str, int], int] = {}
    highs: dict[tuple[str, int], int] = {}
    if keys:
        for spec, into in ((OffsetSpec.earliest(), lows), (OffsetSpec.latest(), highs)):
            futures = cluster.admin.list_offsets(
                {TopicPartition(t, p): spec for t, p in keys}, request_timeout=cluster.timeout
            )
            for tp, future in futures.items():
                try:
                    into[(tp.topic, tp.partition)] = future.result(cluster.timeout).offset
                except Exception:
                    into[(tp.topic, tp.partition)] = -1
    configs = describe_configs(cluster, names) if len(names) <= _DESCRIBE_LIMIT else {}
    now = time.monotonic()
    rows = []
    for name in names:
        parts = metadata.topics[name].partitions
        end = sum(max(highs.get((name, p), 0), 0) for p in parts)
        records = sum(
            max(highs.get((name, p), 0) - max(lows.get((name, p), 0), 0), 0) for p in parts
        )
        found = configs.get(name, {})
        rows.append(
            TopicRow(
                name,
                len(parts),
                records,
                end,
                rates.update(name, end, now),
                found.get("retention.ms"),
                found.get("cleanup.policy"),
                internal(name),
            )
        )
    return rows


def describe_configs(cluster: Cluster, names: list[str]) -> dict[str, dict[str, str]]:
    """Each topic's current config values (the list's few, or all of them for one topic)."""
    from confluent_kafka.admin import ConfigResource

    if not names:
        return {}
    resources = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in names]
    out: dict[str, dict[str, str]] = {}
    for resource, future in cluster.admin.describe_configs(
        resources, request_timeout=cluster.timeout
    ).items():
        try:
            entries = future.result(timeout=cluster.timeout)
        except Exception:
            continue
        out[resource.name] = {k: v.value for k, v in entries.items() if v.value is not None}
    return out


@dataclass
class ConfigRow:
    name: str
    value: str | None
    default: bool
    read_only: bool
    sensitive: bool
    source: str


@dataclass
class PartitionRow:
    partition: int
    leader: int
    replicas: list[int]
    isrs: list[int]
    start: int
    end: int

    @property
    def records(self) -> int:
        return max(self.end - max(self.start, 0), 0)


@dataclass
class TopicDetail:
    name: str
    partitions: list[PartitionRow]
    configs: list[ConfigRow]

    @property
    def records(self) -> int:
        return sum(p.records for p in self.partitions)


def describe(cluster: Cluster, name: str) -> TopicDetail:
    from confluent_kafka.admin import ConfigResource

    metadata = cluster.topic(name)
    marks = cluster.watermarks(name, sorted(metadata.partitions))
    partitions = [
        PartitionRow(p, m.leader, list(m.replicas), list(m.isrs), *marks[p])
        for p, m in sorted(metadata.partitions.items())
    ]
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    entries = cluster.result(
        cluster.admin.describe_configs([resource], request_timeout=cluster.timeout)[resource]
    )
    configs = [
        ConfigRow(
            entry.name,
            entry.value,
            bool(entry.is_default),
            bool(entry.is_read_only),
            bool(entry.is_sensitive),
            str(entry.source).rsplit(".", 1)[-1].lower().replace("_config", ""),
        )
        for entry in sorted(entries.values(), key=lambda e: e.name)
    ]
    return TopicDetail(name, partitions, configs)


def parse_configs(text: str) -> dict[str, str]:
    """``name=value`` lines (blank lines and ``#`` comments ignored)."""
    configs: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise ConsoleError(f"line {number}: expected name=value, got {line!r}")
        configs[name.strip()] = value.strip()
    return configs


def create(
    cluster: Cluster, name: str, partitions: int, replication: int, configs: dict[str, str]
) -> None:
    from confluent_kafka.admin import NewTopic

    name = name.strip()
    if not name:
        raise ConsoleError("a topic needs a name")
    if partitions < 1:
        raise ConsoleError("a topic needs at least one partition")
    topic = NewTopic(name, partitions, replication, config=configs)
    future = cluster.admin.create_topics([topic], request_timeout=cluster.timeout)[name]
    cluster.result(future)


def alter_config(cluster: Cluster, name: str, config: str, value: str | None) -> None:
    """Set one config (``value`` None: back to its default), leaving the others as they are."""
    from confluent_kafka.admin import (
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
    )

    cluster.topic(name)
    operation = AlterConfigOpType.DELETE if value is None else AlterConfigOpType.SET
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        name,
        incremental_configs=[ConfigEntry(config, value, incremental_operation=operation)],
    )
    futures = cluster.admin.incremental_alter_configs([resource], request_timeout=cluster.timeout)
    cluster.result(futures[resource])


def delete(cluster: Cluster, name: str, confirmation: str) -> None:
    if confirmation != name:
        raise ConsoleError(f"type the topic's name ({name}) to delete it")
    cluster.topic(name)
    cluster.result(cluster.admin.delete_topics([name], request_timeout=cluster.timeout)[name])


def describe_all_configs(cluster: Cluster, name: str) -> dict[str, Any]:
    return describe_configs(cluster, [name]).get(name, {})
