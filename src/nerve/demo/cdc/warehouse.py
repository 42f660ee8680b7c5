"""warehouse: reads the legacy database's stock table as change events and publishes what the
rest of the system should know: each SKU's stock level, and when a SKU runs out.

The rows come from ``nerve cdc postgres`` (or Debezium: the same envelope) on
``legacy.public.stock``; the table has ``REPLICA IDENTITY FULL``, so an update carries the row
as it was, which tells a SKU that just ran out from one that stays out. Exactly-once: each
change makes its events once, even when this service is killed mid-stream.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from nerve import Event, Service
from nerve.connect import ChangeEvent


class Stock(BaseModel):
    sku: str
    quantity: int


class StockChanged(ChangeEvent[Stock], topic="legacy.public.stock"):
    """A row change of the legacy stock table."""


class StockLevel(Event, topic="warehouse.stock-levels", key="sku"):
    """A SKU's quantity now (``listed`` false once the legacy app deleted it)."""

    sku: str
    quantity: int
    listed: bool = True


class OutOfStock(Event, topic="warehouse.out-of-stock", key="sku"):
    """A SKU that had stock has none."""

    sku: str


warehouse = Service(
    "warehouse",
    description="Publishes stock levels and out-of-stock alerts from the legacy database",
    owner="warehouse-team",
    exactly_once=True,
)


@warehouse.on(StockChanged)
def changed(event: StockChanged) -> Iterator[StockLevel | OutOfStock]:
    if event.deleted:
        yield StockLevel(sku=event.row.sku, quantity=0, listed=False)
        return
    after = event.after
    assert after is not None
    yield StockLevel(sku=after.sku, quantity=after.quantity)
    had = event.before.quantity if event.before is not None else None
    if after.quantity == 0 and (had is None or had > 0):
        yield OutOfStock(sku=after.sku)
