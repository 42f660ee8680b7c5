"""orders: an event-sourced aggregate per order, and the orders-by-status read model.

An order is placed, then paid or cancelled, once: a command the order's state does not allow
(paying a cancelled order, cancelling a paid one, a payment of the wrong amount) is
``Rejected`` with its reason, and one sent with a stale ``expected_version`` is refused as a
conflict. The decision, its events, the order's new state and the command's offset commit in
one transaction (exactly-once), so a crash never repeats a decision nor loses one.

The projection folds the order events into SQLite (``NERVE_DEMO_SHOP_DB``, default
``shop-orders.db``) with its position in the same database transaction: a SIGKILL never
applies an event twice or skips one.
"""

from __future__ import annotations

import os
import sqlite3

from nerve import Event, Service
from nerve.demo.shop.events import (
    CancelOrder,
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
    PayOrder,
    PlaceOrder,
)
from nerve.es import Aggregate, Rejected, command

orders = Service(
    "orders",
    description="Takes orders: placed, then paid or cancelled",
    owner="shop-team",
    exactly_once=True,
)


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
        return OrderPaid(order_id=cmd.order_id, amount=cmd.amount)

    @command
    def cancel(self, cmd: CancelOrder) -> OrderCancelled:
        if self.status != "placed":
            raise Rejected(f"cannot cancel an order that is {self.status}")
        return OrderCancelled(order_id=cmd.order_id, reason=cmd.reason)

    def apply(self, event: Event) -> None:
        if isinstance(event, OrderPlaced):
            self.status, self.customer, self.sku = "placed", event.customer, event.sku
            self.quantity, self.total = event.quantity, event.total
        elif isinstance(event, OrderPaid):
            self.status = "paid"
        elif isinstance(event, OrderCancelled):
            self.status, self.reason = "cancelled", event.reason


DATABASE = os.environ.get("NERVE_DEMO_SHOP_DB", "shop-orders.db")

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


@orders.projection(OrderPlaced, OrderPaid, OrderCancelled, database=DATABASE)
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
        row.update(event.model_dump(exclude={"meta"}), status="placed", step=1)
    elif isinstance(event, OrderPaid):
        row.update(status="paid", step=2)
    else:
        row.update(status="cancelled", step=2)
    db.execute(UPSERT, row)
