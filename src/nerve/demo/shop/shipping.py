"""shipping: an event-sourced shipment per order, shipped once (a second ``ShipOrder`` of one
order is ``Rejected``), its parcel named after the order."""

from __future__ import annotations

from nerve import Event, Service
from nerve.demo.shop.events import OrderShipped, ShipOrder
from nerve.es import Aggregate, Rejected, command

shipping = Service(
    "shipping",
    description="Ships paid orders, once each",
    owner="warehouse-team",
    exactly_once=True,
)


@shipping.aggregate
class Shipment(Aggregate, key="order_id"):
    parcel: str = ""

    @command
    def ship(self, cmd: ShipOrder) -> OrderShipped:
        if self.parcel:
            raise Rejected(f"order {cmd.order_id} already left in parcel {self.parcel}")
        return OrderShipped(**cmd.model_dump(exclude={"meta"}), parcel=f"P-{cmd.order_id}")

    def apply(self, event: Event) -> None:
        if isinstance(event, OrderShipped):
            self.parcel = event.parcel
