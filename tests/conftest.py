"""Shared fixtures: real broker subprocesses and unique topic names."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._broker import BrokerProcess
from tests._kafka import KafkaProcess
from tests._postgres import PostgresProcess
from tests._registry import RegistryFactory, RegistryProcess

BrokerFactory = Callable[..., BrokerProcess]
TopicNameFactory = Callable[..., str]

_topic_counter = itertools.count()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the stderr tail of every broker a failing test used to its report."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)
    if not report.failed:
        return
    seen: set[int] = set()
    brokers: list[BrokerProcess] = []
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, BrokerProcess):
            brokers.append(value)
        elif isinstance(value, _Factory):
            brokers.extend(value.brokers)
    for broker in brokers:
        if id(broker) in seen:
            continue
        seen.add(id(broker))
        report.sections.append(
            (
                f"broker stderr tail ({broker.data_dir.name}, port {broker.port})",
                broker.stderr_tail(),
            )
        )


@pytest.fixture(autouse=True)
def _own_state_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Services a test starts (``nerve run`` without ``--state-dir``) keep their state in a
    folder of that test, not in ``.nerve/state`` of the checkout, where it would outlive the
    run and be shared by tests of one service name on different brokers."""
    monkeypatch.setenv("NERVE_STATE_DIR", str(tmp_path_factory.mktemp("state")))


class _Factory:
    """Starts brokers on demand and stops them at teardown."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.brokers: list[BrokerProcess] = []

    def __call__(
        self,
        configs: Mapping[str, str | int] | None = None,
        *,
        advertised: str | None = None,
        start: bool = True,
    ) -> BrokerProcess:
        data_dir = self.root / f"broker{len(self.brokers)}" / "data"
        broker = BrokerProcess(data_dir, configs=configs, advertised=advertised)
        self.brokers.append(broker)
        if start:
            broker.start()
        return broker

    def close(self) -> None:
        for broker in self.brokers:
            broker.close()


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[BrokerFactory]:
    """``broker_factory({"auto.create.topics.enable": "false"})`` -> a started, private broker."""
    factory = _Factory(tmp_path)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def broker(broker_factory: BrokerFactory) -> BrokerProcess:
    """A private broker for this test only (free to kill, restart or corrupt)."""
    return broker_factory()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresProcess]:
    """PostgreSQL 15 (wal_level=logical) for the whole session; tests use their own tables,
    schemas, slots and publications (connect, es)."""
    proc = PostgresProcess().start()
    try:
        yield proc
    finally:
        proc.close()


@pytest.fixture(scope="session")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker for the whole session; tests must use unique topics and must not stop it."""
    root = tmp_path_factory.mktemp("shared-broker")
    proc = BrokerProcess(root / "data")
    proc.start()
    try:
        yield proc
    finally:
        proc.close()


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> TopicNameFactory:
    """``topic_name()`` / ``topic_name("suffix")`` -> a topic name unique in this session."""
    base = re.sub(r"[^a-zA-Z0-9._-]+", "-", request.node.name).strip("-")[:80]

    def make(suffix: str = "") -> str:
        parts = [base, str(next(_topic_counter)), uuid.uuid4().hex[:6]]
        if suffix:
            parts.append(suffix)
        return "-".join(parts)

    return make


# -- Apache Kafka beside nerve (differential tests) ------------------------------------------

# The same settings on both sides; no initial rebalance delay keeps group tests quick.
DIFFERENTIAL_CONFIGS = {"group.initial.rebalance.delay.ms": 0}


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaProcess]:
    """Apache Kafka 4.x (KRaft, single node) for the whole session; it fails, never skips."""
    proc = KafkaProcess(tmp_path_factory.mktemp("kafka") / "data", configs=DIFFERENTIAL_CONFIGS)
    proc.start()
    try:
        yield proc
    finally:
        proc.close()


@pytest.fixture(scope="session")
def nerve_for_diff(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(
        tmp_path_factory.mktemp("nerve-diff") / "data", configs=DIFFERENTIAL_CONFIGS
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.close()


@dataclass(frozen=True)
class Backend:
    name: str
    bootstrap: str


@pytest.fixture(params=["nerve", "kafka"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """The same test against nerve and against Apache Kafka: both must observe the same."""
    if request.param == "kafka":
        proc: BrokerProcess | KafkaProcess = request.getfixturevalue("kafka")
    else:
        proc = request.getfixturevalue("nerve_for_diff")
    return Backend(request.param, proc.bootstrap)


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator[RegistryFactory]:
    """``registry_factory(bootstrap, topic)`` -> a started registry, stopped at teardown."""
    started: list[RegistryProcess] = []

    def make(bootstrap: str, topic: str = "_schemas") -> RegistryProcess:
        proc = RegistryProcess(tmp_path / f"registry{len(started)}", bootstrap, topic)
        started.append(proc)
        return proc.start()

    try:
        yield make
    finally:
        for proc in started:
            proc.close()


@pytest.fixture(scope="session")
def shared_registry(
    shared_broker: BrokerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryProcess]:
    """One registry on the shared broker; tests use unique subjects (``subject_name``)."""
    proc = RegistryProcess(tmp_path_factory.mktemp("registry"), shared_broker.bootstrap)
    proc.start()
    try:
        yield proc
    finally:
        proc.close()
