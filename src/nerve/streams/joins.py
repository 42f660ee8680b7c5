"""Joins with Kafka Streams' semantics: stream-table, stream-stream (windowed: inner, left,
outer) and table-table (inner, left, outer).

A join has two inputs; both become one task (``cut`` follows a join's parents), so the two
sides of one key meet in the task of their (co-)partition. Each input enters through a
``JoinSide`` node that says which side a record comes from; the join node keeps what it needs
in the task's stores and forwards the joiner's results.

What triggers, what a tombstone does and what null means follow Kafka Streams 4.4
(docs/streams.md, "Joins"); the joiner sees None for a missing side.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nerve.streams import skips
from nerve.streams.records import Record
from nerve.streams.topology import Node

if TYPE_CHECKING:
    from nerve.streams.task import Task


_NO_TIME = 2**63 - 1  # the outer store's minimum time when it is empty (Kafka's Long.MAX_VALUE)


class Joiner:
    """``joiner(left, right)``, or ``joiner(key, left, right)`` when it takes three."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        try:
            params = [
                p
                for p in inspect.signature(fn).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
            ]
            self.with_key = len(params) >= 3
        except (TypeError, ValueError):
            self.with_key = False

    def __call__(self, key: Any, left: Any, right: Any) -> Any:
        return self.fn(key, left, right) if self.with_key else self.fn(left, right)


class JoinSide(Node):
    """One input of a join: passes its records to the join, saying which side they are."""

    kind = "join-side"

    def __init__(self, name: str, join: _Join, left: bool) -> None:
        super().__init__(name)
        self.join = join
        self.left = left

    def process(self, task: Task, record: Record) -> None:
        self.join.side(task, record, self.left)


class _Join(Node):
    def __init__(self, name: str, joiner: Callable[..., Any]) -> None:
        super().__init__(name)
        self.joiner = Joiner(joiner)

    def side(self, task: Task, record: Record, left: bool) -> None:
        raise NotImplementedError

    def _skipped(self, record: Record, why: str) -> None:
        skips.skipped(self.name, record.origin, f"{why}: skipped, as Kafka Streams skips it")


def held(store: Any, key: Any) -> tuple[Any, int] | None:
    """A table store's (value, timestamp) of ``key`` (table and aggregate nodes keep that)."""
    found = store.get(key)
    return None if found is None else (found[0], int(found[1]))


class StreamTableJoinNode(_Join):
    """A stream record looks the table up (the table's updates trigger nothing). Inner: no
    row, no output; left: the joiner sees None. A record without a value, or without a key
    (inner), is skipped; the result has the stream record's timestamp."""

    kind = "stream-table-join"

    def __init__(self, name: str, table_store: str, joiner: Callable[..., Any], left: bool) -> None:
        super().__init__(name, joiner)
        self.table_store = table_store
        self.left_join = left

    def side(self, task: Task, record: Record, left: bool) -> None:
        if not left:
            return  # the table's own node keeps it; an update joins nothing
        if record.value is None:
            self._skipped(record, "has a null value")
            return
        if record.key is None:
            if not self.left_join:
                self._skipped(record, "has no key")
                return
            row = None
        else:
            row = held(task.store(self.table_store), record.key)
        if row is None and not self.left_join:
            return
        value = self.joiner(record.key, record.value, None if row is None else row[0])
        self.forward(task, record.with_(value=value))


class StreamStreamJoinNode(_Join):
    """Records of either stream join the other stream's records of the same key whose
    timestamps are at most ``before`` earlier and ``after`` later (left's view); the result has
    the later timestamp. Left and outer joins hold an unmatched record until its window closes
    (stream time past its timestamp plus the window plus grace), then emit it with None for the
    other side: Kafka Streams' spurious-results fix, checked on every record. Both streams
    share one stream time; each side's window store keeps ``before + after + grace``."""

    kind = "stream-stream-join"

    def __init__(
        self,
        name: str,
        joiner: Callable[..., Any],
        how: str,
        before: int,
        after: int,
        grace: int,
    ) -> None:
        super().__init__(name, joiner)
        self.how = how
        self.before, self.after, self.grace = before, after, grace
        self.retention = before + after + grace
        self.left_store, self.right_store = f"{name}-left", f"{name}-right"
        self.outer_store = f"{name}-outer"
        self.stores[self.left_store] = True
        self.stores[self.right_store] = True
        if how != "inner":
            self.stores[self.outer_store] = True

    def _outer(self, left: bool) -> bool:
        return self.how == "outer" or (self.how == "left" and left)

    def side(self, task: Task, record: Record, left: bool) -> None:
        ts = record.timestamp
        now = task.advance(self.name, ts)
        outer = self._outer(left)
        if outer and record.key is None and record.value is not None:
            self.forward(task, record.with_(value=self._join(record.key, left, record.value, None)))
            return
        if record.key is None or record.value is None:
            self._skipped(record, "has a null key or value")
            return
        self._remember(task, record, left)
        if ts == now and self.how != "inner":
            self._emit_unmatched(task, record, left)
        before, after = (self.before, self.after) if left else (self.after, self.before)
        low, high = max(0, ts - before), max(0, ts + after)
        other = self.right_store if left else self.left_store
        other_time = task.stream_time(other)
        low = max(low, other_time - self.retention + 1)
        matches = [(t, v) for t, v in task.store(other).get(record.key, ()) if low <= t <= high]
        for other_ts, other_value in matches:
            if self.how != "inner":
                task.store(self.outer_store).delete((other_ts, 0 if left else 1, record.key))
            value = self._join(record.key, left, record.value, other_value)
            self.forward(task, record.with_(value=value, timestamp=max(ts, other_ts)))
        if matches or not outer:
            return
        if high < now:
            self.forward(task, record.with_(value=self._join(record.key, left, record.value, None)))
            return
        minimum = int(task.times.get(f"{self.name}#min", _NO_TIME))
        if ts < minimum:
            task.times.put(f"{self.name}#min", ts)
        task.store(self.outer_store).put((ts, 1 if left else 0, record.key), record.value)

    def _join(self, key: Any, left: bool, this: Any, other: Any) -> Any:
        return self.joiner(key, this, other) if left else self.joiner(key, other, this)

    def _remember(self, task: Task, record: Record, left: bool) -> None:
        """Into this side's window store, unless older than its retention."""
        name = self.left_store if left else self.right_store
        observed = task.advance(name, record.timestamp)
        cutoff = observed - self.retention + 1
        if record.timestamp < cutoff:
            skips.skipped(
                self.name,
                record.origin,
                "older than the join window store keeps: not stored",
                f"timestamp {record.timestamp}, the store keeps from {cutoff}",
            )
            return
        store = task.store(name)
        kept = [(t, v) for t, v in store.get(record.key, ()) if t >= cutoff]
        kept.append((record.timestamp, record.value))
        kept.sort(key=lambda tv: tv[0])
        store.put(record.key, kept)

    def _emit_unmatched(self, task: Task, record: Record, left: bool) -> None:
        now = task.stream_time(self.name)
        after = self.after if left else self.before
        minimum = int(task.times.get(f"{self.name}#min", _NO_TIME))
        if minimum != _NO_TIME and minimum + after + self.grace >= now:
            return
        if minimum == _NO_TIME:
            return
        store = task.store(self.outer_store)
        left_open = right_open = False
        minimum = _NO_TIME
        for entry, value in sorted(store.items(), key=lambda kv: _order(kv[0])):
            ts, side, key = entry
            minimum = ts
            if left_open and right_open:
                break
            look_back = self.after if side == 1 else self.before
            if ts + look_back + self.grace >= now:
                if side == 1:
                    left_open = True
                else:
                    right_open = True
                continue
            joined = self.joiner(key, value, None) if side == 1 else self.joiner(key, None, value)
            self.forward(task, record.with_(key=key, value=joined, timestamp=ts))
            store.delete(entry)
        task.times.put(f"{self.name}#min", minimum)


def _order(entry: Any) -> tuple[int, int, bytes]:
    ts, side, key = entry
    return (ts, side, str(key).encode())


class TableTableJoinNode(_Join):
    """A change of either table looks the other up and forwards the joined row (None: the
    joined row is deleted), timestamped with the later of the two rows. Inner: only while both
    rows exist; left: every change of the left table, and right changes while a left row
    exists; outer: every change."""

    kind = "table-table-join"

    def __init__(
        self, name: str, joiner: Callable[..., Any], how: str, left_store: str, right_store: str
    ) -> None:
        super().__init__(name, joiner)
        self.how = how
        self.left_store, self.right_store = left_store, right_store

    def side(self, task: Task, record: Record, left: bool) -> None:
        if record.key is None:
            self._skipped(record, "has no key")
            return
        other = held(task.store(self.right_store if left else self.left_store), record.key)
        other_value = None if other is None else other[0]
        ts = record.timestamp if other is None else max(record.timestamp, other[1])
        if other is None and (self.how == "inner" or (self.how == "left" and not left)):
            return
        if self.how == "outer" and other is None and record.value is None and record.old is None:
            return
        value = self._row(record.key, left, record.value, other, other_value)
        old = self._row(record.key, left, record.old, other, other_value)
        self.forward(task, record.with_(value=value, timestamp=ts, old=old))

    def _row(self, key: Any, left: bool, this: Any, other: Any, other_value: Any) -> Any:
        """The joined row for this side's value ``this`` (new or old; None: absent)."""
        if self.how == "inner" or (self.how == "left" and left):
            if this is None:
                return None
        elif self.how == "outer" and this is None and other is None:
            return None
        if left:
            return self.joiner(key, this, other_value)
        return self.joiner(key, other_value, this)


def table_store(builder: Any, node: Node) -> str:
    """The store holding a table's rows as (value, timestamp): its own (a table made from a
    stream, an aggregation), or one added after it (a filtered or mapped table)."""
    from nerve.streams.aggregations import AggregateNode
    from nerve.streams.dsl import TableSourceNode

    if isinstance(node, TableSourceNode | AggregateNode):
        return node.store
    name = builder.name("join-table")
    node.add(TableSourceNode(name, name))
    return name


def stream_table(
    builder: Any, stream: Node, table: Node, joiner: Any, left: bool, name: Any
) -> Node:
    base = builder.name("left-join" if left else "join", name)
    join = StreamTableJoinNode(base, table_store(builder, table), joiner, left)
    _attach(stream, table, join, base)
    return join


def stream_stream(
    builder: Any, left: Node, right: Node, joiner: Any, how: str, within: int, grace: int, name: Any
) -> Node:
    base = builder.name(f"{how}-join" if how != "inner" else "join", name)
    join = StreamStreamJoinNode(base, joiner, how, within, within, grace)
    _attach(left, right, join, base)
    return join


def table_table(builder: Any, left: Node, right: Node, joiner: Any, how: str, name: Any) -> Node:
    base = builder.name(f"{how}-join" if how != "inner" else "join", name)
    join = TableTableJoinNode(
        base, joiner, how, table_store(builder, left), table_store(builder, right)
    )
    _attach(left, right, join, base)
    return join


def _attach(left: Node, right: Node, join: _Join, base: str) -> None:
    for parent, is_left in ((left, True), (right, False)):
        side = JoinSide(f"{base}-{'left' if is_left else 'right'}", join, is_left)
        parent.add(side)
        side.add(join)


# -- foreign-key table-table joins ------------------------------------------------------------
# Kafka Streams' design: each left row subscribes to the right row of its foreign key through a
# subscription topic (partitioned as the right table); the right task keeps the subscriptions
# and answers each, and each change of a right row, through a response topic (partitioned as
# the left table). A response carries the hash of the left value it answers: the left task
# drops it when the row has changed since (a stale answer), so results follow the last change.

DELETE_AND_PROPAGATE = "delete-propagate"  # the left row was deleted
DELETE_NO_PROPAGATE = "delete"  # the left row moved to another foreign key
PROPAGATE_NULL = "propagate-null"  # answer even when the right row is missing
PROPAGATE_IF_FOUND = "propagate-if-found"  # answer only when the right row exists


def value_hash(value: Any) -> str | None:
    if value is None:
        return None
    import hashlib

    from nerve.streams.serde import _dumps, to_jsonable

    # Through json, not encode_value (whose models go through pydantic's own JSON, floats
    # written differently): the hash of a value stays what replicas of older releases sent.
    return hashlib.blake2b(_dumps(to_jsonable(value)).encode(), digest_size=16).hexdigest()


class ForeignKeySendNode(Node):
    """A left row's change sends its subscription (and unsubscribes from its old foreign key
    when that changed), as Kafka Streams' SubscriptionSendProcessor."""

    kind = "fk-subscribe"

    def __init__(self, name: str, foreign_key: Callable[..., Any], left_join: bool) -> None:
        super().__init__(name)
        self.foreign_key = foreign_key
        self.two = len(_params(foreign_key)) >= 2
        self.left_join = left_join

    def _fk(self, key: Any, value: Any) -> Any:
        return (
            None
            if value is None
            else (self.foreign_key(key, value) if self.two else self.foreign_key(value))
        )

    def process(self, task: Task, record: Record) -> None:
        if record.key is None:
            return
        old_fk = self._fk(record.key, record.old)
        new_fk = self._fk(record.key, record.value)
        send = self._send
        if record.value is None:
            if old_fk is not None:
                send(task, record, old_fk, DELETE_AND_PROPAGATE, None)
            return
        if new_fk is None:
            skips.skipped(
                self.name, record.origin, "without a foreign key: joins nothing", repr(record.key)
            )
            if old_fk is not None:
                send(task, record, old_fk, DELETE_AND_PROPAGATE, None)
            return
        if old_fk is not None and old_fk != new_fk:
            send(task, record, old_fk, DELETE_NO_PROPAGATE, None)
        moved = old_fk is not None and old_fk != new_fk
        how = PROPAGATE_NULL if self.left_join or moved else PROPAGATE_IF_FOUND
        send(task, record, new_fk, how, value_hash(record.value))

    def _send(self, task: Task, record: Record, fk: Any, how: str, digest: str | None) -> None:
        value = {"k": record.key, "h": digest, "i": how}
        self.forward(task, record.with_(key=fk, value=value))


class ForeignKeySubscriptionNode(_Join):
    """The right task: keeps each foreign key's subscribers (left key -> hash) and answers a
    subscription, or every subscriber when the right row changes."""

    kind = "fk-subscriptions"

    def __init__(self, name: str, right_store: str) -> None:
        super().__init__(name, lambda left, right: None)
        self.right_store = right_store
        self.subscriptions = f"{name}-subscriptions"
        self.stores[self.subscriptions] = True

    def side(self, task: Task, record: Record, left: bool) -> None:
        if record.key is None:
            return
        store = task.store(self.subscriptions)
        if not left:  # a right row changed: every subscriber hears of it
            for left_key, digest in sorted(store.get(record.key, {}).items()):
                self._answer(task, record, left_key, digest, record.value)
            return
        wanted = record.value
        subscribers = dict(store.get(record.key, {}))
        how = wanted["i"]
        if how in (DELETE_AND_PROPAGATE, DELETE_NO_PROPAGATE):
            subscribers.pop(wanted["k"], None)
        else:
            subscribers[wanted["k"]] = wanted["h"]
        store.put(record.key, subscribers or None)
        if how == DELETE_NO_PROPAGATE:
            return
        row = held(task.store(self.right_store), record.key)
        if row is None and how == PROPAGATE_IF_FOUND:
            return
        self._answer(task, record, wanted["k"], wanted["h"], None if row is None else row[0])

    def _answer(self, task: Task, record: Record, left_key: Any, digest: Any, right: Any) -> None:
        self.forward(task, record.with_(key=left_key, value={"h": digest, "r": right}))


class ForeignKeyResponseNode(_Join):
    """The left task: an answer joins the left row as it is now, unless the row has changed
    since the subscription it answers (its hash differs: a stale answer, dropped)."""

    kind = "fk-join"

    def __init__(
        self, name: str, joiner: Callable[..., Any], left_store: str, left_join: bool
    ) -> None:
        super().__init__(name, joiner)
        self.left_store = left_store
        self.left_join = left_join

    def side(self, task: Task, record: Record, left: bool) -> None:
        if left or record.key is None:
            return  # the left table's own changes subscribe (ForeignKeySendNode)
        row = held(task.store(self.left_store), record.key)
        current = None if row is None else row[0]
        if value_hash(current) != record.value["h"]:
            return  # stale: the row changed after it subscribed
        right = record.value["r"]
        if right is None and (not self.left_join or current is None):
            value = None
        else:
            value = self.joiner(record.key, current, right)
        self.forward(task, record.with_(value=value))


def _params(fn: Callable[..., Any]) -> list[Any]:
    try:
        return [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
    except (TypeError, ValueError):
        return [None]


def foreign_key_join(
    builder: Any,
    left: Node,
    right: Node,
    joiner: Any,
    foreign_key: Callable[..., Any],
    left_join: bool,
    name: Any,
) -> Node:
    base = builder.name("fk-left-join" if left_join else "fk-join", name)
    left_store = table_store(builder, left)
    right_store = table_store(builder, right)
    send = ForeignKeySendNode(f"{base}-send", foreign_key, left_join)
    left.add(send)
    subscription = builder.repartition(send, f"{base}-subscription", builder.upstream_topics(right))
    answers = ForeignKeySubscriptionNode(f"{base}-subscriptions", right_store)
    _attach(subscription, right, answers, f"{base}-subscriptions")
    response = builder.repartition(answers, f"{base}-response", builder.upstream_topics(left))
    join = ForeignKeyResponseNode(base, joiner, left_store, left_join)
    _attach(left, response, join, base)
    return join
