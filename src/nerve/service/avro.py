"""Avro-encoded events (``class E(Event, topic=..., format="avro")``): the schema is derived from
the pydantic model and registered under ``<topic>-value``, and values carry Confluent's framing
(magic byte 0, 4-byte schema id, Avro binary), so Confluent's Avro deserializers read them and
nerve reads theirs.

Types: str, int (long), float (double), bool, bytes, Decimal (as a string: Avro's decimal needs
a fixed scale a Python Decimal does not have), datetime (timestamp-micros), date, UUID,
Literal[...] (an enum), X | None (a union with null), list[X], dict[str, X], nested models.
"""

from __future__ import annotations

import io
import json
import threading
import types
import typing
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import fastavro
from pydantic import BaseModel

MAGIC = 0
CONTENT_TYPE = "application/avro"

_PRIMITIVES: dict[Any, Any] = {
    str: "string",
    int: "long",
    float: "double",
    bool: "boolean",
    bytes: "bytes",
    Decimal: "string",
    datetime: {"type": "long", "logicalType": "timestamp-micros"},
    date: {"type": "int", "logicalType": "date"},
    UUID: {"type": "string", "logicalType": "uuid"},
}


class AvroError(ValueError):
    """A value that is not the Avro this event type expects."""


def avro_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The Avro record schema of a pydantic model (nested models become named records)."""
    return _record(model, set())


def _record(model: type[BaseModel], seen: set[str]) -> Any:
    name = model.__name__
    if name in seen:
        return name  # defined once, referred to by name after
    seen.add(name)
    hints = typing.get_type_hints(model)
    fields = []
    for field_name, info in model.model_fields.items():
        field: dict[str, Any] = {
            "name": field_name,
            "type": _type(hints[field_name], f"{name}_{field_name}", seen),
        }
        if not info.is_required() and info.default is not None:
            default = info.default
            if isinstance(default, str | int | float | bool):
                field["default"] = default
        elif not info.is_required():
            field["default"] = None
        fields.append(field)
    return {"type": "record", "name": name, "fields": fields}


def _type(hint: Any, name: str, seen: set[str]) -> Any:
    if hint in _PRIMITIVES:
        return _PRIMITIVES[hint]
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return _record(hint, seen)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Literal:
        return {"type": "enum", "name": name, "symbols": [str(a) for a in args]}
    if origin in (typing.Union, types.UnionType):
        branches = [a for a in args if a is not type(None)]
        nullable = len(branches) < len(args)
        converted = [_type(b, f"{name}_{i}", seen) for i, b in enumerate(branches)]
        return (["null"] if nullable else []) + converted
    if origin is list:
        return {"type": "array", "items": _type(args[0], f"{name}_item", seen)}
    if origin is dict and args and args[0] is str:
        return {"type": "map", "values": _type(args[1], f"{name}_value", seen)}
    raise TypeError(f"{name}: no Avro type for {hint!r}")


def _plain(value: Any) -> Any:
    """A model dump with the values Avro's string-typed fields expect."""
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _schema_id(value: bytes) -> int:
    if len(value) < 5 or value[0] != MAGIC:
        raise AvroError("not a Confluent-framed Avro value (magic byte 0 and a schema id)")
    return int.from_bytes(value[1:5], "big")


class AvroCodec:
    """Encodes and decodes Avro events; writer schemas are fetched from the registry by id
    (once each) so that events written with an older or newer schema are resolved."""

    def __init__(self, registry_url: str) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self.client = SchemaRegistryClient({"url": registry_url})
        self._parsed: dict[type[BaseModel], Any] = {}
        self._writers: dict[int, Any] = {}
        self._lock = threading.Lock()

    def schema_of(self, model: type[BaseModel]) -> Any:
        with self._lock:
            parsed = self._parsed.get(model)
            if parsed is None:
                parsed = self._parsed[model] = fastavro.parse_schema(avro_schema(model))
            return parsed

    def register(self, subject: str, model: type[BaseModel]) -> int:
        from confluent_kafka.schema_registry import Schema

        text = json.dumps(avro_schema(model))
        return int(self.client.register_schema(subject, Schema(text, "AVRO")))

    def encode(self, event: BaseModel, schema_id: int) -> bytes:
        out = io.BytesIO()
        out.write(bytes([MAGIC]))
        out.write(schema_id.to_bytes(4, "big"))
        fastavro.schemaless_writer(out, self.schema_of(type(event)), _plain(event.model_dump()))
        return out.getvalue()

    def decode(self, model: type[BaseModel], value: bytes) -> Any:
        """An event of ``model`` (an Avro event class), the writer's schema resolved against
        the class's own."""
        schema_id = _schema_id(value)
        writer = self._writer(schema_id)
        try:
            record = fastavro.schemaless_reader(
                io.BytesIO(value[5:]), writer, self.schema_of(model)
            )
        except Exception as exc:  # fastavro's errors are of many kinds
            raise AvroError(
                f"cannot read schema {schema_id}'s data as {model.__name__}: {exc}"
            ) from None
        return model.model_validate(record)

    def read(self, value: bytes) -> Any:
        """The data as its writer's schema reads it (for a model that is not Avro's own)."""
        schema_id = _schema_id(value)
        writer = self._writer(schema_id)
        try:
            return fastavro.schemaless_reader(io.BytesIO(value[5:]), writer, None)
        except Exception as exc:
            raise AvroError(f"a value does not read as its schema {schema_id}: {exc}") from None

    def _writer(self, schema_id: int) -> Any:
        with self._lock:
            writer = self._writers.get(schema_id)
        if writer is None:
            from confluent_kafka.schema_registry.error import SchemaRegistryError

            try:
                schema = self.client.get_schema(schema_id)
            except SchemaRegistryError as exc:
                if exc.http_status_code == 404:  # a wrong id: this record is unreadable
                    raise AvroError(f"schema id {schema_id} is not in the registry") from None
                raise  # the registry is unwell: not the record's fault
            writer = fastavro.parse_schema(json.loads(schema.schema_str or "null"))
            with self._lock:
                self._writers[schema_id] = writer
        return writer
