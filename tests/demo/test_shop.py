"""The shop demo: its oracle, the driver's commands against the aggregates in the test driver
(restarted from their changelogs midway), receiving on change records of the warehouse's
deliveries (through a real broker), and ``nerve demo shop --check`` end to end (orders, with
its saga and projections, and later nerve cdc SIGKILLed mid-stream and restarted; outcomes,
orders, payments, shipments, stock, reorders, the deliveries from the warehouse's real
PostgreSQL and the three SQLite read models against the oracle and a fold of the topics'
history)."""

from __future__ import annotations

import itertools
import json
import logging
import subprocess
import sys
import time
from collections import Counter

import pytest
from confluent_kafka import Producer

from nerve.demo.shop import workload
from nerve.demo.shop.events import RestockItem
from nerve.demo.shop.inventory import inventory
from nerve.demo.shop.orders import orders
from nerve.demo.shop.receiving import DeliveryChanged, receiving
from nerve.es.node import EXPECTED_VERSION, REPLY_TO
from nerve.streams.driver import TestDriver
from nerve.testing import Platform


def test_the_workload_is_reproducible_and_exercises_every_outcome() -> None:
    first, oracle = workload.plan(60)
    second, _ = workload.plan(60)
    flat = [type(s.command).__name__ + s.want for lane in first for s in lane]
    assert flat == [type(s.command).__name__ + s.want for lane in second for s in lane]
    assert set(oracle.outcomes) == {"accepted", "rejected", "conflict"}
    assert set(oracle.by_status()) == {"paid", "cancelled"}
    assert {o.fate for o in oracle.orders.values()} == set(workload.FATES)
    refused = Counter(type(s.command).__name__ for lane in first for s in lane
                      if s.want == "rejected")  # fmt: skip
    assert {"PayOrder", "PlaceOrder", "ReleaseStock", "RestockItem"} <= set(refused)
    for stock in oracle.stock.values():  # what stays reserved is held by paid orders
        assert stock.available >= 0
        assert all(oracle.orders[o].status == "paid" for o in stock.reserved)


def _decide(driver: TestDriver, step: workload.Step, reply_topic: str) -> str:
    command = step.command.model_copy(deep=True)
    command.meta.extensions[REPLY_TO] = reply_topic
    if step.expected_version is not None:
        command.meta.extensions[EXPECTED_VERSION] = str(step.expected_version)
    driver.send(command)
    (reply,) = driver.output(reply_topic)
    return str(json.loads(reply.value)["status"])


def _aggregates(driver: TestDriver, name: str) -> dict:
    """An aggregate's store (named after it, with the node's number): key -> (version, state)."""
    (store,) = {s for task in driver.engine.tasks.values() for s in task.state.stores
                if s.startswith(f"{name}-")}  # fmt: skip
    return driver.store(store)


def test_the_aggregates_answer_the_driver_as_the_oracle_across_a_restart() -> None:
    """The driver's own commands get the oracle's outcome whatever the saga has done yet
    (here it has done nothing: no other service answers it)."""
    lanes, _ = workload.plan(60)
    # The lanes interleaved, as the live services see them; each lane keeps its order.
    steps = [s for group in itertools.zip_longest(*lanes) for s in group if s is not None]
    got = []
    with (
        TestDriver(orders, partitions=4) as for_orders,
        TestDriver(inventory, partitions=4) as for_stock,
    ):
        for n, step in enumerate(steps):
            if n == len(steps) // 2:
                for_orders.restart()  # every task from its changelog alone
                for_stock.restart()
            if step.service == "orders":
                got.append(_decide(for_orders, step, "orders.replies"))
            else:
                got.append(_decide(for_stock, step, "inventory.replies"))
    assert got == [s.want for s in steps]


def delivery(op: str, delivery_id: int, sku: str, quantity: int) -> bytes:
    """A Debezium change record of the warehouse's deliveries table, as nerve cdc writes it."""
    row = {"delivery_id": delivery_id, "sku": sku, "quantity": quantity}
    source = {"connector": "postgresql", "name": "legacy", "db": "warehouse",
              "schema": "public", "table": "deliveries", "ts_ms": 0, "snapshot": "false",
              "lsn": delivery_id}  # fmt: skip
    before, after = (row, None) if op == "d" else (None, row)
    return json.dumps({"op": op, "before": before, "after": after, "source": source,
                       "ts_ms": 0}).encode()  # fmt: skip


def test_receiving_restocks_each_delivery_once_and_says_what_it_does_not_apply(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A delivery already there (a snapshot read) or new (an insert) becomes one RestockItem;
    a delivery changed or deleted afterwards changes no stock, and the log says so."""
    records = [delivery("r", 1, "sku-1", 7), delivery("c", 2, "sku-2", 3),
               delivery("u", 2, "sku-2", 4), delivery("d", 1, "sku-1", 7),
               delivery("c", 3, "sku-1", 2)]  # fmt: skip
    with Platform() as platform:
        producer = Producer({"bootstrap.servers": platform.bootstrap})
        for n, record in enumerate(records):
            key = json.dumps({"delivery_id": [1, 2, 2, 1, 3][n]}).encode()
            producer.produce(DeliveryChanged.topic, key=key, value=record)
        producer.flush(10)
        with caplog.at_level(logging.WARNING, logger="nerve.demo.shop.receiving"):
            platform.run(receiving)
            restocks = platform.expect(RestockItem, count=3)
            time.sleep(1.0)  # anything more would come now
            assert len(platform.expect(RestockItem, count=3)) == 3
    assert sorted((r.sku, r.quantity) for r in restocks) == [
        ("sku-1", 2), ("sku-1", 7), ("sku-2", 3)
    ]  # fmt: skip
    said = [r.getMessage() for r in caplog.records if r.name == "nerve.demo.shop.receiving"]
    assert any("delivery 2 of sku-2 was changed" in line for line in said), said
    assert any("delivery 1 of sku-1 was deleted" in line for line in said), said


@pytest.mark.slow
def test_check_passes_with_orders_killed_mid_stream() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nerve", "demo", "shop", "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "killed orders (SIGKILL) after" in done.stdout
    assert "killed nerve cdc (SIGKILL) after" in done.stdout
    assert "18 deliveries recorded in the warehouse's database" in done.stdout
    assert "restocks: 18 of 140 units, from the warehouse's database" in done.stdout
    assert "60 orders: 26 cancelled, 34 paid in the read model" in done.stdout
    assert "payments: 34 charged" in done.stdout
    assert "reorder (added later):" in done.stdout
    assert "analysis (added later): 26 failed purchases" in done.stdout
    assert "check passed" in done.stdout


def test_the_saga_sees_every_order_through_as_the_oracle_says() -> None:
    """The four aggregate services and the saga in test drivers, each emitted event handed to
    the driver that streams its topic, until nothing moves; then the unconfirmed payments'
    deadlines pass: every order, payment, shipment and SKU ends as the oracle says."""
    from datetime import datetime, timedelta

    from nerve.demo.shop.payments import payments
    from nerve.demo.shop.shipping import shipping

    lanes, oracle = workload.plan(30)
    steps = [s for group in itertools.zip_longest(*lanes) for s in group if s is not None]
    drivers = {s.name: TestDriver(s, partitions=4) for s in (orders, inventory, payments,
                                                              shipping)}  # fmt: skip
    by_topic = {t: d for d in drivers.values() for t in d.topology.sources_of_topic}

    def settle() -> None:
        moved = True
        while moved:
            moved = False
            for driver in drivers.values():
                for event in driver.emitted():
                    target = by_topic.get(event.topic)
                    if target is not None:
                        target.send(event.model_copy(deep=True))
                        moved = True

    try:
        for step in steps:
            # A delivery reaches inventory as the restock receiving makes of it.
            service = "inventory" if step.service == "warehouse" else step.service
            assert _decide(drivers[service], step, f"{service}.replies") == step.want
            settle()
        drivers["orders"].punctuate(datetime.now() + timedelta(hours=1))
        settle()
        held = _aggregates(drivers["orders"], "order")
        paid = _aggregates(drivers["payments"], "payment")
        shipped = _aggregates(drivers["shipping"], "shipment")
        stock = _aggregates(drivers["inventory"], "stock")
    finally:
        for driver in drivers.values():
            driver.engine.close()
    assert {k: v[1].status for k, v in held.items()} == {
        k: o.status for k, o in oracle.orders.items()
    }
    assert {k: (v[1].status, v[0]) for k, v in paid.items()} == {
        k: o.payment for k, o in oracle.orders.items() if o.payment is not None
    }
    assert set(shipped) == {k for k, o in oracle.orders.items() if o.status == "paid"}
    assert {k: (v[1].available, v[1].reserved, v[0]) for k, v in stock.items()} == {
        k: (s.available, s.reserved, s.version) for k, s in oracle.stock.items()
    }
