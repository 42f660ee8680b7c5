"""The warehouse's own system, as the shop demo plays it: a "legacy" PostgreSQL database in
which each delivery of goods is a row of ``deliveries``. The shop never queries it; its
changes reach the shop through change data capture (:mod:`nerve.demo.shop.receiving`).

PostgreSQL comes from the machine (Debian: ``postgresql-15`` and ``postgresql-15-wal2json``),
run in a temporary folder for the demo's life, never the machine's own cluster.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from nerve.demo.shop.receiving import TABLE

SCHEMA = f"""
CREATE TABLE {TABLE} (
    delivery_id serial PRIMARY KEY,
    sku text NOT NULL,
    quantity int NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
)
"""


class Warehouse:
    """The warehouse's database: records deliveries and remembers what it recorded, so the
    check knows what the inventory must have received."""

    def __init__(self, dsn: str) -> None:
        import psycopg

        self.db: Any = psycopg.connect(dsn, autocommit=True)
        self.delivered: Counter[str] = Counter()  # sku -> units
        self.deliveries: Counter[str] = Counter()  # sku -> deliveries

    def create(self) -> None:
        self.db.execute(SCHEMA)

    def deliver(self, sku: str, quantity: int) -> None:
        self.db.execute(
            f"INSERT INTO {TABLE} (sku, quantity) VALUES (%s, %s)",
            (sku, quantity),
        )
        self.delivered[sku] += quantity
        self.deliveries[sku] += 1

    def close(self) -> None:
        self.db.close()
