"""A pattern's partial match is state in Kafka: the service process SIGKILLed after the first
step, restarted (on its local state, then as a replica without any), completes the match with
the second (against a real broker, `nerve run`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from tests._broker import BrokerProcess

FRAUD = textwrap.dedent(
    """
    from datetime import timedelta

    from nerve import Event, Service
    from nerve.streams import pattern

    class Tx(Event, topic="cepk.tx", key="card", partitions=2):
        id: int
        card: str
        account: str
        amount: float

    class Suspected(Event, topic="cepk.suspected", key="account", partitions=2):
        account: str
        probe: int
        hit: int

    fraud = Service("cepk-fraud", exactly_once=True)

    @fraud.match(
        pattern(Tx, where=lambda t: t.amount < 1).as_("probe")
        .followed_by(Tx, where=lambda t: t.amount > 500).as_("hit")
        .within(timedelta(minutes=10)),
        key=lambda t: t.account,
    )
    def card_testing(m) -> Suspected:
        return Suspected(account=m.key, probe=m["probe"].id, hit=m["hit"].id)
    """
)

CHANGELOG = "cepk-fraud-card_testing-changelog"


def _read(broker: BrokerProcess, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Everything committed to ``topic`` so far."""
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "cepk-check",
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    try:
        found = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if found is None or not found.partitions or found.error is not None:
            return []
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in found.partitions])
        out: list[tuple[bytes | None, bytes | None]] = []
        ends = 0
        while ends < len(found.partitions):
            message = consumer.poll(5)
            if message is None:
                break
            if message.error():
                ends += 1
                continue
            out.append((message.key(), message.value()))
        return out
    finally:
        consumer.close()


def _wait_for(check, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_a_partial_match_survives_sigkill_and_completes_after_restart(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    path = tmp_path / "fraud.py"
    path.write_text(FRAUD)
    command = [sys.executable, "-m", "nerve", "run", str(path), "-b", broker.bootstrap,
               "--no-registry", "-X", "session.timeout.ms=6000"]  # fmt: skip

    def run(state: str = "state") -> subprocess.Popen[bytes]:
        env = {**os.environ, "NERVE_STATE_DIR": str(tmp_path / state)}
        return subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    now = int(time.time() * 1000)

    def tx(i: int, account: str, amount: float, at: int) -> None:
        body = {"id": i, "card": f"card-{account}", "account": account, "amount": amount}
        producer.produce(
            "cepk.tx", key=f"card-{account}".encode(), value=json.dumps(body).encode(), timestamp=at
        )
        producer.flush(30)

    service = run()
    try:
        time.sleep(2.0)  # it creates the topics
        tx(1, "a", 0.5, now)
        tx(2, "b", 0.25, now + 1)
        tx(3, "b", 20, now + 2)  # relaxed contiguity: b's partial match stays
        # Both partial matches are committed to the pattern's changelog.
        _wait_for(
            lambda: {k for k, v in _read(broker, CHANGELOG) if v is not None} >= {b"a", b"b"},
            "the partial matches in the changelog",
        )
        assert _read(broker, "cepk.suspected") == []
        service.send_signal(signal.SIGKILL)
        service.wait(10)

        def suspected() -> list[tuple[object, ...]]:
            found = [json.loads(v or b"{}") for _, v in _read(broker, "cepk.suspected")]
            return sorted((s["account"], s["probe"], s["hit"]) for s in found)

        # Restarted on its local state (RocksDB checkpoint plus the changelog's tail).
        tx(4, "a", 900, now + 60_000)  # completes a's match, read by the restarted service
        service = run()
        _wait_for(lambda: len(suspected()) >= 1, "a's match")
        assert suspected() == [("a", 1, 4)]
        service.send_signal(signal.SIGKILL)
        service.wait(10)

        # Taken over by a replica without local state (as after a rebalance to another
        # machine): b's partial match comes back from the changelog alone.
        service = run("other-replica")
        tx(5, "b", 700, now + 61_000)
        _wait_for(lambda: len(suspected()) >= 2, "b's match")
        time.sleep(1)
        assert suspected() == [("a", 1, 4), ("b", 2, 5)]
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(30)
