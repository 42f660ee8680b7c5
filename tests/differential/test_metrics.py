"""nerve's broker metrics beside Apache Kafka's own (issue 15 item 9): the same produce
requests to both, then Kafka's MBeans read over JMX (tests/differential/java/KafkaMBeans.java,
through the Attach API) and renamed as the Prometheus JMX exporter's Kafka rules rename them
(``kafka.server<type=BrokerTopicMetrics, name=BytesInPerSec, topic=T><>Count`` becomes
``kafka_server_brokertopicmetrics_bytesin_total{topic="T"}``); nerve's scrape must hold every
such series, with the same value."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, TopicPartition

from tests import _ck
from tests._broker import BrokerProcess
from tests._kafka import KafkaProcess
from tests._metrics import scrape
from tests.broker import _wire
from tests.conftest import DIFFERENTIAL_CONFIGS, TopicNameFactory

SOURCE = Path(__file__).with_name("java") / "KafkaMBeans.java"
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def mbeans(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    for tool in ("java", "javac"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed; .ci/run installs it")
    out = tmp_path_factory.mktemp("mbeans-classes")
    subprocess.run(["javac", "-d", str(out), str(SOURCE)], check=True, capture_output=True)
    return ["java", "-cp", str(out), "KafkaMBeans"]


@pytest.fixture(scope="module")
def metered_nerve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(
        tmp_path_factory.mktemp("nerve-metrics-diff") / "data",
        configs=DIFFERENTIAL_CONFIGS,
        args=["--metrics-port", "0"],
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.close()


def _exporter_name(object_name: str, attribute: str) -> tuple[str, dict[str, str]] | None:
    """The series the JMX exporter's Kafka rules make of one MBean attribute (lower-cased
    names; ``...PerSec`` meters' Count as counters, gauges' Value as they are)."""
    domain, _, keys = object_name.partition(":")
    props = dict(part.split("=", 1) for part in keys.split(","))
    kind, name = props.pop("type"), props.pop("name")
    prefix = "kafka_" + domain.removeprefix("kafka.")
    if attribute == "Count":
        meter = re.fullmatch(r"(.+)PerSec\w*", name)
        if meter is None:
            return None
        return f"{prefix}_{kind}_{meter.group(1)}_total".lower(), props
    return f"{prefix}_{kind}_{name}".lower(), props


def kafka_series(mbeans: list[str], kafka: KafkaProcess, *patterns: str) -> Series:
    done = subprocess.run(
        [*mbeans, str(kafka.pid), *patterns], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found: Series = {}
    for line in done.stdout.splitlines():
        object_name, attribute, value = line.split("\t")
        named = _exporter_name(object_name, attribute)
        if named is not None:
            found[named[0], frozenset(named[1].items())] = float(value)
    return found


def _await_leaders(bootstrap: str, topic: str, partitions: int) -> None:
    """Until each partition's leader answers ListOffsets: Kafka shows a new topic's leaders in
    its metadata a moment before its replica manager leads them, and a produce in between is
    refused (NOT_LEADER_OR_FOLLOWER) yet counted in TotalProduceRequestsPerSec."""
    consumer = _ck.consumer(bootstrap)
    try:
        for partition in range(partitions):
            deadline = time.monotonic() + 30
            while True:
                try:
                    consumer.get_watermark_offsets(
                        TopicPartition(topic, partition), timeout=5, cached=False
                    )
                    break
                except KafkaException:
                    assert time.monotonic() < deadline, f"{topic}-{partition} has no leader"
                    time.sleep(0.1)
    finally:
        consumer.close()


def _produce(bootstrap: str, topic: str, batches: list[tuple[int, bytes]]) -> None:
    with _wire.connect(bootstrap) as sock:
        for correlation_id, (partition, batch) in enumerate(batches, 1):
            sock.sendall(_wire.produce_request(correlation_id, 8, topic, batch, partition))
            _, error, _ = _wire.parse_produce_partition_error(_wire.recv_frame(sock))
            assert error == 0


def test_topic_and_log_metrics_are_kafkas_names_and_numbers(
    kafka: KafkaProcess,
    metered_nerve: BrokerProcess,
    mbeans: list[str],
    topic_name: TopicNameFactory,
) -> None:
    topic = topic_name()
    # Timestamps of now: older ones would let Kafka's retention delete them mid-test.
    batches = [
        (0, _wire.record_batch([b"a" * 300, b"b" * 30])),
        (1, _wire.record_batch([b"c" * 3000])),
        (0, _wire.record_batch([b"d", b"e", b"f"])),
    ]
    produce_v8 = "kafka.network:type=RequestMetrics,name=RequestsPerSec,request=Produce,version=8"
    requests_before = kafka_series(mbeans, kafka, produce_v8)
    nerve_before = scrape(metered_nerve.metrics_url)
    for bootstrap in (kafka.bootstrap, metered_nerve.bootstrap):
        _ck.create_topic(bootstrap, topic, partitions=2)
        _await_leaders(bootstrap, topic, 2)
        _produce(bootstrap, topic, batches)
    on_kafka = kafka_series(
        mbeans,
        kafka,
        f"kafka.server:type=BrokerTopicMetrics,name=*,topic={topic}",
        f"kafka.log:type=Log,name=*,topic={topic},partition=*",
        produce_v8,
    )
    on_nerve = scrape(metered_nerve.metrics_url)

    expected = {
        "kafka_server_brokertopicmetrics_bytesin_total",
        "kafka_server_brokertopicmetrics_messagesin_total",
        "kafka_server_brokertopicmetrics_totalproducerequests_total",
        "kafka_log_log_size",
        "kafka_log_log_logendoffset",
        "kafka_log_log_logstartoffset",
        "kafka_log_log_numlogsegments",
    }
    assert expected <= {name for name, _ in on_kafka}, sorted(on_kafka)
    compared = 0
    for (name, labels), value in sorted(on_kafka.items()):
        if name == "kafka_network_requestmetrics_requests_total":
            before = requests_before.get((name, labels), 0.0)
            nerve_delta = on_nerve.value(name, **dict(labels)) - nerve_before.get(
                name, **dict(labels)
            )
            assert nerve_delta == value - before == 3
        elif name in expected:
            assert on_nerve.value(name, **dict(labels)) == value, (name, dict(labels))
        else:
            continue  # Kafka's others (BytesOut, Failed..., ...) read zero or are not created
        compared += 1
    assert compared == 3 + 4 * 2 + 1  # three topic counters, four gauges on two partitions
    assert on_nerve.value("kafka_server_brokertopicmetrics_bytesin_total", topic=topic) == sum(
        len(batch) for _, batch in batches
    )
