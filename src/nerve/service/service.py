"""``Service``: a named set of handlers and tables, run as one consumer group."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from nerve.service.events import Event
from nerve.service.handlers import Handler, Retry, declared_emits
from nerve.service.tables import Table

F = TypeVar("F", bound=Callable[..., Any])


class Service:
    """An event-driven service.

    ``name`` is also its consumer group: replicas of one service share the partitions of what it
    consumes. ``start`` says where a new group begins (``earliest`` processes what already
    flowed, so a service added later catches up). ``max_in_flight`` bounds the events handled
    at once (one batch; the run configuration's ``batch_size`` unless given).
    ``group_protocol`` is the consumer group protocol its replicas use: ``"classic"``, or
    ``"consumer"`` (KIP-848: the broker assigns, and a replica joining or leaving moves only
    the partitions that change owner; Kafka 4 or nerve).
    ``share_group=True`` makes the replicas members of a share group instead (KIP-932, a work
    queue: Kafka 4.2+ or nerve): records of one partition are spread over every replica, each
    acknowledged on its own (accepted when handled, released to be tried again, rejected once
    dead-lettered). It gives up per-key order and exactly-once (see docs/services.md).
    """

    def __init__(
        self,
        name: str,
        description: str = "",
        *,
        owner: str | None = None,
        exactly_once: bool = False,
        start: str = "earliest",
        max_in_flight: int | None = None,
        group_protocol: str = "classic",
        share_group: bool = False,
    ) -> None:
        if group_protocol not in ("classic", "consumer"):
            raise ValueError(
                f"{name}: group_protocol must be 'classic' or 'consumer', not {group_protocol!r}"
            )
        if share_group and exactly_once:
            raise ValueError(
                f"{name}: a share group acknowledges records one by one, outside any "
                "transaction: share_group=True cannot be exactly_once"
            )
        if share_group and group_protocol != "classic":
            raise ValueError(f"{name}: share_group=True has its own protocol; drop group_protocol")
        self.share_group = share_group
        self.group_protocol = group_protocol
        self.name = name
        self.description = description
        self.owner = owner
        self.exactly_once = exactly_once
        self.start = start
        self.max_in_flight = max_in_flight
        self.handlers: list[Handler] = []
        self.tables: list[Table[Any]] = []
        self.emits: list[type[Event]] = []
        # Streams (nerve.streams): built on the first ``stream`` call.
        self.streams_builder: Any = None
        self.stream_emits: list[Any] = []
        self._client: Any = None  # nerve.es.CommandClient, made by the first send()
        self.projections: list[Any] = []  # nerve.es.projection.Projection

    def on(
        self,
        source: type[Event] | str,
        *,
        where: Callable[[Any], bool] | None = None,
        retries: int = 3,
        backoff_s: float = 0.2,
        idempotent: bool = False,
    ) -> Callable[[F], F]:
        """Register the decorated function as a handler of an event type (or a raw topic).

        A handler that raises (or whose events cannot be sent) is tried again ``retries``
        times after the first attempt, waiting ``backoff_s``, then twice that, ...; then the
        input goes to the dead-letter topic.
        """

        def register(func: F) -> F:
            if isinstance(source, str):
                topic, event_type = source, None
            else:
                topic, event_type = source.topic, source
            emits = declared_emits(func)
            self.handlers.append(
                Handler(
                    func=func,
                    topic=topic,
                    event_type=event_type,
                    where=where,
                    retry=Retry(attempts=1 + max(0, retries), initial_s=backoff_s),
                    idempotent=idempotent,
                    emits=emits,
                )
            )
            for event_class in emits:
                if event_class not in self.emits:
                    self.emits.append(event_class)
            return func

        return register

    def table(
        self,
        topic: str,
        model: type[BaseModel] | None = None,
        *,
        from_: type[Event] | None = None,
    ) -> Table[Any]:
        """A table kept current from a topic, keyed like the topic's records.

        ``service.table("user.profile", Profile)`` materialises a (compacted) topic others
        write. ``service.table("balances", from_=BalanceChanged)`` is the service's own state:
        the latest ``BalanceChanged`` per key, restored at start from that event's topic (its
        changelog) and updated as soon as this service emits one, so the next event for the
        key sees it.
        """
        if from_ is not None:
            table: Table[Any] = Table(from_.topic, from_, name=topic, owner_event=from_)
        else:
            table = Table(topic, model)
        self.tables.append(table)
        return table

    def stream(
        self,
        source: type[Event] | str,
        *,
        time: Callable[[Any], Any] | str = "event",
        value: str = "text",
    ) -> Any:
        """A stream of an event type's topic (or of a raw topic) to process with
        ``nerve.streams`` operators: filters, maps, groupings, windows, joins.

        ``time`` says what a record's event time is: ``"event"`` (the CloudEvent's ``time``,
        else the record timestamp), ``"record"`` (the record timestamp) or a function of the
        value returning a datetime or epoch milliseconds. A raw topic's values are read as
        ``value``: ``"text"`` (UTF-8), ``"json"`` or ``"bytes"``.
        """
        from nerve.streams.dsl import Stream, StreamsBuilder

        if self.share_group:
            # State is partitioned by key; a share group hands one key's records to anyone.
            raise ValueError(
                f"{self.name}: streams need partitions of their own, not a share group"
            )
        if self.streams_builder is None:
            self.streams_builder = StreamsBuilder(self)
        builder = self.streams_builder
        if isinstance(source, str):
            if value not in ("text", "json", "bytes"):
                raise ValueError("value must be 'text', 'json' or 'bytes'")
            node = builder.source(source, value_format=value, time=time)
        else:
            node = builder.source(source.topic, event_type=source, time=time)
        return Stream(builder, node)

    def match(
        self,
        pattern: Any,
        *,
        key: Callable[[Any], Any],
        on_timeout: Callable[[Any], Any] | None = None,
        after_match: str = "all",
        time: Callable[[Any], Any] | str = "event",
        name: str | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated function for every match of ``pattern`` (complex event
        processing, ``nerve.streams.pattern``) per ``key(event)``: it gets the ``Match`` and
        returns the event(s) to emit, or None. ``on_timeout(m)`` gets each partial match
        ``within`` ended before it completed (a "missing step" alert) and returns events too.
        The pattern's event types are streamed, merged and re-keyed by ``key`` (a repartition
        topic), then matched in event-time order per key (``time`` as for ``stream``).
        """

        def register(func: F) -> F:
            types = pattern.event_types
            if not types:
                raise ValueError("a pattern for Service.match names its event types")
            streams = [self.stream(t, time=time) for t in types]
            merged = streams[0].merge(*streams[1:]) if len(streams) > 1 else streams[0]
            base = name or func.__name__
            matches = merged.group_by(key, name=f"{base}-by").match(
                pattern, timeouts=on_timeout is not None, after_match=after_match, name=base
            )
            timed_out = on_timeout
            matches.emit(lambda m: None if m.timed_out else func(m), name=f"{base}-emit")
            if timed_out is not None:
                matches.emit(
                    lambda m: timed_out(m) if m.timed_out else None, name=f"{base}-timeout"
                )
            for fn in (func, on_timeout):
                for event_class in declared_emits(fn) if fn is not None else ():
                    if event_class not in self.emits:
                        self.emits.append(event_class)
            return func

        return register

    def aggregate(self, cls: Any = None, *, snapshot_every: int | None = None) -> Any:
        """Register an event-sourced aggregate (``nerve.es.Aggregate``): its commands are
        handled by the replica owning each aggregate's partition, its events, state and the
        commands' offsets committed in one transaction (needs ``exactly_once=True``).
        ``@service.aggregate(snapshot_every=100)`` also writes its state every 100 versions
        to ``<service>.<aggregate>.snapshots``, where histories start from."""
        from nerve.es.node import attach

        def register(target: Any) -> Any:
            attach(self, target, snapshot_every)
            return target

        return register if cls is None else register(cls)

    def saga(self, cls: Any = None, *, clock: str = "wall") -> Any:
        """Register a saga (``nerve.es.Saga``): a flow per key reacting to its ``@step``
        event types, its state and deadlines in a changelogged store, its reactions, state
        and the inputs' offsets committed in one transaction (needs ``exactly_once=True``).
        ``clock``: deadlines pass by the wall clock (``"wall"``, also while no event comes)
        or by stream time (``"stream"``: the largest event time the saga's partition saw)."""
        from nerve.es.saga import attach

        def register(target: Any) -> Any:
            attach(self, target, clock)
            return target

        return register if cls is None else register(cls)

    def projection(
        self,
        *sources: type[Event],
        database: str | Any,
        name: str | None = None,
        version: int = 1,
    ) -> Callable[[F], Any]:
        """A read model: the decorated ``fn(event, db)`` folds the events of ``sources`` into
        ``database`` (a SQLite file, or a ``postgresql://`` URL), its position stored in the
        same transaction; ``version`` is raised when the function changes, and the view
        rebuilt beside the old one (``nerve.es.projection``)."""
        from nerve.es.projection import Projection

        def register(func: F) -> Any:
            projection = Projection(
                self.name, name or func.__name__, func, sources, database, version
            )
            self.projections.append(projection)
            return projection

        return register

    async def send(
        self, command: Event, *, expected_version: int | None = None, timeout: float = 10.0
    ) -> Any:
        """Send a command to this service's aggregates and wait for the outcome
        (``nerve.es.Outcome``), through a client made on first use (connection settings from
        the environment, as ``RunConfig``)."""
        from nerve.es.commands import CommandClient

        if self._client is None:
            self._client = CommandClient(self)
        return await self._client.send(command, expected_version=expected_version, timeout=timeout)

    async def history(
        self,
        cls: Any,
        key: str,
        *,
        as_of_version: int | None = None,
        as_of: Any = None,
        timeout: float = 30.0,
        config: Any = None,
    ) -> Any:
        """An aggregate's events read back from Kafka and folded as of a version or a time
        (``nerve.es.history``; ``config`` a ``RunConfig``, else from the environment)."""
        from nerve.es.history import load_async

        return await load_async(
            cls, key, as_of_version=as_of_version, as_of=as_of, timeout=timeout, config=config
        )

    @property
    def topics(self) -> list[str]:
        return list(dict.fromkeys(h.topic for h in self.handlers))

    def __repr__(self) -> str:
        return f"Service({self.name!r}, handlers={len(self.handlers)})"
