"""orders: an event-sourced aggregate per order, the order saga, and two read models.

An order is placed, then paid or cancelled, once: a command the order's state does not allow
(paying a cancelled order, cancelling a paid one, a payment of the wrong amount) is
``Rejected`` with its reason, and one sent with a stale ``expected_version`` is refused as a
conflict. The decision, its events, the order's new state and the command's offset commit in
one transaction (exactly-once), so a crash never repeats a decision nor loses one.

The saga (``OrderFlow``) takes a placed order through the other services: reserve its stock
(inventory), charge its payment (payments), then pay the order and ship it (shipping). Stock
short: the order is cancelled. Payment declined, or not confirmed within ``PAY_WITHIN``
seconds (``NERVE_DEMO_SHOP_PAY_WITHIN``, default 20): the order is cancelled, its stock
released (the compensation remembered when it was reserved) and, for the deadline, the payment
voided. Its state, deadline and compensation commit with its commands, so a SIGKILL repeats
or loses none.

The projections fold the order events into SQLite in ``NERVE_DEMO_SHOP_DATA`` (default ``.``):
``orders.db`` (orders by status) and ``customers.db`` (orders per customer), each with its
position in the same database transaction: a SIGKILL never applies an event twice or skips one.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import cast

from nerve import Event, Service
from nerve.demo.shop.events import (
    CancelOrder,
    ChargePayment,
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
    PaymentCharged,
    PaymentDeclined,
    PayOrder,
    PlaceOrder,
    ReleaseStock,
    ReserveStock,
    ShipOrder,
    StockReserved,
    StockShort,
    VoidPayment,
)
from nerve.es import Aggregate, Rejected, Saga, command, step, timeout

orders = Service(
    "orders",
    description="Takes orders and sees each through stock, payment and shipping",
    owner="shop-team",
    exactly_once=True,
)

PAY_WITHIN = float(os.environ.get("NERVE_DEMO_SHOP_PAY_WITHIN", "20"))


@orders.aggregate
class Order(Aggregate, key="order_id"):
    status: str = "new"  # new, placed, paid, cancelled
    customer: str = ""
    sku: str = ""
    quantity: int = 0
    total: int = 0
    reason: str = ""

    @command
    def place(self, cmd: PlaceOrder) -> OrderPlaced:
        if self.status != "new":
            raise Rejected(f"order {cmd.order_id} is already {self.status}")
        if cmd.quantity <= 0 or cmd.total <= 0:
            raise Rejected("an order needs a positive quantity and total")
        return OrderPlaced(**cmd.model_dump(exclude={"meta"}))

    @command
    def pay(self, cmd: PayOrder) -> OrderPaid:
        if self.status != "placed":
            raise Rejected(f"cannot pay an order that is {self.status}")
        if cmd.amount != self.total:
            raise Rejected(f"paid {cmd.amount}, the order's total is {self.total}")
        return OrderPaid(order_id=cmd.order_id, customer=self.customer, amount=cmd.amount)

    @command
    def cancel(self, cmd: CancelOrder) -> OrderCancelled:
        if self.status != "placed":
            raise Rejected(f"cannot cancel an order that is {self.status}")
        return OrderCancelled(order_id=cmd.order_id, customer=self.customer, reason=cmd.reason)

    def apply(self, event: Event) -> None:
        if isinstance(event, OrderPlaced):
            self.status, self.customer, self.sku = "placed", event.customer, event.sku
            self.quantity, self.total = event.quantity, event.total
        elif isinstance(event, OrderPaid):
            self.status = "paid"
        elif isinstance(event, OrderCancelled):
            self.status, self.reason = "cancelled", event.reason


@orders.saga
class OrderFlow(Saga, key="order_id"):
    """Placed -> stock reserved -> payment charged -> paid and shipped; or cancelled, with
    what was done undone. Stock and payment events are keyed otherwise (by SKU) or on topics
    of their own; the saga re-keys them by their ``order_id``."""

    customer: str = ""
    sku: str = ""
    quantity: int = 0
    total: int = 0
    card: str = ""

    @step(OrderPlaced, start=True)
    def placed(self, event: OrderPlaced) -> ReserveStock:
        self.customer, self.sku, self.quantity = event.customer, event.sku, event.quantity
        self.total, self.card = event.total, event.card
        return ReserveStock(sku=self.sku, order_id=self.key, quantity=self.quantity)

    @step(StockShort)
    def short(self, event: StockShort) -> CancelOrder:
        self.finish()
        return CancelOrder(order_id=self.key, reason="out of stock")

    @step(StockReserved)
    def reserved(self, event: StockReserved) -> ChargePayment:
        self.undo_with(ReleaseStock(sku=self.sku, order_id=self.key))
        self.schedule("payment", PAY_WITHIN)
        return ChargePayment(order_id=self.key, customer=self.customer, amount=self.total,
                             card=self.card)  # fmt: skip

    @step(PaymentDeclined)
    def declined(self, event: PaymentDeclined) -> list[CancelOrder | ReleaseStock]:
        self.cancel("payment")
        self.finish()
        return [CancelOrder(order_id=self.key, reason="payment declined"), *self._undone()]

    @step(PaymentCharged)
    def charged(self, event: PaymentCharged) -> list[PayOrder | ShipOrder]:
        self.cancel("payment")
        self.finish()
        ship = ShipOrder(order_id=self.key, customer=self.customer, sku=self.sku,
                         quantity=self.quantity)  # fmt: skip
        return [PayOrder(order_id=self.key, amount=event.amount), ship]

    def _undone(self) -> list[ReleaseStock]:
        """The compensations remembered (only ever a stock release here)."""
        return cast(list[ReleaseStock], self.compensate())

    @timeout("payment")
    def unpaid(self) -> list[CancelOrder | VoidPayment | ReleaseStock]:
        # A charge that still comes finds the instance gone (passed over) and the payment
        # voided before it: payments refunds it (one key, one partition, in order).
        self.finish()
        reason = f"not paid within {PAY_WITHIN:g} s"
        return [CancelOrder(order_id=self.key, reason=reason),
                VoidPayment(order_id=self.key, reason=reason), *self._undone()]  # fmt: skip


def data_dir() -> Path:
    return Path(os.environ.get("NERVE_DEMO_SHOP_DATA", "."))


# An order's events are on three topics, read in no fixed order between them: a row's `step`
# (1 placed, 2 paid or cancelled) keeps the furthest one, whichever arrives first.
UPSERT = """
insert into orders (order_id, customer, sku, quantity, total, status, step)
values (:order_id, :customer, :sku, :quantity, :total, :status, :step)
on conflict (order_id) do update set
    customer = coalesce(excluded.customer, customer),
    sku = coalesce(excluded.sku, sku),
    quantity = coalesce(excluded.quantity, quantity),
    total = coalesce(excluded.total, total),
    status = case when excluded.step > step then excluded.status else status end,
    step = max(step, excluded.step)
"""


@orders.projection(OrderPlaced, OrderPaid, OrderCancelled, database=data_dir() / "orders.db")
def orders_by_status(
    event: OrderPlaced | OrderPaid | OrderCancelled, db: sqlite3.Connection
) -> None:
    db.execute(
        "create table if not exists orders (order_id text primary key, customer text, "
        "sku text, quantity int, total int, status text not null, step int not null)"
    )
    row: dict[str, object] = {"order_id": event.order_id, "customer": None, "sku": None,
                              "quantity": None, "total": None}  # fmt: skip
    if isinstance(event, OrderPlaced):
        row.update(event.model_dump(exclude={"meta", "card"}), status="placed", step=1)
    elif isinstance(event, OrderPaid):
        row.update(status="paid", step=2)
    else:
        row.update(status="cancelled", step=2)
    db.execute(UPSERT, row)


# Counters per customer: each event adds to its own columns, so the topics' order between them
# does not matter; the projection's position makes each event count once.
COUNT = """
insert into customers (customer, placed, paid, cancelled, spent)
values (:customer, :placed, :paid, :cancelled, :spent)
on conflict (customer) do update set
    placed = placed + excluded.placed,
    paid = paid + excluded.paid,
    cancelled = cancelled + excluded.cancelled,
    spent = spent + excluded.spent
"""


@orders.projection(OrderPlaced, OrderPaid, OrderCancelled, database=data_dir() / "customers.db")
def orders_by_customer(
    event: OrderPlaced | OrderPaid | OrderCancelled, db: sqlite3.Connection
) -> None:
    db.execute(
        "create table if not exists customers (customer text primary key, placed int not null, "
        "paid int not null, cancelled int not null, spent int not null)"
    )
    row = {"customer": event.customer, "placed": 0, "paid": 0, "cancelled": 0, "spent": 0}
    if isinstance(event, OrderPlaced):
        row["placed"] = 1
    elif isinstance(event, OrderPaid):
        row.update(paid=1, spent=event.amount)
    else:
        row["cancelled"] = 1
    db.execute(COUNT, row)
