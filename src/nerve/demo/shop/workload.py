"""The shop's workload and its oracle: per SKU a lane of commands (restocks, then orders placed,
stock reserved, orders paid or cancelled and their stock released, with invalid transitions and
stale versions among them), each with the outcome it must get and the version it expects.

The oracle is the shop's rules stated again in plain Python, apart from the aggregates: it
decides each command as it plans it. The commands of one lane go one at a time (each after the
last one's answer) and every aggregate belongs to one lane (an order to its SKU's), so the
outcomes are fixed whatever the timing between lanes: a run must match them exactly.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from nerve.demo.shop.events import (
    CancelOrder,
    PayOrder,
    PlaceOrder,
    ReleaseStock,
    ReserveStock,
    RestockItem,
)
from nerve.service.events import Event

INITIAL_STOCK = 8
RESTOCK = 4
RESTOCK_EVERY = 5  # a lane restocks its SKU after every 5th order


@dataclass
class Step:
    """One command, the version it expects (None: any), and the outcome it must get."""

    service: str  # "orders" or "inventory"
    command: Event
    expected_version: int | None
    want: str  # accepted, rejected or conflict


@dataclass
class OrderState:
    status: str = "new"
    version: int = 0
    total: int = 0
    quantity: int = 0


@dataclass
class StockState:
    available: int = 0
    reserved: dict[str, int] = field(default_factory=dict)
    version: int = 0


@dataclass
class Oracle:
    """What every aggregate must end as, by the rules alone."""

    orders: dict[str, OrderState] = field(default_factory=dict)
    stock: dict[str, StockState] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)  # how many commands get each

    def by_status(self) -> Counter[str]:
        return Counter(o.status for o in self.orders.values())


def skus(count: int) -> list[str]:
    return [f"sku-{i}" for i in range(1, count + 1)]


def lane(
    sku: str, oracle: Oracle, seed: int, orders: int | None = None, prefix: str = "o"
) -> Iterator[Step]:
    """The commands of one SKU's lane (endless without ``orders``), deciding each in
    ``oracle`` as it is planned."""
    rng = random.Random(f"{seed}-{sku}")
    price = 100 * (int(sku.rsplit("-", 1)[1]) + 2)
    stock = oracle.stock.setdefault(sku, StockState())

    def step(service: str, command: Event, expected: int | None, want: str) -> Step:
        oracle.outcomes[want] += 1
        return Step(service, command, expected, want)

    def restock(quantity: int, expected: int | None) -> Step:
        stock.available += quantity
        stock.version += 1
        return step("inventory", RestockItem(sku=sku, quantity=quantity), expected, "accepted")

    yield restock(INITIAL_STOCK, 0)
    for n in itertools.count(1):
        if orders is not None and n > orders:
            return
        order_id = f"{prefix}-{sku}-{n}"
        order = oracle.orders[order_id] = OrderState()
        order.quantity = rng.randint(1, 3)
        order.total = order.quantity * price
        customer = f"c{rng.randint(1, 12)}"
        place = PlaceOrder(order_id=order_id, customer=customer, sku=sku,
                           quantity=order.quantity, total=order.total)  # fmt: skip
        order.status, order.version = "placed", 1
        yield step("orders", place, 0, "accepted")
        reserve = ReserveStock(sku=sku, order_id=order_id, quantity=order.quantity)
        if order.quantity > stock.available:
            yield step("inventory", reserve, stock.version, "rejected")  # out of stock
            order.status, order.version = "cancelled", 2
            cancel = CancelOrder(order_id=order_id, reason="out of stock")
            yield step("orders", cancel, 1, "accepted")
        else:
            stock.available -= order.quantity
            stock.reserved[order_id] = order.quantity
            stock.version += 1
            yield step("inventory", reserve, stock.version - 1, "accepted")
            fate = rng.random()
            if fate < 0.55:  # paid
                if rng.random() < 0.25:
                    wrong = PayOrder(order_id=order_id, amount=order.total - 1)
                    yield step("orders", wrong, 1, "rejected")
                if rng.random() < 0.2:  # a writer that last saw the order new
                    stale = PayOrder(order_id=order_id, amount=order.total)
                    yield step("orders", stale, 0, "conflict")
                order.status, order.version = "paid", 2
                yield step("orders", PayOrder(order_id=order_id, amount=order.total), 1,
                           "accepted")  # fmt: skip
                if rng.random() < 0.3:
                    late = CancelOrder(order_id=order_id, reason="changed my mind")
                    yield step("orders", late, None, "rejected")  # already paid
            elif fate < 0.85:  # cancelled by the customer, the stock released
                order.status, order.version = "cancelled", 2
                cancel = CancelOrder(order_id=order_id, reason="changed my mind")
                yield step("orders", cancel, 1, "accepted")
                stock.available += stock.reserved.pop(order_id)
                stock.version += 1
                release = ReleaseStock(sku=sku, order_id=order_id)
                yield step("inventory", release, stock.version - 1, "accepted")
                if rng.random() < 0.3:
                    late_pay = PayOrder(order_id=order_id, amount=order.total)
                    yield step("orders", late_pay, None, "rejected")  # cancelled
                if rng.random() < 0.3:
                    again = ReleaseStock(sku=sku, order_id=order_id)
                    yield step("inventory", again, None, "rejected")  # nothing held
            elif rng.random() < 0.5:  # left placed, unpaid; placed a second time
                twice = PlaceOrder(**place.model_dump(exclude={"meta"}))  # a command of its own
                yield step("orders", twice, None, "rejected")
        if n % RESTOCK_EVERY == 0:
            yield restock(RESTOCK, None)


def plan(orders: int, sku_count: int = 6, seed: int = 11) -> tuple[list[list[Step]], Oracle]:
    """The fixed workload of ``--check``: ``orders`` orders spread over ``sku_count`` lanes."""
    oracle = Oracle()
    per_lane = [orders // sku_count + (1 if i < orders % sku_count else 0)
                for i in range(sku_count)]  # fmt: skip
    lanes = [
        list(lane(sku, oracle, seed, n)) for sku, n in zip(skus(sku_count), per_lane, strict=True)
    ]
    return lanes, oracle
