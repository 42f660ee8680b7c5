"""``nerve demo shop``: the platform, the orders and inventory services as separate processes,
and a driver sending commands lane by lane (one lane per SKU), each answered over Kafka; live
(until Ctrl-C) or as a check that exits 0 only if every outcome, every aggregate's state (folded
back from its events) and the read model equal the oracle's, with orders SIGKILLed mid-stream
and restarted."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from nerve.demo.shop import workload
from nerve.es import CommandClient, Histories
from nerve.service.config import RunConfig
from nerve.testing import Platform

HERE = Path(__file__).parent
SERVICES = ("orders", "inventory")
TIMEOUT = 120.0  # a command's answer may wait for a killed service's replacement


class ServiceProcess:
    """One service under ``nerve run``, its output in a log file."""

    def __init__(self, name: str, platform: Platform, data: Path, env: dict[str, str]) -> None:
        self.name, self.platform, self.data, self.env = name, platform, data, env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.data / "logs" / f"{self.name}.log").open("ab") as log:
            command = [sys.executable, "-m", "nerve", "run", str(HERE / f"{self.name}.py"),
                       "-b", self.platform.bootstrap, "-r", self.platform.registry_url or "",
                       "--state-dir", str(self.data / "state"),
                       "-X", "session.timeout.ms=6000"]  # fmt: skip
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=self.env
            )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def dead(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = (self.data / "logs" / f"{self.name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


class Driver:
    """Sends each lane's commands one at a time, all lanes at once, and counts what came back
    against what the oracle said (``mismatches``: one line per outcome that differs)."""

    def __init__(self, config: RunConfig) -> None:
        self.clients = {name: CommandClient(name, config) for name in SERVICES}
        self.outcomes: Counter[str] = Counter()
        self.mismatches: list[str] = []
        self.done = 0
        self.recent: list[str] = []  # the latest refusals, for the live view

    async def lane(self, steps: object, after: float = 0.0) -> None:
        for step in steps:  # type: ignore[attr-defined]
            outcome = await self.clients[step.service].send(
                step.command, expected_version=step.expected_version, timeout=TIMEOUT
            )
            self.outcomes[outcome.status] += 1
            self.done += 1
            name = type(step.command).__name__
            key = getattr(step.command, "order_id", "")
            if outcome.status != step.want:
                self.mismatches.append(
                    f"{name} {key}: {outcome.status} ({outcome.reason}), the oracle says "
                    f"{step.want}"
                )
            if outcome.status != "accepted":
                self.recent = [f"{name} {key}: {outcome.status}: {outcome.reason}",
                               *self.recent[:7]]  # fmt: skip
            if after:
                await asyncio.sleep(after)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def read_model(database: Path) -> dict[str, str]:
    """The projection's view: order id -> status (empty before its first write)."""
    if not database.exists():
        return {}
    db = sqlite3.connect(database, timeout=30)
    try:
        return dict(db.execute("select order_id, status from orders").fetchall())
    except sqlite3.OperationalError:  # the table is made by the first event folded
        return {}
    finally:
        db.close()


def run(check: bool, data_dir: Path | None, orders: int, rate: float) -> int:
    own_dir = None
    if data_dir is None:  # every run starts empty: the oracle plans from empty aggregates
        own_dir = tempfile.TemporaryDirectory(prefix="nerve-shop-")
        data_dir = Path(own_dir.name)
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    database = data_dir / "orders.db"
    env = dict(os.environ, NERVE_DEMO_SHOP_DB=str(database))
    port, registry_port = (0, 0) if check else (9092, 8081)
    try:
        with Platform(data_dir / "platform", port=port, registry_port=registry_port) as platform:
            print(f"platform: Kafka on {platform.bootstrap}, registry on {platform.registry_url}")
            services = {name: ServiceProcess(name, platform, data_dir, env) for name in SERVICES}
            for service in services.values():
                service.start()
            config = RunConfig(
                bootstrap_servers=platform.bootstrap, registry_url=platform.registry_url
            )
            driver = Driver(config)
            try:
                if check:
                    return asyncio.run(_check(driver, services, config, database, orders))
                return asyncio.run(_live(driver, services, database, rate))
            finally:
                driver.close()
                for service in services.values():
                    service.stop()
    finally:
        if own_dir is not None:
            own_dir.cleanup()


async def _check(
    driver: Driver,
    services: dict[str, ServiceProcess],
    config: RunConfig,
    database: Path,
    orders: int,
) -> int:
    lanes, oracle = workload.plan(orders)
    total = sum(len(lane) for lane in lanes)
    started = time.monotonic()

    async def kill_midway() -> None:
        while driver.done < total // 3 and not any(s.dead() for s in services.values()):
            await asyncio.sleep(0.05)
        services["orders"].kill()
        print(f"killed orders (SIGKILL) after {driver.done} of {total} commands")
        await asyncio.sleep(2.0)  # commands pile up on its topics meanwhile
        services["orders"].start()
        print("restarted orders")

    failures: list[str] = []
    try:
        await asyncio.gather(kill_midway(), *(driver.lane(lane) for lane in lanes))
    except TimeoutError as exc:
        failures.append(str(exc))
    failures += [f"outcome: {m}" for m in driver.mismatches]
    failures += _aggregates(config, oracle)
    want = {order_id: state.status for order_id, state in oracle.orders.items()}
    deadline = time.monotonic() + 60
    seen = read_model(database)
    while seen != want and time.monotonic() < deadline and not services["orders"].dead():
        await asyncio.sleep(0.5)
        seen = read_model(database)
    if seen != want:
        wrong = sorted(k for k in want.keys() | seen.keys() if seen.get(k) != want.get(k))
        failures.append(
            f"read model: {len(wrong)} orders differ from the oracle, e.g. "
            + ", ".join(f"{k} {seen.get(k)} (want {want.get(k)})" for k in wrong[:5])
        )
    failures += [
        f"{name} exited on its own:\n{s.log_tail()}" for name, s in services.items() if s.dead()
    ]
    by_status = Counter(seen.values())
    print(
        f"{total} commands ({driver.outcomes['accepted']} accepted, "
        f"{driver.outcomes['rejected']} rejected, {driver.outcomes['conflict']} stale), "
        f"{len(want)} orders: "
        + ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
        + f" in the read model, in {time.monotonic() - started:.1f} s"
    )
    for failure in failures:
        print(f"FAIL: {failure}")
    print("check passed" if not failures else "check FAILED")
    return 0 if not failures else 1


def _aggregates(config: RunConfig, oracle: workload.Oracle) -> list[str]:
    """Every order and SKU folded back from its events (versions 1..N, each once) against the
    oracle: status and version; stock, its reservations and version, never below zero."""
    from nerve.demo.shop.inventory import Stock
    from nerve.demo.shop.orders import Order

    failures = []
    with Histories(config) as histories:
        for order_id, want in oracle.orders.items():
            try:
                got = histories.load(Order, order_id)
            except (RuntimeError, ValueError) as exc:  # a gap or a repeat in its versions
                failures.append(f"order {order_id}: {exc}")
                continue
            state = got.state
            assert isinstance(state, Order)
            if (state.status, got.version, state.total) != (want.status, want.version, want.total):
                failures.append(
                    f"order {order_id}: {state.status} v{got.version}, the oracle says "
                    f"{want.status} v{want.version}"
                )
        for sku, stock in oracle.stock.items():
            try:
                held = histories.load(Stock, sku)
            except (RuntimeError, ValueError) as exc:
                failures.append(f"stock {sku}: {exc}")
                continue
            found = held.state
            assert isinstance(found, Stock)
            if found.available < 0:
                failures.append(f"stock {sku} went below zero: {found.available}")
            mine = (found.available, found.reserved, held.version)
            if mine != (stock.available, stock.reserved, stock.version):
                failures.append(
                    f"stock {sku}: {mine}, the oracle says "
                    f"{(stock.available, stock.reserved, stock.version)}"
                )
    return failures


async def _live(
    driver: Driver, services: dict[str, ServiceProcess], database: Path, rate: float
) -> int:
    from rich.live import Live
    from rich.table import Table

    oracle = workload.Oracle()
    prefix = f"o{int(time.time())}"
    skus = workload.skus(6)
    pause = len(skus) / rate  # each lane waits this long between commands
    lanes = [
        asyncio.create_task(driver.lane(workload.lane(sku, oracle, time.time_ns(), None, prefix),
                                        after=pause))
        for sku in skus
    ]  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def view() -> Table:
        table = Table(title=f"shop: orders by status (read model {database})", expand=True)
        table.add_column("")
        table.add_column("", justify="right")
        for status, count in sorted(Counter(read_model(database).values()).items()):
            table.add_row(f"orders {status}", str(count))
        for status in ("accepted", "rejected", "conflict"):
            table.add_row(f"commands {status}", str(driver.outcomes[status]))
        table.add_row("outcomes unlike the oracle's", str(len(driver.mismatches)))
        for name, service in services.items():
            table.add_row(name, "EXITED" if service.dead() else "running")
        for line in driver.recent:
            table.add_row("refused", line)
        table.add_row("", "[dim]Ctrl-C to stop[/]")
        return table

    with Live(view(), refresh_per_second=2) as live:
        while not stop.is_set() and not any(task.done() for task in lanes):
            await asyncio.sleep(0.5)
            live.update(view())
    for task in lanes:
        task.cancel()
    failed = [t for t in lanes if t.done() and not t.cancelled() and t.exception()]
    for task in failed:
        print(f"a lane stopped: {task.exception()}")
    print(f"sent {driver.done} commands; stopping services")
    dead = [name for name, s in services.items() if s.dead()]
    for name in dead:
        print(f"{name} exited on its own; the end of its log:\n{services[name].log_tail()}")
    return 1 if dead or failed or driver.mismatches else 0
