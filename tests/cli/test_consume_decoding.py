"""``nerve consume`` decodes Confluent-framed Avro, JSON Schema and Protobuf values through the
registry and shows CloudEvents headers readably; ``nerve produce --event MODULE:Class`` sends
typed, validated events from JSON lines."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from tests._broker import BrokerProcess
from tests._ck import create_topic
from tests._registry import RegistryProcess
from tests.conftest import TopicNameFactory
from tests.registry.test_serializers import (
    PAYMENT_AVRO,
    PAYMENT_JSON,
    PAYMENT_PROTO,
    _compile_proto,
)


def nerve(*args: str, stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nerve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        cwd=cwd,
    )


def produce(broker: BrokerProcess, topic: str, values: list[bytes], headers: Any = None) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for value in values:
        producer.produce(topic, value=value, headers=headers)
    assert producer.flush(10) == 0


def consumed(broker: BrokerProcess, registry: RegistryProcess, topic: str, *extra: str) -> str:
    done = nerve(
        "consume", topic, "--from-beginning", "-e", "-b", broker.bootstrap, "-r", registry.url,
        *extra,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_consume_decodes_avro_json_schema_and_protobuf_values(
    shared_broker: BrokerProcess,
    shared_registry: RegistryProcess,
    topic_name: TopicNameFactory,
    tmp_path: Path,
) -> None:
    registry = SchemaRegistryClient({"url": shared_registry.url})
    payment = {"id": "p1", "amount": 12.5}
    for kind, serializer in (
        ("avro", AvroSerializer(registry, PAYMENT_AVRO)),
        ("json", JSONSerializer(PAYMENT_JSON, registry)),
    ):
        topic = topic_name(kind)
        create_topic(shared_broker.bootstrap, topic)
        value = serializer(payment, SerializationContext(topic, MessageField.VALUE))
        assert value is not None and value[0] == 0  # Confluent-framed
        produce(shared_broker, topic, [value, b'{"plain": true}'])
        out = consumed(shared_broker, shared_registry, topic).splitlines()
        decoded = json.loads(out[0])
        assert decoded["id"] == "p1" and decoded["amount"] == 12.5, (kind, out)
        assert out[1] == '{"plain": true}'  # not framed: as it is
        raw = consumed(shared_broker, shared_registry, topic, "--raw").splitlines()
        assert raw[0] != out[0]

    module = _compile_proto(tmp_path, PAYMENT_PROTO)
    topic = topic_name("protobuf")
    create_topic(shared_broker.bootstrap, topic)
    serializer = ProtobufSerializer(module.Payment, registry, {"use.deprecated.format": False})
    message = module.Payment(id="p2", amount=3.0)
    message.labels["team"] = "red"
    message.at.FromSeconds(1_800_000_000)
    produce(
        shared_broker, topic, [serializer(message, SerializationContext(topic, MessageField.VALUE))]
    )
    [line] = consumed(shared_broker, shared_registry, topic).splitlines()
    assert json.loads(line) == {
        "id": "p2",
        "amount": 3.0,
        "at": "2027-01-15T08:00:00Z",
        "labels": {"team": "red"},
    }


def test_consume_shows_cloudevents_headers_readably(
    shared_broker: BrokerProcess, shared_registry: RegistryProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(shared_broker.bootstrap, topic)
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"e1"),
        ("ce_source", b"/nerve/services/s"),
        ("ce_type", b"orders.placed"),
        ("content-type", b"application/json"),
        ("trace", b"x"),
    ]
    produce(shared_broker, topic, [b'{"a": 1}'], headers)
    out = consumed(shared_broker, shared_registry, topic, "--headers").splitlines()
    assert out == [
        f"# {topic}[0]@0 type=orders.placed source=/nerve/services/s id=e1 specversion=1.0 "
        "datacontenttype=application/json trace=x",
        '{"a": 1}',
    ]
    templated = consumed(shared_broker, shared_registry, topic, "-f", "{headers}")
    assert templated.startswith("type=orders.placed source=/nerve/services/s id=e1")


EVENTS = textwrap.dedent(
    """
    from nerve import Event

    class Placed(Event, topic="{topic}", key="order_id"):
        order_id: str
        total: int
    """
)


def test_produce_event_sends_validated_cloudevents(
    shared_broker: BrokerProcess,
    shared_registry: RegistryProcess,
    topic_name: TopicNameFactory,
    tmp_path: Path,
) -> None:
    topic = topic_name()
    (tmp_path / "shop_events.py").write_text(EVENTS.replace("{topic}", topic))
    lines = '{"order_id": "o1", "total": 5}\n{"order_id": "o2", "total": 7}\n'
    connect = ["-b", shared_broker.bootstrap, "-r", shared_registry.url]
    done = nerve("produce", "--event", "shop_events:Placed", *connect, stdin=lines, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = consumed(shared_broker, shared_registry, topic, "-k", "--headers").splitlines()
    assert out[1] == 'o1\t{"order_id":"o1","total":5}' and out[3].startswith("o2\t")
    assert "type=" + topic in out[0] and "source=/nerve/cli/produce" in out[0]
    assert "dataschema=" + shared_registry.url + "/schemas/ids/" in out[0]
    # The schema is registered as a service's would be.
    subjects = nerve("schemas", "list", "-r", shared_registry.url).stdout
    assert f"{topic}-value" in subjects

    # A line that breaks the contract stops with the field and the reason; a file path works.
    bad = '{"order_id": "o3", "total": "lots"}\n'
    path = str(tmp_path / "shop_events.py")
    refused = nerve("produce", "--event", f"{path}:Placed", *connect, stdin=bad)
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith("nerve produce: line 1 is not a Placed: total: ")
    extra = nerve(
        "produce",
        "--event",
        f"{path}:Placed",
        *connect,
        stdin='{"order_id": "o", "total": 1, "x": 2}\n',
    )
    assert extra.returncode == 1 and "x: Extra inputs are not permitted" in extra.stderr
    missing = nerve("produce", "--event", "shop_events:Nope", *connect, cwd=tmp_path)
    assert missing.returncode == 1 and "has no Event class Nope" in missing.stderr
