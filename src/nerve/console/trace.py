"""Trace: from one event (its CloudEvents id) or a correlation id, the whole causal chain
across topics and services, in order, with the time each service took to answer.

nerve services copy an event's correlation id (or, for the first event of a chain, its id)
into every event they emit while handling it, and its id into their causation id (see
``nerve.service.envelope``). So a chain is the events sharing a correlation id, and the tree
is drawn by causation ids. The scan reads only headers, over the topics named, from a start
time to the ends they had when it began, bounded by a number of records; when the given id is
an event in the middle of a chain, a second pass collects the rest of its chain.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from nerve.console.cluster import Cluster, ConsoleError
from nerve.console.decoding import Decoder, Record, record


@dataclass
class Step:
    record: Record
    id: str
    type: str
    source: str
    correlation: str | None
    causation: str | None
    depth: int = 0
    latency_ms: int | None = None  # since the event that caused it
    children: list[Step] = field(default_factory=list)

    @property
    def service(self) -> str:
        prefix = "/nerve/services/"
        return self.source[len(prefix) :] if self.source.startswith(prefix) else self.source


@dataclass
class Trace:
    wanted: str
    correlation: str | None
    steps: list[Step]  # depth-first, children in time order
    read: int
    topics: list[str]
    truncated: bool  # the record bound stopped a pass before the end
    seconds: float

    @property
    def span_ms(self) -> int:
        times = [s.record.timestamp for s in self.steps]
        return max(times) - min(times) if times else 0


def _attrs(headers: Any) -> dict[str, str]:
    found = {}
    for name, raw in headers or ():
        if name.startswith("ce_"):
            found[name] = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw or ""
    return found


def _scan(
    cluster: Cluster,
    topics: list[str],
    since: int | None,
    budget: int,
    match: Any,
) -> tuple[list[Any], int, bool]:
    """Records whose ce headers ``match``; how many were read; whether the budget ran out."""
    from confluent_kafka import KafkaError, TopicPartition

    metadata = cluster.metadata().topics
    assignment: list[Any] = []
    ends: dict[tuple[str, int], int] = {}
    for topic in topics:
        found = metadata.get(topic)
        if found is None or found.error is not None:
            continue
        marks = cluster.watermarks(topic, sorted(found.partitions))
        for p, (low, high) in marks.items():
            if high > low:
                ends[(topic, p)] = high
                assignment.append(TopicPartition(topic, p, low))
    if since is not None and assignment:
        probe = cluster.consumer()
        try:
            times = [TopicPartition(tp.topic, tp.partition, since) for tp in assignment]
            found_at = probe.offsets_for_times(times, timeout=cluster.timeout)
        finally:
            probe.close()
        for tp, at in zip(assignment, found_at, strict=True):
            tp.offset = at.offset if at.offset >= 0 else ends[(tp.topic, tp.partition)]
        assignment = [tp for tp in assignment if tp.offset < ends[(tp.topic, tp.partition)]]
    if not assignment:
        return [], 0, False
    pending = {(tp.topic, tp.partition) for tp in assignment}
    hits: list[Any] = []
    read = 0
    consumer = cluster.consumer(**{"fetch.max.bytes": 52428800})
    deadline = time.monotonic() + max(cluster.timeout * 6, 60.0)
    try:
        consumer.assign(assignment)
        while pending:
            if read >= budget or time.monotonic() > deadline:
                return hits, read, True
            for message in consumer.consume(2000, timeout=0.2):
                error = message.error()
                where = (message.topic(), message.partition())
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(where)
                        continue
                    raise ConsoleError(error.str(), 502)
                if where not in pending:
                    continue
                if message.offset() >= ends[where]:
                    pending.discard(where)
                    continue
                read += 1
                if message.offset() + 1 >= ends[where]:
                    pending.discard(where)
                if match(_attrs(message.headers())):
                    hits.append(message)
    finally:
        consumer.close()
    return hits, read, False


def trace(
    cluster: Cluster,
    decoder: Decoder,
    wanted: str,
    topics: list[str],
    since: int | None,
    budget: int,
) -> Trace:
    wanted = wanted.strip()
    if not wanted:
        raise ConsoleError("an event id or a correlation id to trace")
    started = time.monotonic()

    def first(a: dict[str, str]) -> bool:
        return wanted in (a.get("ce_id"), a.get("ce_correlationid"), a.get("ce_causationid"))

    hits, read, truncated = _scan(cluster, topics, since, budget, first)
    correlation: str | None = wanted
    given = next((m for m in hits if _attrs(m.headers()).get("ce_id") == wanted), None)
    if given is not None:
        correlation = _attrs(given.headers()).get("ce_correlationid") or wanted
    if correlation != wanted:  # the middle of a chain: collect the rest of it

        def chain(a: dict[str, str]) -> bool:
            return correlation in (a.get("ce_id"), a.get("ce_correlationid"))

        more, more_read, more_truncated = _scan(cluster, topics, since, budget, chain)
        read += more_read
        truncated = truncated or more_truncated
        seen = {(m.topic(), m.partition(), m.offset()) for m in hits}
        hits += [m for m in more if (m.topic(), m.partition(), m.offset()) not in seen]
    steps: dict[str, Step] = {}
    for message in hits:
        attrs = _attrs(message.headers())
        step = Step(
            record(decoder, message),
            attrs.get("ce_id", ""),
            attrs.get("ce_type", ""),
            attrs.get("ce_source", ""),
            attrs.get("ce_correlationid"),
            attrs.get("ce_causationid"),
        )
        if step.id and step.id not in steps:  # a redelivered duplicate: the first one
            steps[step.id] = step
    roots = []
    for step in sorted(steps.values(), key=lambda s: s.record.timestamp):
        parent = steps.get(step.causation or "")
        if parent is not None and parent is not step:
            parent.children.append(step)
            step.latency_ms = step.record.timestamp - parent.record.timestamp
        else:
            roots.append(step)
    ordered: list[Step] = []

    def walk(step: Step, depth: int) -> None:
        step.depth = depth
        ordered.append(step)
        for child in step.children:
            walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    return Trace(wanted, correlation, ordered, read, topics, truncated, time.monotonic() - started)
