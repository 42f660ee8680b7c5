"""The broker's Prometheus metrics, scraped over HTTP after real traffic: the numbers must be
what the clients did (bytes and records produced, what a consumer read, what a group left
unconsumed), under the names Kafka's JMX exporter and kafka-exporter use."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests import _ck
from tests._broker import BrokerProcess
from tests._metrics import Scrape, scrape
from tests.broker import _wire
from tests.conftest import TopicNameFactory

BYTES_IN = "kafka_server_brokertopicmetrics_bytesin_total"
MESSAGES_IN = "kafka_server_brokertopicmetrics_messagesin_total"
BYTES_OUT = "kafka_server_brokertopicmetrics_bytesout_total"
REQUESTS = "kafka_network_requestmetrics_requests_total"
LAG = "kafka_consumergroup_lag"


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """A broker of this module's own, serving its metrics on a free port."""
    root = tmp_path_factory.mktemp("metered")
    proc = BrokerProcess(
        root / "data",
        configs={"group.initial.rebalance.delay.ms": 0},
        args=["--metrics-port", "0"],
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.close()


def _scrape(broker: BrokerProcess) -> Scrape:
    return scrape(broker.metrics_url)


def _on_disk(broker: BrokerProcess, topic: str) -> int:
    """Bytes of the topic's segment files: what the broker stored, counted without it."""
    return sum(
        f.stat().st_size for d in broker.data_dir.glob(f"{topic}-*") for f in d.glob("*.log")
    )


def test_metrics_serve_on_loopback_unless_told_otherwise(metered: BrokerProcess) -> None:
    assert metered.metrics_url.startswith("http://127.0.0.1:")
    assert metered.metrics_url.endswith("/metrics")
    found = _scrape(metered)
    assert found.types[BYTES_IN.removesuffix("_total")] == "counter"
    assert found.types["kafka_network_requestmetrics_totaltimems"] == "histogram"
    assert found.value("kafka_brokers") == 1
    assert found.value("process_resident_memory_bytes") > 0
    # As prometheus_client's own servers: OpenMetrics when asked for, gzip when accepted.
    import gzip
    import urllib.request

    asked = urllib.request.Request(
        metered.metrics_url,
        headers={
            "Accept": "application/openmetrics-text; version=1.0.0",
            "Accept-Encoding": "gzip",
        },
    )
    with urllib.request.urlopen(asked, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert response.headers["Content-Encoding"] == "gzip"
        text = gzip.decompress(response.read()).decode()
    assert text.endswith("# EOF\n")
    assert "kafka_brokers 1.0" in text


def test_bytes_and_records_in_are_what_the_produce_requests_carried(
    metered: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    _ck.create_topic(metered.bootstrap, topic, partitions=2)
    batches = [
        (0, _wire.record_batch([b"a" * 100, b"b" * 10])),
        (1, _wire.record_batch([b"c" * 1000])),
        (0, _wire.record_batch([b"d", b"e", b"f"])),
    ]
    before = _scrape(metered)
    with _wire.connect(metered.bootstrap) as sock:
        for correlation_id, (partition, batch) in enumerate(batches, 1):
            sock.sendall(_wire.produce_request(correlation_id, 8, topic, batch, partition))
            _, error, _ = _wire.parse_produce_partition_error(_wire.recv_frame(sock))
            assert error == 0
    after = _scrape(metered)

    sent = sum(len(batch) for _, batch in batches)
    assert after.value(BYTES_IN, topic=topic) == sent == _on_disk(metered, topic)
    assert after.value(MESSAGES_IN, topic=topic) == 6
    assert (
        after.value("kafka_server_brokertopicmetrics_totalproducerequests_total", topic=topic) == 3
    )
    assert (
        after.value("kafka_server_brokertopicmetrics_failedproducerequests_total", topic=topic) == 0
    )
    produce = {"request": "Produce", "version": "8"}
    assert after.value(REQUESTS, **produce) - before.get(REQUESTS, **produce) == 3
    latency = "kafka_network_requestmetrics_totaltimems_count"
    assert after.value(latency, request="Produce") - before.get(latency, request="Produce") == 3
    # The log gauges agree: sizes of the partitions, their ends.
    assert after.total("kafka_log_log_size", topic=topic) == sent
    assert after.value("kafka_log_log_logendoffset", topic=topic, partition=0) == 5
    assert after.value("kafka_topic_partition_current_offset", topic=topic, partition=1) == 1
    assert after.value("kafka_topic_partitions", topic=topic) == 2


def test_a_refused_batch_counts_as_failed_and_adds_no_bytes(
    metered: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    _ck.create_topic(metered.bootstrap, topic)
    batch = bytearray(_wire.record_batch([b"x" * 50]))
    batch[_wire.CRC_OFFSET] ^= 0xFF
    with _wire.connect(metered.bootstrap) as sock:
        sock.sendall(_wire.produce_request(1, 8, topic, bytes(batch)))
        _, error, _ = _wire.parse_produce_partition_error(_wire.recv_frame(sock))
    assert error != 0
    found = _scrape(metered)
    assert (
        found.value("kafka_server_brokertopicmetrics_failedproducerequests_total", topic=topic) == 1
    )
    assert found.value(BYTES_IN, topic=topic) == 0
    assert found.value(MESSAGES_IN, topic=topic) == 0


def test_bytes_out_are_what_a_consumer_read(
    metered: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    _ck.create_topic(metered.bootstrap, topic, partitions=3)
    records = [_ck.Out(b"v%05d" % i + b"." * (i % 300), partition=i % 3) for i in range(3000)]
    _ck.produce_ok(metered.bootstrap, topic, records)
    read = _ck.consume(metered.bootstrap, topic, 3000, partitions=(0, 1, 2), idle=1.0)
    assert len(read) == 3000
    found = _scrape(metered)
    stored = _on_disk(metered, topic)
    assert found.value(MESSAGES_IN, topic=topic) == 3000
    assert found.value(BYTES_IN, topic=topic) == stored
    # Every batch went out once: the one consumer read the topic from start to end.
    assert found.value(BYTES_OUT, topic=topic) == stored
    assert found.value("kafka_server_brokertopicmetrics_totalfetchrequests_total", topic=topic) > 0
    assert (
        found.value("kafka_server_brokertopicmetrics_failedfetchrequests_total", topic=topic) == 0
    )


def test_consumer_lag_is_what_the_group_left_unconsumed(
    metered: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic, group = topic_name(), topic_name("group")
    _ck.create_topic(metered.bootstrap, topic, partitions=2)
    _ck.produce_ok(
        metered.bootstrap,
        topic,
        [_ck.Out(b"p0", partition=0)] * 10 + [_ck.Out(b"p1", partition=1)] * 4,
    )
    committer = _ck.consumer(metered.bootstrap, group_id=group)
    try:
        committer.commit(offsets=[TopicPartition(topic, 0, 6)], asynchronous=False)
        found = _scrape(metered)
        labels = {"consumergroup": group, "topic": topic}
        assert found.value(LAG, **labels, partition=0) == 10 - 6
        assert found.value("kafka_consumergroup_current_offset", **labels, partition=0) == 6
        # No commit on partition 1 yet: -1, as kafka-exporter shows it, and not in the sum.
        assert found.value(LAG, **labels, partition=1) == -1
        assert found.value("kafka_consumergroup_current_offset", **labels, partition=1) == -1
        assert found.value("kafka_consumergroup_lag_sum", **labels) == 4

        committer.commit(offsets=[TopicPartition(topic, 1, 1)], asynchronous=False)
        found = _scrape(metered)
        assert found.value(LAG, **labels, partition=1) == 3
        assert found.value("kafka_consumergroup_lag_sum", **labels) == 4 + 3
        # What the client itself computes from the watermarks and its commits.
        for partition in (0, 1):
            committed = committer.committed([TopicPartition(topic, partition)], timeout=10)[0]
            _, high = committer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            assert found.value(LAG, **labels, partition=partition) == high - committed.offset
        assert found.value("kafka_consumergroup_members", consumergroup=group) == 0
    finally:
        committer.close()


def test_a_subscribed_group_that_read_everything_has_no_lag_and_its_member_counts(
    metered: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic, group = topic_name(), topic_name("group")
    _ck.create_topic(metered.bootstrap, topic, partitions=2)
    # Both partitions get records (keyless records may all go to one): each then has a commit,
    # and a partition without one would count -1, as kafka-exporter reports it.
    records = [_ck.Out(b"r%d" % i, partition=i % 2) for i in range(50)]
    _ck.produce_ok(metered.bootstrap, topic, records)
    consumer = Consumer(
        {
            "bootstrap.servers": metered.bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        got = 0
        deadline = time.monotonic() + 30
        while got < 50 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                got += 1
        assert got == 50
        consumer.commit(asynchronous=False)
        found = _scrape(metered)
        assert found.value("kafka_consumergroup_members", consumergroup=group) == 1
        assert found.value("kafka_consumergroup_lag_sum", consumergroup=group, topic=topic) == 0
        assert found.total(LAG, consumergroup=group, topic=topic) == 0
        assert found.value("kafka_coordinator_group_groupmetadatamanager_numgroupsstable") >= 1
        assert found.value("kafka_coordinator_group_groupmetadatamanager_numoffsets") >= 2
    finally:
        consumer.close()
    # The member's LeaveGroup may reach the broker a moment after close() returns.
    deadline = time.monotonic() + 15
    while True:
        found = _scrape(metered)
        left = found.value("kafka_consumergroup_members", consumergroup=group) == 0
        if left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert found.value("kafka_consumergroup_members", consumergroup=group) == 0
    assert found.value("kafka_coordinator_group_groupmetadatamanager_numgroupsempty") >= 1


def test_transactions_are_counted_by_state(
    metered: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    _ck.create_topic(metered.bootstrap, topic)
    producer = Producer(
        {"bootstrap.servers": metered.bootstrap, "transactional.id": topic_name("txn")}
    )
    before = _scrape(metered)
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, b"in a transaction")
    producer.flush(30)
    during = _scrape(metered)
    assert (
        during.value("nerve_broker_transactions", state="Ongoing")
        == before.value("nerve_broker_transactions", state="Ongoing") + 1
    )
    producer.commit_transaction(30)
    after = _scrape(metered)
    assert after.value("nerve_broker_transactions", state="Ongoing") == before.value(
        "nerve_broker_transactions", state="Ongoing"
    )
    assert (
        after.value("nerve_broker_transactions", state="CompleteCommit")
        == before.value("nerve_broker_transactions", state="CompleteCommit") + 1
    )


def test_a_long_poll_fetch_is_timed_to_its_answer(
    metered: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    _ck.create_topic(metered.bootstrap, topic)
    before = _scrape(metered)
    consumer = _ck.consumer(metered.bootstrap, fetch_wait_max_ms=400)
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            consumer.poll(0.2)
    finally:
        consumer.close()
    after = _scrape(metered)

    def waited(scrape: Scrape) -> float:
        """Fetches that took more than 250 ms (long polls on the empty topic)."""
        name = "kafka_network_requestmetrics_totaltimems_bucket"
        return scrape.value(name, request="Fetch", le="1000.0") - scrape.value(
            name, request="Fetch", le="250.0"
        )

    assert waited(after) - waited(before) >= 3


def test_a_deleted_topic_leaves_the_metrics(
    metered: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    _ck.create_topic(metered.bootstrap, topic)
    _ck.produce_ok(metered.bootstrap, topic, [b"gone soon"])
    assert _scrape(metered).value(MESSAGES_IN, topic=topic) == 1
    admin = _ck.admin(metered.bootstrap)
    admin.delete_topics([topic])[topic].result(30)
    deadline = time.monotonic() + 10
    found = _scrape(metered)
    while found.get(MESSAGES_IN, -1, topic=topic) != -1 and time.monotonic() < deadline:
        time.sleep(0.1)
        found = _scrape(metered)
    assert found.get(MESSAGES_IN, -1, topic=topic) == -1
    assert found.get("kafka_log_log_size", -1, topic=topic, partition=0) == -1


def test_a_taken_metrics_port_stops_the_broker_with_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = BrokerProcess(tmp_path / "data", args=["--metrics-port", str(port)])
        proc.start()
        try:
            deadline = time.monotonic() + 30
            while proc.running and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proc.returncode == 1
            lines = proc.stderr_text().strip().splitlines()
            assert f"nerve broker: cannot serve metrics on 127.0.0.1:{port}: " in lines[-1]
            assert "Traceback" not in proc.stderr_text()
        finally:
            proc.close()


def test_a_consumer_protocol_group_is_counted_with_its_state_and_members(
    metered: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic, group = topic_name(), topic_name("group")
    _ck.create_topic(metered.bootstrap, topic, partitions=2)
    _ck.produce_ok(metered.bootstrap, topic, [b"r%d" % i for i in range(10)])
    consumer = Consumer(
        {
            "bootstrap.servers": metered.bootstrap,
            "group.id": group,
            "group.protocol": "consumer",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        got = 0
        deadline = time.monotonic() + 30
        while got < 10 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                got += 1
        assert got == 10
        consumer.commit(asynchronous=False)
        found = _scrape(metered)
        count = "kafka_server_group_coordinator_metrics_group_count"
        assert found.value(count, protocol="consumer") >= 1
        assert found.value("kafka_consumergroup_members", consumergroup=group) == 1
        assert found.value("kafka_consumergroup_lag_sum", consumergroup=group, topic=topic) == 0
        states = "kafka_server_group_coordinator_metrics_consumer_group_count"
        assert found.total(states) == found.value(count, protocol="consumer")
    finally:
        consumer.close()
