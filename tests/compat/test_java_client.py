"""The Java Kafka client (kafka-clients from Maven Central) against nerve: admin, the producer
with its default idempotence, a consumer group, transactions. Its log (slf4j-simple) must hold
no warning or error."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._broker import BrokerProcess
from tests._ck import create_topic
from tests.conftest import TopicNameFactory

REPO = Path(__file__).resolve().parents[2]
SOURCE = Path(__file__).with_name("java") / "NerveClients.java"
_BAD_LOG = re.compile(r"\b(WARN|ERROR)\b")


@pytest.fixture(scope="module")
def java(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """``java -cp ...`` for the compiled test program (CI installs Java and Maven)."""
    for tool in ("java", "javac", "mvn"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed; .ci/run installs it")
    jars = subprocess.run(
        [str(REPO / "scripts" / "java-clients")], capture_output=True, text=True, check=True
    ).stdout.strip()
    out = tmp_path_factory.mktemp("java-classes")
    classpath = f"{jars}/*"
    subprocess.run(
        ["javac", "-d", str(out), "-cp", classpath, str(SOURCE)], check=True, capture_output=True
    )
    yield ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=info", "-cp", f"{out}:{classpath}",
           "NerveClients"]  # fmt: skip


def run(java: list[str], *args: str) -> list[str]:
    result = subprocess.run([*java, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    problems = [line for line in result.stderr.splitlines() if _BAD_LOG.search(line)]
    assert problems == [], "\n".join(problems[:10])
    return result.stdout.splitlines()


@pytest.mark.slow
def test_java_admin_idempotent_producer_consumer_group_and_transactions(
    shared_broker: BrokerProcess, java: list[str], topic_name: TopicNameFactory
) -> None:
    bootstrap = shared_broker.bootstrap
    topic, group = topic_name(), topic_name("group")
    assert run(java, "admin", bootstrap, topic)[0] == "partitions 3"
    assert run(java, "produce", bootstrap, topic, "200") == ["produced 200"]
    consumed = run(java, "consume", bootstrap, topic, group, "200")
    assert sorted(line for line in consumed if line.startswith("record ")) == sorted(
        f"record v{i}" for i in range(200)
    )
    assert consumed[-1] == "committed 200"

    txn_topic = topic_name("txn")
    # Created first: a producer's metadata request that auto-creates a topic is answered
    # UNKNOWN_TOPIC_OR_PARTITION (as on Kafka 4), which the Java client logs at WARN.
    create_topic(bootstrap, txn_topic)
    assert run(java, "transact", bootstrap, txn_topic, topic_name("tid")) == ["transactions done"]
    consumed = run(java, "consume", bootstrap, txn_topic, topic_name("group"), "3")
    assert sorted(line for line in consumed if line.startswith("record ")) == [
        f"record committed-{i}" for i in range(3)
    ]
