"""kcat (the command-line client, librdkafka underneath) against a real nerve broker."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests._broker import BrokerProcess
from tests._ck import Out, create_topic, produce_ok
from tests.conftest import TopicNameFactory

KCAT = shutil.which("kcat") or shutil.which("kafkacat")

pytestmark = pytest.mark.skipif(
    KCAT is None, reason="kcat binary not installed (apt-get install kcat); CI installs it"
)


def kcat(bootstrap: str, *args: str, stdin: str | None = None) -> str:
    assert KCAT is not None
    proc = subprocess.run(
        [KCAT, "-b", bootstrap, "-m", "20", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"kcat {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
    return proc.stdout


def test_kcat_metadata_lists_broker_and_topic_partitions(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(shared_broker.bootstrap, topic, partitions=3)

    out = kcat(shared_broker.bootstrap, "-L", "-t", topic)

    assert "1 brokers:" in out
    assert f'topic "{topic}" with 3 partitions:' in out
    for p in range(3):
        assert f"partition {p}, leader" in out


def test_kcat_metadata_as_json_has_brokers_and_topics(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(shared_broker.bootstrap, topic, partitions=2)

    meta = json.loads(kcat(shared_broker.bootstrap, "-L", "-J"))

    (broker,) = meta["brokers"]
    assert broker["name"].endswith(f":{shared_broker.port}")
    topics = {t["topic"]: t for t in meta["topics"]}
    assert topic in topics
    partitions = topics[topic]["partitions"]
    assert sorted(p["partition"] for p in partitions) == [0, 1]
    assert {p["leader"] for p in partitions} == {broker["id"]}


def test_kcat_produce_with_key_delimiter_then_consume_from_beginning(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    lines = [f"key{i}:value {i}" for i in range(20)]

    kcat(shared_broker.bootstrap, "-P", "-t", topic, "-p", "0", "-K", ":", stdin="\n".join(lines))
    out = kcat(
        shared_broker.bootstrap,
        "-C",
        "-t",
        topic,
        "-o",
        "beginning",
        "-e",
        "-f",
        "%o|%k|%s\n",
    )

    assert out.splitlines() == [f"{i}|key{i}|value {i}" for i in range(20)]


def test_kcat_consumes_records_produced_by_another_client_as_json(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    produce_ok(
        shared_broker.bootstrap,
        topic,
        [Out(b"hello", key=b"a", headers=[("h1", b"x")]), Out(b"world", key=b"b")],
    )

    out = kcat(shared_broker.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-J")

    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [(r["offset"], r["key"], r["payload"]) for r in records] == [
        (0, "a", "hello"),
        (1, "b", "world"),
    ]
    assert records[0].get("headers") == ["h1", "x"]
