"""analysis (added later, nothing else changed for it): the failed purchases, from the
``OrderCancelled`` events orders already emits, kept in SQLite (``failures.db`` in
``NERVE_DEMO_SHOP_DATA``) by order with its customer and reason, for questions such as which
reason loses the most orders and which customers are hit most. A projection: its position is
in the same database transaction, so each cancellation counts once.
"""

from __future__ import annotations

import sqlite3

from nerve import Service
from nerve.demo.shop.events import OrderCancelled
from nerve.demo.shop.orders import data_dir

analysis = Service("analysis", description="Why purchases fail, and for whom", owner="growth-team")


@analysis.projection(OrderCancelled, database=data_dir() / "failures.db")
def failed_purchases(event: OrderCancelled, db: sqlite3.Connection) -> None:
    db.execute(
        "create table if not exists failures (order_id text primary key, customer text not null, "
        "reason text not null)"
    )
    db.execute(
        "insert into failures values (?, ?, ?)", (event.order_id, event.customer, event.reason)
    )
