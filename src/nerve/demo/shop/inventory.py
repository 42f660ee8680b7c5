"""inventory: an event-sourced aggregate per SKU, reserving stock for orders.

A reservation for more than is left becomes ``StockShort`` (an event, so the order's saga
hears of it and cancels the order), so stock never goes below zero; an order holds at most
one reservation per SKU, and releasing it (the order cancelled) puts its quantity back. Each
event says what is available after it. Exactly-once, like orders.
"""

from __future__ import annotations

from nerve import Event, Service
from nerve.demo.shop.events import (
    ReleaseStock,
    ReserveStock,
    RestockItem,
    StockAdded,
    StockReleased,
    StockReserved,
    StockShort,
)
from nerve.es import Aggregate, Rejected, command

inventory = Service(
    "inventory",
    description="Keeps stock per SKU; reserves it for orders",
    owner="warehouse-team",
    exactly_once=True,
)


@inventory.aggregate
class Stock(Aggregate, key="sku"):
    available: int = 0
    reserved: dict[str, int] = {}  # order id -> quantity held for it

    @command
    def restock(self, cmd: RestockItem) -> StockAdded:
        if cmd.quantity <= 0:
            raise Rejected("restock a positive quantity")
        left = self.available + cmd.quantity
        return StockAdded(sku=cmd.sku, quantity=cmd.quantity, available=left)

    @command
    def reserve(self, cmd: ReserveStock) -> StockReserved | StockShort:
        if cmd.order_id in self.reserved:
            raise Rejected(f"order {cmd.order_id} already holds {cmd.sku}")
        if cmd.quantity > self.available:
            return StockShort(sku=cmd.sku, order_id=cmd.order_id, quantity=cmd.quantity,
                              available=self.available)  # fmt: skip
        return StockReserved(sku=cmd.sku, order_id=cmd.order_id, quantity=cmd.quantity,
                             available=self.available - cmd.quantity)  # fmt: skip

    @command
    def release(self, cmd: ReleaseStock) -> StockReleased:
        if cmd.order_id not in self.reserved:
            raise Rejected(f"order {cmd.order_id} holds no {cmd.sku}")
        quantity = self.reserved[cmd.order_id]
        return StockReleased(sku=cmd.sku, order_id=cmd.order_id, quantity=quantity,
                             available=self.available + quantity)  # fmt: skip

    def apply(self, event: Event) -> None:
        if isinstance(event, StockAdded):
            self.available += event.quantity
        elif isinstance(event, StockReserved):
            self.available -= event.quantity
            self.reserved = {**self.reserved, event.order_id: event.quantity}
        elif isinstance(event, StockReleased):
            self.available += event.quantity
            self.reserved = {k: v for k, v in self.reserved.items() if k != event.order_id}
