"""``nerve demo cdc``: the platform, a "legacy" PostgreSQL database with a stock table that a
legacy application keeps changing, ``nerve cdc postgres`` bringing each row change into Kafka,
and the ``warehouse`` service publishing stock levels and out-of-stock alerts from them; live
(until Ctrl-C) or as a check that exits 0 only if every change of the database arrived once, in
order, and the service's events say what the database holds, with the capture SIGKILLed
mid-stream and restarted.

PostgreSQL comes from the machine (Debian: ``postgresql-15`` and ``postgresql-15-wal2json``),
run in a temporary folder for the demo's life, never the machine's own cluster.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from nerve.demo.process import CaptureProcess, ServiceProcess
from nerve.testing import Platform

HERE = Path(__file__).parent
PREFIX = "legacy"
CHANGES_TOPIC = f"{PREFIX}.public.stock"
SKUS = 20  # rows in the table before the capture starts: its snapshot
WAIT_S = 120.0  # for the events of the last change once the legacy app stops


class LegacyApp:
    """The application that owns the database: transactions of one to three stock changes
    (sales, restocks, new and discontinued SKUs), each row change noted in commit order, so
    the check knows what Kafka must hold."""

    def __init__(self, dsn: str, seed: int = 7) -> None:
        import psycopg

        self.db = psycopg.connect(dsn)
        self.random = random.Random(seed)
        self.stock: dict[str, int] = {}
        self.changes: list[tuple[str, int | None]] = []  # (sku, quantity or None: deleted)
        self.transactions = 0
        self._next_sku = 0

    def create(self) -> None:
        """The table and its first rows (what the capture's snapshot reads)."""
        with self.db.transaction():
            self.db.execute("CREATE TABLE stock (sku text PRIMARY KEY, quantity int NOT NULL)")
            # Updates carry the row as it was: the service tells 'ran out' from 'stays out'.
            self.db.execute("ALTER TABLE stock REPLICA IDENTITY FULL")
            for _ in range(SKUS):
                self._insert()

    def _insert(self) -> None:
        sku = f"sku-{self._next_sku:04d}"
        self._next_sku += 1
        quantity = self.random.randint(0, 12)
        self.db.execute("INSERT INTO stock VALUES (%s, %s)", (sku, quantity))
        self.stock[sku] = quantity
        self.changes.append((sku, quantity))

    def transaction(self) -> None:
        with self.db.transaction():
            for _ in range(self.random.randint(1, 3)):
                roll = self.random.random()
                if roll < 0.04 or not self.stock:
                    self._insert()
                    continue
                sku = self.random.choice(sorted(self.stock))
                if roll < 0.06:
                    self.db.execute("DELETE FROM stock WHERE sku = %s", (sku,))
                    del self.stock[sku]
                    self.changes.append((sku, None))
                    continue
                delta = 20 if roll > 0.9 else -self.random.randint(1, 4)
                quantity = max(0, self.stock[sku] + delta)
                if quantity == self.stock[sku]:
                    continue  # a sale of what is not there: no change
                self.db.execute("UPDATE stock SET quantity = %s WHERE sku = %s", (quantity, sku))
                self.stock[sku] = quantity
                self.changes.append((sku, quantity))
        self.transactions += 1

    def close(self) -> None:
        self.db.close()


def _expected(changes: list[tuple[str, int | None]]) -> tuple[dict[str, list[Any]], int]:
    """What the warehouse must publish: per SKU, its (quantity, listed) levels in order, and
    how many out-of-stock alerts (a change to 0 from more than 0, or a new row at 0)."""
    levels: dict[str, list[Any]] = defaultdict(list)
    last: dict[str, int | None] = {}
    alerts = 0
    for sku, quantity in changes:
        if quantity is None:
            levels[sku].append((0, False))
        else:
            levels[sku].append((quantity, True))
            before = last.get(sku)
            if quantity == 0 and (before is None or before > 0):
                alerts += 1
        last[sku] = quantity
    return dict(levels), alerts


def _published(bootstrap: str) -> tuple[dict[str, list[Any]], int, Counter[str]]:
    """The warehouse's levels per SKU, its alerts, and the capture's records by op."""
    import json

    from nerve.service import envelope
    from nerve.service.topic_reader import read_to_end

    config = {"bootstrap.servers": bootstrap}
    levels: dict[str, list[Any]] = defaultdict(list)
    for message in read_to_end(config, "warehouse.stock-levels", timeout_s=30) or []:
        _, data, _ = envelope.read(message.headers(), message.value())
        body = json.loads(data or b"{}")
        levels[body["sku"]].append((body["quantity"], body.get("listed", True)))
    alerts = len(read_to_end(config, "warehouse.out-of-stock", timeout_s=30) or [])
    ops: Counter[str] = Counter()
    for message in read_to_end(config, CHANGES_TOPIC, timeout_s=30) or []:
        raw = message.value()
        if raw is not None:  # a delete's tombstone follows its record
            value = json.loads(raw)
            ops[value.get("payload", value)["op"]] += 1
    return dict(levels), alerts, ops


def run(check: bool, data_dir: Path | None, transactions: int, rate: float) -> int:
    from nerve.connect.local_postgres import PostgresError, PostgresProcess

    try:
        import psycopg  # noqa: F401 - the legacy app and nerve cdc need it
    except ImportError:
        print("nerve demo cdc needs psycopg: pip install 'nerve[cdc]'", file=sys.stderr)
        return 1
    own_dir = None
    if data_dir is None:
        own_dir = tempfile.TemporaryDirectory(prefix="nerve-cdc-")
        data_dir = Path(own_dir.name)
    logs, state = data_dir / "logs", data_dir / "state"
    logs.mkdir(parents=True, exist_ok=True)
    postgres = PostgresProcess(user="warehouse", database="warehouse")
    port, registry_port = (0, 0) if check else (9092, 8081)
    try:
        try:
            postgres.start()
        except PostgresError as exc:
            print(f"nerve demo cdc: cannot start PostgreSQL: {exc}", file=sys.stderr)
            return 1
        with Platform(data_dir / "platform", port=port, registry_port=registry_port) as platform:
            print(f"platform: Kafka on {platform.bootstrap}, registry on {platform.registry_url}")
            print(f"legacy database: {postgres.dsn} (PostgreSQL in {postgres.root})")
            app = LegacyApp(postgres.dsn)
            app.create()
            capture = CaptureProcess(postgres.dsn, PREFIX, ["public.stock"], platform, logs)
            service = ServiceProcess(
                "warehouse", HERE / "warehouse.py", platform, logs, state, dict(os.environ)
            )
            capture.start()
            service.start()
            try:
                if check:
                    return _check(app, capture, service, platform, transactions)
                return _live(app, capture, service, platform, rate)
            finally:
                capture.stop()
                service.stop()
                app.close()
    finally:
        postgres.close()
        if own_dir is not None:
            own_dir.cleanup()


def _check(
    app: LegacyApp,
    capture: CaptureProcess,
    service: ServiceProcess,
    platform: Platform,
    transactions: int,
) -> int:
    started = time.monotonic()
    # The snapshot first: a capture killed before its snapshot commits starts over with a
    # new one, which holds the rows as they are then, not each change made meanwhile.
    deadline = time.monotonic() + WAIT_S
    while sum(_published(platform.bootstrap)[2].values()) < SKUS:
        if time.monotonic() > deadline or capture.dead():
            print(f"FAILED: the capture's snapshot did not arrive:\n{capture.log_tail()}")
            return 1
        time.sleep(0.5)
    print(f"the capture's snapshot holds the {SKUS} rows; the legacy app starts")
    killed_at = transactions // 3
    for n in range(transactions):
        if n == killed_at:
            capture.kill()
            print(f"killed nerve cdc (SIGKILL) after {n} of {transactions} transactions")
        if n == killed_at + transactions // 10:
            capture.start()
            print(f"restarted nerve cdc after {n} transactions")
        app.transaction()
        time.sleep(0.005)  # a legacy app's pace, so the kill lands mid-stream
    want_levels, want_alerts = _expected(app.changes)
    want_changes = len(app.changes)
    print(f"the legacy app committed {app.transactions} transactions, {want_changes} row "
          f"changes ({SKUS} rows before the capture started)")  # fmt: skip
    failed: list[str] = []
    deadline = time.monotonic() + WAIT_S
    levels: dict[str, list[Any]] = {}
    alerts, ops = 0, Counter[str]()
    while time.monotonic() < deadline:
        if capture.dead() or service.dead():
            break
        levels, alerts, ops = _published(platform.bootstrap)
        if sum(len(v) for v in levels.values()) >= want_changes:
            break
        time.sleep(1.0)
    captured = sum(ops.values())
    if captured != want_changes:
        failed.append(f"{CHANGES_TOPIC} holds {captured} changes ({dict(ops)}), the database "
                      f"made {want_changes}")  # fmt: skip
    wrong = sorted(s for s in want_levels.keys() | levels.keys()
                   if levels.get(s) != want_levels.get(s))  # fmt: skip
    if wrong:
        sku = wrong[0]
        failed.append(f"stock levels of {len(wrong)} SKUs differ from the database's changes, "
                      f"e.g. {sku}: {levels.get(sku)}, want {want_levels.get(sku)}")  # fmt: skip
    if alerts != want_alerts:
        failed.append(f"{alerts} out-of-stock alerts, the changes make {want_alerts}")
    for name, proc in (("nerve cdc", capture), ("warehouse", service)):
        if proc.dead():
            failed.append(f"{name} exited on its own:\n{proc.log_tail()}")
    by_op = ", ".join(f"{n} {op}" for op, n in sorted(ops.items()))
    published = sum(len(v) for v in levels.values())
    took = time.monotonic() - started
    print(
        f"{CHANGES_TOPIC}: {captured} changes ({by_op}); warehouse: {published} stock "
        f"levels, {alerts} out-of-stock alerts; in {took:.1f} s"
    )
    for failure in failed:
        print(f"FAILED: {failure}")
    if not failed:
        print("check passed: every database change arrived once and in order, and the "
              "warehouse's events match the database")  # fmt: skip
    return 1 if failed else 0


def _live(
    app: LegacyApp,
    capture: CaptureProcess,
    service: ServiceProcess,
    platform: Platform,
    rate: float,
) -> int:
    from rich.live import Live
    from rich.table import Table

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def view() -> Table:
        levels, alerts, ops = _published(platform.bootstrap)
        table = Table(title="legacy stock table -> nerve cdc -> warehouse", expand=True)
        table.add_column("")
        table.add_column("", justify="right")
        table.add_row("database transactions", str(app.transactions))
        table.add_row("row changes in the database", str(len(app.changes)))
        table.add_row(f"changes on {CHANGES_TOPIC}", str(sum(ops.values())))
        table.add_row("stock levels published", str(sum(len(v) for v in levels.values())))
        table.add_row("out-of-stock alerts", str(alerts))
        out = sorted(sku for sku, quantity in app.stock.items() if quantity == 0)
        table.add_row("SKUs out of stock now", ", ".join(out[:8]) or "-")
        table.add_row("nerve cdc", "EXITED" if capture.dead() else "running")
        table.add_row("warehouse", service.status())
        table.add_row("", "[dim]Ctrl-C to stop[/]")
        return table

    shown = 0.0
    with Live(view(), refresh_per_second=1) as live:
        while not stop.is_set() and not capture.dead() and not service.dead():
            app.transaction()
            stop.wait(1 / rate)
            if time.monotonic() - shown > 1.0:
                live.update(view())
                shown = time.monotonic()
    print(f"the legacy app committed {app.transactions} transactions; stopping")
    for name, proc in (("nerve cdc", capture), ("warehouse", service)):
        if proc.dead() and not stop.is_set():
            print(f"{name} stopped early; the end of its log:\n{proc.log_tail()}")
            return 1
    return 0
