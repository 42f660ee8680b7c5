"""Issue 14 item 7: a table read by key over HTTP (``nerve run --http-port``), answered by the
replica that owns the key's partition whichever replica is asked."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests._broker import BrokerProcess

pytestmark = pytest.mark.slow

SERVICE = textwrap.dedent(
    """
    from nerve import Service

    counter = Service("query-counter")
    counter.stream("query.words", time="record").group_by_key().count(name="counts")
    """
)


def _start(command: list[str], log: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    found: list[str] = []
    seen = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        with open(log, "a") as out:
            for line in proc.stderr:
                out.write(line)
                match = re.search(r"tables served at http://(\S+)/tables", line)
                if match and not found:
                    found.append(match.group(1))
                    seen.set()

    threading.Thread(target=read, daemon=True).start()
    assert seen.wait(60), log.read_text()
    return proc, found[0]


def _get(endpoint: str, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://{endpoint}{path}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_any_replica_answers_for_every_key_from_the_replica_that_owns_it(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics([NewTopic("query.words", 4, 1)]).values():
        future.result(30)
    path = tmp_path / "counter.py"
    path.write_text(SERVICE)
    replicas = []
    try:
        for i in range(2):
            command = [sys.executable, "-m", "nerve", "run", str(path), "-b", broker.bootstrap,
                       "--no-registry", "--http-port", "0",
                       "--state-dir", str(tmp_path / f"state-{i}")]  # fmt: skip
            replicas.append(_start(command, tmp_path / f"replica-{i}.log"))
        producer = Producer(
            {"bootstrap.servers": broker.bootstrap, "partitioner": "murmur2_random"}
        )
        words = [f"w{i}" for i in range(12)]
        for n, word in enumerate(words):
            for _ in range(n + 1):
                producer.produce("query.words", key=word.encode(), value=b"x")
        producer.flush(30)
        endpoints = [endpoint for _, endpoint in replicas]
        deadline = time.monotonic() + 90
        answered_by: set[str] = set()
        pending = {(e, w) for e in endpoints for w in words}
        while pending and time.monotonic() < deadline:
            for endpoint, word in sorted(pending):
                status, body = _get(endpoint, f"/tables/counts/{word}")
                if status == 200 and body["value"] == words.index(word) + 1:
                    pending.discard((endpoint, word))
                    answered_by.add(body["replica"])
            time.sleep(0.5)
        assert not pending, f"not answered right: {sorted(pending)[:5]}"
        assert answered_by == set(endpoints), "both replicas own some keys"
        status, body = _get(endpoints[0], "/tables")
        assert status == 200 and [t["name"] for t in body["tables"]] == ["counts"]
        status, body = _get(endpoints[0], "/tables/nothing/w1")
        assert status == 404 and "counts" in body["error"]
    finally:
        for proc, _ in replicas:
            proc.terminate()
            proc.wait(30)
