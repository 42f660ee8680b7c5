"""Schema registry costs: registering (a fenced transaction per write) and reading by id.

Starts a nerve broker (or uses ``--bootstrap``) and a ``nerve registry`` beside it, registers
``--schemas`` distinct Avro schemas one after another, then reads them back by id
``--reads`` times over one keep-alive HTTP connection, and prints latencies and rates.

    python bench/registry.py
    python bench/registry.py --bootstrap 127.0.0.1:9092     # e.g. Apache Kafka
    python bench/registry.py --wide 100000                  # one hostile 100,000-field schema
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil

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
        # CPU time the registry spends per request: unlike latency, not inflated by a busy
        # machine, so before/after comparisons hold even when the cores are shared.
        registry_cpu = psutil.Process(proc.pid)
        client = httpx.Client(base_url=url, headers={"Content-Type": CONTENT_TYPE})
        ids, register_ms = [], []
        cpu_before = sum(registry_cpu.cpu_times()[:2])
        for n in range(schemas):
            body = {"schema": json.dumps({"type": "record", "name": f"R{n}", "fields": []})}
            start = time.perf_counter()
            response = client.post(f"/subjects/bench-{n}-value/versions", json=body)
            register_ms.append((time.perf_counter() - start) * 1000)
            response.raise_for_status()
            ids.append(response.json()["id"])
        register_cpu_s = sum(registry_cpu.cpu_times()[:2]) - cpu_before
        read_ms = []
        cpu_before = sum(registry_cpu.cpu_times()[:2])
        started = time.perf_counter()
        for i in range(reads):
            start = time.perf_counter()
            client.get(f"/schemas/ids/{ids[i % len(ids)]}").raise_for_status()
            read_ms.append((time.perf_counter() - start) * 1000)
        read_rate = reads / (time.perf_counter() - started)
        read_cpu_s = sum(registry_cpu.cpu_times()[:2]) - cpu_before
        return {
            "register_p50_ms": statistics.median(register_ms),
            "register_p99_ms": percentile(register_ms, 0.99),
            "registrations_per_s": 1000 / statistics.mean(register_ms),
            "read_p50_ms": statistics.median(read_ms),
            "read_p99_ms": percentile(read_ms, 0.99),
            "reads_per_s": read_rate,
            "register_cpu_ms": register_cpu_s * 1000 / schemas,
            "read_cpu_ms": read_cpu_s * 1000 / reads,
        }
    finally:
        proc.terminate()
        proc.wait(30)


def measure_wide(bootstrap: str, fields: int) -> dict[str, float]:
    """Register one record of ``fields`` fields while reading by id over another connection:
    how long the registry takes to answer it, and how reads fare meanwhile."""
    proc, url = start_registry(bootstrap, cpu=1)
    try:
        client = httpx.Client(base_url=url, headers={"Content-Type": CONTENT_TYPE}, timeout=900)
        small = {"schema": json.dumps({"type": "record", "name": "Small", "fields": []})}
        schema_id = client.post("/subjects/small-value/versions", json=small).json()["id"]
        wide = {
            "type": "record",
            "name": "Wide",
            "fields": [{"name": f"f{i}", "type": "int"} for i in range(fields)],
        }
        body = {"schema": json.dumps(wide)}
        outcome: dict[str, Any] = {}

        def register() -> None:
            with httpx.Client(base_url=url, timeout=900) as other:
                start = time.perf_counter()
                response = other.post("/subjects/wide-value/versions", json=body)
                outcome["seconds"] = time.perf_counter() - start
                outcome["status"] = response.status_code
                outcome["error_code"] = response.json().get("error_code", 0)

        worker = threading.Thread(target=register)
        worker.start()
        read_ms = []
        while worker.is_alive():
            start = time.perf_counter()
            client.get(f"/schemas/ids/{schema_id}").raise_for_status()
            read_ms.append((time.perf_counter() - start) * 1000)
        worker.join()
        return {
            "schema_mb": len(body["schema"]) / 1e6,
            "answer_s": outcome["seconds"],
            "status": outcome["status"],
            "error_code": outcome["error_code"],
            "reads_meanwhile": len(read_ms),
            "read_p50_ms": statistics.median(read_ms) if read_ms else float("nan"),
            "read_p99_ms": percentile(read_ms, 0.99) if read_ms else float("nan"),
            "read_max_ms": max(read_ms) if read_ms else float("nan"),
        }
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="an existing Kafka (default: spawn nerve on CPU 0)")
    parser.add_argument("--schemas", type=int, default=200)
    parser.add_argument("--reads", type=int, default=5000)
    parser.add_argument(
        "--wide",
        type=int,
        metavar="FIELDS",
        help="instead: register one record with this many fields while reading by id",
    )
    args = parser.parse_args()

    def run(bootstrap: str) -> dict[str, float]:
        if args.wide:
            return measure_wide(bootstrap, args.wide)
        return measure(bootstrap, args.schemas, args.reads)

    if args.bootstrap:
        results = run(args.bootstrap)
    else:
        with SpawnedBroker(cpu=0) as broker:
            results = run(broker.bootstrap)
    for name, value in results.items():
        print(f"{name:22} {value:10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
