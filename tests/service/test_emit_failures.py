"""Issue 11 item 14: an emitted event the broker cannot take (over message.max.bytes, on the
client or on the broker) is the handler's failure: retried, then the input is dead-lettered with
the reason, and the service goes on, also after a restart. Against a live broker."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from nerve.service import Event, Service, dead_letters
from nerve.testing import Platform


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    with Platform() as running:
        yield running


class Order(Event, topic="big.orders", key="id"):
    id: str
    size: int


class Report(Event, topic="big.reports", key="id"):
    id: str
    body: str


class SmallReport(Event, topic="big.small-reports", key="id"):
    id: str
    body: str


def reporting(name: str, model: type[Report] | type[SmallReport], calls: list[str]) -> Service:
    service = Service(name)

    @service.on(Order, retries=2, backoff_s=0.01)
    def report(order: Order) -> Report | SmallReport:
        calls.append(order.id)
        return model(id=order.id, body="x" * order.size)

    service.emits = [model]
    return service


def letters(platform: Platform, topic: str, count: int) -> list[tuple[bytes | None, object]]:
    """The dead letters once ``count`` are there (or what is there after 60 s): three
    attempts with backoff come first, which a loaded machine stretches."""
    found: list[tuple[bytes | None, object]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = [(key, headers) for key, _, headers in platform.read(topic)]
        if len(found) >= count:
            break
        time.sleep(0.1)
    return found


def test_an_event_over_the_client_limit_is_a_handler_failure(platform: Platform) -> None:
    calls: list[str] = []
    service = reporting("big-client", Report, calls)
    platform.run(service)
    platform.emit(Order(id="o1", size=10))
    platform.emit(Order(id="o2", size=2_000_000))  # over librdkafka's 1,000,000 bytes
    platform.emit(Order(id="o3", size=10))
    reports = platform.expect(Report, count=2)
    assert {r.id for r in reports} == {"o1", "o3"}  # the service went on
    [(key, headers)] = letters(platform, "big.orders.dlq", 1)
    assert key == b"o2"
    assert dead_letters.header(headers, dead_letters.ATTEMPTS) == "3"
    assert "message.max.bytes" in (dead_letters.header(headers, dead_letters.ERROR) or "")
    assert calls.count("o2") == 3
    platform.stop_services()

    # Restarted, it does not read o2 again (no crash loop).
    again: list[str] = []
    platform.run(reporting("big-client", Report, again))
    platform.emit(Order(id="o4", size=10))
    platform.expect(Report, lambda r: r.id == "o4")
    assert "o2" not in again
    platform.stop_services()


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
def test_an_event_the_broker_refuses_is_retried_then_dead_lettered(
    platform: Platform, exactly_once: bool
) -> None:
    # The topic takes at most 2,000 bytes a batch: the client sends, the broker refuses.
    admin = AdminClient({"bootstrap.servers": platform.bootstrap})
    topic = SmallReport.topic
    if topic not in admin.list_topics(timeout=10).topics:
        new = NewTopic(topic, 1, config={"max.message.bytes": "2000"})
        admin.create_topics([new])[topic].result(10)
    calls: list[str] = []
    name = f"big-broker-{'eos' if exactly_once else 'alo'}"
    service = reporting(name, SmallReport, calls)
    service.exactly_once = exactly_once
    source = f"{name}.orders"

    class Input(Event, topic=source, key="id"):
        id: str
        size: int

    service.handlers[0].topic = source
    service.handlers[0].event_type = Input
    platform.run(service)
    platform.emit(Input(id="a", size=10))
    platform.emit(Input(id="b", size=5_000))
    platform.emit(Input(id="c", size=10))
    [(key, headers)] = letters(platform, f"{source}.dlq", 1)
    assert key == b"b"
    error = dead_letters.header(headers, dead_letters.ERROR) or ""
    assert "big.small-reports" in error and "too large" in error.lower(), error
    assert dead_letters.header(headers, dead_letters.ATTEMPTS) == "3"
    ids = [e.id for e in platform.expect(SmallReport, lambda r: r.id in "ac", count=2)]
    assert sorted(set(ids)) == ["a", "c"]
    assert calls.count("b") == 3
    platform.stop_services()
