"""confluent-kafka's SchemaRegistryClient and its Avro, JSON Schema and Protobuf serializers,
unchanged, against ``nerve registry``: events round-trip through the broker."""

from __future__ import annotations

import base64
import importlib
import json
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2

from nerve.cli.decode import FramedDecoder
from nerve.service.protobuf import ProtobufReader
from tests._broker import BrokerProcess
from tests._registry import RegistryProcess
from tests.conftest import TopicNameFactory

PAYMENT_AVRO = """
{"type": "record", "name": "Payment", "namespace": "finance",
 "fields": [{"name": "id", "type": "string"},
            {"name": "amount", "type": "double"},
            {"name": "note", "type": ["null", "string"], "default": null}]}
"""
PAYMENT_JSON = """
{"$schema": "http://json-schema.org/draft-07/schema#", "title": "Payment", "type": "object",
 "properties": {"id": {"type": "string"}, "amount": {"type": "number"}},
 "required": ["id", "amount"]}
"""
PAYMENT_PROTO = """
syntax = "proto3";
package finance;
import "google/protobuf/timestamp.proto";
message Payment {
  string id = 1;
  double amount = 2;
  google.protobuf.Timestamp at = 3;
  map<string, string> labels = 4;
}
"""


@pytest.fixture
def client(shared_registry: RegistryProcess) -> Iterator[SchemaRegistryClient]:
    yield SchemaRegistryClient({"url": shared_registry.url})


def round_trip(
    broker: BrokerProcess, topic: str, serialize: Callable[..., bytes], events: list[Any]
) -> list[bytes]:
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for event in events:
        producer.produce(
            topic, value=serialize(event, SerializationContext(topic, MessageField.VALUE))
        )
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": topic,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    try:
        while len(values) < len(events):
            message = consumer.poll(10)
            assert message is not None, f"only {len(values)} of {len(events)} arrived"
            assert message.error() is None, message.error()
            values.append(message.value())
    finally:
        consumer.close()
    return values


def test_avro_serializer_round_trip(
    client: SchemaRegistryClient, shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    serializer = AvroSerializer(client, PAYMENT_AVRO)
    deserializer = AvroDeserializer(client)
    events = [{"id": f"p{i}", "amount": i * 1.5, "note": None if i % 2 else "hi"} for i in range(5)]
    values = round_trip(shared_broker, topic, serializer, events)
    assert all(v[0] == 0 for v in values)  # Confluent framing: magic byte, then the id
    ctx = SerializationContext(topic, MessageField.VALUE)
    assert [deserializer(v, ctx) for v in values] == events
    registered = client.get_latest_version(f"{topic}-value")
    assert registered.version == 1
    assert int.from_bytes(values[0][1:5], "big") == registered.schema_id


def test_json_serializer_round_trip_and_refusal(
    client: SchemaRegistryClient, shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    serializer = JSONSerializer(PAYMENT_JSON, client)
    deserializer = JSONDeserializer(PAYMENT_JSON, schema_registry_client=client)
    events = [{"id": f"p{i}", "amount": i + 0.25} for i in range(5)]
    values = round_trip(shared_broker, topic, serializer, events)
    ctx = SerializationContext(topic, MessageField.VALUE)
    assert [deserializer(v, ctx) for v in values] == events
    assert client.get_latest_version(f"{topic}-value").schema.schema_type == "JSON"
    with pytest.raises(Exception, match="'lots' is not of type 'number'"):
        serializer({"id": "bad", "amount": "lots"}, ctx)


def _compile_proto(tmp_path: Path, text: str, main: str = "payment", **imports: str) -> ModuleType:
    """``<main>.proto`` (and the files it imports, by name) compiled to Python and imported.
    Names must differ between tests: protobuf's default pool refuses a file name twice."""
    from grpc_tools import protoc

    source = tmp_path / "proto"
    source.mkdir()
    files = {f"{main}.proto": text, **{f"{name}.proto": body for name, body in imports.items()}}
    for name, body in files.items():
        (source / name).write_text(body)
    include = str(Path(protoc.__file__).parent / "_proto")
    code = protoc.main(
        ["protoc", f"-I{source}", f"-I{include}", f"--python_out={tmp_path}", *files]
    )
    assert code == 0
    sys.path.insert(0, str(tmp_path))
    modules = [f"{name.removesuffix('.proto')}_pb2" for name in files]
    try:
        return importlib.import_module(f"{main}_pb2")
    finally:
        sys.path.remove(str(tmp_path))
        for module in modules:
            sys.modules.pop(module, None)


def test_protobuf_serializer_round_trip(
    client: SchemaRegistryClient,
    shared_broker: BrokerProcess,
    topic_name: TopicNameFactory,
    tmp_path: Path,
) -> None:
    module = _compile_proto(tmp_path, PAYMENT_PROTO)
    topic = topic_name()
    serializer = ProtobufSerializer(module.Payment, client, {"use.deprecated.format": False})
    deserializer = ProtobufDeserializer(module.Payment, {"use.deprecated.format": False})
    events = []
    for i in range(5):
        event = module.Payment(id=f"p{i}", amount=i * 2.5, labels={"n": str(i)})
        event.at.FromSeconds(1_700_000_000 + i)
        events.append(event)
    values = round_trip(shared_broker, topic, serializer, events)
    ctx = SerializationContext(topic, MessageField.VALUE)
    assert [deserializer(v, ctx) for v in values] == events
    latest = client.get_latest_version(f"{topic}-value")
    assert latest.schema.schema_type == "PROTOBUF"
    # Registered as a serialized descriptor, served as .proto text by default.
    assert "message Payment" in latest.schema.schema_str
    assert "map<string, string> labels = 4;" in latest.schema.schema_str
    # Well-known imports are not registered as references; the registry knows them itself.
    assert 'import "google/protobuf/timestamp.proto";' in latest.schema.schema_str
    assert latest.schema.references == []


def test_client_calls_and_errors(
    client: SchemaRegistryClient, subject_name: Callable[[str], str]
) -> None:
    subject = subject_name("value")
    schema = Schema(PAYMENT_AVRO, "AVRO")
    schema_id = client.register_schema(subject, schema)
    assert client.lookup_schema(subject, schema).schema_id == schema_id
    assert client.get_subjects().count(subject) == 1
    assert client.get_versions(subject) == [1]
    assert client.get_version(subject, 1).schema_id == schema_id
    assert client.test_compatibility(subject, Schema(PAYMENT_AVRO, "AVRO")) is True
    assert client.set_compatibility(subject, "FULL")["compatibility"] == "FULL"
    assert client.get_compatibility(subject) == "FULL"
    with pytest.raises(SchemaRegistryError) as missing:
        client.get_version(subject_name("missing"), 1)
    assert (missing.value.http_status_code, missing.value.error_code) == (404, 40401)
    with pytest.raises(SchemaRegistryError) as invalid:
        client.register_schema(subject, Schema('{"type": "nope"}', "AVRO"))
    assert (invalid.value.http_status_code, invalid.value.error_code) == (422, 42201)
    assert client.delete_subject(subject) == [1]
    assert client.delete_subject(subject, permanent=True) == [1]
    assert subject not in client.get_subjects()


def test_protobuf_imports_become_referenced_subjects(
    client: SchemaRegistryClient,
    shared_registry: RegistryProcess,
    shared_broker: BrokerProcess,
    topic_name: TopicNameFactory,
    tmp_path: Path,
) -> None:
    topic = topic_name()
    money_file = f"money_{uuid.uuid4().hex[:8]}"  # its subject is its file name
    money = (
        'syntax = "proto3";\npackage finance;\n'
        "message Money { int64 cents = 1; string currency = 2; }\n"
    )
    payment = (
        f'syntax = "proto3";\npackage finance;\nimport "{money_file}.proto";\n'
        "message Transfer { string id = 1; Money amount = 2; }\n"
    )
    module = _compile_proto(tmp_path, payment, main=f"transfer_{money_file}", **{money_file: money})
    serializer = ProtobufSerializer(module.Transfer, client, {"use.deprecated.format": False})
    deserializer = ProtobufDeserializer(module.Transfer, {"use.deprecated.format": False})
    event = module.Transfer(id="t1")
    event.amount.cents, event.amount.currency = 1250, "EUR"
    values = round_trip(shared_broker, topic, serializer, [event])
    ctx = SerializationContext(topic, MessageField.VALUE)
    assert deserializer(values[0], ctx) == event
    latest = client.get_latest_version(f"{topic}-value")
    [reference] = latest.schema.references
    assert (reference.name, reference.subject) == (f"{money_file}.proto", f"{money_file}.proto")
    # Asked for plainly (the client's own cache holds the serialized form), it is .proto text.
    text = httpx.get(
        f"{shared_registry.url}/subjects/{reference.subject}/versions/{reference.version}/schema"
    ).text
    assert "message Money {" in text
    # The Protobuf deserializer of another process reads the writer schema in serialized form.
    serialized = client.get_schema(latest.schema_id, fmt="serialized")
    descriptor = descriptor_pb2.FileDescriptorProto.FromString(
        base64.b64decode(serialized.schema_str)
    )
    assert [m.name for m in descriptor.message_type] == ["Transfer"]
    assert list(descriptor.dependency) == [f"{money_file}.proto"]


def test_json_schema_references(
    client: SchemaRegistryClient, subject_name: Callable[[str], str]
) -> None:
    address = subject_name("address")
    client.register_schema(
        address,
        Schema(
            '{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}',
            "JSON",
        ),
    )
    customer = Schema(
        '{"type": "object", "properties": {"name": {"type": "string"}, '
        '"address": {"$ref": "address.json"}}}',
        "JSON",
        [SchemaReference("address.json", address, 1)],
    )
    subject = subject_name("customer")
    schema_id = client.register_schema(subject, customer)
    fetched = client.get_schema(schema_id)
    assert [(r.name, r.subject, r.version) for r in fetched.references] == [
        ("address.json", address, 1)
    ]
    with pytest.raises(SchemaRegistryError) as unresolved:
        client.register_schema(subject_name("broken"), Schema(customer.schema_str, "JSON"))
    assert unresolved.value.error_code == 42201
    assert "address.json" in unresolved.value.error_message


def _compile_tree(tmp_path: Path, files: dict[str, str], main: str) -> ModuleType:
    """``files`` (paths relative to the source root, directories included) compiled to Python;
    returns the module of ``main``. Paths must differ between tests (protobuf's pool)."""
    from grpc_tools import protoc

    source = tmp_path / "proto"
    for name, body in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(body)
    include = str(Path(protoc.__file__).parent / "_proto")
    code = protoc.main(
        ["protoc", f"-I{source}", f"-I{include}", f"--python_out={tmp_path}", *files]
    )
    assert code == 0
    sys.path.insert(0, str(tmp_path))
    module_names = [name.removesuffix(".proto").replace("/", ".") + "_pb2" for name in files]
    try:
        return importlib.import_module(main.removesuffix(".proto").replace("/", ".") + "_pb2")
    finally:
        sys.path.remove(str(tmp_path))
        for module in module_names:
            sys.modules.pop(module, None)
        for package in {name.split("/")[0] for name in files if "/" in name}:
            for loaded in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
                sys.modules.pop(loaded, None)


def test_protobuf_imports_in_directories_register_under_subjects_holding_slashes(
    client: SchemaRegistryClient,
    shared_registry: RegistryProcess,
    shared_broker: BrokerProcess,
    topic_name: TopicNameFactory,
    tmp_path: Path,
) -> None:
    root = f"shop{uuid.uuid4().hex[:8]}"
    money_path, meta_path = f"{root}/v1/money.proto", f"{root}/common/meta.proto"
    files = {
        money_path: f'syntax = "proto3";\npackage {root}.v1;\n'
        "message Money { int64 cents = 1; string currency = 2; }\n",
        meta_path: f'syntax = "proto3";\npackage {root}.common;\n'
        "message Meta { string trace = 1; }\n",
        f"{root}/v1/order.proto": f'syntax = "proto3";\npackage {root}.v1;\n'
        f'import "{money_path}";\nimport "{meta_path}";\n'
        f"message Order {{ string id = 1; Money total = 2; {root}.common.Meta meta = 3; }}\n",
    }
    module = _compile_tree(tmp_path, files, main=f"{root}/v1/order.proto")
    topic = topic_name()
    serializer = ProtobufSerializer(module.Order, client, {"use.deprecated.format": False})
    deserializer = ProtobufDeserializer(module.Order, {"use.deprecated.format": False})
    event = module.Order(id="o1")
    event.total.cents, event.total.currency = 4200, "EUR"
    event.meta.trace = "t-1"
    values = round_trip(shared_broker, topic, serializer, [event])
    assert deserializer(values[0], SerializationContext(topic, MessageField.VALUE)) == event
    # nerve's own readers (services, `nerve consume`) fetch the imports by subject to decode it.
    expected = {"id": "o1", "total": {"cents": "4200", "currency": "EUR"}, "meta": {"trace": "t-1"}}
    assert ProtobufReader(shared_registry.url).read(values[0]) == expected
    assert json.loads(FramedDecoder(shared_registry.url).text(values[0]) or "null") == expected

    latest = client.get_latest_version(f"{topic}-value")
    assert sorted((r.name, r.subject) for r in latest.schema.references) == sorted(
        [(money_path, money_path), (meta_path, meta_path)]
    )
    assert money_path in client.get_subjects()
    assert client.get_versions(money_path) == [1]
    assert "message Money {" in client.get_latest_version(money_path).schema.schema_str

    # Every route that takes a subject keeps the encoded slash inside it.
    url, encoded = shared_registry.url, money_path.replace("/", "%2F")
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.get(f"/subjects/{encoded}/versions/1/schema").text.startswith("syntax")
        money_id = http.get(f"/subjects/{encoded}/versions/1").json()["id"]
        assert http.get(f"/subjects/{encoded}/versions/1/referencedby").json() == [latest.schema_id]
        text = http.get(f"/subjects/{encoded}/versions/1/schema").text
        assert http.post(f"/subjects/{encoded}", json={"schema": text, "schemaType": "PROTOBUF"})
        assert (
            http.post(
                f"/subjects/{encoded}", json={"schema": text, "schemaType": "PROTOBUF"}
            ).json()["id"]
            == money_id
        )
        check = http.post(
            f"/compatibility/subjects/{encoded}/versions/latest",
            json={"schema": text, "schemaType": "PROTOBUF"},
        )
        assert check.json() == {"is_compatible": True}
        assert http.put(f"/config/{encoded}", json={"compatibility": "FULL"}).status_code == 200
        assert http.get(f"/config/{encoded}").json() == {"compatibilityLevel": "FULL"}
        assert http.put(f"/mode/{encoded}", json={"mode": "READONLY"}).status_code == 200
        assert http.get(f"/mode/{encoded}").json() == {"mode": "READONLY"}
        assert http.delete(f"/mode/{encoded}").status_code == 200
        assert http.delete(f"/config/{encoded}").status_code == 200
        # Still referenced by the Order schema, so it cannot go.
        assert http.delete(f"/subjects/{encoded}").json()["error_code"] == 42206
        # A literal "%2F" in a subject is sent as %252F and stays a different subject.
        assert http.get(f"/subjects/{root}%252Fv1%252Fmoney.proto/versions").status_code == 404
