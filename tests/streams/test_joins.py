"""Joins in the test driver: the scenarios' join results come out as Kafka Streams wrote them
(fed in the order Kafka Streams takes a task's records: by timestamp across the task's
partitions), and what tombstones, null values and null keys do."""

from __future__ import annotations

from datetime import timedelta

import pytest

from nerve import Service
from nerve.streams.driver import TestDriver
from nerve.streams.partitioner import partition_for
from tests.streams._nerve_apps import ALL_BUILDERS, text_join
from tests.streams._reference import load_recorded
from tests.streams.scenarios import PARTITIONS, SCENARIOS, Record

RECORDED = load_recorded()
JOINS = [n for n in SCENARIOS if "join" in n or n.startswith(("stream-", "table-"))]


def in_task_order(records: tuple[Record, ...]) -> list[Record]:
    """Per partition, the topics' records merged by timestamp (each topic's own order kept),
    as a Kafka Streams task with max.task.idle.ms 0 takes them when all are on the broker."""
    ordered: list[Record] = []
    for partition in range(PARTITIONS):
        queues: dict[str, list[Record]] = {}
        for r in records:
            if partition_for(r.key.encode(), PARTITIONS) == partition:
                queues.setdefault(r.topic, []).append(r)
        while any(queues.values()):
            head = min((q for q in queues.values() if q), key=lambda q: q[0].timestamp)
            ordered.append(head.pop(0))
    return ordered


def _per_key(outputs: list) -> dict[str, list[tuple[str | None, int]]]:
    grouped: dict[str, list[tuple[str | None, int]]] = {}
    for out in outputs:
        grouped.setdefault(str(out.key), []).append((out.value, out.timestamp))
    return grouped


@pytest.mark.parametrize("name", [n for n in JOINS if n in ALL_BUILDERS])
def test_the_driver_joins_as_kafka_streams(name: str) -> None:
    service = Service(f"driver-{name}")
    scenario = SCENARIOS[name]
    ALL_BUILDERS[name](service, scenario.topic)
    with TestDriver(service, partitions=PARTITIONS) as driver:
        for phase in scenario.phases:
            for record in in_task_order(phase):
                driver.send(
                    scenario.topic(record.topic),
                    record.value,
                    key=record.key,
                    timestamp=record.timestamp,
                )
        assert _per_key(driver.output(scenario.topic("out"))) == RECORDED[name]


def _service(build) -> TestDriver:  # type: ignore[no-untyped-def]
    service = Service("joins")
    build(service)
    return TestDriver(service)


def test_stream_table_tombstones_and_nulls() -> None:
    def build(s: Service) -> None:
        table = s.stream("rows", time="record").to_table()
        stream = s.stream("facts", time="record")
        stream.join(table, text_join).to("inner")
        stream.left_join(table, text_join).to("left")

    with _service(build) as d:
        d.send("facts", "early", key="k", timestamp=1)  # no row yet: left only
        d.send("rows", "R1", key="k", timestamp=2)  # a table update joins nothing
        d.send("facts", "f1", key="k", timestamp=3)
        d.send("facts", None, key="k", timestamp=4)  # a null value: skipped by both
        d.send("rows", None, key="k", timestamp=5)  # tombstone: the row is gone
        d.send("facts", "f2", key="k", timestamp=6)
        d.send("facts", "nokey", timestamp=7)  # no key: left join only, with None
        assert [tuple(o) for o in d.output("inner")] == [("k", "f1+R1", 3)]
        assert [tuple(o) for o in d.output("left")] == [
            ("k", "early+null", 1),
            ("k", "f1+R1", 3),
            ("k", "f2+null", 6),
            (None, "nokey+null", 7),
        ]


def test_table_table_tombstones() -> None:
    def build(s: Service) -> None:
        left = s.stream("l", time="record").to_table()
        right = s.stream("r", time="record").to_table()
        left.join(right, text_join).to("inner")
        left.left_join(right, text_join).to("left")
        left.outer_join(right, text_join).to("outer")

    with _service(build) as d:
        d.send("r", "R", key="k", timestamp=5)
        d.send("l", "L", key="k", timestamp=3)  # older than the right row: the later wins
        d.send("l", None, key="k", timestamp=7)
        d.send("l", None, key="k", timestamp=8)  # deleting an absent row: nothing at all
        d.send("r", None, key="k", timestamp=9)
        assert [tuple(o) for o in d.output("inner")] == [("k", "L+R", 5), ("k", None, 7)]
        assert [tuple(o) for o in d.output("left")] == [("k", "L+R", 5), ("k", None, 7)]
        assert [tuple(o) for o in d.output("outer")] == [
            ("k", "null+R", 5),
            ("k", "L+R", 5),
            ("k", "null+R", 7),
            ("k", None, 9),
        ]


def test_stream_stream_unmatched_records_wait_for_their_window_and_survive_a_restart() -> None:
    def build(s: Service) -> None:
        left = s.stream("l", time="record")
        right = s.stream("r", time="record")
        left.outer_join(right, text_join, within=timedelta(seconds=1), grace=0).to("out")

    with _service(build) as d:
        d.send("l", "L1", key="k", timestamp=1000)
        d.send("r", None, key="k", timestamp=1100)  # a null value joins nothing: skipped
        assert d.output("out") == []  # L1's window is open: it may still match
        d.restart()  # the unmatched record and the window stores come back
        d.send("r", "R1", key="k", timestamp=1500)
        d.send("r", "R2", key="j", timestamp=2000)
        assert [tuple(o) for o in d.output("out")] == [("k", "L1+R1", 1500)]
        d.send("l", "L2", key="x", timestamp=3001)  # stream time 3001: R2's window closed
        assert [tuple(o) for o in d.output("out")] == [("j", "null+R2", 2000)]
        d.send("l", "L3", key="k", timestamp=100)  # its window closed already: at once
        assert [tuple(o) for o in d.output("out")] == [("k", "L3+null", 100)]


def test_foreign_key_join_drops_stale_answers_and_retracts() -> None:
    from nerve.streams.joins import value_hash
    from nerve.streams.serde import encode_value

    def build(s: Service) -> None:
        rows = s.stream("rows", time="record").to_table()
        refs = s.stream("refs", time="record").to_table()
        rows.join(refs, text_join, foreign_key=lambda v: v.split("|")[0]).to("inner")
        rows.left_join(refs, text_join, foreign_key=lambda v: v.split("|")[0]).to("left")

    with _service(build) as d:
        d.send("refs", "R1", key="fk1", timestamp=1)
        d.send("rows", "fk1|a", key="k", timestamp=2)
        d.send("rows", "fk2|b", key="k", timestamp=3)  # fk2 has no row: the inner join retracts
        assert [tuple(o) for o in d.output("inner")] == [("k", "fk1|a+R1", 2), ("k", None, 3)]
        assert [tuple(o) for o in d.output("left")] == [
            ("k", "fk1|a+R1", 2),
            ("k", "fk2|b+null", 3),
        ]
        d.send("refs", "R1b", key="fk1", timestamp=4)  # k left fk1: no longer a subscriber
        assert d.output("inner") == [] and d.output("left") == []
        response = next(
            t for t in d.topology.sources_of_topic if "fk-join" in t and "response" in t
        )
        stale = encode_value({"h": value_hash("fk1|a"), "r": "late"})  # answers an old value
        d.send(response, stale, key="k", timestamp=5)
        assert d.output("inner") == []
        current = encode_value({"h": value_hash("fk2|b"), "r": "R2"})
        d.send(response, current, key="k", timestamp=6)
        assert [tuple(o) for o in d.output("inner")] == [("k", "fk2|b+R2", 6)]
        d.send("rows", None, key="k", timestamp=7)  # the left row deleted: a tombstone
        assert [tuple(o) for o in d.output("inner")] == [("k", None, 7)]
        assert [tuple(o) for o in d.output("left")] == [("k", None, 7)]


def test_a_filter_after_a_table_join_retracts_rows_that_stop_matching() -> None:
    """The join forwards the joined row it replaces, so a ``where`` downstream can delete."""

    def build(s: Service) -> None:
        left = s.stream("l", time="record").to_table()
        right = s.stream("r", time="record").to_table()
        joined = left.left_join(right, text_join)
        joined.where(lambda v: v.endswith("+R")).to("out")

    with _service(build) as d:
        d.send("l", "L", key="k", timestamp=1)  # L+null: filtered out
        d.send("r", "R", key="k", timestamp=2)  # L+R
        d.send("r", "S", key="k", timestamp=3)  # L+S: stops matching, deleted downstream
        assert [tuple(o) for o in d.output("out")] == [("k", "L+R", 2), ("k", None, 3)]
