"""``nerve demo shop``: the platform, the shop's seven services as separate processes, the
warehouse's "legacy" PostgreSQL database with ``nerve cdc postgres`` bringing its deliveries in,
and a driver sending commands lane by lane (one lane per SKU), each answered over Kafka, while
the order saga takes each order through stock, payment and shipping; live (until Ctrl-C) or as
a check that exits 0 only if the system ends as the oracle says, with orders (its aggregate,
its saga and its projections) and later the capture SIGKILLed mid-stream and restarted.

Without PostgreSQL on the machine (or psycopg) the deliveries are sent as ``RestockItem``
commands instead, and the demo says so."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from nerve.demo.process import CaptureProcess, ServiceProcess
from nerve.demo.shop import ledger, receiving, workload
from nerve.demo.shop.events import ReorderRequested, RestockItem, StockAdded
from nerve.demo.shop.warehouse import Warehouse
from nerve.es import CommandClient, Histories
from nerve.service.config import RunConfig
from nerve.testing import Platform

HERE = Path(__file__).parent
SERVICES = ("orders", "inventory", "payments", "shipping", "reorder", "analysis", "receiving")
TIMEOUT = 120.0  # a command's answer may wait for a killed service's replacement
PAY_WITHIN = 20.0  # the saga's deadline for a payment (the check waits it out for some orders)


class Driver:
    """Sends each lane's commands one at a time, all lanes at once, and counts what came back
    against what the oracle said (``mismatches``: one line per outcome that differs). A lane's
    deliveries go into the warehouse's database (without one: as restock commands)."""

    def __init__(self, config: RunConfig, warehouse: Warehouse | None) -> None:
        self.clients = {name: CommandClient(name, config) for name in ("orders", "inventory")}
        self.warehouse = warehouse
        self.outcomes: Counter[str] = Counter()
        self.mismatches: list[str] = []
        self.done = 0
        self.recent: list[str] = []  # the latest refusals, for the live view

    async def lane(self, steps: Iterable[workload.Step], after: float = 0.0) -> None:
        for step in steps:
            if step.service == "warehouse" and self.warehouse is not None:
                assert isinstance(step.command, RestockItem)
                self.warehouse.deliver(step.command.sku, step.command.quantity)
                self.outcomes["delivered"] += 1
                self.done += 1
                if after:
                    await asyncio.sleep(after)
                continue
            service = "inventory" if step.service == "warehouse" else step.service
            outcome = await self.clients[service].send(
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


class Legacy:
    """The warehouse's PostgreSQL and the capture of its deliveries, or nothing where the
    machine has no PostgreSQL or psycopg (``missing`` then says why)."""

    def __init__(self) -> None:
        self.postgres: Any = None
        self.warehouse: Warehouse | None = None
        self.capture: CaptureProcess | None = None
        self.missing = ""

    def start_database(self) -> None:
        try:
            import psycopg  # noqa: F401 - the warehouse and nerve cdc need it
        except ImportError:
            self.missing = "psycopg is not installed (pip install 'nerve[cdc]')"
            return
        from nerve.connect.local_postgres import PostgresError, PostgresProcess

        postgres = PostgresProcess(user="warehouse", database="warehouse")
        try:
            postgres.start()
        except PostgresError as exc:
            postgres.close()
            self.missing = str(exc).splitlines()[0]
            return
        self.postgres = postgres
        self.warehouse = Warehouse(postgres.dsn)
        self.warehouse.create()

    def start_capture(self, platform: Platform, logs: Path) -> None:
        if self.postgres is None:
            return
        tables = [receiving.TABLE]
        self.capture = CaptureProcess(
            self.postgres.dsn, receiving.TOPIC_PREFIX, tables, platform, logs
        )
        self.capture.start()

    def close(self) -> None:
        if self.capture is not None:
            self.capture.stop()
        if self.warehouse is not None:
            self.warehouse.close()
        if self.postgres is not None:
            self.postgres.close()


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
    oracle = workload.Oracle()
    if check:
        planned, oracle = workload.plan(orders)
        total = sum(len(lane) for lane in planned)
        lanes = [iter(lane) for lane in planned]
    else:
        prefix, total = f"o{int(time.time())}", 0
        lanes = [workload.lane(sku, oracle, time.time_ns(), None, prefix)
                 for sku in workload.skus(6)]  # fmt: skip
    opening = [next(lane) for lane in lanes]  # each SKU's first delivery
    legacy = Legacy()
    try:
        legacy.start_database()
        if legacy.warehouse is not None:  # there before the capture starts: its snapshot
            for step in opening:
                assert isinstance(step.command, RestockItem)
                legacy.warehouse.deliver(step.command.sku, step.command.quantity)
        with Platform(data_dir / "platform", port=port, registry_port=registry_port) as platform:
            print(f"platform: Kafka on {platform.bootstrap}, registry on {platform.registry_url}")
            if legacy.postgres is not None:
                print(f"the warehouse's database: {legacy.postgres.dsn} (PostgreSQL in "
                      f"{legacy.postgres.root}), captured by nerve cdc postgres")  # fmt: skip
            else:
                print(f"no warehouse database: {legacy.missing}; the deliveries are sent as "
                      "RestockItem commands instead of through change data capture")  # fmt: skip
            legacy.start_capture(platform, logs)
            services = {
                name: ServiceProcess(name, HERE / f"{name}.py", platform, logs, state, env)
                for name in SERVICES
            }
            for service in services.values():
                service.start()
            config = RunConfig(
                bootstrap_servers=platform.bootstrap, registry_url=platform.registry_url
            )
            driver = Driver(config, legacy.warehouse)
            if legacy.warehouse is not None:
                driver.outcomes["delivered"] += len(opening)
                driver.done += len(opening)
                opening = []
            try:
                if check:
                    return asyncio.run(_check(driver, services, legacy, config, data_dir,
                                              oracle, opening, lanes, total))  # fmt: skip
                return asyncio.run(
                    _live(driver, services, legacy, config, data_dir, rate, opening, lanes)
                )
            finally:
                driver.close()
                for service in services.values():
                    service.stop()
                if legacy.capture is not None:
                    legacy.capture.stop()
    finally:
        legacy.close()
        if own_dir is not None:
            own_dir.cleanup()


async def _open(
    driver: Driver,
    processes: list[ServiceProcess],
    config: RunConfig,
    opening: list[workload.Step],
    skus: set[str],
) -> list[str]:
    """Each SKU's opening stock (sent now without a warehouse database) in the inventory
    before any order: the lanes' orders count on it. A list of what failed, or nothing."""
    from nerve.service.topic_reader import read_to_end

    await driver.lane(opening)
    deadline = time.monotonic() + TIMEOUT
    stocked: set[str] = set()
    while time.monotonic() < deadline and not any(p.dead() for p in processes):
        records = await asyncio.to_thread(
            read_to_end, {"bootstrap.servers": config.bootstrap_servers}, StockAdded.topic
        )
        stocked = {json.loads(r.value() or b"{}").get("sku") for r in records or ()}
        if skus <= stocked:
            print(f"the opening stock of {len(skus)} SKUs is in the inventory")
            return []
        await asyncio.sleep(0.5)
    return [f"the opening stock of {sorted(skus - stocked)} did not reach the inventory"]


def _differ(name: str, seen: dict[Any, Any], want: dict[Any, Any]) -> list[str]:
    wrong = sorted(k for k in want.keys() | seen.keys() if seen.get(k) != want.get(k))
    if not wrong:
        return []
    return [f"{name}: {len(wrong)} differ, e.g. "
            + ", ".join(f"{k} {seen.get(k)} (want {want.get(k)})" for k in wrong[:4])]  # fmt: skip


async def _check(
    driver: Driver,
    services: dict[str, ServiceProcess],
    legacy: Legacy,
    config: RunConfig,
    data: Path,
    oracle: workload.Oracle,
    opening: list[workload.Step],
    lanes: list[Iterator[workload.Step]],
    total: int,
) -> int:
    started = time.monotonic()
    processes = [*services.values(), *([legacy.capture] if legacy.capture else [])]
    failed = await _open(driver, processes, config, opening, set(oracle.stock))
    if failed:
        return _verdict(failed + _exited(services, legacy))

    async def kill_midway() -> None:
        while driver.done < total // 3 and not any(p.dead() for p in processes):
            await asyncio.sleep(0.05)
        services["orders"].kill()
        print(f"killed orders (SIGKILL) after {driver.done} of {total} steps")
        await asyncio.sleep(2.0)  # commands and the saga's inputs pile up meanwhile
        services["orders"].start()
        print("restarted orders")
        if legacy.capture is None:
            return
        while driver.done < 2 * total // 3 and not any(p.dead() for p in processes):
            await asyncio.sleep(0.05)
        legacy.capture.kill()
        print(f"killed nerve cdc (SIGKILL) after {driver.done} of {total} steps")
        await asyncio.sleep(2.0)  # deliveries are recorded meanwhile
        legacy.capture.start()
        print("restarted nerve cdc")

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
    while found and time.monotonic() < deadline and not any(p.dead() for p in processes):
        await asyncio.sleep(1.0)
        if read_model(data) != want_status:
            continue
        history = await asyncio.to_thread(ledger.read, config.bootstrap_servers)
        found = _against_history(history, oracle, data, want_failures)
        if legacy.warehouse is not None:
            found += _deliveries(history, legacy.warehouse)
    failed += found
    failed += await asyncio.to_thread(_aggregates, config, oracle)
    if legacy.warehouse is not None:
        failed += await asyncio.to_thread(_captured, config, legacy.warehouse)
    failed += _exited(services, legacy)

    statuses = Counter(read_model(data).values())
    print(
        f"{total} steps in {sent:.1f} s: {driver.outcomes['delivered']} deliveries recorded "
        f"in the warehouse's database; commands {driver.outcomes['accepted']} accepted, "
        f"{driver.outcomes['rejected']} rejected, {driver.outcomes['conflict']} stale; "
        f"{len(want_status)} orders: "
        + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        + " in the read model"
    )
    _summary(history, data, legacy.warehouse)
    print(f"in {time.monotonic() - started:.1f} s")
    return _verdict(failed)


def _verdict(failed: list[str]) -> int:
    for failure in failed:
        print(f"FAIL: {failure}")
    print("check passed" if not failed else "check FAILED")
    return 0 if not failed else 1


def _exited(services: dict[str, ServiceProcess], legacy: Legacy) -> list[str]:
    found = [f"{name} exited on its own:\n{s.log_tail()}"
             for name, s in services.items() if s.dead()]  # fmt: skip
    if legacy.capture is not None and legacy.capture.dead():
        found.append(f"nerve cdc exited on its own:\n{legacy.capture.log_tail()}")
    return found


def _deliveries(history: ledger.Ledger, warehouse: Warehouse) -> list[str]:
    """Every delivery the warehouse's database recorded became one StockAdded, of its units."""
    added = history.bodies(StockAdded)
    count = Counter(b["sku"] for b in added)
    units: Counter[str] = Counter()
    for body in added:
        units[body["sku"]] += body["quantity"]
    found = _differ("restocks against the warehouse's deliveries", dict(count),
                    dict(warehouse.deliveries))  # fmt: skip
    found += _differ("units restocked against the units delivered", dict(units),
                     dict(warehouse.delivered))  # fmt: skip
    return found


def _captured(config: RunConfig, warehouse: Warehouse) -> list[str]:
    """The capture's topic holds each delivery's row once (a snapshot read or an insert)."""
    from nerve.service.topic_reader import read_to_end

    records = read_to_end({"bootstrap.servers": config.bootstrap_servers},
                          receiving.DeliveryChanged.topic, timeout_s=30) or []  # fmt: skip
    ids: Counter[int] = Counter()
    for record in records:
        if (value := record.value()) is not None:  # not a tombstone
            change = json.loads(value)
            ids[change.get("payload", change)["after"]["delivery_id"]] += 1
    want = sum(warehouse.deliveries.values())
    if sorted(ids) != list(range(1, want + 1)) or set(ids.values()) != {1}:
        twice = sorted(k for k, n in ids.items() if n > 1)
        return [f"{receiving.DeliveryChanged.topic} holds {len(ids)} deliveries "
                f"(twice: {twice[:5]}), the warehouse recorded {want}"]  # fmt: skip
    return []


def _summary(history: ledger.Ledger, data: Path, warehouse: Warehouse | None) -> None:
    """What the payments, shipping, receiving and the two services added later did, in a few
    lines."""
    added = history.bodies(StockAdded)
    source = "the warehouse's database through nerve cdc" if warehouse else "restock commands"
    print(f"restocks: {len(added)} of {sum(b['quantity'] for b in added)} units, from "
          f"{source}")  # fmt: skip
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
    legacy: Legacy,
    config: RunConfig,
    data: Path,
    rate: float,
    opening: list[workload.Step],
    planned: list[Iterator[workload.Step]],
) -> int:
    from rich.console import Group
    from rich.live import Live
    from rich.table import Table

    processes = [*services.values(), *([legacy.capture] if legacy.capture else [])]
    skus = workload.skus(len(planned))
    for failure in await _open(driver, processes, config, opening, set(skus)):
        print(failure)
        return 1
    pause = len(skus) / rate  # each lane waits this long between commands
    lanes = [asyncio.create_task(driver.lane(lane, after=pause)) for lane in planned]
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
        if legacy.warehouse is not None:
            shop.add_row("deliveries in the warehouse's database",
                         str(sum(legacy.warehouse.deliveries.values())))  # fmt: skip
        shop.add_row("restocks (StockAdded)", str(len(history.bodies(StockAdded))))
        for name, service in services.items():
            shop.add_row(name, service.status())
        if legacy.capture is not None:
            shop.add_row("nerve cdc", legacy.capture.status())
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
    print(f"sent {driver.done} steps; stopping services")
    # After Ctrl-C (which reached the services too) a clean exit is the service obeying it.
    everything = {**services, **({"nerve cdc": legacy.capture} if legacy.capture else {})}
    dead = [n for n, s in everything.items() if (s.failed() if stop.is_set() else s.dead())]
    for name in dead:
        print(f"{name} stopped early; the end of its log:\n{everything[name].log_tail()}")
    return 1 if dead or failed or driver.mismatches else 0
