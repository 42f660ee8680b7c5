"""How a service's streams are wired: events emitted after a repartition stay in their
input's chain, a join's repartition topic is co-partitioned with the table it joins, and the
event classes an emit function returns are declared as the service's."""

from __future__ import annotations

import pytest

from nerve import Event, Service
from nerve.streams.driver import TestDriver
from nerve.streams.engine import Topology


class Moved(Event, topic="wiring.moved", key="account", partitions=4):
    account: str
    owner: str


class Owner(Event, topic="wiring.owners", key="owner"):
    owner: str
    email: str


class Told(Event, topic="wiring.told", key="owner"):
    owner: str
    email: str


def _joining() -> Service:
    service = Service("wiring")
    owners = service.stream(Owner).to_table(name="owners")

    def told(joined: tuple[Moved, Owner]) -> Told:
        return Told(owner=joined[1].owner, email=joined[1].email)

    (
        service.stream(Moved)
        .select_key(lambda m: m.owner, name="by-owner")
        .join(owners, lambda m, o: (m, o), name="with-owner")
        .emit(told)
    )
    return service


def test_events_emitted_after_a_repartition_keep_the_inputs_chain() -> None:
    with TestDriver(_joining(), partitions=2) as driver:
        driver.send(Owner(owner="o1", email="o1@example.com"), timestamp=1)
        moved = Moved(account="a1", owner="o1")
        moved.meta.correlation_id = "chain-1"
        driver.send(moved, timestamp=2)
        [told] = driver.emitted(Told)
    assert told.email == "o1@example.com"
    assert told.meta.causation_id == moved.meta.id
    assert told.meta.correlation_id == "chain-1"


def test_a_joins_repartition_topic_takes_the_partitions_of_the_table_it_joins() -> None:
    topology = Topology(_joining().streams_builder)
    counts = {Moved.topic: 4, Owner.topic: 1}
    internal = topology.internal_topics(lambda topic: counts[topic])
    repartition = "wiring-with-owner-left-repartition"
    assert internal[repartition] == (1, False)  # not Moved's 4: each owner meets its row
    assert internal["wiring-owners-changelog"] == (1, True)


def test_join_inputs_with_different_partition_counts_are_refused() -> None:
    service = Service("wiring-mismatch")
    owners = service.stream(Owner).to_table(name="owners")
    service.stream(Moved).join(owners, lambda m, o: (m, o)).to("wiring.out")
    topology = Topology(service.streams_builder)
    counts = {Moved.topic: 4, Owner.topic: 1}
    with pytest.raises(ValueError, match="not co-partitioned"):
        topology.internal_topics(lambda topic: counts[topic])


def test_an_emit_functions_return_annotation_declares_what_the_service_emits() -> None:
    assert _joining().emits == [Told]
