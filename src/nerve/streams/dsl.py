"""The operators a service's streams are written with: ``Stream``, ``GroupedStream``,
``WindowedStream``, ``Table`` and ``WindowedTable``. Each call adds a node to the service's
graph (``StreamsBuilder``); nothing runs until the service does.

User functions take the value (``lambda t: t.amount < 0``), or the key and the value when
they have two parameters (``lambda k, v: ...``). Over a windowed table they see a
``Windowed`` (key, start, end, value).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from nerve.streams import aggregations as agg
from nerve.streams import operators as ops
from nerve.streams.task import repartition_name
from nerve.streams.topology import Node, SourceNode
from nerve.streams.windows import SessionWindows, SlidingWindows, TimeWindows, WindowSpec, ms

if TYPE_CHECKING:
    from nerve.service.service import Service


class StreamsBuilder:
    """The graph of one service's streams, with names given in the order of definition (so
    every replica and every restart names stores and internal topics the same)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.sources: list[SourceNode] = []
        self.by_topic: dict[str, SourceNode] = {}
        self.repartition_topics: dict[str, list[SourceNode]] = {}
        self.output_topics: set[str] = set()
        # Output topics that keep what they hold (retention.ms -1): an aggregate's snapshots.
        self.retained_topics: set[str] = set()
        self._counter = 0
        self.names: set[str] = set()
        self.queries: Any = None  # nerve.streams.queries.Queries of the running service

    def name(self, kind: str, given: str | None = None) -> str:
        self._counter += 1
        name = given or f"{kind}-{self._counter:04d}"
        if name in self.names:
            raise ValueError(f"{self.service.name}: two operators are named {name!r}")
        self.names.add(name)
        return name

    def source(
        self,
        topic: str,
        *,
        event_type: Any = None,
        value_format: str = "event",
        time: Callable[[Any], Any] | str = "event",
    ) -> SourceNode:
        existing = self.by_topic.get(topic)
        if existing is not None:
            if existing.value_format != value_format or existing.event_type is not event_type:
                raise ValueError(f"{topic} is streamed twice with different value types")
            return existing
        node = SourceNode(
            self.name("source"), topic, event_type=event_type, value_format=value_format, time=time
        )
        self.sources.append(node)
        self.by_topic[topic] = node
        return node

    def repartition(self, parent: Node, name: str | None, upstream: list[str]) -> SourceNode:
        """A key change: ``parent``'s records go through a repartition topic, read by a new
        source (the start of another sub-topology)."""
        base = self.name("repartition", name)
        topic = repartition_name(self.service.name, base)
        parent.add(ops.RepartitionSinkNode(f"{base}-sink", topic))
        source = SourceNode(
            f"{base}-source", topic, value_format="internal", time="record", internal=True
        )
        self.sources.append(source)
        self.by_topic[topic] = source
        self.repartition_topics[topic] = []
        source.upstream = upstream  # type: ignore[attr-defined]
        return source

    def upstream_topics(self, node: Node) -> list[str]:
        """The user topics a node's records come from (a repartition topic has the partitions
        of the largest of them)."""
        seen: list[str] = []
        stack = [node]
        visited: set[int] = set()
        while stack:
            current = stack.pop()
            if id(current) in visited:
                continue
            visited.add(id(current))
            if isinstance(current, SourceNode):
                if current.internal:
                    seen.extend(getattr(current, "upstream", []))
                else:
                    seen.append(current.topic)
            stack.extend(current.parents)
        return list(dict.fromkeys(seen))


class Stream:
    """A stream of records (events, or values made from them)."""

    def __init__(self, builder: StreamsBuilder, node: Node, *, rekeyed: bool = False) -> None:
        self._builder = builder
        self._node = node
        self._rekeyed = rekeyed  # the key changed since the source: group by repartitions

    def _then(self, node: Node, *, rekeyed: bool | None = None) -> Stream:
        self._node.add(node)
        return Stream(self._builder, node, rekeyed=self._rekeyed if rekeyed is None else rekeyed)

    def filter(self, predicate: Callable[..., bool], *, name: str | None = None) -> Stream:
        """The records for which ``predicate`` holds."""
        return self._then(ops.FilterNode(self._builder.name("filter", name), predicate))

    where = filter

    def map(self, fn: Callable[..., Any], *, name: str | None = None) -> Stream:
        """Each record's value replaced by ``fn(value)`` (the key stays)."""
        return self._then(ops.MapNode(self._builder.name("map", name), fn))

    def flat_map(self, fn: Callable[..., Any], *, name: str | None = None) -> Stream:
        """Each record replaced by the values ``fn`` returns (none, one or several)."""
        return self._then(ops.FlatMapNode(self._builder.name("flat_map", name), fn))

    def peek(self, fn: Callable[..., Any], *, name: str | None = None) -> Stream:
        """Call ``fn`` on each record (logging, metrics) and pass it on unchanged."""
        return self._then(ops.PeekNode(self._builder.name("peek", name), fn))

    def select_key(self, fn: Callable[..., Any], *, name: str | None = None) -> Stream:
        """A new key for each record: a later grouping or join repartitions by it."""
        node = ops.SelectKeyNode(self._builder.name("select_key", name), fn)
        return self._then(node, rekeyed=True)

    def branch(self, *predicates: Callable[..., bool] | None) -> list[Stream]:
        """One stream per predicate: each record goes to the first whose predicate holds
        (``None`` takes the rest)."""
        node = ops.BranchNode(self._builder.name("branch"), list(predicates))
        self._node.add(node)
        streams = []
        for _ in predicates:
            head = ops.PassNode(self._builder.name("branch-head"))
            node.branches.append(head)
            head.parents.append(node)
            streams.append(Stream(self._builder, head, rekeyed=self._rekeyed))
        return streams

    def merge(self, *others: Stream, name: str | None = None) -> Stream:
        """The records of this stream and the others, as they come."""
        node = ops.PassNode(self._builder.name("merge", name))
        self._node.add(node)
        for other in others:
            other._node.add(node)
        rekeyed = self._rekeyed or any(o._rekeyed for o in others)
        return Stream(self._builder, node, rekeyed=rekeyed)

    def group_by(
        self, key: Callable[..., Any] | None = None, *, name: str | None = None
    ) -> GroupedStream:
        """Group by ``key(value)`` (through a repartition topic: every record of a key to
        one partition), or by the record's key when none is given."""
        node = self._node
        if key is not None:
            node = node.add(ops.SelectKeyNode(self._builder.name("group_by", name), key))
        if key is not None or self._rekeyed:
            upstream = self._builder.upstream_topics(self._node)
            node = self._builder.repartition(node, name and f"{name}-by", upstream)
        return GroupedStream(self._builder, node)

    def group_by_key(self) -> GroupedStream:
        return self.group_by()

    def join(
        self,
        other: Stream | Table,
        joiner: Callable[..., Any],
        *,
        within: timedelta | int | None = None,
        grace: timedelta | int | None = None,
        name: str | None = None,
    ) -> Stream:
        """Records joined with a table's row of their key (``other`` a Table), or with the
        other stream's records of their key at most ``within`` apart (``other`` a Stream);
        ``joiner(left, right)`` makes the value (docs/streams.md, "Joins")."""
        return self._join(other, joiner, "inner", within, grace, name)

    def left_join(
        self,
        other: Stream | Table,
        joiner: Callable[..., Any],
        *,
        within: timedelta | int | None = None,
        grace: timedelta | int | None = None,
        name: str | None = None,
    ) -> Stream:
        """As ``join``, and a record without a match is joined with None."""
        return self._join(other, joiner, "left", within, grace, name)

    def outer_join(
        self,
        other: Stream,
        joiner: Callable[..., Any],
        *,
        within: timedelta | int,
        grace: timedelta | int | None = None,
        name: str | None = None,
    ) -> Stream:
        """A windowed join where a record of either side without a match is joined with
        None once its window closes."""
        return self._join(other, joiner, "outer", within, grace, name)

    def _join(
        self, other: Any, joiner: Callable[..., Any], how: str, within: Any, grace: Any, name: Any
    ) -> Stream:
        from nerve.streams import joins

        left = self._co_partitioned(name and f"{name}-left")
        if isinstance(other, Table):
            if how == "outer" or within is not None:
                raise ValueError("a stream-table join has no window and no outer form")
            node = joins.stream_table(self._builder, left, other.node, joiner, how == "left", name)
        else:
            if within is None:
                raise ValueError("a stream-stream join needs within= (its window)")
            right = other._co_partitioned(name and f"{name}-right")
            node = joins.stream_stream(
                self._builder, left, right, joiner, how, ms(within), ms(grace), name
            )
        return Stream(self._builder, node)

    def _co_partitioned(self, name: str | None) -> Node:
        """This stream's node, through a repartition topic if its key changed."""
        if not self._rekeyed:
            return self._node
        upstream = self._builder.upstream_topics(self._node)
        return self._builder.repartition(self._node, name, upstream)

    def to_table(self, *, name: str | None = None) -> Table:
        """The latest value per key (None deletes the key), as a table."""
        store = self._builder.name("table", name)
        node = self._node.add(TableSourceNode(store, store))
        return Table(self._builder, node)

    def emit(self, fn: Callable[..., Any] | None = None, *, name: str | None = None) -> None:
        """Send ``fn(value)`` (an event, several, or None) as the service's events, with the
        input's correlation id; without ``fn`` the values must be events already."""
        emit_node(self._builder, self._node, fn, name)

    def to(
        self,
        topic: str,
        *,
        key: Callable[[Any, Any], Any] | None = None,
        value: Callable[[Any], Any] | None = None,
        name: str | None = None,
    ) -> None:
        """Write the records to ``topic`` as they are: text keys and values as UTF-8, bytes
        as they are, models and plain data as JSON, None as a tombstone."""
        self._builder.output_topics.add(topic)
        self._node.add(ops.ToNode(self._builder.name("to", name), topic, key, value))

    @property
    def node(self) -> Node:
        return self._node


def emit_node(
    builder: StreamsBuilder, parent: Node, fn: Callable[..., Any] | None, name: str | None
) -> None:
    node = ops.EmitNode(builder.name("emit", name), fn or _identity)
    parent.add(node)
    service = builder.service
    service.stream_emits.append(node)
    # The Event classes ``fn`` is annotated to return: the catalog lists them and the
    # service registers their schemas at start, as for a handler's.
    from nerve.service.handlers import declared_emits

    for event_class in declared_emits(fn) if fn is not None else ():
        if event_class not in service.emits:
            service.emits.append(event_class)


def _identity(value: Any) -> Any:
    return value


class TableSourceNode(Node):
    """A stream made a table: the latest value per key, its changes forwarded with the value
    they replace."""

    kind = "table"

    def __init__(self, name: str, store: str) -> None:
        super().__init__(name)
        self.store = store
        self.stores[store] = True

    def process(self, task: Any, record: Any) -> None:
        if record.key is None:
            from nerve.streams.aggregations import _skipped

            _skipped(self.name, record)  # a table row needs a key, as in Kafka Streams
            return
        store = task.store(self.store)
        held = store.get(record.key)
        old = None if held is None else held[0]
        if record.value is None:
            if held is None:
                return
            store.delete(record.key)
        else:
            store.put(record.key, (record.value, record.timestamp))
        self.forward(task, record.with_(old=old))


class GroupedStream:
    """A stream grouped by key: aggregate it into a table, or window it first."""

    def __init__(self, builder: StreamsBuilder, node: Node) -> None:
        self._builder = builder
        self._node = node

    def count(self, *, name: str | None = None) -> Table:
        """How many records each key has had."""
        return self._aggregate("count", name, agg.counting())

    def reduce(self, fn: Callable[[Any, Any], Any], *, name: str | None = None) -> Table:
        """``fn(aggregate, value)`` per key, starting from the first value."""
        return self._aggregate("reduce", name, agg.Aggregator(None, fn, fn, reduce=True))

    def aggregate(
        self,
        initial: Any,
        fn: Callable[[Any, Any], Any],
        *,
        name: str | None = None,
    ) -> Table:
        """``fn(aggregate, value)`` per key, starting from ``initial`` (a value, or a callable
        making one)."""
        return self._aggregate("aggregate", name, agg.Aggregator(_initial(initial), fn))

    def _aggregate(self, kind: str, name: str | None, aggregator: agg.Aggregator) -> Table:
        store = self._builder.name(kind, name)
        node = self._node.add(agg.AggregateNode(store, store, aggregator))
        return Table(self._builder, node)

    def match(
        self,
        pattern: Any,
        *,
        timeouts: bool = False,
        after_match: str = "all",
        name: str | None = None,
    ) -> Stream:
        """Sequence ``pattern`` matched per key (``nerve.streams.patterns``): a stream of
        ``Match`` values; with ``timeouts`` also the partial matches ``within`` ended
        (``m.timed_out``). ``after_match="skip_past_last"``: a match ends every other partial
        match of its key."""
        from nerve.streams.patterns import PatternNode

        if after_match not in ("all", "skip_past_last"):
            raise ValueError("after_match must be 'all' or 'skip_past_last'")
        node = PatternNode(
            self._builder.name("pattern", name),
            pattern,
            timeouts=timeouts,
            skip_past_last=after_match == "skip_past_last",
        )
        self._node.add(node)
        return Stream(self._builder, node)

    def window(
        self,
        windows: WindowSpec,
        *,
        grace: timedelta | int | None = None,
        emit: str = "update",
    ) -> WindowedStream:
        """Aggregate per key and window. ``grace``: how long after a window's end records
        are still taken (default none). ``emit="final"`` holds each window's result until the
        window closes (Kafka Streams' suppress until window closes)."""
        if emit not in ("update", "final"):
            raise ValueError("emit must be 'update' or 'final'")
        return WindowedStream(self._builder, self._node, windows, ms(grace), emit == "final")


def _initial(initial: Any) -> Callable[[], Any]:
    if callable(initial) and not isinstance(initial, type):
        return initial
    if isinstance(initial, type):
        return initial
    import copy

    return lambda: copy.deepcopy(initial)


class WindowedStream:
    def __init__(
        self,
        builder: StreamsBuilder,
        node: Node,
        windows: WindowSpec,
        grace: int,
        final: bool,
    ) -> None:
        self._builder = builder
        self._node = node
        self._windows = windows
        self._grace = grace
        self._final = final

    def count(self, *, name: str | None = None) -> WindowedTable:
        aggregator = agg.counting()
        aggregator.counts_nulls = isinstance(self._windows, TimeWindows)
        return self._aggregate("count", name, aggregator)

    def reduce(self, fn: Callable[[Any, Any], Any], *, name: str | None = None) -> WindowedTable:
        return self._aggregate("reduce", name, agg.Aggregator(None, fn, fn, reduce=True))

    def aggregate(
        self,
        initial: Any,
        fn: Callable[[Any, Any], Any],
        *,
        merge: Callable[[Any, Any], Any] | None = None,
        name: str | None = None,
    ) -> WindowedTable:
        """``merge(a, b)`` joins two sessions' aggregates (session windows need it)."""
        return self._aggregate("aggregate", name, agg.Aggregator(_initial(initial), fn, merge))

    def _aggregate(self, kind: str, name: str | None, aggregator: agg.Aggregator) -> WindowedTable:
        store = self._builder.name(f"{self._windows.kind}-{kind}", name)
        windows = self._windows
        node: Node
        if isinstance(windows, TimeWindows):
            node = agg.TimeWindowNode(store, store, windows, self._grace, aggregator)
        elif isinstance(windows, SlidingWindows):
            node = agg.SlidingWindowNode(store, store, windows, self._grace, aggregator)
        elif isinstance(windows, SessionWindows):
            node = agg.SessionWindowNode(store, store, windows, self._grace, aggregator)
        else:
            raise TypeError(f"not a window: {windows!r}")
        self._node.add(node)
        table = WindowedTable(self._builder, node, self._grace)
        return table.final() if self._final else table


class Table:
    """A table: the current value per key, and its changes as they happen."""

    def __init__(self, builder: StreamsBuilder, node: Node) -> None:
        self._builder = builder
        self._node = node

    def _then(self, node: Node) -> Any:
        self._node.add(node)
        return type(self)._of(self, node)

    @classmethod
    def _of(cls, parent: Table, node: Node) -> Table:
        return cls(parent._builder, node)

    def where(self, predicate: Callable[..., bool], *, name: str | None = None) -> Any:
        """The rows for which ``predicate`` holds; a row that stops holding is deleted."""
        return self._then(ops.TableFilterNode(self._builder.name("where", name), predicate))

    filter = where

    def map_values(self, fn: Callable[..., Any], *, name: str | None = None) -> Any:
        return self._then(ops.TableMapNode(self._builder.name("map_values", name), fn))

    def join(
        self,
        other: Table,
        joiner: Callable[..., Any],
        *,
        foreign_key: Callable[..., Any] | None = None,
        name: str | None = None,
    ) -> Table:
        """Rows of both tables with the same key, ``joiner(left, right)``; with
        ``foreign_key``, each row joined with the other table's row of the key
        ``foreign_key(value)`` returns (docs/streams.md, "Joins")."""
        return self._join(other, joiner, "inner", name, foreign_key)

    def left_join(
        self,
        other: Table,
        joiner: Callable[..., Any],
        *,
        foreign_key: Callable[..., Any] | None = None,
        name: str | None = None,
    ) -> Table:
        """Every row of this table, joined with the other's row of its key (or of its
        ``foreign_key``) or None."""
        return self._join(other, joiner, "left", name, foreign_key)

    def outer_join(
        self, other: Table, joiner: Callable[..., Any], *, name: str | None = None
    ) -> Table:
        """Every key of either table, None for the side without a row."""
        return self._join(other, joiner, "outer", name)

    def _join(
        self, other: Table, joiner: Callable[..., Any], how: str, name: Any, fk: Any = None
    ) -> Table:
        from nerve.streams import joins

        if fk is not None:
            node = joins.foreign_key_join(
                self._builder, self._node, other._node, joiner, fk, how == "left", name
            )
            return Table(self._builder, node)
        node = joins.table_table(self._builder, self._node, other._node, joiner, how, name)
        return Table(self._builder, node)

    def changes(self) -> Stream:
        """The table's changes as a stream of new values (None for a deletion)."""
        node = ops.ToStreamNode(self._builder.name("to_stream"))
        self._node.add(node)
        return Stream(self._builder, node)

    to_stream = changes

    def emit(self, fn: Callable[..., Any] | None = None, *, name: str | None = None) -> None:
        """Send ``fn(row)`` for every change (not for deletions) as the service's events."""
        emit_node(self._builder, self._node, fn, name)

    def to(
        self,
        topic: str,
        *,
        key: Callable[[Any, Any], Any] | None = None,
        value: Callable[[Any], Any] | None = None,
        name: str | None = None,
    ) -> None:
        """Write every change to ``topic`` (a deletion as a tombstone)."""
        self.changes().to(topic, key=key, value=value, name=name)

    @property
    def node(self) -> Node:
        return self._node

    @property
    def name(self) -> str:
        """The table's name (its store's): what ``GET /tables/<name>/<key>`` takes."""
        if len(self._node.stores) != 1:
            raise ValueError(
                "this table is derived (where, map_values, ...): read the table it comes from"
            )
        return next(iter(self._node.stores))

    def get(self, key: Any) -> Any:
        """The current row of ``key`` (None if absent), read from this replica's state; a
        windowed table gives its windows (``Windowed``). Raises ``NotLocal`` (with the owner's
        address, when known) for a key whose partition another replica owns."""
        queries = self._builder.queries
        if queries is None:
            raise RuntimeError(f"{self._builder.service.name} is not running here")
        return queries.get(self.name, key)


class WindowedTable(Table):
    """A table keyed by key and window; functions on it see ``Windowed`` rows."""

    def __init__(self, builder: StreamsBuilder, node: Node, grace: int = 0) -> None:
        super().__init__(builder, node)
        self._grace = grace

    @classmethod
    def _of(cls, parent: Table, node: Node) -> Table:
        return cls(parent._builder, node, getattr(parent, "_grace", 0))

    def final(self, *, name: str | None = None) -> WindowedTable:
        """Each window's last result only, once the window has closed."""
        store = self._builder.name("suppress", name)
        node = agg.SuppressNode(store, store, self._grace)
        self._node.add(node)
        return WindowedTable(self._builder, node, self._grace)
