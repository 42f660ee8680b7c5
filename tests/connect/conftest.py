"""Kafka Connect workers for the whole session, one cluster on nerve and one on Apache Kafka.

Each worker starts once (a JVM takes seconds to start and scan its plugins); tests create
connectors with unique names and topics. Tests that kill a worker start their own
(``worker_factory``) so the shared ones stay up.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._broker import BrokerProcess
from tests._connect import ConnectWorker, debezium_plugins
from tests._kafka import KafkaProcess

_groups = itertools.count()


@dataclass(frozen=True)
class ConnectCluster:
    name: str  # "nerve" or "kafka"
    bootstrap: str
    worker: ConnectWorker


@pytest.fixture(scope="session")
def connect_on_nerve(
    nerve_for_diff: BrokerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConnectCluster]:
    worker = ConnectWorker(
        tmp_path_factory.mktemp("connect-nerve"),
        nerve_for_diff.bootstrap,
        group="connect-shared",
        plugin_path=debezium_plugins(),
    ).start()
    try:
        yield ConnectCluster("nerve", nerve_for_diff.bootstrap, worker)
    finally:
        worker.close()


@pytest.fixture(scope="session")
def connect_on_kafka(
    kafka: KafkaProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConnectCluster]:
    worker = ConnectWorker(
        tmp_path_factory.mktemp("connect-kafka"),
        kafka.bootstrap,
        group="connect-shared",
        plugin_path=debezium_plugins(),
    ).start()
    try:
        yield ConnectCluster("kafka", kafka.bootstrap, worker)
    finally:
        worker.close()


@pytest.fixture(params=["nerve", "kafka"])
def connect_cluster(request: pytest.FixtureRequest) -> ConnectCluster:
    """The same Connect test on nerve and on Apache Kafka: both must observe the same."""
    cluster: ConnectCluster = request.getfixturevalue(f"connect_on_{request.param}")
    return cluster


WorkerFactory = Callable[..., ConnectWorker]


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[WorkerFactory]:
    """``worker_factory(bootstrap)`` -> a started worker of a cluster of its own, stopped at
    teardown; free to kill and restart."""
    started: list[ConnectWorker] = []

    def make(bootstrap: str, **configs: str | int) -> ConnectWorker:
        group = f"connect-private-{next(_groups)}-{tmp_path.name}"[:100]
        worker = ConnectWorker(
            tmp_path / f"worker{len(started)}", bootstrap, group=group, configs=configs
        )
        started.append(worker)
        return worker.start()

    try:
        yield make
    finally:
        for worker in started:
            worker.close()
