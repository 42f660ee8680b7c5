"""Consumer groups: their state and members, each partition's committed offset and lag, the
lag over time (sampled each time a group's page looks, a bounded history in memory), and
resetting an inactive group's offsets to the earliest, the latest or a time, with a dry run."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from nerve.console.cluster import Cluster, ConsoleError, reason

HISTORY = 240  # lag samples kept per group (20 minutes at the page's 5 s refresh)


@dataclass
class GroupRow:
    id: str
    state: str
    kind: str
    members: int | None = None
    lag: int | None = None


@dataclass
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    end: int | None
    member: str | None
    client: str | None
    host: str | None

    @property
    def lag(self) -> int | None:
        if self.committed is None or self.end is None:
            return None
        return max(self.end - self.committed, 0)


@dataclass
class Member:
    id: str
    client: str
    host: str
    instance: str | None
    assignment: list[tuple[str, int]]


@dataclass
class GroupDetail:
    id: str
    state: str
    assignor: str | None
    coordinator: int | None
    members: list[Member]
    partitions: list[PartitionLag]
    history: list[tuple[float, int]] = field(default_factory=list)

    @property
    def lag(self) -> int:
        return sum(p.lag or 0 for p in self.partitions)


class LagHistory:
    """Total lag of each group at each look (time, lag), at most HISTORY samples."""

    def __init__(self) -> None:
        self._samples: dict[str, deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()

    def add(self, group: str, lag: int) -> list[tuple[float, int]]:
        with self._lock:
            samples = self._samples.setdefault(group, deque(maxlen=HISTORY))
            now = time.time()
            if not samples or now - samples[-1][0] >= 1.0:
                samples.append((now, lag))
            return list(samples)


def list_groups(cluster: Cluster) -> list[GroupRow]:
    listed = cluster.result(cluster.admin.list_consumer_groups(request_timeout=cluster.timeout))
    rows = [
        GroupRow(
            g.group_id,
            g.state.name.lower() if g.state else "unknown",
            "simple" if g.is_simple_consumer_group else "consumer",
        )
        for g in listed.valid
    ]
    return sorted(rows, key=lambda r: r.id)


def describe(cluster: Cluster, group: str, history: LagHistory | None = None) -> GroupDetail:
    from confluent_kafka import ConsumerGroupTopicPartitions

    try:
        found = _describe(cluster, group)
    except Exception as exc:
        raise ConsoleError(f"cannot describe group {group}: {reason(exc)}", 502) from None
    committed = cluster.result(
        cluster.admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=cluster.timeout
        )[group]
    ).topic_partitions
    state = found.state.name.lower() if found.state else "unknown"
    if state == "dead" and not found.members and not committed:
        raise ConsoleError(f"unknown group {group}", 404)
    members = []
    owners: dict[tuple[str, int], Any] = {}
    for m in found.members:
        assigned = sorted(
            (tp.topic, tp.partition)
            for tp in (m.assignment.topic_partitions if m.assignment else [])
        )
        for key in assigned:
            owners[key] = m
        members.append(Member(m.member_id, m.client_id, m.host, m.group_instance_id, assigned))
    offsets = {(tp.topic, tp.partition): tp.offset for tp in committed}
    keys = sorted(set(offsets) | set(owners))
    ends = cluster.ends(keys)
    partitions = []
    for key in keys:
        current = offsets.get(key, -1)
        end = ends.get(key, -1)
        owner = owners.get(key)
        partitions.append(
            PartitionLag(
                key[0],
                key[1],
                current if current >= 0 else None,
                end if end >= 0 else None,
                owner.member_id if owner else None,
                owner.client_id if owner else None,
                owner.host if owner else None,
            )
        )
    coordinator = getattr(found, "coordinator", None)
    detail = GroupDetail(
        group,
        state,
        found.partition_assignor or None,
        coordinator.id if coordinator is not None else None,
        members,
        partitions,
    )
    if history is not None:
        detail.history = history.add(group, detail.lag)
    return detail


def _describe(cluster: Cluster, group: str) -> Any:
    """Asked again while the coordinator moves or loads, as Kafka's own tool does."""
    from confluent_kafka import KafkaError

    deadline = time.monotonic() + cluster.timeout
    retriable = (
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    )
    while True:
        try:
            future = cluster.admin.describe_consumer_groups(
                [group], request_timeout=cluster.timeout
            )[group]
            return future.result(timeout=cluster.timeout)
        except Exception as exc:
            error = exc.args[0] if exc.args else None
            code = getattr(error, "code", lambda: None)()
            if code not in retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@dataclass
class ResetRow:
    topic: str
    partition: int
    current: int | None
    new: int


def reset(
    cluster: Cluster,
    group: str,
    topic: str,
    to: str,
    at: int | None,
    *,
    dry_run: bool,
) -> list[ResetRow]:
    """New committed offsets of ``group`` on every partition of ``topic``: ``earliest``,
    ``latest`` or the first record at or after ``at`` (ms; none: the end). Refused while the
    group has members (they would overwrite it), as kafka-consumer-groups.sh does."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import OffsetSpec

    detail = describe(cluster, group)
    if detail.members:
        raise ConsoleError(
            f"group {group} has {len(detail.members)} active member(s); stop its consumers "
            "before resetting its offsets",
            409,
        )
    metadata = cluster.topic(topic)
    partitions = sorted(metadata.partitions)
    if to == "earliest":
        spec = OffsetSpec.earliest()
    elif to == "latest":
        spec = OffsetSpec.latest()
    elif to == "time":
        if at is None:
            raise ConsoleError("a time to reset to")
        spec = OffsetSpec.for_timestamp(at)
    else:
        raise ConsoleError(f"reset to earliest, latest or a time, not {to!r}")
    marks = cluster.watermarks(topic, partitions)
    found = cluster.admin.list_offsets(
        {TopicPartition(topic, p): spec for p in partitions}, request_timeout=cluster.timeout
    )
    current = {(p.topic, p.partition): p.committed for p in detail.partitions}
    rows = []
    for tp, future in sorted(found.items(), key=lambda item: item[0].partition):
        offset = cluster.result(future).offset
        new = offset if offset >= 0 else marks[tp.partition][1]
        rows.append(ResetRow(topic, tp.partition, current.get((topic, tp.partition)), new))
    if not dry_run:
        request = ConsumerGroupTopicPartitions(
            group, [TopicPartition(topic, r.partition, r.new) for r in rows]
        )
        altered = cluster.result(
            cluster.admin.alter_consumer_group_offsets([request], request_timeout=cluster.timeout)[
                group
            ]
        )
        failed = [tp for tp in altered.topic_partitions if tp.error is not None]
        if failed:
            raise ConsoleError(
                "; ".join(f"{tp.topic}-{tp.partition}: {tp.error.str()}" for tp in failed), 502
            )
    return rows
