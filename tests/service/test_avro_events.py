"""Avro events on request: the schema derived from the model is registered as AVRO, values carry
Confluent's framing, Confluent's own AvroDeserializer reads what a service emits, and a record
that is not Avro goes to the dead letters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

import httpx
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from pydantic import BaseModel

from nerve.service import Event, Service, dead_letters
from nerve.service.avro import avro_schema
from nerve.testing import Platform


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    with Platform() as running:
        yield running


class Address(BaseModel):
    city: str
    zip: str | None = None


class OrderPlaced(Event, topic="avro.orders", key="order_id", format="avro"):
    order_id: str
    total: Decimal
    at: datetime
    channel: Literal["web", "shop"]
    lines: list[str]
    ship_to: Address
    note: str | None = None


class OrderTotal(Event, topic="avro.totals", key="order_id", format="avro"):
    order_id: str
    cents: int


def test_schema_derived_from_the_model() -> None:
    schema = avro_schema(OrderPlaced)
    fields = {f["name"]: f for f in schema["fields"]}
    assert fields["total"]["type"] == "string"  # exact, whatever the scale
    assert fields["at"]["type"] == {"type": "long", "logicalType": "timestamp-micros"}
    assert fields["channel"]["type"]["symbols"] == ["web", "shop"]
    assert fields["ship_to"]["type"]["name"] == "Address"
    assert fields["note"] == {"name": "note", "type": ["null", "string"], "default": None}


def test_avro_events_round_trip_and_interoperate(platform: Platform) -> None:
    totals = Service("avro-totals")

    @totals.on(OrderPlaced)
    def total(order: OrderPlaced) -> OrderTotal:
        return OrderTotal(order_id=order.order_id, cents=int(order.total * 100))

    platform.run(totals)
    placed = OrderPlaced(
        order_id="o1",
        total=Decimal("12.345"),
        at=datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        channel="web",
        lines=["a", "b"],
        ship_to=Address(city="Oslo"),
    )
    platform.emit(placed)
    assert platform._producer is not None
    platform._producer.produce("avro.orders", key=b"o2", value=b'{"order_id": "o2"}')
    platform._producer.flush(10)
    [out] = platform.expect(OrderTotal)
    assert out.cents == 1234

    # The registry holds the Avro contract; Confluent's deserializer reads the emitted value.
    assert platform.registry_url is not None
    latest = httpx.get(f"{platform.registry_url}/subjects/avro.totals-value/versions/latest")
    assert latest.json().get("schemaType", "AVRO") == "AVRO"  # Confluent omits AVRO
    assert json.loads(latest.json()["schema"])["name"] == "OrderTotal"
    [(_, value, headers)] = platform.read("avro.totals")
    assert value is not None and value[0] == 0
    assert dead_letters.header(headers, "content-type") == "application/avro"
    client = SchemaRegistryClient({"url": platform.registry_url})
    decoded = AvroDeserializer(client)(
        value, SerializationContext("avro.totals", MessageField.VALUE)
    )
    assert decoded == {"order_id": "o1", "cents": 1234}

    for _ in range(50):
        letters = platform.read("avro.orders.dlq")
        if letters:
            break
    [(key, _, dlq_headers)] = letters
    assert key == b"o2"
    assert "magic byte" in (dead_letters.header(dlq_headers, dead_letters.ERROR) or "")
    platform.stop_services()


def test_avro_without_a_registry_is_refused_at_start() -> None:
    from nerve.service.config import RunConfig
    from nerve.service.runtime import ServiceError, ServiceRunner

    with Platform(registry=False) as platform:
        service = Service("avro-no-registry")
        service.on(OrderPlaced)(lambda order: None)
        runner = ServiceRunner(service, RunConfig(platform.bootstrap, registry_url=None))
        with pytest.raises(ServiceError, match=r"OrderPlaced.*need a schema registry"):
            runner.start()
