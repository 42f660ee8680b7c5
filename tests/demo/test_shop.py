"""The shop demo: its oracle, the driver's commands against the aggregates in the test driver
(restarted from their changelogs midway), and ``nerve demo shop --check`` end to end (orders,
with its saga and projections, SIGKILLed mid-stream and restarted; outcomes, orders, payments,
shipments, stock, reorders and the three SQLite read models against the oracle and a fold of
the topics' history)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections import Counter

import pytest

from nerve.demo.shop import workload
from nerve.demo.shop.inventory import inventory
from nerve.demo.shop.orders import orders
from nerve.es.node import EXPECTED_VERSION, REPLY_TO
from nerve.streams.driver import TestDriver


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
            reply = f"{step.service}.replies"
            assert _decide(drivers[step.service], step, reply) == step.want
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
