"""The catalog: services announce themselves to ``_nerve_catalog`` at start, and ``nerve
catalog`` (a real subprocess) lists them, links emitters to consumers and writes AsyncAPI 3.0."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, create_model

from nerve.service import Event, Service, catalog
from nerve.service.config import RunConfig
from nerve.service.runtime import ServiceError
from nerve.testing import Platform


class Line(BaseModel):
    sku: str
    qty: int


class Ordered(Event, topic="cat.orders", key="order_id"):
    order_id: str
    lines: list[Line]


class Shipped(Event, topic="cat.shipped", key="order_id", type="shop.shipped"):
    order_id: str
    carrier: str


def orders_service(description: str = "takes orders") -> Service:
    orders = Service("cat-orders", description, owner="team-shop")

    @orders.on("cat.requests")
    def take(event: Any) -> Ordered:
        return Ordered(order_id="o1", lines=[Line(sku="s", qty=1)])

    return orders


def shipping_service() -> Service:
    shipping = Service("cat-shipping", "ships what was ordered", owner="team-ship")

    @shipping.on(Ordered, where=lambda e: bool(e.lines))
    def ship(event: Ordered) -> Shipped:
        return Shipped(order_id=event.order_id, carrier="post")

    shipping.table("cat.carriers")
    return shipping


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    with Platform() as running:
        running.run(orders_service(), shipping_service())
        running.stop_services()
        yield running


def nerve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nerve", *args], capture_output=True, text=True, timeout=60
    )


def listed(platform: Platform) -> dict[str, dict[str, Any]]:
    done = nerve("catalog", "-b", platform.bootstrap, "--json")
    assert done.returncode == 0, done.stderr
    return {service["name"]: service for service in json.loads(done.stdout)}


def test_services_announce_what_they_consume_and_emit(platform: Platform) -> None:
    services = listed(platform)
    orders, shipping = services["cat-orders"], services["cat-shipping"]
    assert (orders["owner"], orders["description"]) == ("team-shop", "takes orders")
    assert orders["group"] == "cat-orders"
    assert orders["consumes"] == [
        {
            "topic": "cat.requests",
            "event": None,
            "type": None,
            "schema": None,
            "handlers": ["orders_service.<locals>.take"],
            "filtered": False,
        }
    ]
    [emit] = orders["emits"]
    assert (emit["topic"], emit["event"], emit["type"], emit["key"]) == (
        "cat.orders",
        "Ordered",
        "cat.orders",
        "order_id",
    )
    assert isinstance(emit["schema_id"], int)  # registered with the platform's registry
    assert emit["schema"] == Ordered.model_json_schema()
    [consume] = shipping["consumes"]
    assert (consume["event"], consume["type"], consume["filtered"]) == (
        "Ordered",
        "cat.orders",
        True,
    )
    assert consume["schema"]["properties"]["lines"]["type"] == "array"
    assert [e["type"] for e in shipping["emits"]] == ["shop.shipped"]
    assert shipping["tables"] == [
        {
            "name": "cat.carriers",
            "topic": "cat.carriers",
            "event": None,
            "type": None,
            "schema": None,
        }
    ]
    assert shipping["registry"] == platform.registry_url
    assert shipping["announced_at"] and shipping["nerve_version"]


def test_the_tables_link_each_event_to_its_emitters_and_consumers(platform: Platform) -> None:
    done = nerve("catalog", "-b", platform.bootstrap)
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.splitlines()]
    assert ["SERVICE", "OWNER", "CONSUMES", "EMITS"] in lines
    assert ["cat-orders", "team-shop", "cat.requests", "cat.orders"] in lines
    # A table is a consumer of its topic too.
    assert [
        "cat-shipping",
        "team-ship",
        "cat.orders,",
        "cat.carriers",
        "(table)",
        "shop.shipped",
    ] in lines
    assert ["TOPIC", "EVENT-TYPE", "EMITTED-BY", "CONSUMED-BY"] in lines
    assert ["cat.orders", "cat.orders", "cat-orders", "cat-shipping"] in lines
    assert ["cat.shipped", "shop.shipped", "cat-shipping", "-"] in lines
    assert ["cat.requests", "-", "-", "cat-orders"] in lines
    assert ["cat.carriers", "-", "-", "cat-shipping"] in lines


def test_a_reannounced_service_replaces_its_record_and_a_tombstone_removes_it(
    platform: Platform,
) -> None:
    config = platform.config
    catalog.announce(Service("cat-again", "first"), config, {})
    catalog.announce(Service("cat-again", "second", owner="team-b"), config, {})
    again = listed(platform)["cat-again"]
    assert (again["description"], again["owner"]) == ("second", "team-b")
    assert sum(1 for key, _, _ in platform.read(catalog.CATALOG_TOPIC) if key == b"cat-again") == 2

    assert platform._producer is not None
    platform._producer.produce(catalog.CATALOG_TOPIC, key=b"cat-again", value=None)
    platform._producer.flush(10)
    assert "cat-again" not in listed(platform)


def resolve(document: dict[str, Any], ref: str) -> Any:
    """A local JSON pointer (``#/a/b``), or AssertionError when it points nowhere."""
    assert ref.startswith("#/"), f"{ref} is not local to the document"
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def test_asyncapi_document_describes_channels_messages_and_operations(
    platform: Platform, tmp_path: Path
) -> None:
    target = tmp_path / "asyncapi.json"
    done = nerve("catalog", "asyncapi", "-b", platform.bootstrap, "-o", str(target))
    assert done.returncode == 0, done.stderr
    document = json.loads(target.read_text())

    # The fields AsyncAPI 3.0 requires, and every reference resolves inside the document.
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "nerve system" and document["info"]["version"]
    assert document["servers"]["kafka"] == {"host": platform.bootstrap, "protocol": "kafka"}
    found = list(refs(document))
    assert found
    for ref in found:
        resolve(document, ref)
    for channel_id, channel in document["channels"].items():
        assert set(channel) <= {"address", "messages", "title", "summary", "description"}
        assert channel["address"] == channel_id
    for operation in document["operations"].values():
        assert operation["action"] in ("send", "receive")
        channel_ref = operation["channel"]["$ref"]
        for message in operation.get("messages", []):
            # A 3.0 operation's messages are those of its own channel.
            assert message["$ref"].startswith(channel_ref + "/messages/")

    # The channel carries the event's payload schema (nested models hoisted to components)
    # and the CloudEvents headers.
    orders = document["channels"]["cat.orders"]
    [message_ref] = orders["messages"].values()
    message = resolve(document, message_ref["$ref"])
    payload = resolve(document, message["payload"]["$ref"])
    assert set(payload["properties"]) == {"order_id", "lines"}
    item = resolve(document, payload["properties"]["lines"]["items"]["$ref"])
    assert set(item["properties"]) == {"sku", "qty"}
    headers = resolve(document, message["headers"]["$ref"])
    for header in ("ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time", "content-type"):
        assert header in headers["properties"]
    for header in ("ce_correlationid", "ce_causationid", "traceparent"):
        assert header in headers["properties"]
    assert message["bindings"]["kafka"]["key"]["type"] == "string"
    shipped = resolve(
        document, document["channels"]["cat.shipped"]["messages"]["shop.shipped"]["$ref"]
    )
    assert set(resolve(document, shipped["payload"]["$ref"])["properties"]) == {
        "order_id",
        "carrier",
    }

    # Who sends and who receives what.
    operations = {
        (op["x-nerve-service"], op["action"], op["channel"]["$ref"]): op
        for op in document["operations"].values()
    }
    assert ("cat-orders", "send", "#/channels/cat.orders") in operations
    assert ("cat-orders", "receive", "#/channels/cat.requests") in operations
    receive = operations[("cat-shipping", "receive", "#/channels/cat.orders")]
    assert receive["messages"] == [{"$ref": "#/channels/cat.orders/messages/cat.orders"}]
    assert receive["bindings"]["kafka"]["groupId"]["enum"] == ["cat-shipping"]
    assert ("cat-shipping", "send", "#/channels/cat.shipped") in operations
    # Its table reads cat.carriers: a consumed channel, outside the consumer group.
    table = operations[("cat-shipping", "receive", "#/channels/cat.carriers")]
    assert table["x-nerve-table"] is True and "bindings" not in table


def test_asyncapi_keeps_apart_models_that_share_a_name() -> None:
    # Two services' nested models may share a class name and differ.
    first = create_model("Item", a=(int, ...))
    second = create_model("Item", b=(str, ...))

    class One(Event, topic="x.one"):
        item: first  # type: ignore[valid-type]

    class Two(Event, topic="x.two"):
        item: second  # type: ignore[valid-type]

    services = {
        name: {"name": name, "consumes": [], "emits": [catalog_emit(e)]}
        for name, e in (("s1", One), ("s2", Two))
    }
    document = catalog.asyncapi(services, "h:1")
    for ref in refs(document):
        resolve(document, ref)
    schemas = document["components"]["schemas"]
    assert {"a"} in [set(s.get("properties", {})) for s in schemas.values()]
    assert {"b"} in [set(s.get("properties", {})) for s in schemas.values()]


def catalog_emit(event_type: type[Event]) -> dict[str, Any]:
    return {
        "topic": event_type.topic,
        "event": event_type.__name__,
        "type": event_type.event_type,
        "schema": event_type.model_json_schema(),
        "key": None,
        "schema_id": None,
    }


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_catalog_says_so_when_the_broker_is_unreachable() -> None:
    done = nerve("catalog", "-b", f"127.0.0.1:{closed_port()}", "--timeout", "1")
    assert done.returncode == 1
    assert done.stderr.startswith("nerve catalog: cannot reach a broker at 127.0.0.1:")
    assert "Traceback" not in done.stderr


def test_a_failed_announcement_is_logged_and_does_not_stop_the_service(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise ServiceError("cannot create topic _nerve_catalog: not authorised")

    monkeypatch.setattr("nerve.service.runtime.ensure_topics", refuse)
    config = RunConfig(f"127.0.0.1:{closed_port()}", client_config={"log_level": 0})
    with caplog.at_level(logging.WARNING, logger="nerve.service"):
        catalog.announce(Service("cat-denied"), config, {})
    assert "cat-denied: could not announce to _nerve_catalog" in caplog.text
    assert "not authorised" in caplog.text
