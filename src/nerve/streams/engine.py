"""Running a service's streams inside its runner: tasks for the partitions the replica owns,
their state restored before they process, their changelogs written with every batch.

The runner consumes every source topic (the user's and the repartition topics) with one
consumer in the service's group; partitions are assigned with the range assignor, so
co-partitioned topics (the two sides of a join) give their same-numbered partitions to the same
replica, as Kafka Streams' assignor does. For each batch: records go through their task's
nodes; at the end, each task's changed keys go to its changelogs (in the batch's transaction
with ``exactly_once=True``); once the batch is durable the tasks persist locally with the
changelog offsets as their checkpoint; a batch that fails rolls the tasks back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from nerve.streams import skips
from nerve.streams.dsl import StreamsBuilder
from nerve.streams.records import Record
from nerve.streams.serde import decode_key, decode_value
from nerve.streams.state import TaskState
from nerve.streams.task import Task, changelog_name
from nerve.streams.topology import SourceNode, SubTopology, cut

log = logging.getLogger("nerve.streams")


def event_time(source: SourceNode, value: Any, record_ts: int, ce_time: str | None) -> int:
    """A record's event time: the CloudEvent's ``time`` (else the record timestamp), the
    record timestamp, or what the source's ``time`` function returns (a datetime, or epoch
    milliseconds)."""
    how = source.time
    if how == "event":
        if ce_time:
            try:
                return int(datetime.fromisoformat(ce_time).timestamp() * 1000)
            except ValueError:
                return record_ts
        return record_ts
    if how == "record":
        return record_ts
    assert callable(how)
    found = how(value)
    if isinstance(found, datetime):
        return int(found.timestamp() * 1000)
    return int(found)


class Topology:
    """A service's streams, compiled: sub-topologies, their topics and their stores."""

    def __init__(self, builder: StreamsBuilder) -> None:
        self.builder = builder
        self.service = builder.service.name
        self.subs: list[SubTopology] = cut(builder.sources)
        self.sub_of_topic: dict[str, SubTopology] = {}
        for sub in self.subs:
            for topic in sub.topics:
                self.sub_of_topic[topic] = sub
        self.sources_of_topic: dict[str, SourceNode] = dict(builder.by_topic)

    @property
    def topics(self) -> list[str]:
        return list(self.sub_of_topic)

    @property
    def user_topics(self) -> list[str]:
        return [s.topic for s in self.builder.sources if not s.internal]

    def changelogs(self, sub: SubTopology) -> list[str]:
        names = [f"{sub.index}-times", *sub.stores]
        return [changelog_name(self.service, n) for n in names]

    def internal_topics(self, partitions_of: Callable[[str], int]) -> dict[str, tuple[int, bool]]:
        """Every repartition and changelog topic: (partitions, compacted)."""
        wanted: dict[str, tuple[int, bool]] = {}
        for topic, source in self.sources_of_topic.items():
            if source.internal:
                upstream = getattr(source, "upstream", []) or [topic]
                wanted[topic] = (max(partitions_of(t) for t in upstream), False)
        for sub in self.subs:
            if _joins(sub):
                self._co_partition(sub, wanted, partitions_of)
            counts = [wanted[t][0] if t in wanted else partitions_of(t) for t in sub.topics]
            for changelog in self.changelogs(sub):
                wanted[changelog] = (max(counts), True)
        return wanted

    def _co_partition(
        self,
        sub: SubTopology,
        wanted: dict[str, tuple[int, bool]],
        partitions_of: Callable[[str], int],
    ) -> None:
        """The inputs of a join must have one partition count, or a key's records and its
        row meet in different tasks: repartition topics take the count of the join's user
        topics (the largest of theirs when there are none), as Kafka Streams makes them; user
        topics that differ are refused, as Kafka Streams refuses them."""
        internal = [t for t in sub.topics if t in wanted]
        users = {t: partitions_of(t) for t in sub.topics if t not in wanted}
        if len(set(users.values())) > 1:
            raise ValueError(
                f"{self.service}: the inputs of a join are not co-partitioned: "
                + ", ".join(f"{t} has {n} partition(s)" for t, n in users.items())
            )
        count = next(iter(users.values())) if users else max(wanted[t][0] for t in internal)
        for topic in internal:
            wanted[topic] = (count, False)

    def describe(self) -> dict[str, Any]:
        """What the catalog records: sub-topologies, their stores, windows and topics."""
        out = []
        for sub in self.subs:
            out.append(
                {
                    "sources": sub.topics,
                    "nodes": [n.describe() for n in sub.nodes],
                    "stores": list(sub.stores),
                    "changelogs": self.changelogs(sub),
                }
            )
        repartition = [t for t, s in self.sources_of_topic.items() if s.internal]
        return {
            "subtopologies": out,
            "repartition_topics": repartition,
            "late_topics": [f"{t}.late" for t in self.user_topics],
        }


class StreamsEngine:
    """The tasks of one replica. ``sink`` sends what tasks write; ``state_dir`` (None: no
    local persistence) holds each task's RocksDB."""

    def __init__(self, topology: Topology, sink: Any, state_dir: Path | None) -> None:
        self.topology = topology
        self.sink = sink
        self.state_dir = state_dir
        self.tasks: dict[tuple[int, int], Task] = {}

    def task_for(self, topic: str, partition: int) -> Task | None:
        sub = self.topology.sub_of_topic.get(topic)
        if sub is None:
            return None
        return self.tasks.get((sub.index, partition))

    # -- assignment ------------------------------------------------------------------------

    def new_tasks(self, partitions: Iterable[tuple[str, int]]) -> list[Task]:
        made = []
        for topic, partition in partitions:
            sub = self.topology.sub_of_topic.get(topic)
            if sub is None or (sub.index, partition) in self.tasks:
                continue
            task_id = f"{sub.index}_{partition}"
            directory = (
                None if self.state_dir is None else self.state_dir / self.topology.service / task_id
            )
            state = TaskState(task_id, partition, directory)
            task = Task(self.topology.service, sub, partition, state, self.sink)
            self.tasks[(sub.index, partition)] = task
            made.append(task)
        return made

    def restore(self, tasks: list[Task], config: dict[str, Any]) -> None:
        """Each task's local state, then its changelogs' tail (from its checkpoint to the
        end), before it processes anything."""
        if not tasks:
            return
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

        started = time.monotonic()
        wanted = []
        owner: dict[tuple[str, int], Task] = {}
        for task in tasks:
            task.state.open()
            for changelog in self.topology.changelogs(task.sub):
                offset = task.state.offsets.get(changelog, OFFSET_BEGINNING)
                wanted.append(TopicPartition(changelog, task.partition, offset))
                owner[(changelog, task.partition)] = task
        consumer = Consumer(
            {
                **config,
                "group.id": f"{self.topology.service}-restore",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
                "fetch.max.bytes": 52_428_800,
                "max.partition.fetch.bytes": 10_485_760,
            }
        )
        restored = 0
        try:
            marks = {
                (tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=10)
                for tp in wanted
            }
            # A checkpoint past the changelog's end was made against another changelog (a
            # new cluster, a changelog deleted): the local state is not this one's.
            stale = {
                owner[(tp.topic, tp.partition)]
                for tp in wanted
                if tp.offset >= 0 and tp.offset > marks[(tp.topic, tp.partition)][1]
            }
            for task in stale:
                log.warning(
                    "%s: task %s: its local checkpoint is past the end of its changelog (state "
                    "left by another cluster?): restoring it from the changelog's start instead",
                    self.topology.service,
                    task.id,
                )
                task.state.reset()
            # Empty changelogs need no reading: their high watermark says so.
            pending = []
            for tp in wanted:
                if owner[(tp.topic, tp.partition)] in stale:
                    tp.offset = OFFSET_BEGINNING
                low, high = marks[(tp.topic, tp.partition)]
                start = low if tp.offset < 0 else tp.offset
                if high > start:
                    pending.append(tp)
            remaining = {(tp.topic, tp.partition) for tp in pending}
            if pending:
                consumer.assign(pending)
            while remaining:
                for message in consumer.consume(10_000, 1.0):
                    error = message.error()
                    where = (message.topic() or "", message.partition() or 0)
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            remaining.discard(where)
                            continue
                        raise RuntimeError(f"restoring {where[0]}[{where[1]}]: {error}")
                    task = owner[where]
                    task.state.apply(where[0], message.key(), message.value())
                    task.state.offsets[where[0]] = (message.offset() or 0) + 1
                    restored += 1
        finally:
            consumer.close()
        # What was read back goes to the local RocksDB with the next commit, not here: the
        # tasks may start processing at once.
        log.info(
            "%s: %d task(s) restored (%d changelog records read) in %.2f s: %s",
            self.topology.service,
            len(tasks),
            restored,
            time.monotonic() - started,
            ", ".join(t.id for t in tasks),
        )

    def revoke(self, partitions: Iterable[tuple[str, int]]) -> None:
        for topic, partition in partitions:
            sub = self.topology.sub_of_topic.get(topic)
            if sub is None:
                continue
            task = self.tasks.pop((sub.index, partition), None)
            if task is not None:
                task.state.close()

    def close(self) -> None:
        for task in self.tasks.values():
            task.state.close()
        self.tasks.clear()
        skips.flush()

    # -- processing ------------------------------------------------------------------------

    def process(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: Any,
        timestamp: int,
        cause: Any = None,
        ce_time: str | None = None,
        headers: Any = None,
    ) -> None:
        task = self.task_for(topic, partition)
        if task is None:
            raise RuntimeError(f"no task for {topic}[{partition}]")
        source = self.topology.sources_of_topic[topic]
        if source.internal:
            if cause is None:
                cause = _cause(headers)
            record = Record(decode_key(key), decode_value(value), timestamp, cause, topic)
            origin = _origin(headers)
            if origin:
                record.origin = origin
        else:
            record_key = None if key is None else key.decode("utf-8", "replace")
            ts = event_time(source, value, timestamp, ce_time)
            record = Record(record_key, value, ts, cause, topic)
        source.process(task, record)

    def punctuate(self, now: int | None = None) -> int:
        """Nodes with deadlines by the wall clock (sagas) fire what is due at ``now`` (epoch
        ms; default: now); returns how many tasks had something due."""
        now = int(time.time() * 1000) if now is None else now
        fired = 0
        for task in self.tasks.values():
            for node in task.sub.nodes:
                due = getattr(node, "next_due", None)
                if due is None or getattr(node, "clock", None) != "wall":
                    continue
                at = due(task)
                if at is not None and at <= now:
                    node.punctuate(task, now)  # type: ignore[attr-defined]
                    fired += 1
        return fired

    def due(self, now: int | None = None) -> bool:
        """Whether a wall-clock deadline of some task is due at ``now``."""
        now = int(time.time() * 1000) if now is None else now
        for task in self.tasks.values():
            for node in task.sub.nodes:
                due = getattr(node, "next_due", None)
                if due is not None and getattr(node, "clock", None) == "wall":
                    at = due(task)
                    if at is not None and at <= now:
                        return True
        return False

    def flush(self) -> int:
        """Every task's changed keys to its changelogs; returns how many."""
        count = 0
        for task in self.tasks.values():
            for changelog, key, value in task.state.changes():
                self.sink.send(changelog, key, value, -1, None, task.partition, changelog_of=task)
                count += 1
        return count

    def pending(self) -> int:
        """How many changed keys have not gone to a changelog yet."""
        return sum(task.state.pending() for task in self.tasks.values())

    def committed(self) -> None:
        for task in self.tasks.values():
            task.state.persist()
        skips.flush(due_only=True)

    def aborted(self) -> None:
        for task in self.tasks.values():
            task.rollback()


def _cause(headers: Any) -> Any:
    """The input a repartition record came from (its ids, as the sink wrote them), so that
    events emitted downstream keep its correlation; None when it had none."""
    from nerve.service.events import Meta
    from nerve.streams.operators import CAUSE_CORRELATION, CAUSE_ID, CAUSE_TRACEPARENT

    found: dict[str, str] = {}
    for name, value in headers or ():
        if name in (CAUSE_ID, CAUSE_CORRELATION, CAUSE_TRACEPARENT):
            found[name] = value.decode() if isinstance(value, bytes) else str(value)
    if CAUSE_ID not in found:
        return None
    return Meta(
        id=found[CAUSE_ID],
        correlation_id=found.get(CAUSE_CORRELATION),
        traceparent=found.get(CAUSE_TRACEPARENT),
    )


def _joins(sub: SubTopology) -> bool:
    from nerve.streams.joins import JoinSide

    return len(sub.topics) > 1 and any(
        isinstance(n, JoinSide) or getattr(n, "co_partitioned", False) for n in sub.nodes
    )


def _origin(headers: Any) -> str:
    for name, value in headers or ():
        if name == "nerve-origin":
            return value.decode() if isinstance(value, bytes) else str(value)
    return ""
