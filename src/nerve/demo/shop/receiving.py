"""receiving: brings the goods the warehouse receives into the shop's inventory.

The warehouse records each delivery in its own "legacy" PostgreSQL database (a row of
``deliveries``), which no shop service ever queries. ``nerve cdc postgres`` (or Debezium: the
same envelope) brings each row change onto ``legacy.public.deliveries``; this service turns a
new delivery into a ``RestockItem`` command for the SKU's inventory aggregate. Exactly-once: a
delivery restocks once, even when this service or the capture is killed mid-stream.

A delivery changed or deleted afterwards (a miscount put right in the warehouse's system) is
not a new delivery: it is said in the log, for the warehouse team to correct with a restock,
and changes no stock.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel

from nerve import Service
from nerve.connect import ChangeEvent
from nerve.demo.shop.events import RestockItem

TOPIC_PREFIX = "legacy"
TABLE = "public.deliveries"
log = logging.getLogger("nerve.demo.shop.receiving")


class Delivery(BaseModel):
    """A row of the warehouse's ``deliveries`` table."""

    delivery_id: int
    sku: str
    quantity: int


class DeliveryChanged(ChangeEvent[Delivery], topic=f"{TOPIC_PREFIX}.{TABLE}"):
    """A row change of the warehouse's deliveries table."""


receiving = Service(
    "receiving",
    description="Restocks the inventory with the deliveries the warehouse's database records",
    owner="warehouse-team",
    exactly_once=True,
)


@receiving.on(DeliveryChanged)
def received(event: DeliveryChanged) -> RestockItem | None:
    row = event.row
    if event.op in ("c", "r"):  # a delivery made, or already there when the capture began
        return RestockItem(sku=row.sku, quantity=row.quantity)
    what = "deleted" if event.deleted else "changed"
    log.warning(
        "delivery %s of %s was %s in the warehouse's database: not applied to the stock "
        "(restock or release by hand if the count was wrong)",
        row.delivery_id, row.sku, what,
    )  # fmt: skip
    return None
