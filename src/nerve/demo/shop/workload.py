"""The shop's workload and its oracle: per SKU a lane of steps (a delivery of its opening stock,
then orders placed, with more deliveries, invalid commands and stale versions among them),
each command with the outcome it must get and the version it expects; and what every order,
payment, shipment and SKU must end as once the order saga has seen each order through.
Deliveries are not the driver's commands: the warehouse records them in its own database, and
they reach inventory as restocks through change data capture (:mod:`nerve.demo.shop.receiving`).

The oracle is the shop's rules stated again in plain Python, apart from the services. An
order's fate is fixed by the order alone, whatever the timing between the saga's steps, the
lanes and a killed service: its card says whether the payment is charged, declined or waits for
a confirmation that never comes (cancelled at the saga's deadline), and a bulk order asks for
more than its SKU ever holds (out of stock). Every other order finds stock: a lane starts its
SKU with one more than all its other orders together ask. The driver's own commands are ones
whose outcome does not depend on where the saga is: a second placing (rejected), a placing with
version 0 (stale), a payment of the wrong amount, a release for no order, an empty restock
(rejected).
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from nerve.demo.shop.events import PayOrder, PlaceOrder, ReleaseStock, RestockItem
from nerve.demo.shop.payments import DECLINED, NEEDS_CONFIRMATION
from nerve.service.events import Event

RESTOCK = 2
RESTOCK_EVERY = 5  # its SKU gets a delivery after every 5th order of a lane
LIVE_STOCK = 30  # a live lane's first stock (it runs short now and then)
CARD = "4242"
# fate -> (card, how often)
FATES = {"paid": (CARD, 0.6), "declined": (DECLINED, 0.15),
         "unconfirmed": (NEEDS_CONFIRMATION, 0.12), "short": (CARD, 0.13)}  # fmt: skip
REASONS = {"declined": "payment declined", "short": "out of stock"}  # unconfirmed: the deadline's


@dataclass
class Step:
    """One command, the version it expects (None: any), and the outcome it must get."""

    # "orders" or "inventory" (the driver's commands), or "warehouse": a delivery recorded in
    # the warehouse's database (the command is the restock it must become, always accepted)
    service: str
    command: Event
    expected_version: int | None
    want: str  # accepted, rejected or conflict


@dataclass
class OrderState:
    customer: str
    sku: str
    quantity: int
    total: int
    fate: str  # paid, declined, unconfirmed, short

    @property
    def status(self) -> str:
        return "paid" if self.fate == "paid" else "cancelled"

    @property
    def payment(self) -> tuple[str, int] | None:
        """The payment's end: (status, version), None when there is none."""
        return {"paid": ("charged", 1), "declined": ("declined", 1),
                "unconfirmed": ("voided", 2)}.get(self.fate)  # fmt: skip


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

    def by_customer(self) -> dict[str, tuple[int, int, int, int]]:
        """customer -> (placed, paid, cancelled, spent)."""
        out: dict[str, list[int]] = {}
        for order in self.orders.values():
            row = out.setdefault(order.customer, [0, 0, 0, 0])
            row[0] += 1
            if order.status == "paid":
                row[1] += 1
                row[3] += order.total
            else:
                row[2] += 1
        return {c: (r[0], r[1], r[2], r[3]) for c, r in out.items()}

    def failures(self, unpaid_reason: str) -> dict[str, tuple[str, str]]:
        """order id -> (customer, reason) of every cancelled order."""
        return {
            order_id: (o.customer, REASONS.get(o.fate, unpaid_reason))
            for order_id, o in self.orders.items()
            if o.status == "cancelled"
        }


def skus(count: int) -> list[str]:
    return [f"sku-{i}" for i in range(1, count + 1)]


def _fate(rng: random.Random) -> str:
    roll, edge = rng.random(), 0.0
    for fate, (_, share) in FATES.items():
        edge += share
        if roll < edge:
            return fate
    return "paid"


def lane(
    sku: str, oracle: Oracle, seed: int, orders: int | None = None, prefix: str = "o"
) -> Iterator[Step]:
    """The commands of one SKU's lane (endless without ``orders``, its stock then not enough
    for every order), deciding each in ``oracle`` as it is planned."""
    rng = random.Random(f"{seed}-{sku}")
    price = 100 * (int(sku.rsplit("-", 1)[1]) + 2)
    stock = oracle.stock.setdefault(sku, StockState())
    numbers = itertools.count(1) if orders is None else range(1, orders + 1)
    planned: Iterable[tuple[int, str, int, str]] = (
        (n, _fate(rng), rng.randint(1, 3), f"c{rng.randint(1, 12)}") for n in numbers
    )
    if orders is None:
        first, bulk = LIVE_STOCK, 10_000
    else:  # one more than all its orders but the bulk ones ask: they always find stock
        planned = list(planned)
        first = 1 + sum(q for _, fate, q, _ in planned if fate != "short")
        bulk = first + RESTOCK * (orders // RESTOCK_EVERY) + 1  # more than it ever holds

    def step(service: str, command: Event, expected: int | None, want: str) -> Step:
        oracle.outcomes[want] += 1
        return Step(service, command, expected, want)

    def delivery(quantity: int) -> Step:
        stock.available += quantity
        stock.version += 1
        return step("warehouse", RestockItem(sku=sku, quantity=quantity), None, "accepted")

    yield delivery(first)
    for n, fate, quantity, customer in planned:
        order_id = f"{prefix}-{sku}-{n}"
        if fate == "short":
            quantity = bulk
        order = oracle.orders[order_id] = OrderState(customer, sku, quantity, quantity * price,
                                                     fate)  # fmt: skip
        place = PlaceOrder(order_id=order_id, customer=customer, sku=sku, quantity=quantity,
                           total=order.total, card=FATES[fate][0])  # fmt: skip
        yield step("orders", place, 0, "accepted")
        stock.version += 1  # reserved, or short
        if fate == "paid":
            stock.available -= quantity
            stock.reserved[order_id] = quantity
        elif fate != "short":
            stock.version += 1  # reserved, then released
        roll = rng.random()
        if roll < 0.15:  # placed a second time: whatever the saga did, it is not new
            twice = PlaceOrder(**place.model_dump(exclude={"meta"}))
            yield step("orders", twice, None, "rejected")
        elif roll < 0.3:  # a writer that last saw the order new
            stale = PlaceOrder(**place.model_dump(exclude={"meta"}))
            yield step("orders", stale, 0, "conflict")
        elif roll < 0.45:  # the wrong amount is refused in any state
            wrong = PayOrder(order_id=order_id, amount=order.total - 1)
            yield step("orders", wrong, None, "rejected")
        elif roll < 0.5:
            nobody = ReleaseStock(sku=sku, order_id=f"{order_id}-unknown")
            yield step("inventory", nobody, None, "rejected")
        elif roll < 0.55:
            empty = RestockItem(sku=sku, quantity=0)
            yield step("inventory", empty, None, "rejected")
        if n % RESTOCK_EVERY == 0:
            yield delivery(RESTOCK)


def plan(orders: int, sku_count: int = 6, seed: int = 11) -> tuple[list[list[Step]], Oracle]:
    """The fixed workload of ``--check``: ``orders`` orders spread over ``sku_count`` lanes."""
    oracle = Oracle()
    per_lane = [orders // sku_count + (1 if i < orders % sku_count else 0)
                for i in range(sku_count)]  # fmt: skip
    lanes = [
        list(lane(sku, oracle, seed, n)) for sku, n in zip(skus(sku_count), per_lane, strict=True)
    ]
    return lanes, oracle
