"""Kafka Connect 4.4 in distributed mode, unchanged, on nerve and on Apache Kafka: the
FileStream connectors round trip, and KIP-618's exactly-once source support holds across a
worker killed mid-stream."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests._connect import ConnectWorker, await_status
from tests.connect.conftest import ConnectCluster, WorkerFactory

FILE_SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
FILE_SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"


def read_values(
    bootstrap: str, topic: str, count: int, *, timeout: float = 60, committed: bool = True
) -> list[Any]:
    """The first ``count`` values of ``topic`` (one partition), or what arrived by ``timeout``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if committed else "read_uncommitted",
            "log_level": 0,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < count and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=0.5):
                if msg.error() is None:
                    # The workers' JsonConverter writes each line as a JSON string.
                    values.append(json.loads(msg.value() or b"null"))
    finally:
        consumer.close()
    return values


def source_config(path: Path, topic: str, **extra: str) -> dict[str, str]:
    return {
        "connector.class": FILE_SOURCE,
        "file": str(path),
        "topic": topic,
        "tasks.max": "1",
        "exactly.once.support": "required",
        "transaction.boundary": "poll",
        **extra,
    }


def await_file_lines(
    path: Path, count: int, worker: ConnectWorker, timeout: float = 60
) -> list[str]:
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        if path.exists():
            lines = path.read_text().splitlines()
            if len(lines) >= count:
                return lines
        time.sleep(0.3)
    raise AssertionError(f"{len(lines)} of {count} lines in {path}\n{worker.log_tail()}")


def test_filestream_source_and_sink_round_trip(
    connect_cluster: ConnectCluster, tmp_path: Path, topic_name
) -> None:
    worker = connect_cluster.worker
    topic = topic_name("lines")
    source, sink = tmp_path / "in.txt", tmp_path / "out.txt"
    lines = [f"line {i} {'x' * (i % 50)}" for i in range(2000)]
    source.write_text("".join(line + "\n" for line in lines))
    name = f"file-{uuid.uuid4().hex[:8]}"
    worker.request("PUT", f"/connectors/{name}-source/config", source_config(source, topic))
    worker.request(
        "PUT",
        f"/connectors/{name}-sink/config",
        {"connector.class": FILE_SINK, "file": str(sink), "topics": topic, "tasks.max": "1"},
    )
    await_status(worker, f"{name}-source")
    await_status(worker, f"{name}-sink")
    assert await_file_lines(sink, len(lines), worker) == lines
    assert read_values(connect_cluster.bootstrap, topic, len(lines)) == lines
    # Connect's own compacted topics hold the connectors, their offsets and their status.
    offsets = worker.request("GET", f"/connectors/{name}-source/offsets")
    assert offsets["offsets"][0]["partition"] == {"filename": str(source)}
    assert offsets["offsets"][0]["offset"]["position"] == source.stat().st_size
    for suffix in ("source", "sink"):
        worker.request("DELETE", f"/connectors/{name}-{suffix}")


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend_name", ["nerve", "kafka"])
def test_exactly_once_source_worker_killed_mid_stream_loses_and_doubles_nothing(
    backend_name: str,
    request: pytest.FixtureRequest,
    worker_factory: WorkerFactory,
    tmp_path: Path,
    topic_name,
) -> None:
    proc = request.getfixturevalue("nerve_for_diff" if backend_name == "nerve" else "kafka")
    # Short sessions: the restarted worker's group need not wait long for the dead member.
    worker = worker_factory(
        proc.bootstrap, **{"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}
    )
    topic = topic_name("eos")
    source = tmp_path / "in.txt"
    source.write_text("")
    total = 30_000
    lines = [f"record-{i:06d}" for i in range(total)]

    def append() -> None:
        with source.open("a") as out:
            for start in range(0, total, 500):
                out.write("".join(line + "\n" for line in lines[start : start + 500]))
                out.flush()
                time.sleep(0.1)

    worker.request(
        "PUT", "/connectors/eos/config", source_config(source, topic, **{"batch.size": "200"})
    )
    await_status(worker, "eos")
    writer = threading.Thread(target=append)
    writer.start()
    # Kill the worker once part of the stream is committed, while the rest is still coming.
    deadline = time.monotonic() + 60
    before: list[str] = []
    while len(before) < total // 5 and time.monotonic() < deadline:
        before = read_values(proc.bootstrap, topic, total, timeout=1)
    worker.kill()
    assert total // 5 <= len(before) < total, f"{len(before)} records before the kill"
    writer.join()
    worker.start()
    values = read_values(proc.bootstrap, topic, total, timeout=120)
    seen = set(values)
    assert len(values) == len(seen), f"{len(values) - len(seen)} records doubled"
    assert values == lines, f"{total - len(seen)} records lost\n{worker.log_tail()}"
    # The kill left an open transaction behind: the new task's producer fenced and aborted it,
    # so what read_uncommitted sees beyond the committed records is only that aborted tail.
    uncommitted = read_values(proc.bootstrap, topic, 10 * total, timeout=3, committed=False)
    assert uncommitted[: len(before)] == before
