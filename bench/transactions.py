"""Transactional produce throughput as a ratio of plain acks=all produce, same broker, same run.

Each round produces the same number of 1 KiB messages to a fresh single-partition topic: first
plainly (acks=all), then idempotently, then in transactions of ``--txn-size`` messages
(begin, produce, commit). Rounds alternate so that drift on a noisy machine hits all three.

    python bench/transactions.py                    # spawn nerve
    python bench/transactions.py --bootstrap HOST:PORT
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _broker import SpawnedBroker, pin_current_process


def new_topic(bootstrap: str) -> str:
    name = f"bench-txn-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)
    return name


def produce(bootstrap: str, mode: str, count: int, size: int, txn_size: int) -> float:
    """Messages per second for one mode: plain, idempotent or transactional."""
    topic = new_topic(bootstrap)
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 500_000,
    }
    if mode == "idempotent":
        config["enable.idempotence"] = True
    if mode == "transactional":
        config["transactional.id"] = f"bench-{uuid.uuid4().hex[:8]}"
    producer = Producer(config)
    if mode == "transactional":
        producer.init_transactions(30)
    payload = os.urandom(size)
    failures = 0

    def on_delivery(err: object, _msg: object) -> None:
        nonlocal failures
        if err is not None:
            failures += 1

    if mode == "transactional":
        producer.begin_transaction()
    producer.produce(topic, payload, on_delivery=on_delivery)  # warm the connection
    if mode == "transactional":
        producer.commit_transaction(30)
    producer.flush(30)
    start = time.perf_counter()
    sent = 0
    while sent < count:
        n = min(txn_size, count - sent)
        if mode == "transactional":
            producer.begin_transaction()
        for _ in range(n):
            while True:
                try:
                    producer.produce(topic, payload, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.01)
        sent += n
        if mode == "transactional":
            producer.commit_transaction(60)
        else:
            producer.poll(0)
    producer.flush(60)
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{failures} deliveries failed in {mode} mode")
    return count / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--txn-size", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--broker-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    pin_current_process(args.client_cpu)
    spawned = None
    bootstrap = args.bootstrap
    if not bootstrap:
        spawned = SpawnedBroker(cpu=args.broker_cpu).__enter__()
        bootstrap = spawned.bootstrap
        print(f"nerve broker on {bootstrap}")
    modes = ("plain", "idempotent", "transactional")
    rates: dict[str, list[float]] = {m: [] for m in modes}
    try:
        for round_no in range(args.rounds):
            for mode in modes:
                rate = produce(bootstrap, mode, args.count, args.size, args.txn_size)
                rates[mode].append(rate)
                print(f"round {round_no + 1} {mode:>13}: {rate:>10,.0f} msg/s")
    finally:
        if spawned is not None:
            spawned.__exit__(None, None, None)
    medians = {m: statistics.median(r) for m, r in rates.items()}
    mib = args.size / 1024 / 1024
    print(f"\nmedian of {args.rounds} rounds, {args.count:,} x {args.size} B, acks=all")
    for mode in modes:
        ratio = medians[mode] / medians["plain"]
        print(
            f"{mode:>13}: {medians[mode]:>10,.0f} msg/s {medians[mode] * mib:>8.1f} MB/s"
            f"   ratio to plain {ratio:.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps({"rates": rates, "medians": medians}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
