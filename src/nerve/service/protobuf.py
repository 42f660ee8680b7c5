"""Protobuf data read into events: Confluent's framing (magic byte 0, the 4-byte schema id, the
message indexes, then the message), the writer's file descriptor fetched from the registry by
id (``format=serialized``, its references likewise), and the message turned into the plain
values a pydantic model validates, through Protobuf's JSON mapping (field names as written in
the .proto, fields at their defaults included).

Needs the ``protobuf`` package (the ``protobuf`` extra); without it, Protobuf data is refused
with a message naming the extra.
"""

from __future__ import annotations

import base64
import importlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

MAGIC = 0


class ProtobufError(ValueError):
    """A value that is not Confluent-framed Protobuf its schema reads."""


def message_indexes(data: bytes, offset: int) -> tuple[list[int], int]:
    """Which message of the file the value holds (a path through nested types; ``[0]``, the
    first message, is written as a single 0), and where the message starts."""
    count, offset = _varint(data, offset)
    if count == 0:
        return [0], offset
    indexes = []
    for _ in range(count):
        index, offset = _varint(data, offset)
        indexes.append(index)
    return indexes, offset


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    """A zig-zag varint (Confluent's message-index encoding) and the offset after it."""
    shift = result = 0
    while True:
        if offset >= len(data):
            raise ProtobufError("the message indexes end early")
        byte = data[offset]
        offset += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), offset
        shift += 7


def add_well_known(pool: Any, name: str) -> None:
    """google/protobuf/timestamp.proto and the like, from the protobuf package itself (the
    registry does not hold them)."""
    from google.protobuf import descriptor_pb2

    module = importlib.import_module("google.protobuf." + name.rsplit("/", 1)[1][:-6] + "_pb2")
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb))


Reference = tuple[str, str, int]
"""A schema reference as the registry gives it: the imported file's name, subject, version."""

FetchReference = Callable[[str, int], tuple[str, list[Reference]]]
"""Fetches a referenced schema by subject and version, serialized: its text and references."""


def rest_references(schema: Mapping[str, Any]) -> list[Reference]:
    """The references of a schema as the registry's REST API answers it."""
    return [(r["name"], r["subject"], r["version"]) for r in schema.get("references") or []]


def load_file(serialized: str, references: list[Reference], fetch: FetchReference) -> Any:
    """The file descriptor of a serialized schema, in a descriptor pool of its own together
    with what it imports: its references, fetched through ``fetch`` (each once) and named as
    the importing file names them, and the well-known google/protobuf/ files, which the
    registry does not hold."""
    from google.protobuf import descriptor_pb2, descriptor_pool

    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(serialized: str, references: list[Reference], name: str | None = None) -> Any:
        for reference, subject, version in references:
            if reference not in added:
                add(*fetch(subject, version), name=reference)
        fdp = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(serialized))
        if name is not None:  # imported under the reference's name, whatever the file calls itself
            fdp.name = name
        for dependency in fdp.dependency:
            if dependency not in added and dependency.startswith("google/protobuf/"):
                add_well_known(pool, dependency)
                added.add(dependency)
        added.add(fdp.name)
        return pool.Add(fdp)

    file = add(serialized, references)
    return pool.FindFileByName(file.name)


class ProtobufReader:
    """Reads Confluent-framed Protobuf values with their writer's schema; one descriptor pool
    per schema id, built on first sight."""

    def __init__(self, registry_url: str) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self.client = SchemaRegistryClient({"url": registry_url})
        self._messages: dict[int, list[Any]] = {}
        self._lock = threading.Lock()

    def read(self, value: bytes) -> dict[str, Any]:
        try:
            from google.protobuf import json_format
            from google.protobuf.message import DecodeError
            from google.protobuf.message_factory import GetMessageClass
        except ImportError:
            raise ProtobufError(
                "Protobuf data needs the protobuf package: pip install 'nerve[protobuf]'"
            ) from None
        if len(value) < 6 or value[0] != MAGIC:
            raise ProtobufError("not a Confluent-framed Protobuf value (magic byte 0, schema id)")
        schema_id = int.from_bytes(value[1:5], "big")
        indexes, offset = message_indexes(value, 5)
        messages = self._file_messages(schema_id)
        try:
            descriptor = messages[indexes[0]]
            for index in indexes[1:]:
                descriptor = descriptor.nested_types[index]
        except IndexError:
            raise ProtobufError(
                f"message indexes {indexes} are not in schema {schema_id}"
            ) from None
        message = GetMessageClass(descriptor)()
        try:
            message.ParseFromString(value[offset:])
        except DecodeError as exc:
            raise ProtobufError(
                f"a value does not read as {descriptor.full_name} (schema {schema_id}): {exc}"
            ) from None
        result: dict[str, Any] = json_format.MessageToDict(
            message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        return result

    def _file_messages(self, schema_id: int) -> list[Any]:
        with self._lock:
            messages = self._messages.get(schema_id)
            if messages is None:
                messages = self._messages[schema_id] = self._load(schema_id)
            return messages

    def _load(self, schema_id: int) -> list[Any]:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        def fetch(subject: str, version: int) -> tuple[str, list[Reference]]:
            found = self.client.get_version(subject, version, fmt="serialized")
            return found.schema.schema_str or "", _references(found.schema.references)

        try:
            schema = self.client.get_schema(schema_id, fmt="serialized")
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:  # a wrong id: this record is unreadable
                raise ProtobufError(f"schema id {schema_id} is not in the registry") from None
            raise  # the registry is unwell: not the record's fault
        if schema.schema_type != "PROTOBUF":
            raise ProtobufError(f"schema {schema_id} is {schema.schema_type}, not Protobuf")
        file = load_file(schema.schema_str or "", _references(schema.references), fetch)
        return list(file.message_types_by_name.values())


def _references(references: list[Any] | None) -> list[Reference]:
    return [(r.name, r.subject, r.version) for r in references or []]
