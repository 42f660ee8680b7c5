"""Restoring a task against a real broker: local state left by another cluster (its
checkpoint past the end of this cluster's changelog) is not trusted; what an assignment
restored is kept out of the collector's passes."""

from __future__ import annotations

import gc
from pathlib import Path
from types import SimpleNamespace

from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from nerve import Service
from nerve.service.config import RunConfig
from nerve.streams.engine import StreamsEngine, Topology
from nerve.streams.running import StreamsPart
from nerve.streams.serde import encode_value
from tests._broker import BrokerProcess


def _counting(name: str) -> Service:
    service = Service(name)
    service.stream(f"{name}.in").group_by_key().count(name="counts").to(f"{name}.out")
    return service


def _engine(service: Service, state: Path) -> StreamsEngine:
    return StreamsEngine(Topology(service.streams_builder), sink=None, state_dir=state)


def test_a_checkpoint_past_the_changelogs_end_is_dropped_and_the_changelog_restored(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    service = _counting("restore-stale")
    changelog = "restore-stale-counts-changelog"
    state = tmp_path / "state"
    # Local state as another cluster left it: a count of 41 for "a", checkpointed at 100.
    earlier = _engine(service, state)
    [task] = earlier.new_tasks([("restore-stale.in", 0)])
    task.state.open()
    task.state.store("counts", changelog).put("a", (41, 0))
    task.state.offsets[changelog] = 100
    task.state.persist()
    earlier.close()
    # This cluster's changelogs (made as a running service makes them) hold one record: "b"
    # counted 2.
    topology = Topology(service.streams_builder)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    made = admin.create_topics(
        [
            NewTopic(t, 1, config={"cleanup.policy": "compact"})
            for t in topology.changelogs(topology.subs[0])
        ]
    )
    for future in made.values():
        future.result(10)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(changelog, key=b"b", value=encode_value((2, 0)), partition=0)
    assert producer.flush(10) == 0

    engine = _engine(service, state)
    tasks = engine.new_tasks([("restore-stale.in", 0)])
    engine.restore(tasks, {"bootstrap.servers": broker.bootstrap})
    [task] = tasks
    assert dict(task.state.store("counts").items()) == {"b": (2, 0)}
    assert task.state.offsets[changelog] == 1
    engine.close()


def test_what_an_assignment_restored_is_frozen_and_what_comes_after_is_collected(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    service = _counting("restore-frozen")
    topology = Topology(service.streams_builder)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    made = admin.create_topics(
        [
            NewTopic(t, 1, config={"cleanup.policy": "compact"})
            for t in topology.changelogs(topology.subs[0])
        ]
    )
    for future in made.values():
        future.result(10)
    config = RunConfig(bootstrap_servers=broker.bootstrap, registry_url=None)
    part = StreamsPart(SimpleNamespace(service=service, config=config), tmp_path / "state")  # type: ignore[arg-type]
    try:
        before = [[]]  # a container alive at the assignment, like the stores' rows
        part.assigned([TopicPartition("restore-frozen.in", 0)])
        after = [[]]
        walked = {id(o) for o in gc.get_objects()}  # what a full pass walks
        assert id(before) not in walked
        assert id(after) in walked
        assert gc.get_freeze_count() > 0
    finally:
        part.close()
    assert id(before) in {id(o) for o in gc.get_objects()}  # collectable again once closed
