"""What a topic's compression.type costs when it differs from the producer's: the broker then
decompresses and recompresses every batch on append, instead of storing it as sent.

For each broker (nerve, pinned to core 0 with the client on core 1; Apache Kafka the same way
with ``--kafka``), acks=all produce throughput of 1 KiB JSON-like messages (compressible, as
real events are) into topics whose compression.type is ``producer`` (stored as sent), and each
codec while the producer sends another (lz4 producer into zstd/gzip topics, uncompressed
producer into lz4/zstd topics). Rounds alternate, and each figure is the median of
``--repeat``; the ratio is against ``producer`` on the same broker in the same run.

    python bench/recompression.py                 # nerve only
    python bench/recompression.py --kafka         # nerve, then Kafka
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from tests._kafka import KAFKA_VERSION, KafkaProcess  # noqa: E402

from _broker import SpawnedBroker, pin_current_process  # noqa: E402

# (producer's compression.type, topic's compression.type)
CASES = [
    ("lz4", "producer"),
    ("none", "producer"),
    ("none", "lz4"),
    ("none", "zstd"),
    ("lz4", "zstd"),
    ("lz4", "gzip"),
]


def payload(i: int) -> bytes:
    """A 1 KiB JSON event: repetitive field names, varying values (compresses about 3:1)."""
    rng = random.Random(i)
    fields = {
        "event_id": uuid.UUID(int=rng.getrandbits(128)).hex,
        "account_id": f"acct-{rng.randrange(10_000):05d}",
        "amount": round(rng.uniform(1, 5000), 2),
        "currency": rng.choice(["EUR", "USD", "GBP"]),
        "merchant": rng.choice(["grocer", "rail", "books", "cafe", "cloud"]),
        "note": " ".join(
            rng.choice(["paid", "card", "online", "refund", "fee"]) for _ in range(40)
        ),
    }
    data = json.dumps(fields).encode()
    return (data * (1024 // len(data) + 1))[:1024]


def new_topic(bootstrap: str, compression: str) -> str:
    name = f"bench-recompress-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = NewTopic(name, 1, 1, config={"compression.type": compression})
    admin.create_topics([topic])[name].result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = admin.list_topics(topic=name, timeout=5).topics.get(name)
        if found is not None and found.error is None and found.partitions:
            return name
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not appear")


def produce_mb_s(bootstrap: str, sent: str, stored: str, values: list[bytes]) -> float:
    topic = new_topic(bootstrap, stored)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": sent,
            "enable.idempotence": False,
            "delivery.report.only.error": True,
        }
    )
    failed: list[str] = []
    producer.list_topics(topic=topic, timeout=10)
    start = time.perf_counter()
    for value in values:
        while True:
            try:
                producer.produce(topic, value, on_delivery=lambda e, _m: failed.append(str(e)))
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(120)
    elapsed = time.perf_counter() - start
    if failed or len(producer):
        raise RuntimeError(f"{len(failed)} deliveries failed: {failed[:1]}")
    return len(values) * 1024 / elapsed / (1 << 20)


def measure(bootstrap: str, values: list[bytes], repeat: int) -> dict[str, float]:
    runs: dict[str, list[float]] = {f"{s}->{t}": [] for s, t in CASES}
    for _ in range(repeat):
        for sent, stored in CASES:
            runs[f"{sent}->{stored}"].append(produce_mb_s(bootstrap, sent, stored, values))
    return {case: statistics.median(v) for case, v in runs.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=100, help="MiB per case")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kafka", action="store_true", help="measure Apache Kafka too")
    parser.add_argument("--broker-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    args = parser.parse_args()
    pin_current_process(args.client_cpu)
    values = [payload(i) for i in range(int(args.mb * 1024))]
    results: dict[str, dict[str, float]] = {}
    with SpawnedBroker(cpu=args.broker_cpu) as nerve:
        results["nerve"] = measure(nerve.bootstrap, values, args.repeat)
    if args.kafka:
        with tempfile.TemporaryDirectory(prefix="kafka-bench-") as tmp:
            kafka = KafkaProcess(Path(tmp) / "data", cpu=args.broker_cpu)
            kafka.start()
            try:
                results["kafka"] = measure(kafka.bootstrap, values, args.repeat)
            finally:
                kafka.stop()
    sides = list(results)
    print(f"\nacks=all produce of {args.mb:g} MiB of 1 KiB JSON events, median of {args.repeat}"
          f" (Kafka {KAFKA_VERSION})")  # fmt: skip
    header = "| producer -> topic | " + " | ".join(f"{s} MB/s | {s} vs kept" for s in sides)
    print(header + " |")
    print("| --- |" + " ---: | ---: |" * len(sides))
    for sent, stored in CASES:
        case = f"{sent}->{stored}"
        cells = []
        for side in sides:
            kept = results[side][f"{sent}->producer"]  # the same producer, stored as sent
            cells += [f"{results[side][case]:.1f}", f"{results[side][case] / kept:.2f}"]
        print(f"| {sent} -> {stored} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
