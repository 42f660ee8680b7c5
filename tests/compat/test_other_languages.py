"""Clients of other languages against nerve: kafkajs (npm) and franz-go (Go module proxy).

Each runs admin, an idempotent producer, a read_committed consumer group and transactions,
as the Java client's test does; a read_committed read in Python then sees only the committed
records. The programs live in tests/compat/js and tests/compat/go with locked dependencies.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests._broker import BrokerProcess
from tests._ck import create_topic
from tests.conftest import TopicNameFactory

HERE = Path(__file__).parent
Runner = Callable[..., list[str]]


def _need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed; the test machine is expected to have it")


def _runner(argv: list[str], cwd: Path) -> Runner:
    # kafkajs warns once that its default partitioner changed in 2.0: a note about the
    # client itself, not about the broker, so it is silenced; any other line fails the test.
    base = {**os.environ, "KAFKAJS_NO_PARTITIONER_WARNING": "1"}

    def run(*args: str, env: dict[str, str] | None = None) -> list[str]:
        result = subprocess.run(
            [*argv, *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
            env={**base, **(env or {})},
        )
        assert result.returncode == 0, f"{args[0]} failed:\n{result.stderr[-3000:]}"
        problems = [line for line in result.stderr.splitlines() if line.strip()]
        assert problems == [], "the client logged:\n" + "\n".join(problems[:10])
        return result.stdout.splitlines()

    return run


@pytest.fixture(scope="module")
def kafkajs() -> Runner:
    _need("node", "npm")
    js = HERE / "js"
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"], cwd=js, check=True, capture_output=True
    )
    return _runner(["node", "clients.mjs"], js)


@pytest.fixture(scope="module")
def franz_go(tmp_path_factory: pytest.TempPathFactory) -> Runner:
    _need("go")
    binary = tmp_path_factory.mktemp("franz-go") / "compat"
    subprocess.run(
        ["go", "build", "-o", str(binary), "."],
        cwd=HERE / "go",
        check=True,
        capture_output=True,
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    )
    return _runner([str(binary)], HERE / "go")


def committed_values(bootstrap: str, topic: str) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        values: list[bytes] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            if message.error():
                break
            values.append(message.value())
        return values
    finally:
        consumer.close()


def exercise(run: Runner, bootstrap: str, topic_name: TopicNameFactory) -> None:
    topic = topic_name()
    assert run("admin", bootstrap, topic) == ["partitions 3"]
    assert run("produce", bootstrap, topic, "200") == ["produced 200"]
    consumed = run("consume", bootstrap, topic, topic_name("group"), "200")
    assert consumed[:-1] == sorted(f"record v{i}" for i in range(200))
    assert consumed[-1] == "committed 200"
    txn_topic = topic_name("txn")
    # franz-go does not auto-create topics (nor does the Java producer without metadata).
    create_topic(bootstrap, txn_topic, partitions=1)
    assert run("transact", bootstrap, txn_topic, topic_name("tid")) == ["transactions done"]
    assert committed_values(bootstrap, txn_topic) == [f"committed-{i}".encode() for i in range(3)]


@pytest.mark.slow
def test_kafkajs(
    shared_broker: BrokerProcess, kafkajs: Runner, topic_name: TopicNameFactory
) -> None:
    exercise(kafkajs, shared_broker.bootstrap, topic_name)


@pytest.mark.slow
def test_franz_go(
    shared_broker: BrokerProcess, franz_go: Runner, topic_name: TopicNameFactory
) -> None:
    exercise(franz_go, shared_broker.bootstrap, topic_name)
