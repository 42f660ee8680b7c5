"""Schema registry costs: registering (a fenced transaction per write) and reading by id.

Starts a nerve broker (or uses ``--bootstrap``) and a ``nerve registry`` beside it, registers
``--schemas`` distinct Avro schemas one after another, then reads them back by id
``--reads`` times over one keep-alive HTTP connection, and prints latencies and rates.

    python bench/registry.py
    python bench/registry.py --bootstrap 127.0.0.1:9092     # e.g. Apache Kafka
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _broker import SpawnedBroker, nerve_command

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


def start_registry(bootstrap: str, cpu: int) -> tuple[subprocess.Popen[str], str]:
    command = ["taskset", "-c", str(cpu), *nerve_command(), "registry"]
    topic = f"_schemas-bench-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen(
        [*command, "--bootstrap-servers", bootstrap, "--listen", "127.0.0.1:0", "--topic", topic],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"registry did not start: {line!r}")
    return proc, "http://" + line.split()[-1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(bootstrap: str, schemas: int, reads: int) -> dict[str, float]:
    proc, url = start_registry(bootstrap, cpu=1)
    try:
        client = httpx.Client(base_url=url, headers={"Content-Type": CONTENT_TYPE})
        ids, register_ms = [], []
        for n in range(schemas):
            body = {"schema": json.dumps({"type": "record", "name": f"R{n}", "fields": []})}
            start = time.perf_counter()
            response = client.post(f"/subjects/bench-{n}-value/versions", json=body)
            register_ms.append((time.perf_counter() - start) * 1000)
            response.raise_for_status()
            ids.append(response.json()["id"])
        read_ms = []
        started = time.perf_counter()
        for i in range(reads):
            start = time.perf_counter()
            client.get(f"/schemas/ids/{ids[i % len(ids)]}").raise_for_status()
            read_ms.append((time.perf_counter() - start) * 1000)
        read_rate = reads / (time.perf_counter() - started)
        return {
            "register_p50_ms": statistics.median(register_ms),
            "register_p99_ms": percentile(register_ms, 0.99),
            "registrations_per_s": 1000 / statistics.mean(register_ms),
            "read_p50_ms": statistics.median(read_ms),
            "read_p99_ms": percentile(read_ms, 0.99),
            "reads_per_s": read_rate,
        }
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="an existing Kafka (default: spawn nerve on CPU 0)")
    parser.add_argument("--schemas", type=int, default=200)
    parser.add_argument("--reads", type=int, default=5000)
    args = parser.parse_args()
    if args.bootstrap:
        results = measure(args.bootstrap, args.schemas, args.reads)
    else:
        with SpawnedBroker(cpu=0) as broker:
            results = measure(broker.bootstrap, args.schemas, args.reads)
    for name, value in results.items():
        print(f"{name:22} {value:10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
