"""Aggregations: per key (a table), and per key and window (tumbling, hopping, sliding,
session), with Kafka Streams' semantics of stream time, grace and lateness; and the buffer that
holds a window's result until it closes (emit-final).

Each node keeps its stream time (the largest timestamp it has seen, per task) in the task's
times store. A window closes when stream time reaches its end plus the grace period; a record
that arrives for closed windows only is late: it is sent to ``<topic>.late`` with headers
saying which window it missed and by how much, and counted in a log line (Kafka Streams drops
it with a metric).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nerve.streams import skips
from nerve.streams.records import Record, WindowKey
from nerve.streams.topology import Node
from nerve.streams.windows import SessionWindows, SlidingWindows, TimeWindows

if TYPE_CHECKING:
    from nerve.streams.task import Task


class Aggregator:
    """How values fold into an aggregate: ``initial()`` then ``add(agg, value)``; sessions
    also ``merge(a, b)`` two aggregates when records bridge them."""

    def __init__(
        self,
        initial: Callable[[], Any] | None,
        add: Callable[[Any, Any], Any],
        merge: Callable[[Any, Any], Any] | None = None,
        *,
        reduce: bool = False,
        counts_nulls: bool = False,
    ) -> None:
        self.initial = initial
        self.add = add
        self.merge = merge
        self.reduce = reduce  # the first value is the aggregate
        self.counts_nulls = counts_nulls

    def first(self, value: Any) -> Any:
        if self.reduce:
            return value
        assert self.initial is not None
        return self.add(self.initial(), value)

    def fold(self, agg: Any, value: Any) -> Any:
        if agg is None:
            return self.first(value)
        return self.add(agg, value)

    def start(self) -> Any:
        return None if self.reduce or self.initial is None else self.initial()


def counting() -> Aggregator:
    return Aggregator(lambda: 0, lambda agg, _value: agg + 1, lambda a, b: a + b)


class _Late:
    """Sends late records to ``<topic>.late`` and counts them in the log (nerve.streams.skips:
    a line per interval, not per record)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def note(self, task: Task, record: Record, window: str, late_by: int) -> None:
        task.sink.late(record, self.name, window, late_by)
        skips.skipped(
            self.name,
            record.origin,
            f"arrived late: sent to {record.origin}.late",
            f"window {window} closed {late_by} ms before it arrived",
        )


class AggregateNode(Node):
    """``count`` / ``reduce`` / ``aggregate`` of a grouped stream into a table. A record
    without a key, or with a null value, is skipped as Kafka Streams skips it, with a log
    line."""

    kind = "aggregate"

    def __init__(self, name: str, store: str, aggregator: Aggregator) -> None:
        super().__init__(name)
        self.store = store
        self.stores[store] = True
        self.aggregator = aggregator

    def process(self, task: Task, record: Record) -> None:
        if record.key is None or record.value is None:
            _skipped(self.name, record)
            return
        store = task.store(self.store)
        held = store.get(record.key)
        old, old_ts = (None, -1) if held is None else held
        new = self.aggregator.fold(old, record.value)
        ts = max(old_ts, record.timestamp)
        store.put(record.key, (new, ts))
        self.forward(task, record.with_(value=new, old=old, timestamp=ts))


def _skipped(name: str, record: Record) -> None:
    null = "key" if record.key is None else "value"
    skips.skipped(name, record.origin, f"with a null {null}: skipped (as Kafka Streams does)")


class TimeWindowNode(Node):
    """Tumbling and hopping windows. The store maps a key to its open windows:
    {start: (aggregate, largest timestamp)}."""

    kind = "window"

    def __init__(
        self,
        name: str,
        store: str,
        windows: TimeWindows,
        grace: int,
        aggregator: Aggregator,
        retention: int | None = None,
    ) -> None:
        super().__init__(name)
        self.store = store
        self.stores[store] = True
        self.windows = windows
        self.grace = grace
        self.aggregator = aggregator
        self.retention = max(retention or 0, windows.size + grace)
        self.late = _Late(name)

    def process(self, task: Task, record: Record) -> None:
        if record.key is None:
            _skipped(self.name, record)
            return
        if record.value is None and not self.aggregator.counts_nulls:
            _skipped(self.name, record)
            return
        now = task.advance(self.name, record.timestamp)
        close = now - self.grace
        store = task.store(self.store)
        size = self.windows.size
        held: dict[int, Any] | None = store.get(record.key)
        windows = dict(held) if held else {}
        counted = False
        missed: int | None = None
        out: list[Record] = []
        for start in self.windows.starts_for(record.timestamp):
            end = start + size
            if end <= close:
                missed = start
                continue
            counted = True
            old, old_ts = windows.get(start, (None, -1))
            new = self.aggregator.fold(old, record.value)
            ts = max(old_ts, record.timestamp)
            windows[start] = (new, ts)
            out.append(
                record.with_(
                    key=WindowKey(record.key, start, end), value=new, old=old, timestamp=ts
                )
            )
        if not counted and missed is not None:
            self.late.note(task, record, f"[{missed},{missed + size})", close - (missed + size))
        if counted:
            expired = now - self.retention
            store.put(record.key, {s: v for s, v in windows.items() if s > expired})
        for item in out:
            self.forward(task, item)


class SlidingWindowNode(Node):
    """Kafka Streams' sliding windows: a window ``[t - size, t]`` for each record (its left
    window) and, where later records fall within ``size`` of it, one starting just after it
    (its right window); windows are created only when they hold records. The store maps a
    key to {start: (aggregate, largest timestamp)}."""

    kind = "sliding-window"

    def __init__(
        self, name: str, store: str, windows: SlidingWindows, grace: int, aggregator: Aggregator
    ) -> None:
        super().__init__(name)
        self.store = store
        self.stores[store] = True
        self.size = windows.size
        self.grace = grace
        self.aggregator = aggregator
        self.late = _Late(name)

    def process(self, task: Task, record: Record) -> None:
        if record.key is None or record.value is None:
            _skipped(self.name, record)
            return
        ts, size = record.timestamp, self.size
        now = task.advance(self.name, ts)
        close = now - self.grace
        store = task.store(self.store)
        windows: dict[int, Any] = dict(store.get(record.key) or {})
        out: list[Record] = []
        counted = [False]

        def update(start: int, held: tuple[Any, int] | None, at: int) -> None:
            end = start + size
            if end < close:
                return
            counted[0] = True
            old, old_ts = (None, -1) if held is None else held
            agg = self.aggregator.start() if old is None else old
            new = (
                self.aggregator.fold(agg, record.value)
                if agg is not None
                else self.aggregator.first(record.value)
            )
            new_ts = at if held is None else max(at, old_ts)
            windows[start] = (new, new_ts)
            out.append(
                record.with_(
                    key=WindowKey(record.key, start, end), value=new, old=old, timestamp=new_ts
                )
            )

        left_created = right_created = False
        previous: int | None = None
        left_agg: tuple[Any, int] | None = None
        right_agg: tuple[Any, int] | None = None
        starts: set[int] = set()
        for start in sorted(s for s in windows if ts - 2 * size <= s <= ts + 1):
            held = windows[start]
            starts.add(start)
            end = start + size
            max_ts = held[1]
            if end < ts:
                left_agg, previous = held, max_ts
            elif end == ts:
                left_created = True
                if max_ts < ts:
                    previous = max_ts
                update(start, held, ts)
            elif start <= ts:
                right_agg = held
                update(start, held, ts)
            elif start == ts + 1:
                right_created = True
        # The previous record's right window, now that this record falls in it.
        if previous is not None:
            right_start = previous + 1
            if right_start not in starts and right_start + size >= ts:
                update(right_start, None, ts)
        if not left_created:
            if previous is not None and ts - size <= previous and left_agg is not None:
                update(ts - size, (left_agg[0], ts), ts)
                # A left window built on the previous one: not "new" for the timestamp rule.
            else:
                update(ts - size, None, ts)
        if not right_created and right_agg is not None and right_agg[1] > ts:
            windows[ts + 1] = right_agg
            out.append(
                record.with_(
                    key=WindowKey(record.key, ts + 1, ts + 1 + size),
                    value=right_agg[0],
                    old=None,
                    timestamp=right_agg[1],
                )
            )
        if not counted[0]:
            # Too late for every window it belongs to; a right window built from later
            # records may still have been created, as in Kafka Streams.
            self.late.note(task, record, f"[{ts - size},{ts}]", close - ts)
        if out:
            expired = now - 2 * size - self.grace
            store.put(record.key, {s: v for s, v in windows.items() if s + size >= expired})
        for item in out:
            self.forward(task, item)


class SessionWindowNode(Node):
    """Session windows: a record within ``gap`` of a key's sessions merges them into one
    (the merged-away sessions come out as deletions). The store maps a key to its sessions
    [(start, end, aggregate)], oldest first."""

    kind = "session-window"

    def __init__(
        self, name: str, store: str, windows: SessionWindows, grace: int, aggregator: Aggregator
    ) -> None:
        super().__init__(name)
        if aggregator.merge is None:
            raise ValueError("an aggregation over session windows needs merge=")
        self.store = store
        self.stores[store] = True
        self.gap = windows.gap
        self.grace = grace
        self.aggregator = aggregator
        self.late = _Late(name)

    def process(self, task: Task, record: Record) -> None:
        if record.key is None or record.value is None:
            _skipped(self.name, record)
            return
        ts, gap = record.timestamp, self.gap
        now = task.advance(self.name, ts)
        close = now - self.grace - gap
        store = task.store(self.store)
        sessions: list[tuple[int, int, Any]] = list(store.get(record.key) or ())
        # Sessions ending at or before the close time are gone (Kafka Streams' store no longer
        # returns them), even where a record would bridge them.
        live = [s for s in sessions if s[1] > close]
        merged = [s for s in live if s[1] >= ts - gap and s[0] <= ts + gap]
        start, end = ts, ts
        agg = self.aggregator.start()
        assert self.aggregator.merge is not None
        for s_start, s_end, s_agg in merged:
            agg = s_agg if agg is None else self.aggregator.merge(agg, s_agg)
            start, end = min(start, s_start), max(end, s_end)
        if end < close:
            self.late.note(task, record, f"[{start},{end}]", close - end)
            return
        out: list[Record] = []
        if merged and (start, end) != (ts, ts):
            for s_start, s_end, s_agg in merged:
                out.append(
                    record.with_(
                        key=WindowKey(record.key, s_start, s_end),
                        value=None,
                        old=s_agg,
                        timestamp=s_end,
                    )
                )
        new = self.aggregator.fold(agg, record.value)
        kept = [s for s in live if s not in merged]
        kept.append((start, end, new))
        kept.sort(key=lambda s: s[0])
        store.put(record.key, kept)
        out.append(
            record.with_(key=WindowKey(record.key, start, end), value=new, old=None, timestamp=end)
        )
        for item in out:
            self.forward(task, item)


class SuppressNode(Node):
    """Emit-final: a windowed table's changes are held until the window closes (its end
    plus the grace period, by the stream time of the records reaching this node), then the
    last one of each window goes on."""

    kind = "suppress"

    def __init__(self, name: str, store: str, grace: int) -> None:
        super().__init__(name)
        self.store = store
        self.stores[store] = True
        self.grace = grace

    def process(self, task: Task, record: Record) -> None:
        now = task.advance(self.name, record.timestamp)
        buffer = task.store(self.store)
        key = record.key
        assert isinstance(key, WindowKey)
        buffer.put(key, (record.value, record.timestamp))
        heap = task.transient(self.name, lambda: _heap_of(buffer))
        heapq.heappush(heap, (key.end, key))
        self._evict(task, buffer, heap, now - self.grace, record)

    def _evict(self, task: Task, buffer: Any, heap: list[Any], expiry: int, record: Record) -> None:
        while heap and heap[0][0] <= expiry:
            _, key = heapq.heappop(heap)
            held = buffer.get(key)
            if held is None:
                continue
            buffer.delete(key)
            value, ts = held
            self.forward(task, record.with_(key=key, value=value, timestamp=ts))


def _heap_of(buffer: Any) -> list[Any]:
    heap = [(key.end, key) for key, _ in buffer.items()]
    heapq.heapify(heap)
    return heap
