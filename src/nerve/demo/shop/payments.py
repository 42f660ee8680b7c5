"""payments: an event-sourced payment per order, charged once.

The card decides (a stand-in for a bank): ``0002`` is declined, ``3155`` wants the customer to
confirm (``PaymentPending``: nothing charged, and no confirmation ever comes in the demo, so the
order saga's deadline cancels the order and voids it), any other is charged. A second charge of
one order is ``Rejected``: an order is never charged twice. Voiding a charged payment refunds
it (a charge that came after its order's deadline); voiding a pending one drops it.
"""

from __future__ import annotations

from nerve import Event, Service
from nerve.demo.shop.events import (
    ChargePayment,
    PaymentCharged,
    PaymentDeclined,
    PaymentPending,
    PaymentRefunded,
    PaymentVoided,
    VoidPayment,
)
from nerve.es import Aggregate, Rejected, command

DECLINED = "0002"
NEEDS_CONFIRMATION = "3155"

payments = Service(
    "payments",
    description="Charges the customer's card for an order, once",
    owner="payments-team",
    exactly_once=True,
)


@payments.aggregate
class Payment(Aggregate, key="order_id"):
    status: str = "new"  # new, charged, declined, pending, voided, refunded
    amount: int = 0

    @command
    def charge(self, cmd: ChargePayment) -> PaymentCharged | PaymentDeclined | PaymentPending:
        if self.status != "new":
            raise Rejected(f"order {cmd.order_id}'s payment is already {self.status}")
        if cmd.amount <= 0:
            raise Rejected("charge a positive amount")
        if cmd.card == DECLINED:
            return PaymentDeclined(order_id=cmd.order_id, customer=cmd.customer,
                                   amount=cmd.amount, reason="card declined")  # fmt: skip
        if cmd.card == NEEDS_CONFIRMATION:
            return PaymentPending(order_id=cmd.order_id, customer=cmd.customer, amount=cmd.amount)
        return PaymentCharged(order_id=cmd.order_id, customer=cmd.customer, amount=cmd.amount)

    @command
    def void(self, cmd: VoidPayment) -> PaymentRefunded | PaymentVoided:
        if self.status == "charged":
            return PaymentRefunded(order_id=cmd.order_id, amount=self.amount, reason=cmd.reason)
        if self.status == "pending":
            return PaymentVoided(order_id=cmd.order_id, reason=cmd.reason)
        raise Rejected(f"nothing to void: the payment is {self.status}")

    def apply(self, event: Event) -> None:
        if isinstance(event, PaymentCharged):
            self.status, self.amount = "charged", event.amount
        elif isinstance(event, PaymentDeclined):
            self.status, self.amount = "declined", event.amount
        elif isinstance(event, PaymentPending):
            self.status, self.amount = "pending", event.amount
        elif isinstance(event, PaymentVoided):
            self.status = "voided"
        elif isinstance(event, PaymentRefunded):
            self.status = "refunded"
