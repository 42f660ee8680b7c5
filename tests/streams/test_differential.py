"""nerve's streams against Kafka Streams 4.4: the same scenarios (tests/streams/scenarios.py),
the same input, and nerve must write what Kafka Streams wrote (kafka_streams_4_4_outputs.json),
per key: on nerve's broker and on Apache Kafka."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests._broker import BrokerProcess
from tests._kafka import KafkaProcess
from tests.streams._nerve_apps import BUILDERS, NerveStreamsApp
from tests.streams._reference import PerKey, by_key, load_recorded, run_scenarios
from tests.streams.scenarios import SCENARIOS

pytestmark = pytest.mark.slow

NAMES = [name for name in SCENARIOS if name in BUILDERS]
RECORDED = load_recorded()


def _run(
    bootstrap: str,
    workdir: Path,
    *,
    exactly_once: bool = False,
    restart_after_phase: int | None = None,
    names: list[str] = NAMES,
) -> dict[str, PerKey]:
    prefix = f"nerve-{uuid.uuid4().hex[:6]}-"
    app = NerveStreamsApp(
        names, bootstrap, workdir=workdir, exactly_once=exactly_once, topic_prefix=prefix
    )
    outputs = run_scenarios(
        bootstrap,
        [SCENARIOS[n] for n in names],
        app,
        prefix=prefix,
        restart_after_phase=restart_after_phase,
    )
    return {name: by_key(out) for name, out in outputs.items()}


@pytest.fixture(scope="module")
def on_nerve(
    nerve_for_diff: BrokerProcess, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, PerKey]:
    return _run(nerve_for_diff.bootstrap, tmp_path_factory.mktemp("nerve-streams-on-nerve"))


@pytest.fixture(scope="module")
def on_kafka(kafka: KafkaProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, PerKey]:
    return _run(kafka.bootstrap, tmp_path_factory.mktemp("nerve-streams-on-kafka"))


@pytest.mark.parametrize("scenario", NAMES)
def test_nerve_streams_on_nerve_write_what_kafka_streams_wrote(
    on_nerve: dict[str, PerKey], scenario: str
) -> None:
    assert on_nerve[scenario] == RECORDED[scenario]


@pytest.mark.parametrize("scenario", NAMES)
def test_nerve_streams_on_apache_kafka_write_what_kafka_streams_wrote(
    on_kafka: dict[str, PerKey], scenario: str
) -> None:
    assert on_kafka[scenario] == RECORDED[scenario]


RESTARTED = [n for n in ("tumbling-final", "session", "group-by", "fk-join") if n in NAMES]


@pytest.mark.parametrize("broker", ["nerve", "kafka"])
def test_exactly_once_and_a_restart_with_empty_local_state_change_nothing(
    request: pytest.FixtureRequest, tmp_path: Path, broker: str
) -> None:
    """Stopped after phase 1 and started with an empty state directory: every store, the
    suppression buffer and each window's stream time come back from the changelogs, so the
    output is what an uninterrupted run writes (Kafka Streams' restart, which forgets stream
    time, counts a record it had called late: test_kafka_streams_reference)."""
    server = request.getfixturevalue("nerve_for_diff" if broker == "nerve" else "kafka")
    outputs = _run(
        server.bootstrap, tmp_path, exactly_once=True, restart_after_phase=1, names=RESTARTED
    )
    for name in RESTARTED:
        assert outputs[name] == RECORDED[name], name
