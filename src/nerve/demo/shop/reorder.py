"""reorder (added later, nothing else changed for it): asks the supplier for more of a SKU when
a reservation takes its stock below the reorder level, from the ``StockReserved`` events
inventory already emits (each says what is left). One request per fall through the level, not
one per reservation below it; exactly-once, so a crash repeats none.
"""

from __future__ import annotations

from nerve import Service
from nerve.demo.shop.events import ReorderRequested, StockReserved

LEVEL = 5  # reorder when fewer than this are left

reorder = Service(
    "reorder",
    description="Reorders a SKU from the supplier when its stock runs low",
    owner="purchasing-team",
    exactly_once=True,
)


def falls_below(event: StockReserved) -> bool:
    return event.available < LEVEL <= event.available + event.quantity


@reorder.on(StockReserved)
def low_stock(event: StockReserved) -> ReorderRequested | None:
    if not falls_below(event):
        return None
    return ReorderRequested(sku=event.sku, available=event.available, order_id=event.order_id)
