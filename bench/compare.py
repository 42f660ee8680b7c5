"""nerve beside Apache Kafka in one run: throughput, latency, start time, memory.

Three brokers, one after the other, each pinned to core 0 with the client (librdkafka) on
core 1: nerve as shipped (fsync before every acks=all answer), nerve with
``log.fsync.policy=never`` (Kafka's own durability: the page cache), and Apache Kafka 4.x
(KRaft, kafka-server-start.sh's 1 GiB heap, no fsync per write). For each:

- produce and consume throughput, acks=all: 1 KiB and 100 B, 1 and 8 partitions
  (``produce_consume.run_case``), median of ``--repeat`` runs;
- end-to-end latency (produce call to consumer receipt) at a fixed 5,000 and 50,000 msg/s,
  p50 / p99 / p99.9;
- time from process start to the first acknowledged message;
- peak RSS over the whole run.

Writes ``bench/results/compare-<date>.md``, ``.json`` and ``.png`` and prints the table.

    python bench/compare.py               # full run (about 15 minutes)
    python bench/compare.py --quick       # smoke run
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from tests._kafka import KAFKA_VERSION, KafkaProcess  # noqa: E402

import produce_consume as pc  # noqa: E402
from _broker import RssSampler, SpawnedBroker, pin_current_process  # noqa: E402

RESULTS = HERE / "results"
SIDES = ("nerve", "nerve-nofsync", "kafka")
LATENCY_RATES = (5_000, 50_000)


# -- brokers -------------------------------------------------------------------------------


NERVE_COMMAND: list[str] | None = None  # --nerve-cmd: nerve as a user installed it


class Side:
    """One broker under test, started and stopped around its measurements."""

    def __init__(self, name: str, cpu: int) -> None:
        self.name = name
        self.cpu = cpu
        self.bootstrap = ""
        self.pid = 0
        self.started_at = 0.0
        self._nerve: SpawnedBroker | None = None
        self._kafka: KafkaProcess | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.sampler: RssSampler | None = None

    def start(self) -> None:
        self.started_at = time.monotonic()
        if self.name == "kafka":
            self._tmp = tempfile.TemporaryDirectory(prefix="kafka-bench-")
            self._kafka = KafkaProcess(Path(self._tmp.name) / "data", cpu=self.cpu)
            self._kafka.start()
            self.bootstrap, self.pid = self._kafka.bootstrap, self._kafka.pid
        else:
            configs = {"log.fsync.policy": "never"} if self.name == "nerve-nofsync" else {}
            self._nerve = SpawnedBroker(
                command=NERVE_COMMAND, cpu=self.cpu, configs=configs
            ).__enter__()
            assert self._nerve.process is not None
            self.bootstrap, self.pid = self._nerve.bootstrap, self._nerve.process.pid
        self.sampler = RssSampler(self.pid)
        self.sampler.start()

    def peak_rss_mb(self) -> float:
        return (self.sampler.sample() if self.sampler else 0) / (1024 * 1024)

    def stop(self) -> None:
        if self.sampler is not None:
            self.sampler.sample()
            self.sampler.stop()
        if self._nerve is not None:
            self._nerve.__exit__(None, None, None)
        if self._kafka is not None:
            self._kafka.stop()
        if self._tmp is not None:
            self._tmp.cleanup()


def first_ack_seconds(name: str, cpu: int) -> float:
    """Seconds from starting the broker process to the first acknowledged produce."""
    side = Side(name, cpu)
    t0 = time.monotonic()
    side.start()
    try:
        producer = Producer({"bootstrap.servers": side.bootstrap, "acks": "all", "linger.ms": 0})
        acked = threading.Event()
        topic = f"first-ack-{uuid.uuid4().hex[:8]}"
        while not acked.is_set():
            producer.produce(topic, b"x", on_delivery=lambda err, _m: None if err else acked.set())
            producer.flush(5)
        return time.monotonic() - t0
    finally:
        side.stop()


# -- latency -------------------------------------------------------------------------------


def latency(bootstrap: str, rate: int, seconds: float, size: int = 512) -> dict[str, float]:
    """End-to-end latency percentiles (ms) at a fixed produce rate, one partition."""
    topic = f"latency-{rate}-{uuid.uuid4().hex[:8]}"
    pc.create_topic(bootstrap, topic, 1)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "latency",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
            "fetch.min.bytes": 1,
        }
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_END)])
    samples: list[float] = []
    done = threading.Event()
    expected = int(rate * seconds)

    def consume() -> None:
        while not done.is_set() and len(samples) < expected:
            # A short timeout: consume() waits for a full batch or the timeout, and a long
            # wait would be measured as latency.
            for message in consumer.consume(1_000, 0.002):
                if message.error():
                    continue
                sent = int.from_bytes(message.value()[:8], "big") / 1e9
                samples.append(time.perf_counter() - sent)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    time.sleep(1.0)  # let the consumer settle at the end of the empty partition
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 1, "batch.size": 1_000_000}
    )
    pad = os.urandom(size - 8)
    start = time.perf_counter()
    for i in range(expected):
        due = start + i / rate
        while True:
            now = time.perf_counter()
            if now >= due:
                break
            if due - now > 0.0005:
                time.sleep(due - now - 0.0003)
        stamp = int(time.perf_counter() * 1e9).to_bytes(8, "big")
        while True:
            try:
                producer.produce(topic, stamp + pad)
                break
            except BufferError:
                producer.poll(0.001)
        producer.poll(0)
    producer.flush(30)
    reader.join(timeout=30)
    done.set()
    consumer.close()
    if len(samples) < expected * 0.99:
        raise RuntimeError(f"latency run at {rate}/s received {len(samples)} of {expected}")
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    achieved = expected / (time.perf_counter() - start)
    return {"p50": pct(0.50), "p99": pct(0.99), "p99.9": pct(0.999), "rate": achieved}


# -- the run -------------------------------------------------------------------------------


def measure_side(name: str, args: argparse.Namespace) -> dict[str, Any]:
    print(f"== {name}", flush=True)
    out: dict[str, Any] = {"side": name}
    out["first_ack_s"] = statistics.median(
        first_ack_seconds(name, args.broker_cpu) for _ in range(args.start_runs)
    )
    print(f"   start to first ack {out['first_ack_s']:.2f} s", flush=True)
    side = Side(name, args.broker_cpu)
    side.start()
    try:
        specs = [
            pc.CaseSpec(size, parts, (args.mb if size == 1024 else args.mb / 4))
            for size in (1024, 100)
            for parts in (1, 8)
        ]
        cases: dict[str, Any] = {}
        for spec in specs:
            runs = [
                pc.run_case(side.bootstrap, spec, delete_after=True) for _ in range(args.repeat)
            ]
            produce = statistics.median(r.produce.mb_per_s for r in runs)
            consume = statistics.median(r.consume.mb_per_s for r in runs)
            cases[spec.name] = {"produce_mb_s": produce, "consume_mb_s": consume}
            print(f"   {spec.name}: produce {produce:.1f} MB/s, consume {consume:.1f} MB/s")
        out["throughput"] = cases
        out["latency"] = {}
        for rate in LATENCY_RATES:
            figures = latency(side.bootstrap, rate, args.latency_seconds)
            out["latency"][str(rate)] = figures
            print(
                f"   latency at {rate}/s: p50 {figures['p50']:.2f} ms, p99 {figures['p99']:.2f}"
                f" ms, p99.9 {figures['p99.9']:.2f} ms (achieved {figures['rate']:.0f}/s)",
                flush=True,
            )
        out["peak_rss_mb"] = side.peak_rss_mb()
        print(f"   peak RSS {out['peak_rss_mb']:.0f} MB", flush=True)
    finally:
        side.stop()
    return out


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def markdown(results: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    n, f, k = results["nerve"], results["nerve-nofsync"], results["kafka"]
    lines = [
        f"# nerve vs Apache Kafka {meta['kafka_version']}, {meta['date']}",
        "",
        f"Machine: {meta['machine']}. Broker pinned to core {meta['broker_cpu']}, client "
        f"(librdkafka {meta['librdkafka']}) to core {meta['client_cpu']}. nerve fsyncs before "
        "every acks=all answer; 'nerve (no fsync)' runs with log.fsync.policy=never, like Kafka, "
        "which leaves writes to the page cache. Ratios are nerve / Kafka; above 1 is nerve "
        "ahead, except for latency, time and memory, where below 1 is nerve ahead.",
        "",
        "| measure | nerve | nerve (no fsync) | Kafka | nerve/Kafka | no-fsync/Kafka |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in k["throughput"]:
        for phase in ("produce", "consume"):
            key = f"{phase}_mb_s"
            a, b, c = (x["throughput"][case][key] for x in (n, f, k))
            lines.append(
                f"| {phase} {case} (MB/s) | {a:.1f} | {b:.1f} | {c:.1f} | {ratio(a, c)} | "
                f"{ratio(b, c)} |"
            )
    for rate in k["latency"]:
        for p in ("p50", "p99", "p99.9"):
            a, b, c = (x["latency"][rate][p] for x in (n, f, k))
            lines.append(
                f"| latency {p} at {int(rate):,}/s (ms) | {a:.2f} | {b:.2f} | {c:.2f} | "
                f"{ratio(a, c)} | {ratio(b, c)} |"
            )
    a, b, c = (x["first_ack_s"] for x in (n, f, k))
    lines.append(
        f"| start to first ack (s) | {a:.2f} | {b:.2f} | {c:.2f} | {ratio(a, c)} | {ratio(b, c)} |"
    )
    a, b, c = (x["peak_rss_mb"] for x in (n, f, k))
    lines.append(f"| peak RSS (MB) | {a:.0f} | {b:.0f} | {c:.0f} | {ratio(a, c)} | {ratio(b, c)} |")
    return "\n".join(lines) + "\n"


def chart(results: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = results["kafka"]
    labels, nerve_ratio, nofsync_ratio = [], [], []
    for case in k["throughput"]:
        for phase in ("produce", "consume"):
            key = f"{phase}_mb_s"
            labels.append(f"{phase}\n{case}")
            base = k["throughput"][case][key]
            nerve_ratio.append(results["nerve"]["throughput"][case][key] / base)
            nofsync_ratio.append(results["nerve-nofsync"]["throughput"][case][key] / base)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], nerve_ratio, width=0.4, label="nerve (fsync, default)")
    ax.bar([x + 0.2 for x in xs], nofsync_ratio, width=0.4, label="nerve (no fsync)")
    ax.axhline(1.0, color="black", linewidth=1, label="Apache Kafka = 1")
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylabel("throughput / Kafka's")
    ax.set_title("nerve throughput relative to Apache Kafka (same machine, same client, one run)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mb", type=float, default=200, help="MiB per 1 KiB case")
    parser.add_argument("--latency-seconds", type=float, default=10)
    parser.add_argument("--start-runs", type=int, default=3)
    parser.add_argument("--broker-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--sides", default=",".join(SIDES))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--nerve-cmd",
        help="how to run nerve, e.g. a clean venv's 'nerve' (the test venv has hypothesis, "
        "which kio imports when present: +0.09 s at start)",
    )
    args = parser.parse_args()
    global NERVE_COMMAND
    if args.nerve_cmd:
        NERVE_COMMAND = args.nerve_cmd.split()
    if args.quick:
        args.repeat, args.mb, args.latency_seconds, args.start_runs = 1, 10, 2, 1
    pin_current_process(args.client_cpu)
    import confluent_kafka

    results = {name: measure_side(name, args) for name in args.sides.split(",")}
    today = datetime.date.today().isoformat()
    meta = {
        "date": today,
        "kafka_version": KAFKA_VERSION,
        "librdkafka": confluent_kafka.libversion()[0],
        "machine": f"{os.cpu_count()} cores, {os.uname().sysname} {os.uname().release}",
        "broker_cpu": args.broker_cpu,
        "client_cpu": args.client_cpu,
        # No paths of the measuring machine in committed results.
        "args": {k: str(v) for k, v in vars(args).items() if k not in ("out", "nerve_cmd")},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"compare-{today}"
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    if set(SIDES) <= set(results):
        table = markdown(results, meta)
        stem.with_suffix(".md").write_text(table)
        chart(results, stem.with_suffix(".png"))
        print()
        print(table)
        print(f"wrote {stem}.md, .json and .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
