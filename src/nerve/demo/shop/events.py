"""The shop's commands and events. Commands are keyed by their aggregate's key (an order's id,
a SKU), so every command of one aggregate reaches the one replica that owns it."""

from __future__ import annotations

from nerve import Event

# -- orders ---------------------------------------------------------------------------------


class PlaceOrder(Event, topic="shop.orders.place", key="order_id", partitions=4):
    order_id: str
    customer: str
    sku: str
    quantity: int
    total: int  # cents


class PayOrder(Event, topic="shop.orders.pay", key="order_id", partitions=4):
    order_id: str
    amount: int


class CancelOrder(Event, topic="shop.orders.cancel", key="order_id", partitions=4):
    order_id: str
    reason: str


class OrderPlaced(Event, topic="shop.orders.placed", key="order_id", partitions=4):
    order_id: str
    customer: str
    sku: str
    quantity: int
    total: int


class OrderPaid(Event, topic="shop.orders.paid", key="order_id", partitions=4):
    order_id: str
    amount: int


class OrderCancelled(Event, topic="shop.orders.cancelled", key="order_id", partitions=4):
    order_id: str
    reason: str


# -- inventory ------------------------------------------------------------------------------


class RestockItem(Event, topic="shop.inventory.restock", key="sku", partitions=4):
    sku: str
    quantity: int


class ReserveStock(Event, topic="shop.inventory.reserve", key="sku", partitions=4):
    sku: str
    order_id: str
    quantity: int


class ReleaseStock(Event, topic="shop.inventory.release", key="sku", partitions=4):
    sku: str
    order_id: str


class StockAdded(Event, topic="shop.inventory.added", key="sku", partitions=4):
    sku: str
    quantity: int


class StockReserved(Event, topic="shop.inventory.reserved", key="sku", partitions=4):
    sku: str
    order_id: str
    quantity: int


class StockReleased(Event, topic="shop.inventory.released", key="sku", partitions=4):
    sku: str
    order_id: str
    quantity: int
