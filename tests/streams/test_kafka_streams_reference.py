"""Kafka Streams 4.4 on nerve: the reference application (tests/streams/reference) runs every
scenario of tests/streams/scenarios.py against Apache Kafka and against nerve's broker, and
both runs must write the same output per key. The Apache Kafka run must also write what
kafka_streams_4_4_outputs.json recorded, which is what nerve's own streams are held to.

All scenarios run in one JVM per broker (a KafkaStreams instance each); start-up dominates.
A second run of some scenarios uses exactly-once and restarts halfway with empty local state,
on both brokers: Kafka Streams' transactions and its restore from changelogs, on nerve.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests._broker import BrokerProcess
from tests._kafka import KafkaProcess
from tests.streams._reference import (
    KafkaStreamsApp,
    PerKey,
    by_key,
    load_recorded,
    reference_classpath,
    run_reference,
)
from tests.streams.scenarios import SCENARIOS, at

pytestmark = pytest.mark.slow

NAMES = list(SCENARIOS)
RECORDED = load_recorded()

# Exactly-once, stopped after phase 1 and started again with empty local state: windows, a
# suppression buffer, sessions, a repartition topic and a foreign-key join, restored from
# their changelogs.
RESTARTED = ["tumbling-final", "session", "group-by", "fk-join"]


Run = tuple[dict[str, PerKey], KafkaStreamsApp]


def _run(
    bootstrap: str,
    names: list[str],
    workdir: Path,
    classpath: str,
    *,
    exactly_once_with_restart: bool = False,
) -> Run:
    outputs, app = run_reference(
        bootstrap,
        names,
        workdir,
        exactly_once=exactly_once_with_restart,
        restart_after_phase=1 if exactly_once_with_restart else None,
        classpath=classpath,
    )
    assert app.starts == (2 if exactly_once_with_restart else 1)
    return {name: by_key(out) for name, out in outputs.items()}, app


@pytest.fixture(scope="module")
def classpath() -> str:
    return reference_classpath()


@pytest.fixture(scope="module")
def on_kafka(kafka: KafkaProcess, classpath: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _run(kafka.bootstrap, NAMES, tmp_path_factory.mktemp("streams-on-kafka"), classpath)


@pytest.fixture(scope="module")
def on_nerve(
    nerve_for_diff: BrokerProcess, classpath: str, tmp_path_factory: pytest.TempPathFactory
) -> Run:
    workdir = tmp_path_factory.mktemp("streams-on-nerve")
    return _run(nerve_for_diff.bootstrap, NAMES, workdir, classpath)


@pytest.fixture(scope="module")
def restarted_on_kafka(
    kafka: KafkaProcess, classpath: str, tmp_path_factory: pytest.TempPathFactory
) -> Run:
    workdir = tmp_path_factory.mktemp("restarted-on-kafka")
    return _run(kafka.bootstrap, RESTARTED, workdir, classpath, exactly_once_with_restart=True)


@pytest.fixture(scope="module")
def restarted_on_nerve(
    nerve_for_diff: BrokerProcess, classpath: str, tmp_path_factory: pytest.TempPathFactory
) -> Run:
    workdir = tmp_path_factory.mktemp("restarted-on-nerve")
    return _run(
        nerve_for_diff.bootstrap, RESTARTED, workdir, classpath, exactly_once_with_restart=True
    )


@pytest.mark.parametrize("scenario", NAMES)
def test_apache_kafka_gives_the_recorded_output(on_kafka: Run, scenario: str) -> None:
    outputs, _ = on_kafka
    assert outputs[scenario] == RECORDED[scenario]


@pytest.mark.parametrize("scenario", NAMES)
def test_nerve_gives_what_apache_kafka_gives(on_kafka: Run, on_nerve: Run, scenario: str) -> None:
    assert on_nerve[0][scenario] == on_kafka[0][scenario]


def _kinds(app: KafkaStreamsApp) -> set[str]:
    """What Kafka Streams warned about while running, without names, numbers and ids (the main
    thread's warnings are about its configuration, the same on any broker)."""
    kinds = set()
    for line in app.log_problems():
        if line.startswith("[main]"):
            continue
        line = line.replace(app.application_id, "APP").replace(app.topic_prefix, "")
        line = re.sub(r"\[[^\]]*\]|\{[^}]*\}|\([^)]*\)", "", line)
        kinds.add(re.sub(r"\d+", "#", line).strip())
    return kinds


def test_kafka_streams_warns_of_nothing_on_nerve_that_it_does_not_on_apache_kafka(
    on_kafka: Run, on_nerve: Run
) -> None:
    assert _kinds(on_nerve[1]) - _kinds(on_kafka[1]) == set()


def _low_watermarks(bootstrap: str, topic_prefix: str, suffix: str) -> dict[str, list[int]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "streams-watermarks"})
    try:
        topics = consumer.list_topics(timeout=10).topics
        return {
            name: [
                consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)[0]
                for p in topics[name].partitions
            ]
            for name in topics
            if name.startswith(topic_prefix) and name.endswith(suffix)
        }
    finally:
        consumer.close()


def test_kafka_streams_purges_its_repartition_topics_on_nerve(
    nerve_for_diff: BrokerProcess, on_nerve: Run
) -> None:
    """After each commit, consumed records of a repartition topic are deleted (DeleteRecords):
    the group-by's topic (data on both partitions) starts past its first records."""
    _, app = on_nerve
    (group,) = [g for g in app.group_ids if g.endswith("-group-by")]
    purged = _low_watermarks(nerve_for_diff.bootstrap, group, "-repartition")
    assert len(purged) == 1
    (low_watermarks,) = purged.values()
    assert all(low > 0 for low in low_watermarks), purged


@pytest.mark.parametrize("scenario", RESTARTED)
def test_exactly_once_and_a_restart_on_nerve_give_what_they_give_on_apache_kafka(
    restarted_on_kafka: Run, restarted_on_nerve: Run, scenario: str
) -> None:
    assert restarted_on_nerve[0][scenario] == restarted_on_kafka[0][scenario]


def test_a_restart_changes_only_what_kafka_streams_keeps_in_memory(restarted_on_kafka: Run) -> None:
    """A window processor's stream time lives in memory only: after the restart, a5 (9.999 s,
    beyond grace for [0,10) at stream time 12 before it) is counted, and the suppressed window
    comes out a second time. Nothing else changes (what nerve's streams may well do better)."""
    outputs, _ = restarted_on_kafka
    for name in RESTARTED:
        if name != "tumbling-final":
            assert outputs[name] == RECORDED[name], name
    window = f"a@{at(0)}-{at(10)}"
    assert outputs["tumbling-final"] == {
        **RECORDED["tumbling-final"],
        window: [("2", at(3)), ("3", at(9.999))],
    }
