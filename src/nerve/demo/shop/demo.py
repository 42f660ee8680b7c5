"""``nerve demo shop``: the platform, the shop's six services as separate processes, and a
driver sending commands lane by lane (one lane per SKU), each answered over Kafka, while the
order saga takes each order through stock, payment and shipping; live (until Ctrl-C) or as a
check that exits 0 only if the system ends as the oracle says, with orders (its aggregate, its
saga and its projections) SIGKILLed mid-stream and restarted."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nerve.demo.process import ServiceProcess
from nerve.demo.shop import ledger, workload
from nerve.demo.shop.events import ReorderRequested
from nerve.es import CommandClient, Histories
from nerve.service.config import RunConfig
from nerve.testing import Platform

HERE = Path(__file__).parent
SERVICES = ("orders", "inventory", "payments", "shipping", "reorder", "analysis")
TIMEOUT = 120.0  # a command's answer may wait for a killed service's replacement
PAY_WITHIN = 20.0  # the saga's deadline for a payment (the check waits it out for some orders)


class Driver:
    """Sends each lane's commands one at a time, all lanes at once, and counts what came back
    against what the oracle said (``mismatches``: one line per outcome that differs)."""

    def __init__(self, config: RunConfig) -> None:
        self.clients = {name: CommandClient(name, config) for name in ("orders", "inventory")}
        self.outcomes: Counter[str] = Counter()
        self.mismatches: list[str] = []
        self.done = 0
        self.recent: list[str] = []  # the latest refusals, for the live view

    async def lane(self, steps: Iterable[workload.Step], after: float = 0.0) -> None:
        for step in steps:
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
                               *self.recent[:5]]  # fmt: skip
            if after:
                await asyncio.sleep(after)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def _rows(database: Path, query: str) -> list[tuple[Any, ...]]:
    """A read model's rows (none before its first write made the table)."""
    if not database.exists():
        return []
    db = sqlite3.connect(database, timeout=30)
    try:
        return db.execute(query).fetchall()
    except sqlite3.OperationalError:  # the table is made by the first event folded
        return []
    finally:
        db.close()


def read_model(data: Path) -> dict[str, str]:
    """orders_by_status: order id -> status."""
    return dict(_rows(data / "orders.db", "select order_id, status from orders"))


def customers(data: Path) -> dict[str, tuple[int, int, int, int]]:
    """orders_by_customer: customer -> (placed, paid, cancelled, spent)."""
    rows = _rows(data / "customers.db", "select customer, placed, paid, cancelled, spent "
                 "from customers")  # fmt: skip
    return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}


def failures(data: Path) -> dict[str, tuple[str, str]]:
    """analysis's failed purchases: order id -> (customer, reason)."""
    rows = _rows(data / "failures.db", "select order_id, customer, reason from failures")
    return {row[0]: (row[1], row[2]) for row in rows}


def run(check: bool, data_dir: Path | None, orders: int, rate: float) -> int:
    own_dir = None
    if data_dir is None:  # every run starts empty: the oracle plans from empty aggregates
        own_dir = tempfile.TemporaryDirectory(prefix="nerve-shop-")
        data_dir = Path(own_dir.name)
    logs, state = data_dir / "logs", data_dir / "state"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, NERVE_DEMO_SHOP_DATA=str(data_dir),
               NERVE_DEMO_SHOP_PAY_WITHIN=str(PAY_WITHIN))  # fmt: skip
    port, registry_port = (0, 0) if check else (9092, 8081)
    try:
        with Platform(data_dir / "platform", port=port, registry_port=registry_port) as platform:
            print(f"platform: Kafka on {platform.bootstrap}, registry on {platform.registry_url}")
            services = {
                name: ServiceProcess(name, HERE / f"{name}.py", platform, logs, state, env)
                for name in SERVICES
            }
            for service in services.values():
                service.start()
            config = RunConfig(
                bootstrap_servers=platform.bootstrap, registry_url=platform.registry_url
            )
            driver = Driver(config)
            try:
                if check:
                    return asyncio.run(_check(driver, services, config, data_dir, orders))
                return asyncio.run(_live(driver, services, config, data_dir, rate))
            finally:
                driver.close()
                for service in services.values():
                    service.stop()
    finally:
        if own_dir is not None:
            own_dir.cleanup()


def _differ(name: str, seen: dict[Any, Any], want: dict[Any, Any]) -> list[str]:
    wrong = sorted(k for k in want.keys() | seen.keys() if seen.get(k) != want.get(k))
    if not wrong:
        return []
    return [f"{name}: {len(wrong)} differ, e.g. "
            + ", ".join(f"{k} {seen.get(k)} (want {want.get(k)})" for k in wrong[:4])]  # fmt: skip


async def _check(
    driver: Driver,
    services: dict[str, ServiceProcess],
    config: RunConfig,
    data: Path,
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
        await asyncio.sleep(2.0)  # commands and the saga's inputs pile up meanwhile
        services["orders"].start()
        print("restarted orders")

    failed: list[str] = []
    try:
        await asyncio.gather(kill_midway(), *(driver.lane(lane) for lane in lanes))
    except TimeoutError as exc:
        failed.append(str(exc))
    sent = time.monotonic() - started
    failed += [f"outcome: {m}" for m in driver.mismatches]

    # The saga finishes each order within PAY_WITHIN of its reservation; the rest follows.
    unpaid = "not paid within " + f"{PAY_WITHIN:g} s"
    want_status = {order_id: o.status for order_id, o in oracle.orders.items()}
    want_failures = oracle.failures(unpaid)
    deadline = time.monotonic() + PAY_WITHIN + 90
    found: list[str] = ["not read yet"]
    history = ledger.Ledger()
    while found and time.monotonic() < deadline and not any(s.dead() for s in services.values()):
        await asyncio.sleep(1.0)
        if read_model(data) != want_status:
            continue
        history = await asyncio.to_thread(ledger.read, config.bootstrap_servers)
        found = _against_history(history, oracle, data, want_failures)
    failed += found
    failed += await asyncio.to_thread(_aggregates, config, oracle)
    failed += [f"{name} exited on its own:\n{s.log_tail()}"
               for name, s in services.items() if s.dead()]  # fmt: skip

    statuses = Counter(read_model(data).values())
    print(
        f"{total} commands sent in {sent:.1f} s ({driver.outcomes['accepted']} accepted, "
        f"{driver.outcomes['rejected']} rejected, {driver.outcomes['conflict']} stale); "
        f"{len(want_status)} orders: "
        + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        + " in the read model"
    )
    _summary(history, data)
    print(f"in {time.monotonic() - started:.1f} s")
    for failure in failed:
        print(f"FAIL: {failure}")
    print("check passed" if not failed else "check FAILED")
    return 0 if not failed else 1


def _summary(history: ledger.Ledger, data: Path) -> None:
    """What the payments, shipping and the two services added later did, in a few lines."""
    charged = history.bodies(ledger.ev.PaymentCharged)
    print(
        f"payments: {len(charged)} charged ({sum(b['amount'] for b in charged) / 100:.2f}), "
        f"{len(history.bodies(ledger.ev.PaymentDeclined))} declined, "
        f"{len(history.bodies(ledger.ev.PaymentVoided))} voided unconfirmed, "
        f"{len(history.bodies(ledger.ev.PaymentRefunded))} refunded; "
        f"shipping: {len(history.bodies(ledger.ev.OrderShipped))} parcels"
    )
    by_customer = customers(data)
    top = sorted(by_customer.items(), key=lambda item: -item[1][3])[:3]
    print("orders per customer (read model): " + ", ".join(
        f"{c} {p} placed/{paid} paid/{x} cancelled, {spent / 100:.2f} spent"
        for c, (p, paid, x, spent) in top) + (", ..." if len(by_customer) > 3 else ""))  # fmt: skip
    reorders = history.bodies(ReorderRequested)
    print(f"reorder (added later): {len(reorders)} requests: " + ", ".join(
        f"{b['sku']} at {b['available']} left" for b in reorders[:6]
    ) + (", ..." if len(reorders) > 6 else ""))  # fmt: skip
    lost = failures(data)
    reasons = Counter(reason for _, reason in lost.values())
    hit = Counter(customer for customer, _ in lost.values()).most_common(3)
    print(f"analysis (added later): {len(lost)} failed purchases: "
          + ", ".join(f"{n} {r}" for r, n in reasons.most_common())
          + "; most hit: " + ", ".join(f"{c} ({n})" for c, n in hit))  # fmt: skip


def _against_history(
    history: ledger.Ledger,
    oracle: workload.Oracle,
    data: Path,
    want_failures: dict[str, tuple[str, str]],
) -> list[str]:
    """The topics' history against the oracle, and every read model against the history."""
    ev = ledger.ev
    found: list[str] = []
    placed, paid, cancelled = (history.count(t) for t in (ev.OrderPlaced, ev.OrderPaid,
                                                          ev.OrderCancelled))  # fmt: skip
    ended = paid + cancelled
    for order_id in oracle.orders.keys() | placed.keys():
        if placed[order_id] != 1 or ended[order_id] != 1:
            found.append(f"order {order_id}: placed {placed[order_id]} times, paid "
                         f"{paid[order_id]}, cancelled {cancelled[order_id]} times")  # fmt: skip
    statuses = history.statuses()
    found += _differ("orders (history)", statuses,
                     {k: o.status for k, o in oracle.orders.items()})  # fmt: skip
    # Every payment matches an order: a charge not refunded for each paid order, of its total.
    charged = {b["order_id"]: b["amount"] for b in history.bodies(ev.PaymentCharged)}
    refunded = {b["order_id"] for b in history.bodies(ev.PaymentRefunded)}
    kept = {k: v for k, v in charged.items() if k not in refunded}
    if len(charged) != len(history.bodies(ev.PaymentCharged)):
        found.append("an order was charged twice")
    orders_paid = {b["order_id"]: b["amount"] for b in history.bodies(ev.OrderPaid)}
    found += _differ("payments kept against orders paid", kept, orders_paid)
    totals = {k: oracle.orders[k].total for k in orders_paid if k in oracle.orders}
    found += _differ("orders paid against their totals", orders_paid, totals)
    ends = {b["order_id"]: "declined" for b in history.bodies(ev.PaymentDeclined)}
    ends |= {b["order_id"]: "voided" for b in history.bodies(ev.PaymentVoided)}
    ends |= {k: "charged" for k in kept}
    want_ends = {k: p[0] for k, o in oracle.orders.items() if (p := o.payment) is not None}
    found += _differ("payments", ends, want_ends)
    shipped = history.count(ev.OrderShipped)
    found += _differ("shipments", dict(shipped), {k: 1 for k in orders_paid})
    # Stock: never below zero at any version, ending as the oracle says; and the reorders.
    stock, reorders, wrong = history.stock()
    found += wrong
    found += _differ("stock (history)", stock,
                     {s: (o.available, o.version) for s, o in oracle.stock.items()})  # fmt: skip
    requested = Counter((b["sku"], b["order_id"]) for b in history.bodies(ev.ReorderRequested))
    found += _differ("reorders against the falls below the level", dict(requested),
                     {r: 1 for r in reorders})  # fmt: skip
    # The read models against the history's fold.
    found += _differ("orders_by_status against the history", read_model(data), statuses)
    found += _differ("orders_by_customer against the history", customers(data),
                     history.by_customer())  # fmt: skip
    found += _differ("orders_by_customer against the oracle", customers(data),
                     oracle.by_customer())  # fmt: skip
    found += _differ("analysis' failures against the history", failures(data),
                     history.failures())  # fmt: skip
    found += _differ("failures (history) against the oracle", history.failures(), want_failures)
    return found


def _aggregates(config: RunConfig, oracle: workload.Oracle) -> list[str]:
    """Every order and SKU folded back from its events by ``Histories`` (versions 1..N, each
    once) against the oracle."""
    from nerve.demo.shop.inventory import Stock
    from nerve.demo.shop.orders import Order

    failed = []
    with Histories(config) as histories:
        for order_id, want in oracle.orders.items():
            try:
                got = histories.load(Order, order_id)
            except (RuntimeError, ValueError) as exc:  # a gap or a repeat in its versions
                failed.append(f"order {order_id}: {exc}")
                continue
            state = got.state
            assert isinstance(state, Order)
            if (state.status, got.version, state.total) != (want.status, 2, want.total):
                failed.append(
                    f"order {order_id}: {state.status} v{got.version}, the oracle says "
                    f"{want.status} v2"
                )
        for sku, stock in oracle.stock.items():
            try:
                held = histories.load(Stock, sku)
            except (RuntimeError, ValueError) as exc:
                failed.append(f"stock {sku}: {exc}")
                continue
            found = held.state
            assert isinstance(found, Stock)
            mine = (found.available, found.reserved, held.version)
            if mine != (stock.available, stock.reserved, stock.version):
                failed.append(
                    f"stock {sku}: {mine}, the oracle says "
                    f"{(stock.available, stock.reserved, stock.version)}"
                )
    return failed


async def _live(
    driver: Driver,
    services: dict[str, ServiceProcess],
    config: RunConfig,
    data: Path,
    rate: float,
) -> int:
    from rich.console import Group
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
    history = ledger.Ledger()

    def view() -> Group:
        shop = Table(title=f"shop (read models in {data})", expand=True)
        shop.add_column("")
        shop.add_column("", justify="right")
        for status, count in sorted(Counter(read_model(data).values()).items()):
            shop.add_row(f"orders {status}", str(count))
        for event_type in (ledger.ev.PaymentCharged, ledger.ev.PaymentDeclined,
                           ledger.ev.PaymentVoided, ledger.ev.OrderShipped,
                           ledger.ev.ReorderRequested):  # fmt: skip
            shop.add_row(event_type.__name__, str(len(history.bodies(event_type))))
        for status in ("accepted", "rejected", "conflict"):
            shop.add_row(f"commands {status}", str(driver.outcomes[status]))
        shop.add_row("outcomes unlike the oracle's", str(len(driver.mismatches)))
        for name, service in services.items():
            shop.add_row(name, service.status())
        people = Table(title="orders per customer", expand=True)
        for column in ("customer", "placed", "paid", "cancelled", "spent"):
            people.add_column(column, justify="left" if column == "customer" else "right")
        for customer, (p, paid, x, spent) in sorted(customers(data).items()):
            people.add_row(customer, str(p), str(paid), str(x), f"{spent / 100:.2f}")
        why = Table(title="failed purchases (analysis) and the latest refusals", expand=True)
        why.add_column("")
        why.add_column("", justify="right")
        for reason, n in Counter(r for _, r in failures(data).values()).most_common():
            why.add_row(reason, str(n))
        for line in driver.recent:
            why.add_row("refused", line)
        why.add_row("", "[dim]Ctrl-C to stop[/]")
        return Group(shop, people, why)

    with Live(view(), refresh_per_second=1) as live:
        while not stop.is_set() and not any(task.done() for task in lanes):
            await asyncio.sleep(1.0)
            history = await asyncio.to_thread(ledger.read, config.bootstrap_servers)
            live.update(view())
    for task in lanes:
        task.cancel()
    failed = [t for t in lanes if t.done() and not t.cancelled() and t.exception()]
    for task in failed:
        print(f"a lane stopped: {task.exception()}")
    print(f"sent {driver.done} commands; stopping services")
    # After Ctrl-C (which reached the services too) a clean exit is the service obeying it.
    dead = [n for n, s in services.items() if (s.failed() if stop.is_set() else s.dead())]
    for name in dead:
        print(f"{name} stopped early; the end of its log:\n{services[name].log_tail()}")
    return 1 if dead or failed or driver.mismatches else 0
