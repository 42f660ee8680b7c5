"""nerve's AsyncAPI document as the official AsyncAPI parser reads it (``@asyncapi/parser`` with
``@asyncapi/avro-schema-parser``, npm; the program in tests/compat/asyncapi): accepted without
an error or a warning, and each message described as it is on the wire: binary JSON events as
JSON with the binary-mode headers, Avro events with Avro's own schema and Confluent's framing,
structured-mode events as the CloudEvents JSON envelope."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import fastavro
import pytest
from pydantic import BaseModel

from nerve.demo.finance import alerts, balances, fraud, notifier, transactions
from nerve.service import Event, Service, catalog
from nerve.service.config import RunConfig
from tests.compat.test_other_languages import HERE, Runner, _need, _runner


@pytest.fixture(scope="module")
def asyncapi_parser() -> Runner:
    _need("node", "npm")
    program = HERE / "asyncapi"
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"], cwd=program, check=True, capture_output=True
    )
    return _runner(["node", "validate.mjs"], program)


class Line(BaseModel):
    sku: str
    qty: int


class Placed(Event, topic="api.placed", key="order_id"):
    order_id: str
    lines: list[Line]
    total: Decimal


class Paid(Event, topic="api.paid", key="order_id", format="avro"):
    order_id: str
    at: datetime
    lines: list[Line]
    method: Literal["card", "transfer"]
    note: str | None = None


class Shipped(Event, topic="api.shipped", key="order_id", content_mode="structured"):
    order_id: str
    lines: list[Line]


class Audited(Event, topic="api.audited", key="order_id", content_mode="structured", format="avro"):
    order_id: str


def system() -> dict[str, dict[str, Any]]:
    """The finance demo's services and one emitting each kind of message, as announced."""
    shop = Service("api-shop", description="emits every kind of message")

    @shop.on(Placed)
    def handle(order: Placed) -> Paid | Shipped | Audited: ...

    reader = Service("api-reader")
    for event_type in (Paid, Shipped, Audited):
        reader.on(event_type)(lambda event: None)
    services = [shop, reader, alerts.alerts, balances.balances, fraud.fraud, notifier.notifier]
    services.append(transactions.transactions)
    config = RunConfig("broker:9092", registry_url="http://registry:8081")
    ids = {Paid: 7, Audited: 8}
    return {s.name: catalog.describe(s, config, ids) for s in services}


@pytest.mark.slow
def test_the_asyncapi_parser_accepts_the_document_and_models_each_message_as_sent(
    asyncapi_parser: Runner, tmp_path: Path
) -> None:
    document = catalog.asyncapi(system(), "broker:9092")
    target = tmp_path / "asyncapi.json"
    target.write_text(json.dumps(document))
    [line] = asyncapi_parser(str(target))
    parsed = json.loads(line)
    problems = [d for d in parsed["diagnostics"] if d["severity"] < 2]  # errors and warnings
    assert parsed["parsed"] and problems == []
    messages = parsed["messages"]

    # A JSON event in binary mode: JSON Schema payload, the ce_ headers, content-type JSON.
    placed = messages["api.placed"]
    assert placed["contentType"] == "application/json"
    assert placed["schemaFormat"].startswith("application/vnd.aai.asyncapi")
    assert {"ce_id", "ce_source", "ce_type", "ce_traceparent", "content-type"} <= set(
        placed["headers"]
    )
    headers = document["components"]["schemas"]["CloudEventsHeaders"]
    assert headers["properties"]["content-type"]["const"] == "application/json"

    # An Avro event: Avro's schema, Confluent's framing in the Kafka binding, content-type Avro.
    paid = messages["api.paid"]
    assert paid["contentType"] == "application/avro"
    assert paid["schemaFormat"] == "application/vnd.apache.avro;version=1.9.0"
    message = document["components"]["messages"]["api.paid"]
    assert message["bindings"]["kafka"]["schemaIdLocation"] == "payload"
    assert message["bindings"]["kafka"]["schemaIdPayloadEncoding"] == "confluent"
    assert message["x-nerve-schema-id"] == 7
    payload = resolve(document, message["payload"]["$ref"])
    fastavro.parse_schema(payload["schema"])  # a schema Avro itself accepts
    avro_headers = resolve(document, message["headers"]["$ref"])
    assert avro_headers["properties"]["content-type"]["const"] == "application/avro"

    # Structured mode: the CloudEvents JSON envelope, the event's data inside it.
    shipped = messages["api.shipped"]
    assert shipped["contentType"] == "application/cloudevents+json; charset=UTF-8"
    assert shipped["headers"] == ["content-type", "traceparent", "tracestate"]
    envelope = resolve(
        document, document["components"]["messages"]["api.shipped"]["payload"]["$ref"]
    )
    assert envelope["properties"]["type"]["const"] == "api.shipped"
    data = resolve(document, envelope["properties"]["data"]["$ref"])
    assert set(data["properties"]) == {"order_id", "lines"}
    audited = resolve(
        document, document["components"]["messages"]["api.audited"]["payload"]["$ref"]
    )
    assert audited["properties"]["data_base64"]["contentMediaType"] == "application/avro"
    assert audited["properties"]["datacontenttype"]["const"] == "application/avro"

    # The demo's events too (JSON, binary mode).
    assert messages["finance.balance-changed"]["contentType"] == "application/json"


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node
