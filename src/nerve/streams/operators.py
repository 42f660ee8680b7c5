"""Stateless operators: filter, map, flat_map, branch, merge, key changes, peek, and the
nodes that write records out (to a topic, as events, to a repartition topic)."""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from nerve.streams import skips
from nerve.streams.records import Record, Windowed, WindowKey
from nerve.streams.serde import encode_key, encode_value
from nerve.streams.topology import Node

if TYPE_CHECKING:
    from nerve.streams.task import Task

log = logging.getLogger("nerve.streams")


def arity(fn: Callable[..., Any]) -> int:
    """How many of (key, value) a user function takes: ``lambda v: ...`` sees the value,
    ``lambda k, v: ...`` the key too."""
    try:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
    except (TypeError, ValueError):  # builtins without a signature
        return 1
    return 2 if len(params) >= 2 else 1


class _UserFunction(Node):
    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        super().__init__(name)
        self.fn = fn
        self.two = arity(fn) == 2

    def call(self, record: Record) -> Any:
        value = view(record)
        return self.fn(record.key, value) if self.two else self.fn(value)


def view(record: Record) -> Any:
    """What a user function sees of a record: its value, or a ``Windowed`` for a windowed
    table's change."""
    key = record.key
    if isinstance(key, WindowKey):
        return Windowed(key.key, key.start, key.end, record.value)
    return record.value


class FilterNode(_UserFunction):
    kind = "filter"

    def process(self, task: Task, record: Record) -> None:
        if self.call(record):
            self.forward(task, record)


class TableFilterNode(_UserFunction):
    """A table's ``where``: rows that fail the predicate are absent from the result, so a
    row that stops matching is deleted downstream (a tombstone), as Kafka Streams' filter."""

    kind = "table-filter"

    def process(self, task: Task, record: Record) -> None:
        new_ok = record.value is not None and bool(self.call(record))
        old_ok = record.old is not None and bool(self.call(record.with_(value=record.old)))
        if new_ok:
            self.forward(task, record.with_(old=record.old if old_ok else None))
        elif old_ok:
            self.forward(task, record.with_(value=None, old=record.old))


class MapNode(_UserFunction):
    kind = "map"

    def process(self, task: Task, record: Record) -> None:
        self.forward(task, record.with_(value=self.call(record), old=None))


class TableMapNode(_UserFunction):
    """``map_values`` of a table: old and new both mapped; deletions stay deletions."""

    kind = "table-map"

    def process(self, task: Task, record: Record) -> None:
        new = None if record.value is None else self.call(record)
        old = None if record.old is None else self.call(record.with_(value=record.old))
        self.forward(task, record.with_(value=new, old=old))


class FlatMapNode(_UserFunction):
    kind = "flat_map"

    def process(self, task: Task, record: Record) -> None:
        for value in self.call(record) or ():
            self.forward(task, record.with_(value=value))


class SelectKeyNode(_UserFunction):
    kind = "select_key"

    def process(self, task: Task, record: Record) -> None:
        self.forward(task, record.with_(key=self.call(record)))


class PeekNode(_UserFunction):
    kind = "peek"

    def process(self, task: Task, record: Record) -> None:
        self.call(record)
        self.forward(task, record)


class BranchNode(Node):
    """Each record goes to the first branch whose predicate holds (Kafka Streams' split);
    ``None`` as a predicate takes everything left."""

    kind = "branch"

    def __init__(self, name: str, predicates: list[Callable[..., bool] | None]) -> None:
        super().__init__(name)
        self.predicates = predicates
        self.branches: list[Node] = []

    def process(self, task: Task, record: Record) -> None:
        value = view(record)
        for predicate, branch in zip(self.predicates, self.branches, strict=True):
            if predicate is None or predicate(value):
                branch.process(task, record)
                return


class PassNode(Node):
    """A named point in the graph (a merge, a branch's head)."""

    kind = "pass"


class ToStreamNode(Node):
    """A table's changes as a stream of its new values."""

    kind = "to_stream"

    def process(self, task: Task, record: Record) -> None:
        self.forward(task, record.with_(old=None))


# Headers of a repartition record naming the input it came from.
CAUSE_ID = "nerve-cause-id"
CAUSE_CORRELATION = "nerve-cause-correlation"
CAUSE_TRACEPARENT = "nerve-cause-traceparent"


class RepartitionSinkNode(Node):
    """Writes records to a repartition topic under their new key; the producer's partitioner
    (murmur2, as the Java client's) places them, so the next sub-topology's task for that
    partition sees every record of the key."""

    kind = "repartition"
    ends_subtopology = True

    def __init__(self, name: str, topic: str) -> None:
        super().__init__(name)
        self.topic = topic

    def process(self, task: Task, record: Record) -> None:
        if record.key is None:
            skips.skipped(
                self.name,
                record.origin,
                "without a key cannot be grouped: skipped",
                _position(record),
            )
            return
        headers = [("nerve-origin", record.origin)] if record.origin else []
        cause = record.cause
        if cause is not None and getattr(cause, "id", None):
            # The input's ids ride along: events emitted after the repartition stay in its
            # chain (correlation and causation), as events emitted before it are.
            headers.append((CAUSE_ID, cause.id))
            if cause.correlation_id:
                headers.append((CAUSE_CORRELATION, cause.correlation_id))
            if cause.traceparent:
                headers.append((CAUSE_TRACEPARENT, cause.traceparent))
        task.sink.send(
            self.topic,
            encode_key(record.key),
            encode_value(record.value),
            record.timestamp,
            headers or None,
        )


def _position(record: Record) -> str:
    cause = record.cause
    if cause is None or getattr(cause, "topic", None) is None:
        return "no position"
    return f"{cause.topic}[{cause.partition}]@{cause.offset}"


def text(value: Any) -> bytes | None:
    """How ``to`` writes a value: text as UTF-8, bytes as they are, models and plain data as
    JSON, None as a tombstone."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, BaseModel):
        return value.model_dump_json().encode()
    if isinstance(value, int | float | bool):
        return json.dumps(value).encode()
    return json.dumps(value, default=str).encode()


def key_text(key: Any) -> bytes | None:
    if isinstance(key, WindowKey):
        key = key.key
    if key is None:
        return None
    if isinstance(key, bytes):
        return key
    return str(key).encode()


class ToNode(Node):
    """Writes records to a topic as they are (``key`` and ``value`` functions may shape them
    first), the record's event time as the record timestamp."""

    kind = "to"

    def __init__(
        self,
        name: str,
        topic: str,
        key: Callable[[Any, Any], Any] | None = None,
        value: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(name)
        self.topic = topic
        self.key_fn = key
        self.value_fn = value

    def process(self, task: Task, record: Record) -> None:
        key = record.key if self.key_fn is None else self.key_fn(record.key, view(record))
        value = record.value
        if self.value_fn is not None and value is not None:
            value = self.value_fn(view(record))
        task.sink.send(self.topic, key_text(key), text(value), record.timestamp)


class EmitNode(_UserFunction):
    """Turns records into events (``fn`` returns an event, several, or None) and sends them
    like a handler's: CloudEvents envelopes, correlated with the input that caused them.
    Deletions (a table's tombstones) are not passed to ``fn``."""

    kind = "emit"

    def process(self, task: Task, record: Record) -> None:
        if record.value is None:
            return
        result = self.call(record) if self.fn is not None else record.value
        if result is None:
            return
        events: Iterable[Any] = result if isinstance(result, list | tuple) else [result]
        task.sink.emit(list(events), record, self.name)
