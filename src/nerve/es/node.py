"""The aggregate's processor: one per service and aggregate type, in the streams task that
owns the aggregate's partition (so commands for one aggregate are handled one at a time, in
order, by one replica: the single writer)."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from nerve.es.aggregate import Aggregate, Rejected
from nerve.service.events import Event
from nerve.streams.records import Record
from nerve.streams.topology import Node

if TYPE_CHECKING:
    from nerve.streams.task import Task

log = logging.getLogger("nerve.es")

EXPECTED_VERSION = "nerveexpectedversion"
REPLY_TO = "nervereplyto"
VERSION = "nerveversion"
REVISION = "nerverevision"


class AggregateNode(Node):
    kind = "aggregate-root"

    def __init__(self, name: str, store: str, cls: type[Aggregate]) -> None:
        super().__init__(name)
        self.store = store
        self.stores[store] = True
        self.cls = cls

    def process(self, task: Task, record: Record) -> None:
        command = record.value
        meta = record.cause
        extensions: dict[str, str] = getattr(meta, "extensions", None) or {}
        key = record.key if record.key is not None else str(getattr(command, self.cls.key_field))
        store = task.store(self.store)
        held = store.get(key)
        version, state = held if held is not None else (0, self.cls())
        expected = extensions.get(EXPECTED_VERSION)
        if expected is not None and int(expected) != version:
            log.info(
                "%s %s: %s refused, expected version %s but it is at %d",
                self.cls.__name__, key, type(command).__name__, expected, version,
            )  # fmt: skip
            self._reply(task, record, "conflict", version, f"expected version {expected}, "
                        f"the aggregate is at version {version}")  # fmt: skip
            return
        handler = self.cls.commands.get(type(command))
        if handler is None:
            self._reply(task, record, "error", version, f"no handler for {type(command).__name__}")
            raise TypeError(f"{self.cls.__name__} has no command handler for {type(command)}")
        work = state.model_copy(deep=True)
        try:
            result = getattr(work, handler)(command)
            events = _events(result)
            for event in events:
                work.apply(event)
        except Rejected as exc:
            self._reply(task, record, "rejected", version, str(exc))
            return
        except Exception as exc:
            self._reply(task, record, "error", version, f"{type(exc).__name__}: {exc}")
            raise
        if not events:
            self._reply(task, record, "accepted", version, None, [])
            return
        for offset, event in enumerate(events, start=1):
            event.meta.extensions[VERSION] = str(version + offset)
            revision = getattr(event, "revision", 1)
            if revision != 1:  # absent means 1: events of types never revised carry nothing
                event.meta.extensions[REVISION] = str(revision)
        version += len(events)
        store.put(key, (version, work))
        task.sink.emit(events, record, self.name)
        self._reply(task, record, "accepted", version, None, events)

    def _reply(
        self,
        task: Task,
        record: Record,
        status: str,
        version: int,
        reason: str | None,
        events: list[Event] | None = None,
    ) -> None:
        meta = record.cause
        reply_to = (getattr(meta, "extensions", None) or {}).get(REPLY_TO)
        if not reply_to or meta is None:
            if status != "accepted":
                log.warning(
                    "%s %s: %s %s (%s); no reply was asked for",
                    self.cls.__name__, record.key, type(record.value).__name__, status, reason,
                )  # fmt: skip
            return
        body = {
            "command_id": meta.id,
            "aggregate": self.cls.__name__,
            "key": record.key,
            "status": status,
            "version": version,
            "reason": reason,
            "events": [
                {"type": e.event_type, "topic": e.topic, "data": e.model_dump(mode="json")}
                for e in events or []
            ],
        }
        task.sink.send(reply_to, meta.id.encode(), json.dumps(body).encode(), -1)


def _events(result: Any) -> list[Event]:
    if result is None:
        return []
    items = list(result) if isinstance(result, list | tuple) else [result]
    for item in items:
        if not isinstance(item, Event):
            raise TypeError(f"a command handler returned {type(item).__name__}, not an Event")
    return items


def attach(service: Any, cls: type[Aggregate]) -> None:
    """Wire an aggregate into a service: its command topics streamed and merged, the
    aggregate's node after them, its events among what the service emits."""
    if not cls.commands:
        raise TypeError(f"{cls.__name__} has no @command handlers")
    if not service.exactly_once:
        raise ValueError(
            f"{service.name}: aggregates need Service(..., exactly_once=True): their events, "
            "state and command offsets must commit together, or a crash repeats a decision"
        )
    for command_type in cls.commands:
        if command_type.key_field != cls.key_field:
            raise TypeError(
                f"{command_type.__name__} must be keyed by {cls.key_field!r} (key=...), the "
                f"key of {cls.__name__}: commands reach the replica owning the aggregate by it"
            )
    streams = [service.stream(command_type, time="record") for command_type in cls.commands]
    head = streams[0] if len(streams) == 1 else streams[0].merge(*streams[1:])
    builder = service.streams_builder
    name = builder.name(cls.__name__.lower())
    head.node.add(AggregateNode(name, name, cls))
    builder.output_topics.add(f"{service.name}.replies")
    for event_type in cls.emits():
        if event_type not in service.emits:
            service.emits.append(event_type)
