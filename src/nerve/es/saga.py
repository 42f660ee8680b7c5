"""Sagas (process managers): a long-running flow per key that reacts to events of several
types, keeps its own state, sends commands or emits events as reactions, and has deadlines.

A saga runs as a streams node after its event types' topics, like an aggregate: every event
of one key lands on one partition, so the replica owning it handles that key's flow one event
at a time. Its state and its pending deadlines are one value in a changelogged store, written
in the transaction that emits its reactions and commits the input offsets (or, for a deadline
fired by the wall clock, in a transaction of its own): a crash never repeats a reaction or
loses one, and a deadline survives a restart and moves with its partition.
"""

from __future__ import annotations

import heapq
import logging
import time
import typing
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, PrivateAttr

from nerve.es.aggregate import declared_events
from nerve.es.node import returned_events
from nerve.service.events import Event
from nerve.streams.dsl import Stream
from nerve.streams.records import Record
from nerve.streams.topology import Node

if TYPE_CHECKING:
    from nerve.streams.task import Task

log = logging.getLogger("nerve.es")

F = TypeVar("F", bound=Callable[..., Any])


def step(
    event_type: type[Event] | None = None,
    *,
    start: bool = False,
    key: Callable[[Any], Any] | None = None,
) -> Callable[[F], F]:
    """Marks a saga's method as its reaction to ``event_type`` (else the type its parameter
    names). ``start=True``: the event starts a new instance when its key has none; other
    steps apply only to a running instance (an event for a key without one is passed over,
    with a log line). It returns the events or commands to send (one, a list, or None).
    ``key``: the saga's key of an event type keyed otherwise (default: its field named like
    the saga's key); such events go through a repartition topic first."""

    def mark(func: F) -> F:
        func.__nerve_step__ = (event_type, start, key)  # type: ignore[attr-defined]
        return func

    return mark


def timeout(name: str) -> Callable[[F], F]:
    """Marks a saga's method as what happens when its deadline ``name`` passes (scheduled
    with ``self.schedule(name, after)``); it takes no argument and returns events or commands
    like a step."""

    def mark(func: F) -> F:
        func.__nerve_timeout__ = name  # type: ignore[attr-defined]
        return func

    return mark


class Saga(BaseModel):
    """Base class of sagas: ``class OrderFlow(Saga, key="order_id")``. Fields are the
    instance's state (with defaults: a new instance starts from them); ``@step`` methods react
    to events, ``@timeout`` methods to deadlines. In a handler: ``self.key`` (the instance's
    key), ``self.schedule(name, after)``, ``self.cancel(name)``, ``self.undo_with(command)``
    and ``self.compensate()`` (compensating commands), ``self.finish()`` (the instance ends:
    its state, deadlines and compensations are deleted)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    key_field: ClassVar[str] = "id"
    steps: ClassVar[dict[type[Event], tuple[str, bool]]] = {}
    # The saga's key of step event types keyed otherwise (re-keyed through a repartition).
    rekey: ClassVar[dict[type[Event], Callable[[Any], Any] | None]] = {}
    timeouts: ClassVar[dict[str, str]] = {}

    _key: Any = PrivateAttr(default=None)
    _now: int = PrivateAttr(default=0)
    _deadlines: dict[str, int] = PrivateAttr(default_factory=dict)
    _finished: bool = PrivateAttr(default=False)
    _undo: list[Event] = PrivateAttr(default_factory=list)

    def __init_subclass__(cls, key: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if key is not None:
            cls.key_field = key

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        steps: dict[type[Event], tuple[str, bool]] = {}
        rekey: dict[type[Event], Callable[[Any], Any] | None] = {}
        timeouts: dict[str, str] = {}
        for name, member in vars(cls).items():
            marked = getattr(member, "__nerve_step__", None)
            if marked is not None:
                event_type, start, key = marked
                if event_type is None:
                    hints = typing.get_type_hints(member)
                    params = [h for n, h in hints.items() if n != "return"]
                    event_type = params[0] if len(params) == 1 else None
                if not (isinstance(event_type, type) and issubclass(event_type, Event)):
                    raise TypeError(
                        f"{cls.__name__}.{name}: a step reacts to one Event type "
                        "(@step(EventType) or its parameter's annotation)"
                    )
                if event_type in steps:
                    raise TypeError(f"{cls.__name__}: two steps react to {event_type.__name__}")
                steps[event_type] = (name, start)
                if key is not None:
                    rekey[event_type] = key
            deadline = getattr(member, "__nerve_timeout__", None)
            if deadline is not None:
                timeouts[deadline] = name
        cls.steps = steps
        cls.rekey = rekey
        cls.timeouts = timeouts

    @property
    def key(self) -> Any:
        return self._key

    def schedule(self, name: str, after: timedelta | float) -> None:
        """Deadline ``name`` ``after`` from now (a timedelta or seconds), by the saga's clock;
        scheduling it again moves it. When it passes, the ``@timeout(name)`` method runs."""
        if name not in self.timeouts:
            raise ValueError(f"{type(self).__name__} has no @timeout({name!r}) method")
        seconds = after.total_seconds() if isinstance(after, timedelta) else float(after)
        self._deadlines[name] = self._now + int(seconds * 1000)

    def cancel(self, name: str) -> None:
        """Drop deadline ``name`` (nothing if it is not pending)."""
        self._deadlines.pop(name, None)

    def undo_with(self, *commands: Event) -> None:
        """Remember commands (or events) that undo what this step did, kept with the
        instance until ``compensate()`` sends them or the instance finishes."""
        self._undo.extend(commands)

    def compensate(self) -> list[Event]:
        """The remembered compensating commands, the last remembered first, forgotten as
        they are returned: return them (with what else the flow sends) from the step or
        timeout that finds the flow failed."""
        out = self._undo[::-1]
        self._undo = []
        return out

    def finish(self) -> None:
        """The instance is done: its state and pending deadlines are deleted once the
        handler returns (a later start event of the key starts a new one)."""
        self._finished = True

    @classmethod
    def emits(cls) -> list[type[Event]]:
        """The event types the handlers declare they return."""
        out: list[type[Event]] = []
        for name in [n for n, _ in cls.steps.values()] + list(cls.timeouts.values()):
            hint = typing.get_type_hints(getattr(cls, name)).get("return")
            for item in declared_events(hint):
                if item not in out:
                    out.append(item)
        return out


# A stored instance: (state, {deadline name: due in epoch ms}, [compensating commands]).
Held = tuple[Any, ...]


class SagaNode(Node):
    """Runs a saga per key. Its store maps a key to ``(state, deadlines)``; an index of the
    deadlines by time (rebuilt from the store after a restart or a rollback) says which are
    due. ``clock="stream"``: a deadline passes when the task's stream time (the largest event
    time seen) reaches it, checked before each event; ``"wall"``: when the wall clock does,
    checked before each event and while the service is idle (``punctuate``)."""

    kind = "saga"
    # Its inputs are co-partitioned and taken in timestamp order across topics, as a join's
    # are: a key's payment after its order, whichever topic was fetched first.
    co_partitioned = True

    def __init__(self, name: str, cls: type[Saga], clock: str) -> None:
        super().__init__(name)
        self.store = name
        self.stores[name] = True
        self.cls = cls
        self.clock = clock

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["saga"] = self.cls.__name__
        out["clock"] = self.clock
        out["steps"] = [t.__name__ for t in self.cls.steps]
        out["timeouts"] = list(self.cls.timeouts)
        return out

    def _index(self, task: Task) -> list[tuple[int, str, Any]]:
        store = task.store(self.store)

        def build() -> list[tuple[int, str, Any]]:
            heap = [
                (due, name, key) for key, held in store.items() for name, due in held[1].items()
            ]
            heapq.heapify(heap)
            return heap

        index: list[tuple[int, str, Any]] = task.transient(self.name, build)
        return index

    def process(self, task: Task, record: Record) -> None:
        event = record.value
        if event is None:
            return
        key = record.key if record.key is not None else getattr(event, self.cls.key_field)
        if self.clock == "stream":
            now = task.advance(self.name, record.timestamp)
        else:
            now = int(time.time() * 1000)
        self.punctuate(task, now)
        found = self.cls.steps.get(type(event))
        if found is None:
            raise TypeError(f"{self.cls.__name__} has no step for {type(event).__name__}")
        handler, start = found
        store = task.store(self.store)
        held: Held | None = store.get(key)
        if held is None:
            if not start:
                log.info(
                    "%s %s: %s passed over: no running instance (and it starts none)",
                    self.cls.__name__, key, type(event).__name__,
                )  # fmt: skip
                return
            held = (self.cls(), {}, [])
        self._run(task, store, key, held, now, record, handler, event)

    def next_due(self, task: Task) -> int | None:
        index = self._index(task)
        return index[0][0] if index else None

    def punctuate(self, task: Task, now: int) -> None:
        """Every deadline due at ``now``, in time order."""
        index = self._index(task)
        store = task.store(self.store)
        while index and index[0][0] <= now:
            due, name, key = heapq.heappop(index)
            held: Held | None = store.get(key)
            if held is None or held[1].get(name) != due:
                continue  # cancelled, moved or finished since
            method = self.cls.timeouts[name]
            deadlines = {n: d for n, d in held[1].items() if n != name}
            cause = Record(key, None, due)
            try:
                self._run(task, store, key, (held[0], deadlines, *held[2:]), due, cause, method)
            except Exception:
                # Raising would redo the transaction and meet the same failure for ever.
                log.exception(
                    "%s %s: timeout %r failed; it is dropped, the state kept as it was",
                    self.cls.__name__, key, name,
                )  # fmt: skip
                store.put(key, (held[0], deadlines, *held[2:]))

    def _run(
        self,
        task: Task,
        store: Any,
        key: Any,
        held: Held,
        now: int,
        record: Record,
        method: str,
        *args: Any,
    ) -> None:
        state, deadlines, *rest = held
        work = state.model_copy(deep=True)
        work._key, work._now, work._deadlines = key, now, dict(deadlines)
        work._undo = list(rest[0]) if rest else []
        events = returned_events(getattr(work, method)(*args), "saga")
        if work._finished:
            store.delete(key)
        else:
            store.put(key, (work, dict(work._deadlines), list(work._undo)))
            index = self._index(task)
            for name, due in work._deadlines.items():
                if deadlines.get(name) != due:
                    heapq.heappush(index, (due, name, key))
        if events:
            task.sink.emit(events, record, self.name)


def _field(name: str) -> Callable[[Any], Any]:
    def key(event: Any) -> Any:
        return getattr(event, name)

    return key


def attach(service: Any, cls: type[Saga], clock: str = "wall") -> None:
    """Wire a saga into a service: its event types streamed and merged, the saga's node
    after them, what it sends among what the service emits."""
    if not cls.steps:
        raise TypeError(f"{cls.__name__} has no @step handlers")
    if not any(start for _, start in cls.steps.values()):
        raise TypeError(f"{cls.__name__}: no step has start=True, so no instance ever starts")
    if clock not in ("wall", "stream"):
        raise ValueError("clock must be 'wall' or 'stream'")
    if not service.exactly_once:
        raise ValueError(
            f"{service.name}: sagas need Service(..., exactly_once=True): their reactions, "
            "state and input offsets must commit together, or a crash repeats a reaction"
        )
    streams = []
    for event_type in cls.steps:
        stream = service.stream(event_type, time="event")
        given = cls.rekey.get(event_type)
        if given is None and event_type.key_field != cls.key_field:
            if cls.key_field not in event_type.model_fields:
                raise TypeError(
                    f"{event_type.__name__} is keyed by {event_type.key_field!r} and has no "
                    f"field {cls.key_field!r}, the key of {cls.__name__}: give the step "
                    "key=<function of the event> (a saga sees a key's events on one partition)"
                )
            given = _field(cls.key_field)
        if given is not None:  # through a repartition topic, keyed by the saga's key
            builder = service.streams_builder
            rekeyed = stream.select_key(given)
            upstream = builder.upstream_topics(rekeyed.node)
            by = f"{cls.__name__}-{event_type.__name__}".lower()
            stream = Stream(builder, builder.repartition(rekeyed.node, by, upstream))
        streams.append(stream)
    head = streams[0] if len(streams) == 1 else streams[0].merge(*streams[1:])
    name = service.streams_builder.name(cls.__name__.lower())
    head.node.add(SagaNode(name, cls, clock))
    for event_type in cls.emits():
        if event_type not in service.emits:
            service.emits.append(event_type)
