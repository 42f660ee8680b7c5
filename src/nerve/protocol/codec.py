"""Request and response codec: Kafka frames to ``kio`` objects and back.

The header is parsed by hand (a handful of fixed fields, read on every request); bodies are
decoded and encoded by kio's native reader and writer, looked up once per (API key, version).
"""

from __future__ import annotations

import dataclasses
import io
import struct
from collections.abc import Callable
from functools import cache
from types import ModuleType
from typing import Any, NamedTuple

from kio.index import load_payload_module
from kio.schema.index import api_key_map
from kio.serial import entity_reader, entity_writer
from kio.static.constants import EntityType

API_VERSIONS_KEY = 18

_HEADER = struct.Struct(">hhi")
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")


class RequestDecodeError(ValueError):
    """The frame is not a well-formed request; the connection cannot be trusted further."""


class UnsupportedVersionError(Exception):
    """The API key or version is not one nerve answers."""

    def __init__(self, header: RequestHeader) -> None:
        super().__init__(f"api key {header.api_key} version {header.api_version} not supported")
        self.header = header


class RequestHeader(NamedTuple):
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


class Request(NamedTuple):
    header: RequestHeader
    body: Any


@cache
def schema_module(api_key: int, version: int, response: bool) -> ModuleType:
    """The kio module holding one version of one API's request or response classes."""
    if response:
        return load_payload_module(api_key, version, EntityType.response)
    return load_payload_module(api_key, version, EntityType.request)


@cache
def _request_class(api_key: int, version: int) -> type:
    module = schema_module(api_key, version, False)
    return _payload_class(module, "Request")


@cache
def _response_class(api_key: int, version: int) -> type:
    module = schema_module(api_key, version, True)
    return _payload_class(module, "Response")


def _payload_class(module: ModuleType, suffix: str) -> type:
    for name in dir(module):
        value = getattr(module, name)
        if (
            isinstance(value, type)
            and value.__module__ == module.__name__
            and name.endswith(suffix)
            and getattr(value, "__type__", None) in (EntityType.request, EntityType.response)
        ):
            return value
    raise LookupError(f"no {suffix} payload in {module.__name__}")


@cache
def _reader(api_key: int, version: int) -> Callable[..., Any]:
    return entity_reader(_request_class(api_key, version))


@cache
def _writer(api_key: int, version: int) -> Callable[..., Any]:
    return entity_writer(_response_class(api_key, version))


def is_flexible(api_key: int, version: int) -> bool:
    """Flexible versions carry tagged fields and compact strings (KIP-482)."""
    flexible: bool = _request_class(api_key, version).__flexible__  # type: ignore[attr-defined]
    return flexible


def known_versions(api_key: int) -> range:
    """The versions kio has classes for (an upper bound on what nerve can answer)."""
    from kio.schema.index import schema_name_map

    versions = schema_name_map[api_key_map[api_key]]
    return range(min(versions), max(versions) + 1)


def decode_header(frame: bytes | bytearray | memoryview) -> tuple[RequestHeader, int]:
    """Parse the request header; returns it and the offset where the body starts.

    The tagged-field section of flexible headers is skipped only later, once the version is
    known to be supported (unknown versions are answered without parsing further).
    """
    if len(frame) < 10:
        raise RequestDecodeError(f"request of {len(frame)} bytes is shorter than a header")
    api_key, api_version, correlation_id = _HEADER.unpack_from(frame, 0)
    (client_id_len,) = _INT16.unpack_from(frame, 8)
    pos = 10
    client_id: str | None = None
    if client_id_len >= 0:
        end = pos + client_id_len
        if end > len(frame):
            raise RequestDecodeError("client id runs past the end of the request")
        client_id = bytes(frame[pos:end]).decode("utf-8", "replace")
        pos = end
    return RequestHeader(api_key, api_version, correlation_id, client_id), pos


def _skip_tagged_fields(frame: bytes | bytearray | memoryview, pos: int) -> int:
    count, pos = read_uvarint(frame, pos)
    for _ in range(count):
        _tag, pos = read_uvarint(frame, pos)
        size, pos = read_uvarint(frame, pos)
        pos += size
    if pos > len(frame):
        raise RequestDecodeError("tagged fields run past the end of the request")
    return pos


def decode_body(header: RequestHeader, frame: bytes | bytearray | memoryview, pos: int) -> Any:
    """Decode the body of a request whose version the caller has checked is supported."""
    try:
        if is_flexible(header.api_key, header.api_version):
            pos = _skip_tagged_fields(frame, pos)
        body, size = _reader(header.api_key, header.api_version)(frame, pos)
    except RequestDecodeError:
        raise
    except Exception as exc:  # kio raises assorted errors on malformed input
        raise RequestDecodeError(f"malformed body: {exc}") from exc
    if pos + size > len(frame):
        raise RequestDecodeError("body runs past the end of the request")
    # Bytes after the body are ignored, as Kafka does: librdkafka 2.x sends a few extra bytes
    # with Metadata v13, and a broker that refused them would refuse every librdkafka client.
    return body


def encode_response(header: RequestHeader, body: Any) -> memoryview:
    """Frame a response: size, response header (v1 for flexible APIs but ApiVersions), body.

    Returns a view of the encoding buffer rather than a copy: a 1 MB fetch response was copied
    four times on its way out, and the copies were a measurable part of a fetch's round trip.
    """
    buffer = io.BytesIO()
    buffer.write(b"\0\0\0\0")
    buffer.write(_INT32.pack(header.correlation_id))
    if header.api_key != API_VERSIONS_KEY and is_flexible(header.api_key, header.api_version):
        buffer.write(b"\0")  # empty tagged fields of response header v1
    _writer(header.api_key, header.api_version)(buffer, body)
    data = buffer.getbuffer()
    _INT32.pack_into(data, 0, len(data) - 4)
    return data


@cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


def make(module: ModuleType, class_name: str, **values: Any) -> Any:
    """Build a kio object of one version, keeping only the fields that version has.

    Kafka versions mostly add fields; handlers pass the newest set and older versions drop
    what they lack, so one handler serves every version.
    """
    cls = getattr(module, class_name)
    names = _field_names(cls)
    return cls(**{k: v for k, v in values.items() if k in names})


def has_field(module: ModuleType, class_name: str, field_name: str) -> bool:
    return field_name in _field_names(getattr(module, class_name))


def read_uvarint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """Unsigned LEB128 varint, as used by flexible versions."""
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise RequestDecodeError("varint runs past the end of the request")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 28:
            raise RequestDecodeError("varint longer than 5 bytes")


def write_uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
