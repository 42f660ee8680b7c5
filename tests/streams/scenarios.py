"""The inputs of the differential streams scenarios: the same records go to Kafka Streams
(tests/streams/reference, the reference) and to nerve's streams, and both must write the same
output per key. kafka_streams_4_4_outputs.json holds what Kafka Streams 4.4 wrote.

What each application does is in tests/streams/reference/.../Scenarios.java; in short: windows
of 10 s (hopping: advancing by 5 s), sessions with a 5 s inactivity gap, joins within 5 s, a
grace period of 2 s everywhere; counts, an integer sum, and joins writing ``L+R``.

Times are seconds after ``BASE`` (an epoch-ms instant on a 10 s boundary, so window bounds read
easily). Every topic has two partitions and records are placed by the Java client's partitioner
(murmur2 of the key): keys a, b, c, k3, k4, fk1, fk2, x, y land on partition 0; d, f, g, h,
k1, k2, fk3 on partition 1. Stream time is per partition (per task), so a record of ``a`` can
make a later record of ``b`` late; the inputs use that.

How the inputs are made deterministic (Kafka Streams' output must not depend on timing):

- Phase 1 is produced before the application starts, every topic of it. Kafka Streams then
  takes the records of a task's partitions in timestamp order (``max.task.idle.ms`` 0 makes a
  task wait for data it knows is on the broker), so a table update joins the stream records
  that come after it in *time*, whatever the order of topics. Timestamps of records that meet
  in one task are distinct, so the order never rests on a tie.
- Each later phase is produced only when the application has consumed and committed all of
  the previous one. Phases order what crosses tasks: a repartition topic fed by two upstream
  tasks, the two sides of a foreign-key join.
"""

from __future__ import annotations

from dataclasses import dataclass

BASE = 1_700_000_000_000
"""Epoch milliseconds of time 0 (a multiple of 10,000)."""

PARTITIONS = 2


@dataclass(frozen=True)
class Record:
    topic: str
    """``in``, ``left`` or ``right``: which of the scenario's topics (see ``Scenario.topic``)."""
    key: str
    value: str | None
    """None is a tombstone (on a table) or a null-valued event (on a stream)."""
    timestamp: int
    """Epoch milliseconds."""


def at(seconds: float) -> int:
    return BASE + round(seconds * 1000)


def _records(topic: str, rows: list[tuple[str, str | None, float]]) -> tuple[Record, ...]:
    return tuple(Record(topic, key, value, at(seconds)) for key, value, seconds in rows)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    phases: tuple[tuple[Record, ...], ...]

    @property
    def inputs(self) -> tuple[str, ...]:
        """The input topic suffixes, in the order phase 1 produces them."""
        seen: dict[str, None] = {}
        for phase in self.phases:
            for record in phase:
                seen.setdefault(record.topic, None)
        return tuple(seen)

    def topic(self, suffix: str, prefix: str = "") -> str:
        """``<prefix><name>-<suffix>``; the output topic's suffix is ``out``."""
        return f"{prefix}{self.name}-{suffix}"


# -- windowed counts -----------------------------------------------------------------------
# One input for tumbling, tumbling-final, hopping and sliding. Per partition, in produce order:
WINDOWED = (
    _records(
        "in",
        [
            # partition 0: keys a and b share one stream time
            ("a", "a1", 1.0),
            ("a", "a2", 3.0),
            ("b", "b1", 4.0),
            ("a", "a3", 11.0),  # stream time 11
            ("b", "b2", 8.0),  # late, within grace for [0,10) (closes at 12)
            ("a", "a4", 12.0),  # stream time 12: [0,10) closes
            # partition 1: keys d and f
            ("d", "d1", 2.0),
            ("f", "f1", 5.0),
            ("d", "d2", 19.5),  # stream time 19.5
            ("f", "f2", 10.0),
            ("d", "d3", 7.0),  # late beyond grace everywhere
        ],
    ),
    _records(
        "in",
        [
            # partition 0, continued
            ("a", "a5", 9.999),  # late beyond grace for [0,10); [5,15) of hopping still open
            ("b", "b3", 25.0),  # stream time 25
            ("b", "b4", 15.0),  # [10,20) closed at 22: dropped; hopping's [15,25) takes it
            ("a", "a6", 21.0),  # out of order, its window [20,30) open
            ("a", "a7", 23.5),
            ("b", "b5", 40.0),  # stream time 40: everything before [30,40) closes
            # partition 1, continued
            ("f", None, 18.0),  # a null value: counted by time windows, skipped by sliding ones
            ("f", "f3", 30.0),  # stream time 30
            ("d", "d4", 28.0),  # late within grace for [20,30)
            ("d", "d5", 20.0),  # [20,30) open until 32; sliding: too late for windows of its
            # own, but counted in the window [18,28] that d4 opened
            ("f", "f4", 40.0),
        ],
    ),
)

# -- sessions (gap 5 s, grace 2 s) ------------------------------------------------------------
SESSIONS = (
    _records(
        "in",
        [
            # partition 0
            ("a", "a1", 1.0),
            ("a", "a2", 3.0),  # merges into [1,3]: the old session comes out as a tombstone
            ("b", "b1", 2.0),
            ("a", "a3", 10.0),  # 7 s after 3: a new session
            ("a", "a4", 6.5),  # within the gap of both, but [1,3] closed at stream time 10
            # (3 + gap + grace): only [10,10] takes it, becoming [6.5,10]
            ("b", "b2", 8.0),  # 6 s after 2: a new session
            # partition 1
            ("d", "d1", 1.0),
            ("f", "f1", 2.0),
            ("d", "d2", 5.0),  # [1,5]
            ("f", "f2", 7.0),  # exactly the gap after 2: merges into [2,7]
            ("d", "d3", 11.0),  # 6 s after 5: new
        ],
    ),
    _records(
        "in",
        [
            # partition 0, continued
            ("a", "a5", 20.0),  # stream time 20
            ("b", "b3", 12.9),  # [8,8] has closed; a session of its own ends before 20-2-5:
            # dropped
            ("b", "b4", 13.0),  # a session of its own ending exactly at 20-2-5: kept
            ("a", "a6", 24.0),  # [20,24]
            ("a", "a7", 14.0),  # would merge into [1,14]: too late
            ("b", "b5", 40.0),
            # partition 1, continued
            ("f", "f3", 12.001),  # 5.001 s after 7: new
            ("d", "d4", 8.0),  # stream time 12.001 closed [1,5]: joins [11,11] only
            ("f", "f4", 30.0),  # stream time 30
            ("d", "d5", 20.0),  # a new session that has closed already: dropped
            ("f", "f5", 28.0),  # late, but within the gap of [30,30]: merges into [28,30]
        ],
    ),
)

# -- reduce (sum per key) ---------------------------------------------------------------------
SUMS = (
    _records(
        "in",
        [
            ("a", "5", 1.0),
            ("b", "7", 2.0),
            ("a", "-2", 3.0),
            ("a", None, 4.0),  # a null value: ignored by the aggregation
            ("b", "10", 5.0),
            ("a", "1", 0.5),  # out of order: the sum keeps the newest timestamp (3)
            ("c", "1", 6.0),
            ("d", "3", 1.0),
            ("d", "4", 2.0),
            ("f", "0", 3.0),
            ("d", "-10", 4.0),
        ],
    ),
)

# -- group-by: re-keyed by the value's text before "|", through a repartition topic ----------
# Derived keys x and y land on partition 0 of the repartition topic, g and h on partition 1.
# Each phase comes from one input partition, so the repartition topic's order is defined.
GROUP_BY = (
    _records(
        "in",
        [("a", "x|1", 1.0), ("b", "g|2", 2.0), ("c", "x|3", 3.0), ("a", "h|4", 4.0)],
    ),
    _records("in", [("d", "x|5", 5.0), ("f", "g|6", 6.0), ("d", "y|7", 7.0)]),
    _records("in", [("b", "x|8", 8.0), ("b", "g|9", 3.5)]),  # g|9: an older timestamp
)

# -- stream-table joins: KStream left, KTable right -----------------------------------------
STREAM_TABLE = (
    _records(
        "right",
        [
            ("a", "A1", 1.0),
            ("b", "B1", 2.0),
            ("a", "A2", 5.0),
            ("b", None, 7.0),  # tombstone
            ("a", "A3", 10.0),  # after every stream record of a: joins nothing
            ("d", "D1", 1.0),
            ("f", "F1", 4.0),
            ("d", None, 6.0),
        ],
    )
    + _records(
        "left",
        [
            ("a", "x1", 3.0),  # A1
            ("c", "y1", 4.0),  # no row for c
            ("a", "x2", 6.0),  # A2
            ("b", "x3", 8.0),  # b deleted at 7
            ("a", None, 9.0),  # a null-valued stream record
            ("a", "x4", 4.5),  # out of order: joins the table as it is when processed (A2)
            ("d", "z1", 2.0),
            ("f", "z2", 3.0),  # F1 only comes at 4
            ("f", "z3", 5.0),
            ("d", "z4", 7.0),  # d deleted at 6
        ],
    ),
)

# -- stream-stream joins (within 5 s, grace 2 s) ----------------------------------------------
STREAM_STREAM = (
    _records(
        "left",
        [
            ("a", "L1", 1.0),
            ("a", "L2", 4.0),
            ("b", "L3", 5.0),  # never matched
            ("a", "L6", 14.0),
            ("a", "L4", 9.0),  # behind L6 in its partition: out of order
            ("a", "L5", 25.0),
            ("d", "Ld1", 2.0),
            ("d", "Ld2", 7.0),
            ("f", "Lf1", 10.0),
            ("d", "Ld3", 30.0),
        ],
    )
    + _records(
        "right",
        [
            ("a", "R1", 3.0),
            ("b", "R2", 13.0),  # 8 s after L3: no match
            ("a", "R3", 2.0),  # behind R2: late (stream time 13)
            ("a", "R4", 24.0),
            ("b", "R5", 40.0),
            ("d", "Rd1", 1.0),
            ("d", "Rd2", 8.0),
            ("f", "Rf1", 15.0),  # exactly 5 s after Lf1: the bounds are inclusive
            ("f", "Rf2", 16.0),
        ],
    ),
)

# -- table-table joins ------------------------------------------------------------------------
# The two tables' updates are interleaved by timestamp within each partition.
TABLE_TABLE = (
    _records(
        "left",
        [
            ("a", "La1", 1.0),
            ("b", "Lb1", 4.0),
            ("a", "La2", 5.0),
            ("b", None, 7.0),
            ("a", None, 10.0),
            ("d", "Ld1", 1.0),
            ("f", "Lf1", 4.0),
            ("d", "Ld2", 5.0),
            ("f", None, 7.0),
        ],
    )
    + _records(
        "right",
        [
            ("a", "Ra1", 2.0),
            ("b", "Rb1", 3.0),
            ("a", None, 6.0),
            ("c", "Rc1", 8.0),
            ("c", None, 9.0),
            ("d", "Rd1", 2.0),
            ("d", "Rd2", 3.0),
            ("f", "Rf1", 6.0),
            ("f", None, 8.0),
        ],
    ),
)

# -- foreign-key joins: left k -> "FK|payload", right keyed by FK ---------------------------
# Phases, because the join crosses tasks: the subscription goes to the right table's task and
# the answer comes back. Right rows of phase 1 are older than every left row.
FK_JOIN = (
    _records("right", [("fk1", "R1", 1.0), ("fk3", "R3", 2.0)])
    + _records(
        "left",
        [
            ("k1", "fk1|p", 3.0),
            ("k2", "fk3|q", 4.0),
            ("k3", "fk2|r", 5.0),  # fk2 has no row yet
            ("k4", "fk1|s", 6.0),
        ],
    ),
    _records("right", [("fk1", "R1b", 10.0)]),  # both k1 and k4 follow
    _records("left", [("k1", "fk3|p2", 11.0)]),  # k1 moves to fk3
    _records("right", [("fk1", "R1c", 12.0)]),  # only k4 follows now
    _records("right", [("fk3", None, 13.0)]),  # k1 and k2 lose their match
    _records("left", [("k2", None, 14.0)]),  # k2 deleted
    _records("right", [("fk2", "R2", 15.0)]) + _records("left", [("k4", "fk1|s2", 16.0)]),
)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario("tumbling", "TimeWindows 10 s, grace 2 s, count, on every update", WINDOWED),
        Scenario(
            "tumbling-final",
            "as tumbling, suppressed until each window closes (final results only)",
            WINDOWED,
        ),
        Scenario("hopping", "TimeWindows 10 s advancing by 5 s, grace 2 s, count", WINDOWED),
        Scenario("sliding", "SlidingWindows 10 s, grace 2 s, count", WINDOWED),
        Scenario(
            "session",
            "SessionWindows gap 5 s, grace 2 s, count; merged-away sessions are tombstones",
            SESSIONS,
        ),
        Scenario("aggregate", "groupByKey, reduce summing integers, toStream", SUMS),
        Scenario("group-by", "re-keyed by the value's text before '|', grouped, counted", GROUP_BY),
        Scenario("stream-table-inner", "KStream left join KTable right (inner)", STREAM_TABLE),
        Scenario("stream-table-left", "KStream left leftJoin KTable right", STREAM_TABLE),
        Scenario("stream-stream-inner", "KStream join KStream within 5 s", STREAM_STREAM),
        Scenario("stream-stream-left", "KStream leftJoin KStream within 5 s", STREAM_STREAM),
        Scenario("stream-stream-outer", "KStream outerJoin KStream within 5 s", STREAM_STREAM),
        Scenario("table-table-inner", "KTable join KTable, toStream", TABLE_TABLE),
        Scenario("table-table-left", "KTable leftJoin KTable, toStream", TABLE_TABLE),
        Scenario("table-table-outer", "KTable outerJoin KTable, toStream", TABLE_TABLE),
        Scenario(
            "fk-join",
            "KTable left (FK|payload) joined on FK to KTable right: payload+right",
            FK_JOIN,
        ),
        Scenario("fk-join-left", "as fk-join, a left join", FK_JOIN),
    ]
}
