"""nerve's events as the official CloudEvents SDKs see them, and theirs as a nerve service sees
them: the Python SDK (``cloudevents`` from PyPI: its current API and its ``v1`` API) and the Go
SDK (``github.com/cloudevents/sdk-go/v2`` with its sarama Kafka binding, the program in
tests/compat/cloudevents_go).

SDK-made events, in binary and structured content mode, go into a nerve service; what the
service emits in return (binary JSON, structured JSON and binary Avro) is read back by each
SDK, which validates it as a CloudEvent and must find every attribute nerve wrote.

Not fed in: the Python SDK's ``v1`` structured mode, which writes the event's
``datacontenttype`` as the record's ``content-type`` instead of ``application/cloudevents+json``,
so by the Kafka binding such a record is in binary mode (cloudevents/sdk-python#295).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from cloudevents.v1 import http as v1_http
from cloudevents.v1 import kafka as v1_kafka
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from nerve.service import Event, Service
from nerve.testing import Platform
from tests.compat.test_other_languages import HERE, Runner, _need, _runner

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class SdkOrder(Event, topic="sdk.orders", key="order_id", type="sdk.orders"):
    order_id: str
    total: float


class Receipt(Event, topic="sdk.receipts", key="order_id"):
    order_id: str
    total: float
    cause: str
    source: str
    tenant: str | None = None


class StructuredReceipt(
    Event, topic="sdk.receipts-structured", key="order_id", content_mode="structured"
):
    order_id: str
    cause: str


class AvroReceipt(Event, topic="sdk.receipts-avro", key="order_id", format="avro"):
    order_id: str
    cause: str


RECEIPTS = {  # topic: the content mode and media type nerve writes there
    Receipt.topic: ("binary", "application/json"),
    StructuredReceipt.topic: ("structured", "application/json"),
    AvroReceipt.topic: ("binary", "application/avro"),
}


@pytest.fixture(scope="module")
def sdk_go(tmp_path_factory: pytest.TempPathFactory) -> Runner:
    _need("go")
    binary = tmp_path_factory.mktemp("cloudevents-go") / "cloudevents"
    built = subprocess.run(
        ["go", "build", "-o", str(binary), "."],
        cwd=HERE / "cloudevents_go",
        capture_output=True,
        text=True,
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return _runner([str(binary)], HERE / "cloudevents_go")


def produce(platform: Platform, message: Any) -> None:
    """A KafkaMessage of either Python SDK API, sent as it is."""
    assert platform._producer is not None
    key = message.key.encode() if isinstance(message.key, str) else message.key
    headers = list(message.headers.items())
    platform._producer.produce(SdkOrder.topic, value=message.value, key=key, headers=headers)
    assert platform._producer.flush(10) == 0


@pytest.fixture(scope="module")
def echoed(platform_sdk: Platform, sdk_go: Runner) -> dict[str, str]:
    """Feed SDK-made events into a nerve service that answers each with three receipts;
    returns the input ids by who made them."""
    platform = platform_sdk
    echo = Service("sdk-echo")

    @echo.on(SdkOrder)
    def receipts(order: SdkOrder) -> list[Receipt | StructuredReceipt | AvroReceipt]:
        cause = order.meta.id
        return [
            Receipt(
                order_id=order.order_id,
                total=order.total,
                cause=cause,
                source=order.meta.source,
                tenant=order.meta.extensions.get("tenant"),
            ),
            StructuredReceipt(order_id=order.order_id, cause=cause),
            AvroReceipt(order_id=order.order_id, cause=cause),
        ]

    platform.run(echo)
    inputs: dict[str, str] = {}

    def made(name: str) -> tuple[str, dict[str, Any]]:
        inputs[name] = f"{name}-1"
        return inputs[name], {"order_id": f"o-{name}", "total": 12.5}

    format_ = JSONFormat()
    for mode, convert in (("binary", ce_kafka.to_binary), ("structured", ce_kafka.to_structured)):
        event_id, data = made(f"py-{mode}")
        event = CloudEvent(
            attributes={
                "id": event_id,
                "source": "/sdk-python",
                "type": "sdk.orders",
                "datacontenttype": "application/json",
                "partitionkey": data["order_id"],
                "tenant": "acme",
                "traceparent": TRACEPARENT,
            },
            data=data,
        )
        produce(platform, convert(event, format_))
    event_id, data = made("py-v1-binary")
    legacy = v1_http.CloudEvent(
        {
            "id": event_id,
            "source": "/sdk-python-v1",
            "type": "sdk.orders",
            "datacontenttype": "application/json",
            "partitionkey": data["order_id"],
        },
        data,
    )
    produce(platform, v1_kafka.to_binary(legacy))
    for mode in ("binary", "structured"):
        event_id, data = made(f"go-{mode}")
        sent = sdk_go(
            "send", platform.bootstrap, SdkOrder.topic, mode, event_id, data["order_id"],
            json.dumps(data),
        )  # fmt: skip
        assert sent == [f"sent {event_id}"]
    return inputs


@pytest.fixture(scope="module")
def platform_sdk() -> Iterator[Platform]:
    with Platform() as running:
        yield running


@pytest.mark.slow
def test_a_nerve_service_reads_events_the_sdks_make(
    platform_sdk: Platform, echoed: dict[str, str]
) -> None:
    platform = platform_sdk
    found = platform.expect(Receipt, count=len(echoed), timeout=30)
    by_cause = {receipt.cause: receipt for receipt in found}
    assert set(by_cause) == set(echoed.values())
    for name, event_id in echoed.items():
        receipt = by_cause[event_id]
        assert (receipt.order_id, receipt.total) == (f"o-{name}", 12.5)
        expected_source = {"py": "/sdk-python", "go": "/sdk-go"}[name[:2]]
        if name.startswith("py-v1"):
            expected_source = "/sdk-python-v1"
        assert receipt.source == expected_source
        assert receipt.tenant == (None if name.startswith("py-v1") else "acme")
        assert receipt.meta.key == f"o-{name}".encode()
    assert platform.read(f"{SdkOrder.topic}.dlq") == []


def records(platform: Platform, topic: str, count: int) -> list[tuple[Any, Any, Any]]:
    found: list[tuple[Any, Any, Any]] = []
    deadline = time.monotonic() + 30
    while len(found) < count and time.monotonic() < deadline:
        found = platform.read(topic)
    assert len(found) == count, f"{len(found)} records on {topic}, not {count}"
    return found


def expected_data(platform: Platform, topic: str, value: Any) -> Any:
    """The data as nerve meant it: JSON as a dict, Avro decoded by Confluent's deserializer."""
    if topic != AvroReceipt.topic:
        return value
    assert platform.registry_url is not None
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": platform.registry_url}))
    return deserializer(value, SerializationContext(topic, MessageField.VALUE))


@pytest.mark.slow
@pytest.mark.parametrize("topic", list(RECEIPTS))
def test_the_python_sdk_reads_what_nerve_writes(
    platform_sdk: Platform, echoed: dict[str, str], topic: str
) -> None:
    platform = platform_sdk
    mode, media = RECEIPTS[topic]
    causes = {event_id: name for name, event_id in echoed.items()}
    seen: set[str] = set()
    for key, value, headers in records(platform, topic, len(echoed)):
        message = ce_kafka.KafkaMessage(headers=dict(headers), key=key, value=value)
        event = ce_kafka.from_kafka(message, JSONFormat())  # validates, or raises
        assert event.get_specversion() == "1.0" and event.get_id()
        assert event.get_source() == "/nerve/services/sdk-echo"
        assert event.get_type() == topic
        time_ = event.get_time()
        assert isinstance(time_, datetime) and time_.tzinfo is not None
        assert event.get_datacontenttype() == media
        assert (event.get_dataschema() or "").startswith(f"{platform.registry_url}/schemas/ids/")
        cause = event.get_extension("causationid")
        assert cause in causes and event.get_extension("correlationid") == cause
        traced = causes[cause] in ("py-binary", "py-structured")
        assert event.get_extension("traceparent") == (TRACEPARENT if traced else None)
        data = event.get_data()
        if media == "application/avro":
            # The SDK gives binary data that happens to be UTF-8 as text: the same bytes.
            raw = data.encode() if isinstance(data, str) else data
            assert isinstance(raw, bytes)
            data = expected_data(platform, topic, raw)
        assert isinstance(data, dict) and data["cause"] == cause
        seen.add(cause)

        # The SDK's v1 API reads it too, by the mode nerve wrote.
        legacy_message = v1_kafka.KafkaMessage(dict(headers), key, value)
        if mode == "structured":
            legacy = v1_kafka.from_structured(legacy_message)
        elif media == "application/json":
            legacy = v1_kafka.from_binary(legacy_message)
        else:
            legacy = v1_kafka.from_binary(legacy_message, data_unmarshaller=lambda raw: raw)
        assert (legacy["id"], legacy["type"], legacy["causationid"]) == (
            event.get_id(),
            topic,
            cause,
        )
    assert seen == set(causes)


@pytest.mark.slow
@pytest.mark.parametrize("topic", list(RECEIPTS))
def test_the_go_sdk_reads_what_nerve_writes(
    platform_sdk: Platform, echoed: dict[str, str], sdk_go: Runner, topic: str
) -> None:
    platform = platform_sdk
    mode, media = RECEIPTS[topic]
    records(platform, topic, len(echoed))  # all written
    causes = {event_id: name for name, event_id in echoed.items()}
    seen: set[str] = set()
    for line in sdk_go("read", platform.bootstrap, topic, str(len(echoed))):
        read = json.loads(line)
        assert read["encoding"] == mode
        event = read["event"]  # the SDK's own JSON form of what it read and validated
        assert event["specversion"] == "1.0" and event["id"]
        assert (event["source"], event["type"]) == ("/nerve/services/sdk-echo", topic)
        assert event["datacontenttype"] == media and event["time"]
        assert event["dataschema"].startswith(f"{platform.registry_url}/schemas/ids/")
        cause = event["causationid"]
        assert cause in causes and event["correlationid"] == cause
        traced = causes[cause] in ("py-binary", "py-structured")
        assert event.get("traceparent") == (TRACEPARENT if traced else None)
        raw = base64.b64decode(read["data"])
        avro = media == "application/avro"
        data = expected_data(platform, topic, raw) if avro else json.loads(raw)
        assert data["cause"] == cause and read["key"] == data["order_id"]
        seen.add(cause)
    assert seen == set(causes)
