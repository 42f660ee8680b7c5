"""Complex event processing: sequence patterns matched per key, in event-time order.

A pattern is a list of steps (``pattern(A).as_("a").followed_by(B).as_("b").within(...)``).
One node after a key change (every event of a key on one partition) keeps, per key, the
partial matches in hand; each event of the key, in event-time order, extends them, kills them
or completes them, and may start a new one. Partial matches are plain data in a changelogged
store, so they survive a crash and move with their partition; ``within`` bounds them: a
partial match whose first event is older than ``within`` (by the node's stream time) is
dropped, or sent on as a timeout (a "missing step" alert) when asked.

Out-of-order records: events are held until stream time has passed them by ``grace`` (the
``within(..., grace=)`` argument; none by default), then matched in timestamp order, as Flink
CEP does with its watermark. A record older than that (stream time minus grace) is late: it
goes to ``<topic>.late``, never matched and never silently dropped.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from nerve.streams import skips
from nerve.streams.operators import arity
from nerve.streams.records import Record
from nerve.streams.topology import Node
from nerve.streams.windows import ms

if TYPE_CHECKING:
    from nerve.streams.task import Task


@dataclass
class Step:
    """One step of a pattern: which events it takes (``type``, ``where``), how many
    (``low``..``high``, None: unbounded), how it follows the step before (``strict``: the very
    next event of the key; else any later one), or that it must not happen (``negated``)."""

    type: Any
    where: Callable[..., bool] | None
    name: str
    strict: bool = False
    negated: bool = False
    low: int = 1
    high: int | None = 1
    two: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.two = self.where is not None and arity(self.where) == 2

    @property
    def single(self) -> bool:
        return self.low == 1 and self.high == 1

    def accepts(self, value: Any, match: Match) -> bool:
        if self.type is not None and not isinstance(value, self.type):
            return False
        if self.where is None:
            return True
        return bool(self.where(value, match) if self.two else self.where(value))


class Pattern:
    """A sequence of steps; build it with ``pattern(...)`` and the methods below, each
    returning the pattern (so they chain)."""

    def __init__(self, first: Any = None, where: Callable[..., bool] | None = None) -> None:
        self.steps: list[Step] = [Step(first, where, "0")]
        self.within_ms: int | None = None
        self.grace_ms = 0
        self._named: set[str] = set()

    # -- steps -----------------------------------------------------------------------------

    def _add(self, step: Step) -> Pattern:
        if self.steps[-1].negated and step.negated:
            raise ValueError("two not_followed_by steps in a row: put both in one where=")
        self.steps.append(step)
        return self

    def followed_by(
        self, event_type: Any = None, where: Callable[..., bool] | None = None
    ) -> Pattern:
        """Then an event of ``event_type`` for which ``where`` holds, with any events in
        between (relaxed contiguity)."""
        return self._add(Step(event_type, where, str(len(self.steps))))

    def next(self, event_type: Any = None, where: Callable[..., bool] | None = None) -> Pattern:
        """Then, as the very next event of the key (strict contiguity): any other event in
        between ends the partial match."""
        return self._add(Step(event_type, where, str(len(self.steps)), strict=True))

    def not_followed_by(
        self, event_type: Any = None, where: Callable[..., bool] | None = None
    ) -> Pattern:
        """No such event before the next step (or, as the last step, before ``within``
        ends: the match completes then)."""
        return self._add(Step(event_type, where, str(len(self.steps)), negated=True))

    def as_(self, name: str) -> Pattern:
        """Names the last step: the match gives its event(s) as ``m[name]``."""
        if name in self._named:
            raise ValueError(f"two steps are named {name!r}")
        self._named.add(name)
        self.steps[-1].name = name
        return self

    def one_or_more(self) -> Pattern:
        """The last step takes one event or more (``m[name]`` is a list). As the pattern's
        last step it completes when ``within`` ends, with every event it took."""
        return self._quantify(1, None)

    def times(self, n: int) -> Pattern:
        """The last step takes exactly ``n`` events (``m[name]`` is a list)."""
        if n < 1:
            raise ValueError("times(n) needs n >= 1")
        return self._quantify(n, n)

    def _quantify(self, low: int, high: int | None) -> Pattern:
        step = self.steps[-1]
        if step.negated:
            raise ValueError("a not_followed_by step cannot be repeated")
        step.low, step.high = low, high
        return self

    def within(self, duration: timedelta | int, *, grace: timedelta | int | None = None) -> Pattern:
        """A match's events lie within ``duration`` of its first (inclusive). ``grace``: how
        long out-of-order events are waited for (they are matched in event-time order)."""
        self.within_ms = ms(duration)
        self.grace_ms = ms(grace)
        if self.within_ms <= 0:
            raise ValueError("within needs a positive duration")
        return self

    # -- checks ----------------------------------------------------------------------------

    def check(self) -> None:
        if self.within_ms is None:
            raise ValueError(
                "a pattern needs within(duration): it bounds how long partial matches are kept"
            )

    @property
    def event_types(self) -> list[Any]:
        return list(dict.fromkeys(s.type for s in self.steps if s.type is not None))


def pattern(event_type: Any = None, where: Callable[..., bool] | None = None) -> Pattern:
    """A pattern starting with an event of ``event_type`` for which ``where`` holds."""
    return Pattern(event_type, where)


def _time(ms_: int) -> datetime:
    return datetime.fromtimestamp(ms_ / 1000, UTC)


class Match:
    """A (partial) match: ``m["probe"]`` the event a step took (a list for a repeated step),
    ``m.key``, ``m.start`` and ``m.end`` (epoch ms of its first and last events; ``start_time``
    and ``end_time`` as datetimes). A timed-out partial match has ``timed_out`` set and
    ``missing``, the name of the step that did not happen."""

    __slots__ = ("end", "events", "key", "missing", "start", "timed_out")

    def __init__(
        self,
        key: Any,
        events: dict[str, Any],
        start: int,
        end: int,
        *,
        timed_out: bool = False,
        missing: str | None = None,
    ) -> None:
        self.key = key
        self.events = events
        self.start = start
        self.end = end
        self.timed_out = timed_out
        self.missing = missing

    def __getitem__(self, name: str) -> Any:
        return self.events[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.events.get(name, default)

    def __contains__(self, name: str) -> bool:
        return name in self.events

    def __iter__(self) -> Iterator[str]:
        return iter(self.events)

    @property
    def start_time(self) -> datetime:
        return _time(self.start)

    @property
    def end_time(self) -> datetime:
        return _time(self.end)

    def __repr__(self) -> str:
        state = f", timed out waiting for {self.missing!r}" if self.timed_out else ""
        return f"Match({self.key!r}, {self.events!r}, {self.start}..{self.end}{state})"


# A partial match as stored: (step index, events taken in that step, start, last, events).
# Tuples and dicts are never changed in place: the store keeps the old value for rollback.
Partial = tuple[int, int, int, int, dict[str, Any]]


class PatternNode(Node):
    """Matches ``pattern`` per key. The store maps a key to ``{"p": [partials], "b":
    [(timestamp, seq, value)]}`` (the events held for ``grace``). Matches go on as records
    whose value is a ``Match``; timed-out partial matches too when ``timeouts`` is set (with
    ``timed_out`` true)."""

    kind = "pattern"

    def __init__(
        self, name: str, pat: Pattern, *, timeouts: bool = False, skip_past_last: bool = False
    ) -> None:
        super().__init__(name)
        pat.check()
        self.pattern = pat
        self.steps = pat.steps
        assert pat.within_ms is not None
        self.within = pat.within_ms
        self.grace = pat.grace_ms
        self.timeouts = timeouts
        self.skip_past_last = skip_past_last
        self.store = name
        self.stores[name] = True
        self._positive = [i for i, s in enumerate(self.steps) if not s.negated]
        self._last = self._positive[-1]
        self._trailing_negation = self.steps[-1].negated

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["pattern"] = [
            {
                "name": s.name,
                "type": getattr(s.type, "__name__", None),
                "follows": "strict" if s.strict else "relaxed",
                "negated": s.negated,
                "times": [s.low, s.high],
            }
            for s in self.steps
        ]
        out["within_ms"] = self.within
        out["grace_ms"] = self.grace
        return out

    # -- records ---------------------------------------------------------------------------

    def process(self, task: Task, record: Record) -> None:
        if record.key is None or record.value is None:
            null = "key" if record.key is None else "value"
            skips.skipped(self.name, record.origin, f"with a null {null}: not matched")
            return
        before = task.stream_time(self.name)
        watermark_before = before - self.grace
        if record.timestamp < watermark_before:
            late_by = watermark_before - record.timestamp
            task.sink.late(record, self.name, f"before {watermark_before}", late_by)
            skips.skipped(
                self.name,
                record.origin,
                f"arrived late: sent to {record.origin}.late, not matched",
                f"{late_by} ms before the watermark",
            )
            return
        now = task.advance(self.name, record.timestamp)
        watermark = now - self.grace
        store = task.store(self.store)
        timers = task.transient(self.name, lambda: _timers(store, self.within))
        if self.grace == 0:
            self._match(task, store, timers, record.key, record.value, record.timestamp, record)
        else:
            held = store.get(record.key) or {}
            seq = int(task.times.get(f"{self.name}#seq", 0)) + 1
            task.times.put(f"{self.name}#seq", seq)
            buffered = [*held.get("b", ()), (record.timestamp, seq, record.value)]
            store.put(record.key, {**held, "b": buffered})
            _push(timers, record.timestamp, _RELEASE, record.key)
        self._fire(task, store, timers, watermark, record)

    def _fire(
        self, task: Task, store: Any, timers: list[Any], watermark: int, record: Record
    ) -> None:
        """Releases held events up to ``watermark`` and ends partial matches whose window
        closed before it, in time order. A deadline timer is due at the window's end + 1
        ms (an event at the end itself still counts)."""
        while timers and timers[0][0] <= watermark:
            _at, kind, _n, key = heapq.heappop(timers)
            held = store.get(key)
            if not held:
                continue
            if kind == _EXPIRE:
                self._expire(task, store, key, watermark, record)
                continue
            buffered = sorted(held.get("b", ()))
            due = [b for b in buffered if b[0] <= watermark]
            if not due:
                continue
            rest = [b for b in buffered if b[0] > watermark]
            store.put(key, {**held, "b": rest} if rest else _without(held, "b"))
            for ts, _seq, value in due:
                self._match(task, store, timers, key, value, ts, record)

    def _expire(self, task: Task, store: Any, key: Any, before: int, record: Record) -> None:
        """Ends ``key``'s partial matches whose window closed before ``before``."""
        held = store.get(key)
        if not held or not held.get("p"):
            return
        kept: list[Partial] = []
        out: list[Record] = []
        skip_until: int | None = None
        for partial in held["p"]:
            step, count, start, last, events = partial
            if skip_until is not None and start <= skip_until:
                continue  # overlaps the match just emitted
            if start + self.within >= before:
                kept.append(partial)
                continue
            deadline = start + self.within
            if self._complete_at_end(step, count):
                match = Match(key, dict(events), start, last)
                if self.skip_past_last:
                    skip_until = last
                out.append(record.with_(key=key, value=match, timestamp=deadline))
            elif self.timeouts:
                missing = self.steps[self._waiting_for(step, count)].name
                match = Match(key, dict(events), start, last, timed_out=True, missing=missing)
                out.append(record.with_(key=key, value=match, timestamp=deadline))
        if len(kept) != len(held["p"]):
            store.put(key, {**held, "p": kept} if kept else _without(held, "p"))
        for item in out:
            if key != record.key:
                item.cause = None  # ended by time, not by this key's event
            self.forward(task, item)

    def _match(
        self,
        task: Task,
        store: Any,
        timers: list[Any],
        key: Any,
        value: Any,
        ts: int,
        record: Record,
    ) -> None:
        """One event of ``key``, in event-time order."""
        self._expire(task, store, key, ts, record)
        held = store.get(key) or {}
        partials: list[Partial] = list(held.get("p", ()))
        kept: list[Partial] = []
        done: list[Match] = []
        for partial in partials:
            for moved in self._advance(partial, key, value, ts):
                if self._complete(moved[0], moved[1]):
                    done.append(Match(key, moved[4], moved[2], moved[3]))
                else:
                    kept.append(moved)
        first = self.steps[0]
        if not (done and self.skip_past_last) and first.accepts(value, Match(key, {}, ts, ts)):
            events = {first.name: value if first.single else [value]}
            started: Partial = (0, 1, ts, ts, events)
            if self._complete(0, 1):
                done.append(Match(key, events, ts, ts))
            else:
                kept.append(started)
                _push(timers, ts + self.within + 1, _EXPIRE, key)
        if done and self.skip_past_last:
            kept = []
            done = done[:1]
        if kept != partials:
            store.put(key, {**held, "p": kept} if kept else _without(held, "p"))
        for match in done:
            out = record.with_(key=key, value=match, timestamp=ts)
            if key != record.key:
                out.cause = None  # a held event released by another key's record
            self.forward(task, out)

    # -- the automaton ---------------------------------------------------------------------

    def _next_positive(self, step: int) -> tuple[int | None, list[Step]]:
        """The positive step after ``step`` and the negations before it."""
        guards: list[Step] = []
        for index in range(step + 1, len(self.steps)):
            candidate = self.steps[index]
            if candidate.negated:
                guards.append(candidate)
            else:
                return index, guards
        return None, guards

    def _complete(self, step: int, count: int) -> bool:
        """Complete as soon as the last positive step has all it can take (a final negation
        or an unbounded final step waits for the window's end)."""
        if step != self._last or self._trailing_negation:
            return False
        high = self.steps[step].high
        return high is not None and count >= high

    def _complete_at_end(self, step: int, count: int) -> bool:
        return step == self._last and count >= self.steps[step].low

    def _waiting_for(self, step: int, count: int) -> int:
        if count < self.steps[step].low:
            return step
        following, _ = self._next_positive(step)
        return step if following is None else following

    def _advance(self, partial: Partial, key: Any, value: Any, ts: int) -> list[Partial]:
        """What one event makes of a partial match: itself (ignored), moved on, or nothing
        (ended by a strict step or a negation)."""
        step_index, count, start, _last, events = partial
        if ts - start > self.within:
            return []
        step = self.steps[step_index]
        match = Match(key, events, start, _last)
        if count >= step.low:
            following, guards = self._next_positive(step_index)
            for guard in guards:
                if guard.accepts(value, match):
                    return []
            if following is not None:
                nxt = self.steps[following]
                if nxt.accepts(value, match):
                    taken = value if nxt.single else [value]
                    return [(following, 1, start, ts, {**events, nxt.name: taken})]
            if step.high is None or count < step.high:
                if step.accepts(value, match):
                    return [_take(partial, step, value, ts)]
                return [partial]
            if following is not None and self.steps[following].strict:
                return []
            return [partial]
        # Still filling a repeated step.
        if step.accepts(value, match):
            return [_take(partial, step, value, ts)]
        return [] if step.strict else [partial]


def _take(partial: Partial, step: Step, value: Any, ts: int) -> Partial:
    step_index, count, start, _last, events = partial
    return (step_index, count + 1, start, ts, {**events, step.name: [*events[step.name], value]})


def _without(held: dict[str, Any], name: str) -> dict[str, Any] | None:
    rest = {k: v for k, v in held.items() if k != name}
    return rest or None


_EXPIRE, _RELEASE = 0, 1  # at one time, windows end before held events are released
_order = itertools.count()  # ties in the heap never compare keys


def _push(timers: list[Any], at: int, kind: int, key: Any) -> None:
    heapq.heappush(timers, (at, kind, next(_order), key))


def _timers(store: Any, within: int) -> list[Any]:
    """The deadlines and held events of every key, rebuilt from the store (after a restart,
    a rebalance or a rollback)."""
    heap: list[Any] = []
    for key, held in store.items():
        for partial in held.get("p", ()):
            heap.append((partial[2] + within + 1, _EXPIRE, next(_order), key))
        for ts, _seq, _value in held.get("b", ()):
            heap.append((ts, _RELEASE, next(_order), key))
    heapq.heapify(heap)
    return heap
