"""CloudEvents 1.0 in Kafka records, both content modes of the Kafka protocol binding.

Binary mode (what nerve writes by default): the value is the data as is, ``content-type``
holds ``datacontenttype`` and every other attribute is a ``ce_<name>`` header. Structured mode
(``content-type: application/cloudevents+json``): the whole event, attributes and data, is one
JSON object in the value (the CloudEvents JSON format). ``read`` tells them apart as the binding
says, by the ``content-type`` header, and returns the same envelope and data either way.

A record that says it is a CloudEvent (``ce_specversion``, or a structured content type) must
be a valid one: a missing required attribute is an ``EnvelopeError``, never made up. A record
without ``ce_`` headers (a plain producer's) has no envelope; the runtime names it by its
position.

Trace context travels twice, as the Distributed Tracing extension's attribute (``ce_traceparent``,
what CloudEvents SDKs read) and as the plain W3C ``traceparent`` header (what Kafka
instrumentations read); on read the plain header, the latest hop's, wins.

The binary mapping is written here rather than with the ``cloudevents`` package: that package
builds a CloudEvent object and a headers dict per event, and this mapping runs on every event
of the hot path.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from nerve.service import content
from nerve.service.events import Meta

SPECVERSION = "1.0"
JSON = "application/json"
STRUCTURED = "application/cloudevents"
STRUCTURED_JSON = "application/cloudevents+json"
STRUCTURED_CONTENT_TYPE = STRUCTURED_JSON + "; charset=UTF-8"
BINARY_MODE = "binary"
STRUCTURED_MODE = "structured"
CONTENT_MODES = (BINARY_MODE, STRUCTURED_MODE)

# confluent-kafka's own header type: values may be str or bytes (or None).
Headers = list[tuple[str, str | bytes | None]]


class EnvelopeError(ValueError):
    """A record that is not a CloudEvent this framework can read."""


# -- binary content mode -------------------------------------------------------------------------

_SPECVERSION_HEADER = ("ce_specversion", SPECVERSION.encode())
_CONTENT_TYPES: dict[str, tuple[str, bytes]] = {}
_OPTIONAL = (
    ("ce_subject", "subject"),
    ("ce_dataschema", "dataschema"),
    ("ce_correlationid", "correlation_id"),
    ("ce_causationid", "causation_id"),
)


def to_headers(meta: Meta, content_type: str = JSON) -> Headers:
    # Runs per emitted event: constant headers are built once, strings go as str (librdkafka
    # encodes them as UTF-8 itself, without a Python bytes object each).
    content = _CONTENT_TYPES.get(content_type)
    if content is None:
        content = _CONTENT_TYPES[content_type] = ("content-type", content_type.encode())
    headers: Headers = [
        _SPECVERSION_HEADER,
        ("ce_id", meta.id),
        ("ce_source", meta.source),
        ("ce_type", meta.type),
        ("ce_time", meta.time),
        content,
    ]
    for header, attribute in _OPTIONAL:
        value = getattr(meta, attribute)
        if value is not None:
            headers.append((header, value))
    if meta.traceparent is not None:
        _trace_headers(meta, headers, extension=True)
    for name, value in meta.extensions.items():
        headers.append((f"ce_{name}", value))
    return headers


def _trace_headers(meta: Meta, headers: Headers, *, extension: bool) -> None:
    """W3C trace context as plain headers and, in binary mode, as the Distributed Tracing
    extension's attributes too. Each nerve event is written by the service that made it, one
    hop, so the two carry the same context, as the extension requires for a single hop."""
    headers.append(("traceparent", meta.traceparent))
    if extension:
        headers.append(("ce_traceparent", meta.traceparent))
    if meta.tracestate is not None:
        headers.append(("tracestate", meta.tracestate))
        if extension:
            headers.append(("ce_tracestate", meta.tracestate))


_READ = {
    "ce_id": "id",
    "ce_source": "source",
    "ce_type": "type",
    "ce_time": "time",
    "content-type": "datacontenttype",
    "ce_subject": "subject",
    "ce_dataschema": "dataschema",
    "ce_correlationid": "correlation_id",
    "ce_causationid": "causation_id",
    "traceparent": "traceparent",
    "tracestate": "tracestate",
}
_REQUIRED = ("id", "source", "type")
_COMMON = frozenset((JSON, "application/avro"))


def from_headers(headers: Any) -> tuple[Meta, str | None]:
    """The envelope of a binary-mode record and its content type (``meta.datacontenttype``);
    an ``EnvelopeError`` for a structured-mode one, whose envelope is in its value (``read``
    takes both)."""
    meta, _, content_type = read(headers, None)
    return meta, content_type


def read(headers: Any, value: bytes | None) -> tuple[Meta, bytes | None, str | None]:
    """The envelope of a record in either content mode, its data, and the data's media type.

    Binary mode gives the value as it is; structured mode the data inside the event (JSON data
    as its own JSON text, ``data_base64`` decoded, a text ``data`` as UTF-8), so a reader sees
    the same data whichever mode the writer chose. A record with ``ce_specversion`` lacking
    ``ce_id``, ``ce_source`` or ``ce_type`` is an ``EnvelopeError``; one without ``ce_``
    headers gets an empty id (the runtime names it by its position, so it stays traceable).

    Runs on every record a service reads."""
    found: dict[str, Any] = {"id": "", "time": ""}
    extensions: dict[str, str] = {}
    cloudevent = False
    for name, raw in headers or ():
        text = raw.decode("utf-8", "replace") if raw.__class__ is bytes else raw or ""
        attribute = _READ.get(name)
        if attribute is not None:
            found[attribute] = text
        elif name == "ce_specversion":
            if text != SPECVERSION:
                raise EnvelopeError(f"CloudEvents specversion {text!r} is not {SPECVERSION}")
            cloudevent = True
        elif name == "ce_traceparent":  # the plain header, when there is one, wins
            found.setdefault("traceparent", text)
        elif name == "ce_tracestate":
            found.setdefault("tracestate", text)
        elif name.startswith("ce_"):
            extensions[name[3:]] = text
    content_type = found.get("datacontenttype")
    if (
        content_type is not None
        and content_type not in _COMMON  # nerve's own, answered without a call
        and content.kind(content_type) == content.STRUCTURED
    ):
        return from_structured(value, content_type, headers)
    if cloudevent and not (found["id"] and found.get("source") and found.get("type")):
        _check_required(found, "a CloudEvent (ce_specversion 1.0) without ", "ce_")
    return Meta(**found, extensions=extensions), value, content_type


def _check_required(found: dict[str, Any], what: str, prefix: str) -> None:
    missing = [prefix + attribute for attribute in _REQUIRED if not found.get(attribute)]
    if missing:
        raise EnvelopeError(f"{what}{' or '.join(missing)}: id, source and type are required")


def _header(headers: Any, name: str) -> str | None:
    for key, raw in headers or ():
        if key == name:
            return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return None


# -- structured content mode ---------------------------------------------------------------------

_ATTRIBUTES = {  # CloudEvents attribute: Meta field
    "id": "id",
    "source": "source",
    "type": "type",
    "time": "time",
    "subject": "subject",
    "dataschema": "dataschema",
    "datacontenttype": "datacontenttype",
    "correlationid": "correlation_id",
    "causationid": "causation_id",
    "traceparent": "traceparent",
    "tracestate": "tracestate",
}
_WRITTEN = [(f, a) for a, f in _ATTRIBUTES.items() if f != "datacontenttype"]


def to_structured(meta: Meta, data: bytes, content_type: str = JSON) -> tuple[bytes, Headers]:
    """An event in structured mode: the value and its headers.

    The value is the event as one JSON object: its attributes, then JSON data as ``data``
    (its own JSON text, spliced in, not re-encoded), text as a ``data`` string, anything else
    (Avro) base64 in ``data_base64``. The headers are ``content-type`` and the plain W3C trace
    headers, which Kafka instrumentations read without parsing the value."""
    event: dict[str, Any] = {"specversion": SPECVERSION, "datacontenttype": content_type}
    for field, attribute in _WRITTEN:
        value = getattr(meta, field)
        if value:  # unset (None) or, for time, never given
            event[attribute] = value
    for name, value in meta.extensions.items():
        event[name] = value
    kind = content.kind(content_type)
    if kind == content.TEXT:
        event["data"] = data.decode("utf-8")
    elif kind != content.JSON:
        event["data_base64"] = base64.b64encode(data).decode("ascii")
    value = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    if kind == content.JSON:
        value = value[:-1] + b',"data":' + data + b"}"
    headers: Headers = [("content-type", STRUCTURED_CONTENT_TYPE)]
    if meta.traceparent is not None:
        _trace_headers(meta, headers, extension=False)
    return value, headers


def from_structured(
    value: bytes | None, content_type: str, headers: Any = None
) -> tuple[Meta, bytes | None, str | None]:
    """The envelope, data and data media type of a structured-mode record (JSON format)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media != STRUCTURED_JSON:
        raise EnvelopeError(
            f"structured CloudEvents in {media} are not read (only {STRUCTURED_JSON}; "
            "the Kafka binding has no batch mode)"
        )
    if value is None:
        raise EnvelopeError("a structured-mode CloudEvent without a value (its envelope)")
    try:
        text = value.decode("utf-8")
        members = _members(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise EnvelopeError(
            f"a structured-mode CloudEvent that is not a JSON object: {exc}"
        ) from None
    fields: dict[str, Any] = {"id": "", "time": ""}
    extensions: dict[str, str] = {}
    for name, (member, _, _) in members.items():
        if member is None or name in ("data", "data_base64"):
            continue  # null: unset, as the JSON format says
        if name == "specversion":
            if member != SPECVERSION:
                raise EnvelopeError(f"CloudEvents specversion {member!r} is not {SPECVERSION}")
            continue
        field = _ATTRIBUTES.get(name)
        if field is not None:
            if not isinstance(member, str):
                raise EnvelopeError(f"CloudEvents attribute {name} is not a string: {member!r}")
            fields[field] = member
        else:
            extensions[name] = _extension_value(name, member)
    if "specversion" not in members or members["specversion"][0] is None:
        raise EnvelopeError("a structured-mode CloudEvent without specversion")
    _check_required(fields, "a structured-mode CloudEvent without ", "")
    declared = fields.get("datacontenttype")
    data, data_type = _data(text, members, declared)
    if declared is None and data_type is not None:
        fields["datacontenttype"] = data_type  # implied by the JSON format: say it
    if headers is not None:  # the plain trace headers, the latest hop's, win
        for header in ("traceparent", "tracestate"):
            transport = _header(headers, header)
            if transport:
                fields[header] = transport
    return Meta(**fields, extensions=extensions), data, data_type


def _extension_value(name: str, member: Any) -> str:
    """An extension attribute as binary mode would carry it (CloudEvents' types are string,
    boolean, integer and their string forms)."""
    if isinstance(member, str):
        return member
    if isinstance(member, bool):
        return "true" if member else "false"
    if isinstance(member, int):
        return str(member)
    raise EnvelopeError(f"CloudEvents attribute {name} has no CloudEvents type: {member!r}")


def _data(
    text: str, members: dict[str, tuple[Any, int, int]], declared: str | None
) -> tuple[bytes | None, str | None]:
    """The event's data as bytes, and its media type, by the JSON format's rules."""
    if "data_base64" in members:
        if "data" in members:
            raise EnvelopeError("a structured-mode CloudEvent with both data and data_base64")
        encoded = members["data_base64"][0]
        if encoded is None:
            return None, declared
        if not isinstance(encoded, str):
            raise EnvelopeError("data_base64 is not a string")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise EnvelopeError("data_base64 is not base64") from None
        # No media type: no assumption may be made (not JSON); nothing but a raw reader
        # can take it.
        return data, declared or "application/octet-stream"
    if "data" not in members:
        return None, declared
    member, start, end = members["data"]
    if declared is None or content.kind(declared) == content.JSON:
        return text[start:end].encode(), declared or JSON
    if not isinstance(member, str):
        raise EnvelopeError(f"{declared} data in a structured-mode CloudEvent is not a string")
    return member.encode(), declared


_decoder = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


def _members(text: str) -> dict[str, tuple[Any, int, int]]:
    """A JSON object's members: each name's value and where its text starts and ends, so that
    ``data`` is validated from its own JSON, exactly as in binary mode, not re-encoded."""
    position = _SPACE.match(text, 0).end()  # type: ignore[union-attr]
    if text[position : position + 1] != "{":
        raise ValueError("not a JSON object")
    members: dict[str, tuple[Any, int, int]] = {}
    position = _SPACE.match(text, position + 1).end()  # type: ignore[union-attr]
    if text[position : position + 1] == "}":
        position += 1
    else:
        while True:
            if text[position : position + 1] != '"':
                raise ValueError(f"a member name expected at {position}")
            name, position = _decoder.raw_decode(text, position)
            position = _SPACE.match(text, position).end()  # type: ignore[union-attr]
            if text[position : position + 1] != ":":
                raise ValueError(f"':' expected at {position}")
            start = _SPACE.match(text, position + 1).end()  # type: ignore[union-attr]
            member, end = _decoder.raw_decode(text, start)
            members[name] = (member, start, end)
            position = _SPACE.match(text, end).end()  # type: ignore[union-attr]
            separator = text[position : position + 1]
            position += 1
            if separator == "}":
                break
            if separator != ",":
                raise ValueError(f"',' or '}}' expected at {position - 1}")
            position = _SPACE.match(text, position).end()  # type: ignore[union-attr]
    if _SPACE.match(text, position).end() != len(text):  # type: ignore[union-attr]
        raise ValueError(f"text after the object at {position}")
    return members


def write(meta: Meta, data: bytes, content_type: str, mode: str) -> tuple[bytes, Headers]:
    """An event's value and headers in the content mode its class asks for."""
    if mode == STRUCTURED_MODE:
        return to_structured(meta, data, content_type)
    return data, to_headers(meta, content_type)
