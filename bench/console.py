"""The console's speed and bounds (issue 15 item 11), beside kcat in the same run.

1. first page: from starting ``nerve console`` to the first answered page (``/`` and
   ``/topics``), and a warm ``/topics``;
2. browsing an offset of a topic of N records (10,000,000 by default): a page of 50 records
   from a random offset, through the console, against kcat reading the same 50 (``-o OFFSET
   -c 50``), the median and p95 of several;
3. the filter scan: records/s of a bounded scan (a numeric value filter that decodes every
   JSON value, a string equality the raw-bytes prefilter answers, and a key filter), against
   kcat reading the same records raw to /dev/null.

The broker runs pinned to CPU 0, the console and kcat to CPU 1 (``--no-pin`` leaves them
free). Prints a Markdown table; ``--json PATH`` writes the figures.

    .venv/bin/python bench/console.py                      # 10,000,000 records
    .venv/bin/python bench/console.py --records 1000000    # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

TOPIC = "bench.console"
HX = {"HX-Request": "true"}


def pinned(cpu: str | None, command: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *command] if cpu is not None else command


def start(command: list[str], log: Path) -> tuple[subprocess.Popen[str], str]:
    """A subprocess printing ``listening on HOST:PORT``; its process and address."""
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=log.open("ab"),
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.match(r"listening on (\S+)", line)
        if found:
            return proc, found.group(1)
    raise SystemExit(f"{command[0]} exited before listening; see {log}")


def fill(bootstrap: str, records: int) -> float:
    """``records`` small JSON records in one partition; returns the seconds it took."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.num.messages": 10000,
            "batch.size": 1048576,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1000000,
            "acks": 1,
        }
    )
    started = time.monotonic()
    for i in range(records):
        value = b'{"n": %d, "account": "acc-%d", "amount": %d}' % (i, i % 1000, i % 997)
        while True:
            try:
                producer.produce(TOPIC, key=b"acc-%d" % (i % 1000), value=value)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 100000 == 0:
            producer.poll(0)
    producer.flush(300)
    return time.monotonic() - started


def first_page(command: list[str], log: Path) -> dict[str, float]:
    started = time.monotonic()
    proc, address = start(command, log)
    try:
        listening = time.monotonic() - started
        home = httpx.get(f"http://{address}/", timeout=30)
        first = time.monotonic() - started
        topics = httpx.get(f"http://{address}/topics", timeout=30)
        topics_first = time.monotonic() - started - first
        assert home.status_code == topics.status_code == 200
        warm = []
        for _ in range(5):
            t = time.monotonic()
            httpx.get(f"http://{address}/topics", timeout=30)
            warm.append(time.monotonic() - t)
        return {
            "start_to_listening_s": listening,
            "start_to_first_page_s": first,
            "first_topics_s": topics_first,
            "warm_topics_s": statistics.median(warm),
        }
    finally:
        proc.terminate()
        proc.wait(30)


def browse(url: str, bootstrap: str, records: int, kcat: str | None, cpu: str | None) -> Any:
    import random

    rng = random.Random(15)
    offsets = [rng.randrange(0, records - 50) for _ in range(15)]
    console, peer = [], []
    for offset in offsets:
        t = time.monotonic()
        page = httpx.get(
            f"{url}/topics/{TOPIC}/messages",
            params={"partition": "0", "from": "offset", "offset": str(offset), "limit": "50"},
            timeout=60,
        )
        console.append(time.monotonic() - t)
        assert page.status_code == 200 and f'data-offset="{offset}"' in page.text, offset
        if kcat:
            t = time.monotonic()
            done = subprocess.run(
                pinned(cpu, [kcat, "-C", "-b", bootstrap, "-t", TOPIC, "-p", "0",
                             "-o", str(offset), "-c", "50", "-e", "-q"]),
                capture_output=True, timeout=60,
            )  # fmt: skip
            peer.append(time.monotonic() - t)
            assert done.stdout.count(b"\n") == 50
    return console, peer


def scan(url: str, text: str, max_records: int) -> dict[str, float]:
    started = httpx.post(
        f"{url}/topics/{TOPIC}/scan",
        data={"filter": text, "from": "start", "max_records": str(max_records)},
        headers=HX,
        timeout=60,
    ).text
    scan_id = re.search(r'id="scan-(\w+)"', started).group(1)  # type: ignore[union-attr]
    while True:
        page = httpx.get(f"{url}/scans/{scan_id}", timeout=60).text
        if "done (" in page:
            break
        time.sleep(0.5)
    read = int(re.search(r'class="read">([\d,]+)<', page).group(1).replace(",", ""))  # type: ignore[union-attr]
    seconds = float(re.search(r"match\(es\), ([\d.]+) s", page).group(1))  # type: ignore[union-attr]
    return {"records": read, "seconds": seconds, "records_per_s": read / seconds}


def kcat_rate(kcat: str, bootstrap: str, count: int, cpu: str | None) -> float:
    t = time.monotonic()
    subprocess.run(
        pinned(cpu, [kcat, "-C", "-b", bootstrap, "-t", TOPIC, "-p", "0", "-o", "beginning",
                     "-c", str(count), "-e", "-q"]),
        stdout=subprocess.DEVNULL, check=True, timeout=600,
    )  # fmt: skip
    return count / (time.monotonic() - t)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--scan-records", type=int, default=1_000_000)
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    broker_cpu, client_cpu = (None, None) if args.no_pin else ("0", "1")
    kcat = shutil.which("kcat")
    nerve = [sys.executable, "-m", "nerve"]
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        root = Path(tmp)
        broker, bootstrap = start(
            pinned(broker_cpu, [*nerve, "broker", "--data-dir", str(root / "data"),
                                "--listen", "127.0.0.1:0",
                                "--config", "log.fsync.policy=never"]),
            root / "broker.log",
        )  # fmt: skip
        try:
            fill_s = fill(bootstrap, args.records)
            print(f"filled {args.records:,} records in {fill_s:.1f} s", file=sys.stderr)
            console_cmd = pinned(
                client_cpu,
                [*nerve, "console", "-b", bootstrap, "--no-registry", "--port", "0"],
            )
            startup = first_page(console_cmd, root / "console-first.log")
            console, url = start(console_cmd, root / "console.log")
            url = f"http://{url}"
            try:
                pages, peer = browse(url, bootstrap, args.records, kcat, client_cpu)
                value_scan = scan(url, "value.amount == -1", args.scan_records)
                key_scan = scan(url, 'key == "none"', args.scan_records)
                string_scan = scan(url, 'value.account == "none"', args.scan_records)
            finally:
                console.terminate()
                console.wait(30)
            peer_rate = kcat_rate(kcat, bootstrap, args.scan_records, client_cpu) if kcat else None
        finally:
            broker.terminate()
            broker.wait(60)
    p95 = sorted(pages)[int(len(pages) * 0.95) - 1]
    results: dict[str, Any] = {
        "records": args.records,
        **startup,
        "browse_median_s": statistics.median(pages),
        "browse_p95_s": p95,
        "kcat_browse_median_s": statistics.median(peer) if peer else None,
        "value_scan": value_scan,
        "key_scan": key_scan,
        "string_scan": string_scan,
        "kcat_records_per_s": peer_rate,
    }
    rows = [
        ("start to first page (`/`)", f"{startup['start_to_first_page_s']:.2f} s", "", ""),
        ("first `/topics` after that", f"{startup['first_topics_s'] * 1000:.0f} ms", "", ""),
        ("warm `/topics`", f"{startup['warm_topics_s'] * 1000:.0f} ms", "", ""),
        (
            f"50 records at a random offset of {args.records:,} (median / p95)",
            f"{results['browse_median_s'] * 1000:.0f} / {p95 * 1000:.0f} ms",
            f"{results['kcat_browse_median_s'] * 1000:.0f} ms" if peer else "-",
            f"{results['browse_median_s'] / results['kcat_browse_median_s']:.2f}" if peer else "",
        ),
    ]
    for name, found in (
        ("`value.amount == -1` (every JSON value decoded)", value_scan),
        ('`value.account == "none"` (string prefilter)', string_scan),
        ('`key == "none"`', key_scan),
    ):
        rows.append(
            (
                f"scan, {name}, {found['records']:,.0f} records",
                f"{found['records_per_s']:,.0f} records/s",
                f"{peer_rate:,.0f} records/s (raw)" if peer_rate else "-",
                f"{found['records_per_s'] / peer_rate:.2f}" if peer_rate else "",
            )
        )
    print("| measure | console | kcat | console / kcat |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
