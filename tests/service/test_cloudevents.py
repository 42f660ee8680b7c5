"""Services read CloudEvents as the Kafka protocol binding defines them: structured content mode
beside binary mode (and write it when an event class asks), invalid CloudEvents dead-lettered
with the reason, and the data read by its ``content-type`` (JSON, Avro, Protobuf; text and
other types refused instead of being tried as JSON)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from nerve.service import Event, Service, dead_letters
from nerve.testing import Platform
from tests.registry.test_serializers import _compile_proto


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    with Platform() as running:
        yield running


def produce(platform: Platform, topic: str, value: bytes | None, headers: Any, key: bytes) -> None:
    assert platform._producer is not None
    platform._producer.produce(topic, value=value, key=key, headers=headers)
    assert platform._producer.flush(10) == 0


def letters(platform: Platform, topic: str, count: int) -> list[tuple[Any, Any, Any]]:
    found: list[tuple[Any, Any, Any]] = []
    deadline = time.monotonic() + 15
    while len(found) < count and time.monotonic() < deadline:
        found = platform.read(f"{topic}.dlq")
    assert len(found) == count, f"{len(found)} dead letters on {topic}.dlq, not {count}"
    return found


def ce_headers(event_id: str | None, content_type: str | None = "application/json") -> Any:
    headers = [("ce_specversion", b"1.0"), ("ce_source", b"/elsewhere"), ("ce_type", b"x")]
    if event_id is not None:
        headers.append(("ce_id", event_id.encode()))
    if content_type is not None:
        headers.append(("content-type", content_type.encode()))
    return headers


class Placed(Event, topic="ce.placed", key="order_id"):
    order_id: str
    total: float


class Shipped(Event, topic="ce.shipped", key="order_id", content_mode="structured"):
    order_id: str
    carrier: str


class Billed(Event, topic="ce.billed", key="order_id"):
    order_id: str
    cause: str


def test_structured_mode_in_and_out(platform: Platform) -> None:
    shipping = Service("ce-shipping")
    billing = Service("ce-billing")

    @shipping.on(Placed)
    def ship(order: Placed) -> Shipped:
        return Shipped(order_id=order.order_id, carrier=f"from {order.meta.source}")

    @billing.on(Shipped)
    def bill(shipped: Shipped) -> Billed:
        return Billed(order_id=shipped.order_id, cause=shipped.meta.id)

    platform.run(shipping, billing)
    # A structured-mode event, as another platform writes it: the whole event in the value.
    event = {
        "specversion": "1.0",
        "id": "ext-1",
        "source": "/partner/shop",
        "type": "ce.placed",
        "time": "2026-12-02T10:00:00Z",
        "datacontenttype": "application/json",
        "data": {"order_id": "o1", "total": 12.5},
    }
    structured = [("content-type", b"application/cloudevents+json; charset=UTF-8")]
    produce(platform, "ce.placed", json.dumps(event).encode(), structured, b"o1")
    [billed] = platform.expect(Billed)
    [shipped] = platform.expect(Shipped)
    assert shipped.carrier == "from /partner/shop" and shipped.meta.causation_id == "ext-1"
    assert billed.cause == shipped.meta.id

    # Shipped asks for structured mode: one JSON object in the value, content-type saying so.
    [(key, value, headers)] = platform.read("ce.shipped")
    assert key == b"o1" and value is not None
    assert dead_letters.header(headers, "content-type") == (
        "application/cloudevents+json; charset=UTF-8"
    )
    assert not [name for name, _ in headers if name.startswith("ce_")]
    written = json.loads(value)
    assert written["data"] == {"order_id": "o1", "carrier": "from /partner/shop"}
    assert (written["specversion"], written["type"], written["source"]) == (
        "1.0",
        "ce.shipped",
        "/nerve/services/ce-shipping",
    )
    assert written["id"] == shipped.meta.id and written["causationid"] == "ext-1"
    assert written["datacontenttype"] == "application/json" and written["time"]
    assert platform.read("ce.placed.dlq") == []
    platform.stop_services()


class Counted(Event, topic="ce.counted", key="order_id"):
    order_id: str


def test_a_cloudevent_without_a_required_attribute_is_dead_lettered(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []
    counter = Service("ce-counter")

    @counter.on(Counted)
    def count(event: Counted) -> None:
        seen.append(event.meta.id)

    platform.run(counter)
    value = b'{"order_id": "o1"}'
    produce(platform, "ce.counted", value, ce_headers(None), b"no-id")
    no_source = [(n, v) for n, v in ce_headers("e2") if n != "ce_source"]
    produce(platform, "ce.counted", value, no_source, b"no-source")
    empty_type = [(n, b"" if n == "ce_type" else v) for n, v in ce_headers("e3")]
    produce(platform, "ce.counted", value, empty_type, b"empty-type")
    produce(platform, "ce.counted", value, ce_headers("e4"), b"valid")
    produce(platform, "ce.counted", value, None, b"plain")  # not a CloudEvent: read as before
    dead = letters(platform, "ce.counted", 3)
    reasons = {key: dead_letters.header(headers, dead_letters.ERROR) for key, _, headers in dead}
    assert "without ce_id" in (reasons[b"no-id"] or "")
    assert "without ce_source" in (reasons[b"no-source"] or "")
    assert "without ce_type" in (reasons[b"empty-type"] or "")
    deadline = time.monotonic() + 15
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen[0] == "e4" and seen[1].startswith("ce.counted-")  # named by its position
    assert len(seen) == 2
    warnings = [r.getMessage() for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert any("without ce_id" in w for w in warnings)
    platform.stop_services()


class Payment(Event, topic="ce.payments", key="id"):
    id: str
    amount: float


class AvroPayment(Event, topic="ce.avro-payments", key="id", format="avro"):
    id: str
    amount: float


PAYMENT_AVRO = """
{"type": "record", "name": "Payment", "namespace": "partner",
 "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "double"},
            {"name": "note", "type": ["null", "string"], "default": null}]}
"""
PAYMENT_PROTO = """
syntax = "proto3";
package partner;
message Envelope { string unused = 1; }
message Payment {
  string id = 1;
  double amount = 2;
  message Detail { string note = 1; }
}
"""


def test_data_is_read_by_its_content_type(platform: Platform, tmp_path: Path) -> None:
    assert platform.registry_url is not None
    registry = SchemaRegistryClient({"url": platform.registry_url})
    seen: dict[str, tuple[str, float, str | None]] = {}
    payments = Service("ce-payments")

    @payments.on(Payment)
    def paid(event: Payment) -> None:
        seen[event.id] = ("json-class", event.amount, event.meta.datacontenttype)

    @payments.on(AvroPayment)
    def paid_avro(event: AvroPayment) -> None:
        seen[event.id] = ("avro-class", event.amount, event.meta.datacontenttype)

    platform.run(payments)
    avro = AvroSerializer(registry, PAYMENT_AVRO)
    avro_value = avro(
        {"id": "p-avro", "amount": 2.5, "note": "hi"},
        SerializationContext("ce.partner-avro", MessageField.VALUE),
    )
    module = _compile_proto(tmp_path, PAYMENT_PROTO, main="cepayment")
    protobuf = ProtobufSerializer(module.Payment, registry, {"use.deprecated.format": False})
    proto_value = protobuf(
        module.Payment(id="p-proto", amount=4.0),
        SerializationContext("ce.partner-proto", MessageField.VALUE),
    )
    assert proto_value is not None and proto_value[5] != 0  # the second message: indexes
    json_value = b'{"id": "p-json", "amount": 1.5}'
    produce(platform, "ce.payments", avro_value, ce_headers("1", "application/avro"), b"a")
    produce(platform, "ce.payments", proto_value, ce_headers("2", "application/protobuf"), b"p")
    produce(platform, "ce.payments", json_value, ce_headers("3", "application/json"), b"j")
    # JSON text, but said to be plain text, and XML: refused, not tried as JSON.
    text_value = b'{"id": "p-text", "amount": 9}'
    produce(platform, "ce.payments", text_value, ce_headers("4", "text/plain"), b"t")
    produce(platform, "ce.payments", b"<p/>", ce_headers("5", "application/xml"), b"x")
    # An Avro class reads JSON data when that is what the record holds.
    json_for_avro = b'{"id": "p-json-avro", "amount": 0.5}'
    produce(platform, "ce.avro-payments", json_for_avro, ce_headers("6"), b"j")
    dead = letters(platform, "ce.payments", 2)
    reasons = {key: dead_letters.header(headers, dead_letters.ERROR) for key, _, headers in dead}
    assert "text/plain data cannot be read as Payment" in (reasons[b"t"] or "")
    assert "application/xml data cannot be read as Payment" in (reasons[b"x"] or "")
    deadline = time.monotonic() + 15
    while len(seen) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen == {
        "p-avro": ("json-class", 2.5, "application/avro"),
        "p-proto": ("json-class", 4.0, "application/protobuf"),
        "p-json": ("json-class", 1.5, "application/json"),
        "p-json-avro": ("avro-class", 0.5, "application/json"),
    }
    platform.stop_services()


class Profile(Event, topic="ce.profiles", key="user_id"):
    user_id: str
    email: str


def test_a_table_reads_rows_in_either_mode_and_any_media_type(platform: Platform) -> None:
    assert platform.registry_url is not None
    registry = SchemaRegistryClient({"url": platform.registry_url})
    avro = AvroSerializer(
        registry,
        '{"type": "record", "name": "Profile", "fields": [{"name": "user_id", "type": "string"},'
        ' {"name": "email", "type": "string"}]}',
    )
    structured = {
        "specversion": "1.0",
        "id": "s1",
        "source": "/s",
        "type": "ce.profiles",
        "data": {"user_id": "u1", "email": "one@example.com"},
    }
    produce(
        platform,
        "ce.profiles",
        json.dumps(structured).encode(),
        [("content-type", b"application/cloudevents+json")],
        b"u1",
    )
    value = avro(
        {"user_id": "u2", "email": "two@example.com"},
        SerializationContext("ce.profiles", MessageField.VALUE),
    )
    produce(platform, "ce.profiles", value, ce_headers("a1", "application/avro"), b"u2")
    produce(platform, "ce.profiles", b"u3,x", ce_headers("t1", "text/csv"), b"u3")
    service = Service("ce-profiles")
    profiles = service.table("ce.profiles", Profile)
    service.on("ce.profile-requests")(lambda event: None)
    platform.run(service)
    assert {key: row.email for key, row in profiles.items()} == {
        "u1": "one@example.com",
        "u2": "two@example.com",
    }
    platform.stop_services()
