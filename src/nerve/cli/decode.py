"""Reading Confluent-framed values for ``nerve consume``: magic byte 0, a 4-byte schema id, then
Avro binary, JSON text, or Protobuf (message indexes, then the message), each decoded with the
writer's schema from the registry and printed as JSON, as kcat ``-s value=avro`` and rpk do.

Schemas are fetched once per id. A value that is not framed, or whose schema cannot be had, is
printed as it is; why is said once on stderr.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

MAGIC = 0
Decode = Callable[[bytes], Any]


class DecodeError(Exception):
    """A framed value that its schema does not read."""


class FramedDecoder:
    def __init__(self, registry_url: str) -> None:
        self.url = registry_url.rstrip("/")
        self._decoders: dict[int, Decode | None] = {}
        self._said: set[str] = set()
        self._client: Any = None

    def text(self, value: bytes | None) -> str | None:
        """The value as JSON text when it is Confluent-framed and its schema is known; else
        None (print it as it is)."""
        if value is None or len(value) < 5 or value[0] != MAGIC:
            return None
        schema_id = int.from_bytes(value[1:5], "big")
        decode = self._decoder(schema_id)
        if decode is None:
            return None
        try:
            return json.dumps(decode(value[5:]), default=_plain, ensure_ascii=False)
        except Exception as exc:
            self._say(f"a value of schema {schema_id} does not decode: {exc}")
            return None

    def _say(self, line: str) -> None:
        if line not in self._said:
            self._said.add(line)
            print(f"nerve consume: {line}; printed as it is", file=sys.stderr)

    def _get(self, path: str) -> Any:
        import httpx

        if self._client is None:
            self._client = httpx.Client(base_url=self.url, timeout=10)
        response = self._client.get(path)
        response.raise_for_status()
        return response.json()

    def _decoder(self, schema_id: int) -> Decode | None:
        if schema_id in self._decoders:
            return self._decoders[schema_id]
        decode: Decode | None = None
        try:
            schema = self._get(f"/schemas/ids/{schema_id}")
            kind = schema.get("schemaType", "AVRO")
            if kind == "AVRO":
                decode = self._avro(schema)
            elif kind == "JSON":
                decode = _json
            elif kind == "PROTOBUF":
                decode = self._protobuf(schema_id, schema)
        except Exception as exc:
            reason = getattr(exc, "response", None)
            status = getattr(reason, "status_code", None)
            if status == 404:
                self._say(f"schema id {schema_id} is not in the registry at {self.url}")
            else:
                self._say(
                    f"cannot read schema id {schema_id} from the registry at {self.url}: {exc}"
                )
        self._decoders[schema_id] = decode
        return decode

    # -- Avro --------------------------------------------------------------------------------

    def _avro(self, schema: dict[str, Any]) -> Decode:
        import fastavro

        named: dict[str, Any] = {}
        for reference in schema.get("references") or []:
            referenced = self._get(
                f"/subjects/{reference['subject']}/versions/{reference['version']}"
            )
            fastavro.parse_schema(json.loads(referenced["schema"]), named_schemas=named)
        writer = fastavro.parse_schema(json.loads(schema["schema"]), named_schemas=named)

        def decode(data: bytes) -> Any:
            return fastavro.schemaless_reader(io.BytesIO(data), writer, None)

        return decode

    # -- Protobuf ----------------------------------------------------------------------------

    def _protobuf(self, schema_id: int, schema: dict[str, Any]) -> Decode | None:
        try:
            from google.protobuf import json_format
            from google.protobuf.message_factory import GetMessageClass
        except ImportError:
            self._say("Protobuf values need the protobuf extra: pip install 'nerve[protobuf]'")
            return None
        from nerve.service.protobuf import (
            ProtobufError,
            Reference,
            load_file,
            message_indexes,
            rest_references,
        )

        def fetch(subject: str, version: int) -> tuple[str, list[Reference]]:
            path = f"/subjects/{quote(subject, safe='')}/versions/{version}?format=serialized"
            found = self._get(path)
            return found["schema"], rest_references(found)

        serialized = self._get(f"/schemas/ids/{schema_id}?format=serialized")
        file = load_file(serialized["schema"], rest_references(serialized), fetch)
        messages = list(file.message_types_by_name.values())

        def decode(data: bytes) -> Any:
            try:
                indexes, offset = message_indexes(data, 0)
            except ProtobufError as exc:
                raise DecodeError(str(exc)) from None
            descriptor = messages[indexes[0]]
            for index in indexes[1:]:
                descriptor = descriptor.nested_types[index]
            message = GetMessageClass(descriptor)()
            message.ParseFromString(data[offset:])
            return json_format.MessageToDict(message, preserving_proto_field_name=True)

        return decode


def _json(data: bytes) -> Any:
    return json.loads(data)


def _plain(value: Any) -> Any:
    """JSON for what Avro decodes beyond JSON's types (bytes as ISO-8859-1 text, as Avro's own
    JSON encoding; dates, decimals and UUIDs as strings)."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
