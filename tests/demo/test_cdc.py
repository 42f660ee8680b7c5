"""The CDC demo: the warehouse service on Debezium-shaped change records (through a real broker),
and ``nerve demo cdc --check`` end to end (a real PostgreSQL, ``nerve cdc postgres`` SIGKILLed
mid-stream and restarted, every change once and in order, the warehouse's events against the
database's changes)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from confluent_kafka import Producer

from nerve.demo.cdc import demo
from nerve.demo.cdc.warehouse import OutOfStock, StockLevel, warehouse
from nerve.testing import Platform


def change(op: str, before: int | None, after: int | None, sku: str = "sku-1") -> bytes:
    row = lambda q: None if q is None else {"sku": sku, "quantity": q}  # noqa: E731
    source = {"connector": "postgresql", "name": "legacy", "db": "warehouse", "schema": "public",
              "table": "stock", "ts_ms": 0, "snapshot": "false", "lsn": 1}  # fmt: skip
    return json.dumps({"op": op, "before": row(before), "after": row(after), "source": source,
                       "ts_ms": 0}).encode()  # fmt: skip


def test_the_warehouse_publishes_levels_and_an_alert_when_a_sku_runs_out() -> None:
    history: list[tuple[str, int | None]] = [
        ("sku-1", 2), ("sku-1", 0), ("sku-1", 5), ("sku-1", 0), ("sku-1", None),
    ]  # fmt: skip
    records = [change("c", None, 2), change("u", 2, 0), change("u", 0, 5), change("u", 5, 0),
               change("d", 0, None)]  # fmt: skip
    with Platform() as platform:
        producer = Producer({"bootstrap.servers": platform.bootstrap})
        for record in records:
            producer.produce("legacy.public.stock", key=b'{"sku": "sku-1"}', value=record)
        producer.flush(10)
        platform.run(warehouse)
        levels = platform.expect(StockLevel, count=5)
        alerts = platform.expect(OutOfStock, count=2)
    want, want_alerts = demo._expected(history)
    assert [(e.quantity, e.listed) for e in levels] == want["sku-1"]
    assert want["sku-1"] == [(2, True), (0, True), (5, True), (0, True), (0, False)]
    assert len(alerts) == want_alerts == 2


@pytest.mark.slow
def test_check_passes_with_the_capture_killed_mid_stream() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nerve", "demo", "cdc", "--check", "--transactions", "400"],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "killed nerve cdc (SIGKILL)" in done.stdout
    assert "check passed" in done.stdout
