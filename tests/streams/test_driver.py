"""The test driver runs a service's streams without Kafka: the scenarios' windowed counts come
out as on Kafka Streams, and a restart restores every store from the changelog."""

from __future__ import annotations

from datetime import timedelta

from nerve import Service
from nerve.service.events import Event
from nerve.streams import tumbling
from nerve.streams.driver import TestDriver
from tests.streams._nerve_apps import BUILDERS
from tests.streams._reference import load_recorded
from tests.streams.scenarios import PARTITIONS, SCENARIOS

RECORDED = load_recorded()


def _per_key(outputs: list) -> dict[str, list[tuple[str | None, int]]]:
    grouped: dict[str, list[tuple[str | None, int]]] = {}
    for out in outputs:
        grouped.setdefault(str(out.key), []).append((out.value, out.timestamp))
    return grouped


def test_the_driver_gives_what_kafka_streams_wrote_for_every_windowed_scenario() -> None:
    for name in ["tumbling", "tumbling-final", "hopping", "sliding", "session", "aggregate"]:
        service = Service(f"driver-{name}")
        scenario = SCENARIOS[name]
        BUILDERS[name](service, scenario.topic)
        with TestDriver(service, partitions=PARTITIONS) as driver:
            for phase in scenario.phases:
                for record in phase:
                    driver.send(
                        scenario.topic(record.topic),
                        record.value,
                        key=record.key,
                        timestamp=record.timestamp,
                    )
            assert _per_key(driver.output(scenario.topic("out"))) == RECORDED[name], name


class Debit(Event, topic="driver.debits", key="account"):
    account: str
    amount: int


class Busy(Event, topic="driver.busy", key="account"):
    account: str
    debits: int


def test_a_restart_restores_windows_and_stream_time_from_the_changelog() -> None:
    service = Service("driver-restart")
    (
        service.stream(Debit)
        .group_by_key()
        .window(tumbling(timedelta(seconds=10)), grace=timedelta(seconds=1))
        .count()
        .where(lambda w: w.value >= 2)
        .emit(lambda w: Busy(account=w.key, debits=w.value))
    )
    with TestDriver(service) as driver:
        driver.send(Debit(account="a", amount=5), timestamp=1_000)
        driver.restart()
        driver.send(Debit(account="a", amount=7), timestamp=2_000)
        assert [(e.account, e.debits) for e in driver.emitted(Busy)] == [("a", 2)]
        driver.send(Debit(account="a", amount=7), timestamp=20_000)  # closes [0, 10 s)
        driver.restart()
        driver.send(Debit(account="a", amount=1), timestamp=3_000)  # late, even after restart
        assert [o.key for o in driver.late(Debit.topic)] == ["a"]
        assert driver.emitted(Busy) == []
