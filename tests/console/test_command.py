"""``nerve console`` and ``nerve up``: where the console is served, what --read-only refuses,
and that it is a client like any other (the same pages against Apache Kafka)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer

from tests._broker import BrokerProcess
from tests._ck import create_topic
from tests._console import ConsoleProcess
from tests._kafka import KafkaProcess
from tests._registry import RegistryProcess
from tests.conftest import TopicNameFactory


def test_nerve_up_serves_the_console_beside_broker_and_registry(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "nerve", "up", "--data-dir", str(tmp_path / "data"),
         "--listen", ":0", "--registry-listen", ":0", "--console-listen", ":0",
         "--metrics-port", ":0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        console = next(line for line in lines if line.startswith("console on "))
        url = console.split()[-1]
        assert url.startswith("http://127.0.0.1:")  # loopback unless told otherwise
        started = time.monotonic()
        page = httpx.get(url + "/topics", timeout=10)
        assert page.status_code == 200 and "_schemas" not in page.text
        assert time.monotonic() - started < 5
        health = httpx.get(url + "/", timeout=10).text
        assert "Schema registry" in health
        assert 'id="broker-metrics"' in health  # nerve up's metrics port, read by the console
        assert "<th>size</th>" in httpx.get(url + "/topics?internal=1", timeout=10).text
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert process.returncode == 0


def test_a_taken_console_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "nerve", "console", "--port", str(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(f"nerve console: cannot serve on 127.0.0.1:{port}: Address already in use")
    )


def test_read_only_refuses_every_write_and_hides_the_forms(
    shared_broker: BrokerProcess,
    shared_registry: RegistryProcess,
    topic_name: TopicNameFactory,
    tmp_path: Path,
) -> None:
    topic = topic_name()
    create_topic(shared_broker.bootstrap, topic)
    console = ConsoleProcess(
        tmp_path / "c", shared_broker.bootstrap, shared_registry.url, "--read-only"
    ).start()
    try:
        hx = {"HX-Request": "true"}
        writes = [
            ("/topics", {"name": "x-" + topic}),
            (f"/topics/{topic}/config", {"config": "retention.ms", "value": "1"}),
            (f"/topics/{topic}/delete", {"confirm": topic}),
            (f"/topics/{topic}/produce", {"value": "v"}),
            ("/groups/g/reset", {"topic": topic, "to": "latest", "execute": "1"}),
            (f"/dlq/{topic}/replay", {"dry_run": "0"}),
        ]
        for path, data in writes:
            response = httpx.post(console.url + path, data=data, headers=hx, timeout=10)
            assert response.status_code == 403, (path, response.text)
            assert "read-only" in response.text
        page = httpx.get(f"{console.url}/topics/{topic}", timeout=10).text
        assert "Delete this topic" not in page and "Produce" not in page
        assert "read-only" in page
    finally:
        console.close()


@pytest.mark.slow
def test_the_same_pages_against_apache_kafka(
    kafka: KafkaProcess, topic_name: TopicNameFactory, tmp_path: Path
) -> None:
    """No registry, no nerve broker: topics, messages, a scan and groups still work."""
    topic = topic_name()
    create_topic(kafka.bootstrap, topic, partitions=2)
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    for i in range(100):
        producer.produce(topic, key=f"k{i}".encode(), value=f'{{"n": {i}}}'.encode())
    assert producer.flush(10) == 0
    console = ConsoleProcess(tmp_path / "c", kafka.bootstrap, "", "--no-registry").start()
    try:
        listing = httpx.get(console.url + "/topics", timeout=20).text
        assert f'data-topic="{topic}"' in listing
        page = httpx.get(
            f"{console.url}/topics/{topic}/messages",
            params={"partition": "0", "from": "start", "limit": "500"},
            timeout=20,
        ).text
        first = page.count('<tr class="record')
        page = httpx.get(
            f"{console.url}/topics/{topic}/messages",
            params={"partition": "1", "from": "start", "limit": "500"},
            timeout=20,
        ).text
        assert first + page.count('<tr class="record') == 100
        started = httpx.post(
            f"{console.url}/topics/{topic}/scan",
            data={"filter": "value.n >= 90"},
            headers={"HX-Request": "true"},
            timeout=20,
        ).text
        scan_id = re.search(r'id="scan-(\w+)"', started).group(1)  # type: ignore[union-attr]
        for _ in range(100):
            status = httpx.get(f"{console.url}/scans/{scan_id}", timeout=20).text
            if "done (" in status:
                break
            time.sleep(0.2)
        assert 'class="matched">10<' in status
        assert httpx.get(console.url + "/groups", timeout=20).status_code == 200
        assert "Kafka" in httpx.get(console.url + "/", timeout=20).text
    finally:
        console.close()
