"""Issue 16 item 5, in-process (nerve.streams.TestDriver): a saga's steps, its deadlines by
stream time and by the wall clock, finishing, and its state and deadlines kept across a
restart from the changelog alone. The same saga on real brokers: test_sagas.py."""

from __future__ import annotations

from datetime import timedelta

import pytest

from nerve import Event, Service
from nerve.es import Saga, step, timeout
from nerve.es.saga import SagaNode
from nerve.streams.driver import TestDriver


class Placed(Event, topic="sagadriver.placed", key="order_id"):
    order_id: str
    total: int


class Paid(Event, topic="sagadriver.paid", key="order_id"):
    order_id: str
    amount: int


class Refunded(Event, topic="sagadriver.refunded", key="refund_id"):
    refund_id: str
    order: str
    amount: int


class PaidElsewhere(Event, topic="sagadriver.paid-elsewhere", key="payment_id"):
    payment_id: str
    order_id: str
    amount: int


class Release(Event, topic="sagadriver.release", key="order_id"):
    order_id: str
    what: str


class Ship(Event, topic="sagadriver.ship", key="order_id"):
    order_id: str
    paid: int


class Cancel(Event, topic="sagadriver.cancel", key="order_id"):
    order_id: str
    paid: int


class Flow(Saga, key="order_id"):
    total: int = 0
    paid: int = 0

    @step(Placed, start=True)
    def placed(self, event: Placed) -> None:
        self.total = event.total
        self.schedule("payment", timedelta(seconds=10))
        self.undo_with(Release(order_id=self.key, what="stock"))
        self.undo_with(Release(order_id=self.key, what="coupon"))

    @step(Paid)
    def payment(self, event: Paid) -> Ship | None:
        self.paid += event.amount
        if self.paid < self.total:
            return None
        self.finish()
        return Ship(order_id=self.key, paid=self.paid)

    @step(Refunded, key=lambda e: e.order)  # keyed otherwise: re-keyed to the order
    def refunded(self, event: Refunded) -> None:
        self.paid -= event.amount

    @step(PaidElsewhere)  # keyed otherwise, with an order_id field: re-keyed by it
    def paid_elsewhere(self, event: PaidElsewhere) -> Ship | None:
        return self.payment(Paid(order_id=self.key, amount=event.amount))

    @timeout("payment")
    def unpaid(self) -> list[Cancel | Release]:
        self.finish()
        return [Cancel(order_id=self.key, paid=self.paid), *self.compensate()]


def _service(clock: str) -> Service:
    service = Service(f"sagadriver-{clock}", exactly_once=True)
    service.saga(Flow, clock=clock)
    return service


def _instances(driver: TestDriver) -> dict:
    """The saga's store: key -> (state, deadlines)."""
    names = [n.store for s in driver.topology.subs for n in s.nodes if isinstance(n, SagaNode)]
    assert len(names) == 1
    return driver.store(names[0])


def test_stream_time_deadline_fires_before_a_later_event_and_ends_the_instance() -> None:
    with TestDriver(_service("stream")) as driver:
        driver.send(Placed(order_id="a", total=10), timestamp=1_000)
        driver.send(Placed(order_id="b", total=5), timestamp=2_000)
        driver.send(Paid(order_id="a", amount=4), timestamp=3_000)
        assert set(_instances(driver)) == {"a", "b"}
        driver.send(Paid(order_id="a", amount=6), timestamp=4_000)
        assert [(e.order_id, e.paid) for e in driver.emitted(Ship)] == [("a", 10)]
        assert driver.emitted(Cancel) == []
        # b's deadline (12 s) passes when stream time does: the payment at 12.5 s comes late.
        driver.send(Paid(order_id="b", amount=5), timestamp=12_500)
        assert [(e.order_id, e.paid) for e in driver.emitted(Cancel)] == [("b", 0)]
        assert [(e.order_id, e.what) for e in driver.emitted(Release)] == [
            ("b", "coupon"),
            ("b", "stock"),
        ], "compensations, the last remembered first"
        assert driver.emitted(Ship) == []
        assert _instances(driver) == {}, "finished instances are deleted"


def test_wall_clock_deadline_state_and_deadline_survive_a_restart() -> None:
    import time

    now = int(time.time() * 1000)
    with TestDriver(_service("wall")) as driver:
        driver.send(Placed(order_id="a", total=10))
        driver.send(Paid(order_id="a", amount=4))
        driver.send(Placed(order_id="b", total=5))
        driver.restart()
        stored = _instances(driver)
        assert stored["a"][0].paid == 4 and set(stored["a"][1]) == {"payment"}
        assert [r.what for r in stored["b"][2]] == ["stock", "coupon"]
        driver.punctuate(now + 5_000)
        assert driver.emitted() == []
        driver.send(Paid(order_id="a", amount=6))
        assert [(e.order_id, e.paid) for e in driver.emitted(Ship)] == [("a", 10)]
        driver.punctuate(now + 11_000)
        assert [(e.order_id, e.paid) for e in driver.emitted(Cancel)] == [("b", 0)]
        assert [e.what for e in driver.emitted(Release)] == ["coupon", "stock"]
        driver.send(Paid(order_id="b", amount=5))  # no instance any more: passed over
        assert driver.emitted() == []


def test_events_keyed_otherwise_are_rekeyed_to_the_saga_key() -> None:
    with TestDriver(_service("stream"), partitions=4) as driver:
        for order in ("a", "b", "c"):
            driver.send(Placed(order_id=order, total=10), timestamp=1_000)
            driver.send(PaidElsewhere(payment_id=f"p-{order}", order_id=order, amount=8))
            driver.send(Refunded(refund_id=f"r-{order}", order=order, amount=3))
            driver.send(Paid(order_id=order, amount=5))
        assert [(e.order_id, e.paid) for e in driver.emitted(Ship)] == [
            ("a", 10),
            ("b", 10),
            ("c", 10),
        ]


def test_refuses_what_cannot_work() -> None:
    class OtherKey(Event, topic="sagadriver.other", key="customer"):
        customer: str

    service = Service("sagadriver-bad", exactly_once=True)
    with pytest.raises(TypeError, match="key=<function"):

        @service.saga
        class Wrong(Saga, key="order_id"):
            @step(OtherKey, start=True)
            def seen(self, event: OtherKey) -> None: ...

    with pytest.raises(ValueError, match="exactly_once"):

        @Service("sagadriver-aloe").saga
        class Loose(Saga, key="order_id"):
            @step(Placed, start=True)
            def seen(self, event: Placed) -> None: ...

    with pytest.raises(TypeError, match="start=True"):

        @service.saga
        class NoStart(Saga, key="order_id"):
            @step(Placed)
            def seen(self, event: Placed) -> None: ...
