"""The shop demo: its oracle, its two aggregates in the test driver against that oracle
(restarted from their changelogs midway), and ``nerve demo shop --check`` end to end (orders
SIGKILLed mid-stream and restarted; outcomes, aggregates folded from their events and the
SQLite read model must equal the oracle)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections import Counter

import pytest

from nerve.demo.shop import workload
from nerve.demo.shop.inventory import Stock, inventory
from nerve.demo.shop.orders import Order, orders
from nerve.es.node import EXPECTED_VERSION, REPLY_TO
from nerve.streams.driver import TestDriver


def test_the_workload_is_reproducible_and_exercises_every_outcome() -> None:
    first, oracle = workload.plan(60)
    second, _ = workload.plan(60)
    flat = [type(s.command).__name__ + s.want for lane in first for s in lane]
    assert flat == [type(s.command).__name__ + s.want for lane in second for s in lane]
    assert set(oracle.outcomes) == {"accepted", "rejected", "conflict"}
    assert set(oracle.by_status()) == {"placed", "paid", "cancelled"}
    refused = Counter(type(s.command).__name__ for lane in first for s in lane
                      if s.want == "rejected")  # fmt: skip
    assert {"ReserveStock", "PayOrder", "CancelOrder", "PlaceOrder"} <= set(refused)
    assert all(s.available >= 0 for s in oracle.stock.values())
    for stock in oracle.stock.values():  # what is reserved is held by orders placed or paid
        assert all(oracle.orders[o].status in ("placed", "paid") for o in stock.reserved)


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


def test_the_aggregates_decide_as_the_oracle_across_a_restart() -> None:
    lanes, oracle = workload.plan(60)
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
        held_orders = _aggregates(for_orders, "order")
        held_stock = _aggregates(for_stock, "stock")
    assert got == [s.want for s in steps]
    assert len(held_orders) == len(oracle.orders)
    for order_id, want in oracle.orders.items():
        version, state = held_orders[order_id]
        assert isinstance(state, Order)
        assert (state.status, version, state.total) == (want.status, want.version, want.total)
    for sku, stock in oracle.stock.items():
        version, found = held_stock[sku]
        assert isinstance(found, Stock)
        assert (found.available, found.reserved, version) == (
            stock.available,
            stock.reserved,
            stock.version,
        )


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
    assert "60 orders: 26 cancelled, 25 paid, 9 placed in the read model" in done.stdout
    assert "check passed" in done.stdout
