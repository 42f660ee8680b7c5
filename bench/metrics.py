"""What the broker's Prometheus metrics cost on its hot paths, as a ratio to a broker without
them measured in the same run.

Two brokers run side by side, each pinned to the same CPU (the client has the other): this
tree's, serving ``--metrics-port`` and scraped every second by a thread of this process (a
harsher rate than Prometheus' usual 15 s), and ``--baseline OTHER/src``, another checkout
(main before the metrics) run as ``python -m nerve`` with that ``src`` first on the path. The
cases alternate between the two, the order swapped every round:

- ``produce_consume.py``'s cases (1 KiB x 1 partition, 100 B x 8 partitions): MB/s;
- small requests: 30,000 produce requests of one 100-byte record each (``linger.ms=0``,
  ``batch.num.messages=1``, acks=1, pipelined), the broker's per-request worst case:
  requests/s.

For each, the broker's own CPU time (user + system) is read from /proc around the case, so
the table shows the cost per MiB or per request as well as the rate; the CPU figures are the
steadier on a shared machine. Medians over ``--repeat`` rounds.

    python bench/metrics.py --baseline /tmp/nerve-main/src     # git archive main src | tar -x
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import psutil
from confluent_kafka import Producer

from _broker import SpawnedBroker, nerve_command, pin_current_process
from produce_consume import MIB, CaseSpec, create_topic, run_case

SMALL_REQUESTS = 30_000


class Scraper:
    """GETs a metrics URL every ``period_s`` until stopped; counts scrapes and their bytes."""

    def __init__(self, url: str, period_s: float = 1.0) -> None:
        self.url, self.period_s = url, period_s
        self.scrapes = 0
        self.last_size = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            with urllib.request.urlopen(self.url, timeout=10) as response:
                self.last_size = len(response.read())
            self.scrapes += 1


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def small_requests(bootstrap: str, count: int) -> dict[str, float]:
    """``count`` produce requests of one record each; requests/s."""
    topic = f"nerve-bench-small-{uuid.uuid4().hex[:10]}"
    create_topic(bootstrap, topic, 1)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": 1,
            "linger.ms": 0,
            "batch.num.messages": 1,
            "enable.idempotence": False,
            "delivery.report.only.error": True,
        }
    )
    producer.list_topics(topic=topic, timeout=10)
    value = b"x" * 100
    start = time.perf_counter()
    for _ in range(count):
        while True:
            try:
                producer.produce(topic, value, partition=0)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    if producer.flush(60) != 0:
        raise RuntimeError("small requests: messages left undelivered")
    seconds = time.perf_counter() - start
    return {"requests": count, "seconds": seconds, "per_s": count / seconds}


def measure(broker: SpawnedBroker, case: str, mb: float) -> dict[str, float]:
    """One case on one broker: its rate(s) and the broker's CPU per unit of work."""
    assert broker.process is not None
    pid = broker.process.pid
    before = cpu_seconds(pid)
    if case == "small requests":
        result = small_requests(broker.bootstrap, SMALL_REQUESTS)
        cpu = cpu_seconds(pid) - before
        return {"rate": result["per_s"], "cpu_us_per_unit": cpu / SMALL_REQUESTS * 1e6}
    size, partitions = (1024, 1) if case == "1KB x 1p" else (100, 8)
    done = run_case(broker.bootstrap, CaseSpec(size, partitions, mb), delete_after=True)
    cpu = cpu_seconds(pid) - before
    moved = (done.produce.bytes + done.consume.bytes) / MIB
    return {
        "produce_mb_s": done.produce.mb_per_s,
        "consume_mb_s": done.consume.mb_per_s,
        "cpu_us_per_unit": cpu / moved * 1e6,  # per MiB produced or consumed
    }


def cost_of_the_hooks(number: int = 200_000) -> dict[str, float]:
    """Nanoseconds the counting adds to one produce request of one partition and to one fetch
    response of one topic, timed in this process on this tree's BrokerMetrics: the exact cost,
    where the end-to-end ratios can only bound it within the machine's noise."""
    import timeit

    from nerve.broker.metrics import BrokerMetrics

    metrics = BrokerMetrics(None)  # type: ignore[arg-type]  # the hooks never touch the broker

    def produce() -> None:
        counters = metrics.topic("orders")
        counters.produce_requests += 1
        counters = metrics.topic("orders")
        counters.bytes_in += 16_384
        counters.messages_in += 100
        metrics.request_done(0, 11, 0.0004)

    served = [("orders", 1_048_576, 1, 0)]

    def fetch() -> None:
        metrics.fetched(served)
        metrics.request_done(1, 16, 0.0004)

    return {
        name: min(timeit.repeat(work, number=number, repeat=5)) / number * 1e9
        for name, work in (("produce", produce), ("fetch", fetch))
    }


def cost_of_a_scrape(broker: SpawnedBroker, url: str, partitions: int) -> dict[str, float]:
    """Wall time and broker CPU of one scrape once a topic of ``partitions`` exists (each
    partition is seven series: size, offsets, segments and kafka-exporter's)."""
    assert broker.process is not None
    create_topic(broker.bootstrap, f"nerve-bench-scrape-{uuid.uuid4().hex[:8]}", partitions)
    with urllib.request.urlopen(url, timeout=30) as response:  # a first one, not timed
        size = len(response.read())
    walls, cpus = [], []
    for _ in range(10):
        before, started = cpu_seconds(broker.process.pid), time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as response:
            size = len(response.read())
        walls.append(time.perf_counter() - started)
        cpus.append(cpu_seconds(broker.process.pid) - before)
    return {
        "partitions": partitions,
        "bytes": size,
        "ms": statistics.median(walls) * 1000,
        "cpu_ms": sum(cpus) / len(cpus) * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout's src")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mb", type=float, default=100.0, help="MiB per 1 KiB case")
    parser.add_argument("--json", type=Path, help="write every run here")
    parser.add_argument(
        "--cases",
        default="1KB x 1p,100B x 8p,small requests",
        help="comma list of the cases to run (default all three)",
    )
    parser.add_argument(
        "--scrape-partitions", type=int, default=1000, help="partitions for the scrape's cost"
    )
    args = parser.parse_args(argv)
    if not (args.baseline / "nerve" / "__init__.py").is_file():
        parser.error(f"{args.baseline} holds no nerve package")
    pin_current_process(1)
    baseline_cmd = ["env", f"PYTHONPATH={args.baseline.resolve()}", sys.executable, "-m", "nerve"]
    volumes = {"1KB x 1p": args.mb, "100B x 8p": args.mb / 4, "small requests": 0.0}
    cases = {name: volumes[name] for name in args.cases.split(",")}
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        label: {case: [] for case in cases} for label in ("baseline", "metrics")
    }
    with (
        SpawnedBroker(command=baseline_cmd, cpu=0) as baseline,
        SpawnedBroker(command=nerve_command(), cpu=0, args=["--metrics-port", "0"]) as metered,
    ):
        url = metered.next_line("metrics on ").removeprefix("metrics on ")
        scraper = Scraper(url)
        scraper.start()
        brokers = {"baseline": baseline, "metrics": metered}
        for round_number in range(args.repeat):
            order = ["baseline", "metrics"] if round_number % 2 == 0 else ["metrics", "baseline"]
            for case, mb in cases.items():
                for label in order:
                    result = measure(brokers[label], case, mb)
                    runs[label][case].append(result)
                    print(f"round {round_number + 1} {case:15} {label:8} {result}", flush=True)
        scraper.stop()
        scrape_cost = cost_of_a_scrape(metered, url, args.scrape_partitions)
    hooks = cost_of_the_hooks()
    print(
        f"\nthe counting itself: {hooks['produce']:.0f} ns per produce request of one "
        f"partition, {hooks['fetch']:.0f} ns per fetch response of one topic"
    )
    print(
        f"{scraper.scrapes} scrapes of {url} during the cases, the last {scraper.last_size} bytes"
    )
    print(
        f"a scrape with {scrape_cost['partitions']} partitions: {scrape_cost['bytes']} bytes, "
        f"{scrape_cost['ms']:.1f} ms (median of 10), {scrape_cost['cpu_ms']:.1f} ms of broker CPU\n"
    )
    rows = []
    print(f"{'case':15} {'figure':22} {'baseline':>10} {'metrics':>10} {'ratio':>7}")
    for case in cases:
        for figure in runs["baseline"][case][0]:
            base = statistics.median(r[figure] for r in runs["baseline"][case])
            metric = statistics.median(r[figure] for r in runs["metrics"][case])
            unit = {"rate": "requests/s", "cpu_us_per_unit": "broker CPU us/"}.get(figure, figure)
            if figure == "cpu_us_per_unit":
                unit += "request" if case == "small requests" else "MiB"
            ratio = metric / base
            rows.append({"case": case, "figure": unit, "baseline": base, "metrics": metric,
                         "ratio": ratio})  # fmt: skip
            print(f"{case:15} {unit:22} {base:10.1f} {metric:10.1f} {ratio:7.3f}")
    if args.json:
        summary = {"runs": runs, "table": rows, "hooks_ns": hooks, "scrape": scrape_cost}
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
