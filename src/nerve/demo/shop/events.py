"""The shop's commands and events. Commands are keyed by their aggregate's key (an order's id,
a SKU), so every command of one aggregate reaches the one replica that owns it; every topic has
four partitions, so the order saga's inputs keyed by order id are co-partitioned."""

from __future__ import annotations

from nerve import Event

# -- orders ---------------------------------------------------------------------------------


class PlaceOrder(Event, topic="shop.orders.place", key="order_id", partitions=4):
    order_id: str
    customer: str
    sku: str
    quantity: int
    total: int  # cents
    card: str  # the card's last four digits: 0002 is declined, 3155 awaits a confirmation


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
    card: str


class OrderPaid(Event, topic="shop.orders.paid", key="order_id", partitions=4):
    order_id: str
    customer: str
    amount: int


class OrderCancelled(Event, topic="shop.orders.cancelled", key="order_id", partitions=4):
    order_id: str
    customer: str
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
    available: int  # after it


class StockReserved(Event, topic="shop.inventory.reserved", key="sku", partitions=4):
    sku: str
    order_id: str
    quantity: int
    available: int


class StockShort(Event, topic="shop.inventory.short", key="sku", partitions=4):
    """A reservation refused: fewer than ``quantity`` left (an event, not a rejection, so
    the order's saga hears of it)."""

    sku: str
    order_id: str
    quantity: int
    available: int


class StockReleased(Event, topic="shop.inventory.released", key="sku", partitions=4):
    sku: str
    order_id: str
    quantity: int
    available: int


# -- payments -------------------------------------------------------------------------------


class ChargePayment(Event, topic="shop.payments.charge", key="order_id", partitions=4):
    order_id: str
    customer: str
    amount: int
    card: str


class VoidPayment(Event, topic="shop.payments.void", key="order_id", partitions=4):
    order_id: str
    reason: str


class PaymentCharged(Event, topic="shop.payments.charged", key="order_id", partitions=4):
    order_id: str
    customer: str
    amount: int


class PaymentDeclined(Event, topic="shop.payments.declined", key="order_id", partitions=4):
    order_id: str
    customer: str
    amount: int
    reason: str


class PaymentPending(Event, topic="shop.payments.pending", key="order_id", partitions=4):
    """The card's bank wants the customer to confirm; nothing is charged until then."""

    order_id: str
    customer: str
    amount: int


class PaymentVoided(Event, topic="shop.payments.voided", key="order_id", partitions=4):
    order_id: str
    reason: str


class PaymentRefunded(Event, topic="shop.payments.refunded", key="order_id", partitions=4):
    order_id: str
    amount: int
    reason: str


# -- shipping -------------------------------------------------------------------------------


class ShipOrder(Event, topic="shop.shipping.ship", key="order_id", partitions=4):
    order_id: str
    customer: str
    sku: str
    quantity: int


class OrderShipped(Event, topic="shop.shipping.shipped", key="order_id", partitions=4):
    order_id: str
    customer: str
    sku: str
    quantity: int
    parcel: str


# -- added later: low-stock reorders --------------------------------------------------------


class ReorderRequested(Event, topic="shop.reorders", key="sku", partitions=4):
    """Stock of ``sku`` fell below the reorder level with ``order_id``'s reservation."""

    sku: str
    available: int
    order_id: str
