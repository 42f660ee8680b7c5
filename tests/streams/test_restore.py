"""Restoring a task against a real broker: local state left by another cluster (its
checkpoint past the end of this cluster's changelog) is not trusted."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from nerve import Service
from nerve.streams.engine import StreamsEngine, Topology
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
