"""Rebalance time, classic vs consumer group protocol (KIP-848), on nerve and on Kafka, one run.

For each broker (nerve, Apache Kafka 4.x) and each protocol (classic with librdkafka's
cooperative-sticky assignor, and ``group.protocol=consumer`` with the brokers' ``uniform``
assignor), three confluent-kafka members (one process each, ``tests/compat/_group_worker.py``)
share a 6-partition topic; then:

- join: a fourth member starts; the clock runs from its subscribe call until the four own
  every partition once with counts 1-2;
- kill: one member is SIGKILLed; the clock runs until the three survivors own every
  partition. Its floor is the session timeout, 6 s on both protocols here (classic:
  ``session.timeout.ms``; consumer: the broker's ``group.consumer.session.timeout.ms``).

Heartbeats every 500 ms on both protocols, the broker pinned to core 0 and the members to
core 1. Prints the medians of ``--repeat`` runs and each protocol's ratio to the other on the
same broker, and nerve's ratio to Kafka.

    python bench/rebalance.py [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))
from tests._kafka import KAFKA_VERSION, KafkaProcess  # noqa: E402

from _broker import SpawnedBroker  # noqa: E402

WORKER = REPO / "tests" / "compat" / "_group_worker.py"
PARTITIONS = 6
PROTOCOLS = {"classic": "cooperative-sticky", "consumer": "consumer:uniform"}
NERVE_CONFIGS = {
    "group.initial.rebalance.delay.ms": "0",
    "group.consumer.session.timeout.ms": "6000",
    "group.consumer.heartbeat.interval.ms": "500",
}
KAFKA_CONFIGS = {
    "group.initial.rebalance.delay.ms": "0",
    "group.consumer.session.timeout.ms": "6000",
    "group.consumer.min.session.timeout.ms": "6000",
    "group.consumer.heartbeat.interval.ms": "500",
    "group.consumer.min.heartbeat.interval.ms": "500",
}


class Worker:
    def __init__(self, bootstrap: str, topic: str, group: str, assignor: str) -> None:
        argv = [sys.executable, str(WORKER), bootstrap, topic, group, assignor]
        if shutil.which("taskset"):
            argv = ["taskset", "-c", "1", *argv]
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            text=True,
        )
        self.assigned: list[int] = []
        self.started_at: float | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            if "started" in event:
                self.started_at = time.monotonic()
            if "assigned" in event:
                self.assigned = list(event["assigned"])

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def balanced(workers: list[Worker]) -> bool:
    owned = sorted(p for w in workers for p in w.assigned)
    sizes = [len(w.assigned) for w in workers]
    return owned == list(range(PARTITIONS)) and max(sizes) - min(sizes) <= 1


def wait(condition: Any, timeout: float = 120) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise TimeoutError("the group did not settle")
        time.sleep(0.01)
    return time.monotonic()


def one_run(bootstrap: str, protocol: str) -> dict[str, float]:
    topic, group = f"rebalance-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept: a dropped one cancels
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)
    time.sleep(1)  # Kafka's group coordinator learns of new topics asynchronously
    workers = [Worker(bootstrap, topic, group, PROTOCOLS[protocol]) for _ in range(3)]
    try:
        wait(lambda: balanced(workers))
        time.sleep(2)  # settled: no member is still mid-rebalance
        newcomer = Worker(bootstrap, topic, group, PROTOCOLS[protocol])
        workers.append(newcomer)
        wait(lambda: newcomer.started_at is not None)
        settled = wait(lambda: balanced(workers) and len(newcomer.assigned) > 0)
        assert newcomer.started_at is not None
        join_s = settled - newcomer.started_at
        time.sleep(2)
        victim = workers[0]
        killed_at = time.monotonic()
        victim.kill()
        survivors = workers[1:]
        kill_s = wait(lambda: balanced(survivors)) - killed_at
        return {"join": join_s, "kill": kill_s}
    finally:
        for w in workers:
            w.stop()


def measure(label: str, bootstrap: str, repeat: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for protocol in PROTOCOLS:
        runs = [one_run(bootstrap, protocol) for _ in range(repeat)]
        out[protocol] = {k: statistics.median(r[k] for r in runs) for k in ("join", "kill")}
        print(
            f"{label:6} {protocol:8} join {out[protocol]['join']:6.2f} s  "
            f"kill {out[protocol]['kill']:6.2f} s",
            flush=True,
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--skip-kafka", action="store_true")
    args = parser.parse_args()
    results: dict[str, dict[str, dict[str, float]]] = {}
    with SpawnedBroker(cpu=0, configs=NERVE_CONFIGS) as nerve:
        results["nerve"] = measure("nerve", nerve.bootstrap, args.repeat)
    if not args.skip_kafka:
        root = Path(tempfile.mkdtemp(prefix="kafka-rebalance-"))
        kafka = KafkaProcess(root / "data", configs=KAFKA_CONFIGS, cpu=0)
        kafka.start()
        try:
            results[f"kafka-{KAFKA_VERSION}"] = measure("kafka", kafka.bootstrap, args.repeat)
        finally:
            kafka.remove()
            shutil.rmtree(root, ignore_errors=True)
    print()
    print("| broker | protocol | 3→4 join (s) | SIGKILL → rebalanced (s) | join vs classic |")
    print("| --- | --- | --- | --- | --- |")
    for broker, by_protocol in results.items():
        classic = by_protocol["classic"]["join"]
        for protocol, figures in by_protocol.items():
            print(
                f"| {broker} | {protocol} | {figures['join']:.2f} | {figures['kill']:.2f} | "
                f"{figures['join'] / classic:.2f}x |"
            )
    kafka_key = next((k for k in results if k.startswith("kafka")), None)
    if kafka_key:
        for protocol in PROTOCOLS:
            ratio = results["nerve"][protocol]["join"] / results[kafka_key][protocol]["join"]
            print(f"nerve / kafka, {protocol} join: {ratio:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
