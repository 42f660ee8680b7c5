"""Services against a real broker and registry (nerve.testing.Platform): handlers, filters,
emits in CloudEvents envelopes, retries and dead letters, tables, schemas."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from pydantic import BaseModel, ValidationError

from nerve.service import Event, Service, dead_letters
from nerve.testing import Platform


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    with Platform() as running:
        yield running


class BalanceChanged(Event, topic="t1.balance-changed", key="account_id"):
    account_id: str
    user_id: str
    previous: Decimal
    balance: Decimal


class LowBalance(Event, topic="t1.low-balance", key="user_id"):
    user_id: str
    balance: Decimal


def test_handler_filters_and_emits_with_envelope(platform: Platform) -> None:
    alerts = Service("t1-alerts", description="warns on low balances")
    seen: list[str] = []

    @alerts.on(BalanceChanged, where=lambda e: e.balance < e.previous)
    async def check(event: BalanceChanged) -> LowBalance | None:
        seen.append(event.account_id)
        if event.balance < 100:
            return LowBalance(user_id=event.user_id, balance=event.balance)
        return None

    platform.run(alerts)
    rise = platform.emit(BalanceChanged(account_id="a1", user_id="u1", previous=10, balance=50))
    drop = platform.emit(BalanceChanged(account_id="a1", user_id="u1", previous=50, balance=20))
    platform.emit(BalanceChanged(account_id="a2", user_id="u2", previous=500, balance=400))
    [low] = platform.expect(LowBalance)
    assert (low.user_id, low.balance) == ("u1", Decimal(20))
    assert low.meta.key == b"u1"
    assert low.meta.source == "/nerve/services/t1-alerts"
    assert low.meta.type == "t1.low-balance"
    assert low.meta.causation_id == drop.meta.id
    assert low.meta.correlation_id == drop.meta.id  # the chain starts at the first event
    assert low.meta.dataschema and "/schemas/ids/" in low.meta.dataschema
    platform.stop_services()
    assert seen.count("a1") == 1 and "a2" in seen and rise.meta.id != drop.meta.id

    # The contract is in the registry under the topic's subject.
    assert platform.registry_url is not None
    latest = httpx.get(f"{platform.registry_url}/subjects/t1.low-balance-value/versions/latest")
    assert latest.json()["schemaType"] == "JSON" and "balance" in latest.json()["schema"]


class Payment(Event, topic="t2.payments", key="id"):
    id: str
    amount: int


class Receipt(Event, topic="t2.receipts", key="id"):
    id: str


def test_failing_handler_retries_then_dead_letters_and_goes_on(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    payments = Service("t2-receipts")
    attempts: dict[str, int] = {}

    @payments.on(Payment, retries=2, backoff_s=0.01)  # two retries after the first attempt
    def receipt(event: Payment) -> Receipt:
        attempts[event.id] = attempts.get(event.id, 0) + 1
        if event.amount < 0:
            raise ValueError(f"negative amount {event.amount}")
        return Receipt(id=event.id)

    caplog.set_level(logging.WARNING, logger="nerve.service")
    platform.run(payments)
    platform.emit(Payment(id="p1", amount=5))
    platform.emit(Payment(id="p2", amount=-1))
    platform.emit(Payment(id="p3", amount=7))
    # Not an event this service can read: dead-lettered at once, not retried.
    assert platform._producer is not None
    platform._producer.produce("t2.payments", value=b'{"id": "p4"}', key=b"p4")
    platform._producer.flush(10)
    platform.expect(Receipt, count=2)
    letters: list[tuple[bytes | None, bytes | None, object]] = []
    for _ in range(50):
        letters = platform.read("t2.payments.dlq")
        if len(letters) == 2:
            break
    assert len(letters) == 2
    (key2, value2, headers2), (key4, _, headers4) = letters
    assert key2 == b"p2" and b'"amount":-1' in (value2 or b"")
    assert dead_letters.header(headers2, dead_letters.ERROR) == "negative amount -1"
    assert dead_letters.header(headers2, dead_letters.ATTEMPTS) == "3"
    assert dead_letters.header(headers2, dead_letters.TOPIC) == "t2.payments"
    assert dead_letters.header(headers2, dead_letters.SERVICE) == "t2-receipts"
    assert dead_letters.header(headers2, "ce_id") is not None  # the original envelope is kept
    assert key4 == b"p4" and dead_letters.header(headers4, dead_letters.ATTEMPTS) == "1"
    assert "amount" in (dead_letters.header(headers4, dead_letters.ERROR) or "")
    assert attempts == {"p1": 1, "p2": 3, "p3": 1}
    # One WARNING per dead letter, whatever the cause, naming the event, topic and reason.
    warnings = [r.getMessage() for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert len(warnings) == 2, warnings
    failed, unreadable = sorted(warnings, key=lambda w: "negative" not in w)
    assert "t2.payments" in failed and "negative amount -1" in failed and "3 attempt" in failed
    assert "t2.payments-0-" in unreadable and "amount" in unreadable  # a record without ce_id
    platform.stop_services()


def test_emitting_an_event_that_breaks_its_contract_names_the_field() -> None:
    with pytest.raises(ValidationError) as refused:
        LowBalance(user_id="u1", balance="lots")  # type: ignore[arg-type]
    assert refused.value.errors()[0]["loc"] == ("balance",)
    with pytest.raises(ValidationError, match="extra"):
        LowBalance(user_id="u1", balance=1, colour="red")  # type: ignore[call-arg]


class Profile(BaseModel):
    email: str
    threshold: int


class Spend(Event, topic="t3.spend", key="user_id"):
    user_id: str
    amount: int


class Warned(Event, topic="t3.warned", key="user_id"):
    user_id: str
    email: str


class Total(Event, topic="t3.totals", key="user_id"):
    user_id: str
    total: int


def test_tables_from_a_topic_and_of_the_service_own_state(platform: Platform) -> None:
    assert platform._producer is not None
    for user, email, threshold in (("u1", "u1@x", 10), ("u2", "u2@x", 1000)):
        value = Profile(email=email, threshold=threshold).model_dump_json().encode()
        platform._producer.produce("t3.profiles", key=user.encode(), value=value)
    platform._producer.flush(10)

    spending = Service("t3-spending")
    profiles = spending.table("t3.profiles", Profile)
    totals = spending.table("totals", from_=Total)

    @spending.on(Spend)
    def add(event: Spend) -> list[Event]:
        previous = totals.get(event.user_id)
        total = (previous.total if previous else 0) + event.amount
        out: list[Event] = [Total(user_id=event.user_id, total=total)]
        profile = profiles.get(event.user_id)
        if profile is not None and total > profile.threshold:
            out.append(Warned(user_id=event.user_id, email=profile.email))
        return out

    platform.run(spending)
    for amount in (4, 5, 6):
        platform.emit(Spend(user_id="u1", amount=amount))
    platform.emit(Spend(user_id="u2", amount=7))
    [warned] = platform.expect(Warned)
    assert warned.email == "u1@x"
    assert max(t.total for t in platform.expect(Total, lambda t: t.user_id == "u1", count=3)) == 15
    platform.stop_services()

    # Restarted, the service's own table is restored from its changelog (the Total events).
    again = Service("t3-spending")
    restored = again.table("totals", from_=Total)
    again.on(Spend)(lambda event: None)
    platform.run(again)
    assert restored["u1"].total == 15 and restored["u2"].total == 7
    platform.stop_services()
