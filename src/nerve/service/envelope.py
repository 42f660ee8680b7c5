"""CloudEvents 1.0 in Kafka binary content mode: the value is the data as is, ``content-type``
holds ``datacontenttype`` and every other attribute is a ``ce_<name>`` header.

Written here rather than with the ``cloudevents`` package: that package builds a CloudEvent
object and a headers dict per event, and this mapping runs on every event of the hot path.
"""

from __future__ import annotations

from typing import Any

from nerve.service.events import Meta

SPECVERSION = "1.0"
JSON = "application/json"
STRUCTURED = "application/cloudevents"

# confluent-kafka's own header type: values may be str or bytes (or None).
Headers = list[tuple[str, str | bytes | None]]

_ATTRIBUTES = {
    "ce_id": "id",
    "ce_source": "source",
    "ce_type": "type",
    "ce_time": "time",
    "ce_subject": "subject",
    "ce_dataschema": "dataschema",
    "ce_correlationid": "correlation_id",
    "ce_causationid": "causation_id",
    "ce_traceparent": "traceparent",
    "ce_tracestate": "tracestate",
}


class EnvelopeError(ValueError):
    """A record that is not a CloudEvent this framework can read."""


_SPECVERSION_HEADER = ("ce_specversion", SPECVERSION.encode())
_CONTENT_TYPES: dict[str, tuple[str, bytes]] = {}
_OPTIONAL = (
    ("ce_subject", "subject"),
    ("ce_dataschema", "dataschema"),
    ("ce_correlationid", "correlation_id"),
    ("ce_causationid", "causation_id"),
    ("traceparent", "traceparent"),
    ("tracestate", "tracestate"),
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
    for name, value in meta.extensions.items():
        headers.append((f"ce_{name}", value))
    return headers


_READ = {**_ATTRIBUTES, "traceparent": "traceparent", "tracestate": "tracestate"}


def from_headers(headers: Any) -> tuple[Meta, str | None]:
    """The envelope of a record and its content type. Records without ``ce_`` headers (written
    by a plain producer) get a synthetic id from their position, so they are still traceable."""
    found: dict[str, Any] = {"id": "", "time": ""}
    content_type = None
    extensions: dict[str, str] = {}
    for name, raw in headers or ():
        value = raw.decode("utf-8", "replace") if raw.__class__ is bytes else raw or ""
        attribute = _READ.get(name)
        if attribute is not None:
            found[attribute] = value
        elif name == "content-type":
            content_type = value
        elif name == "ce_specversion":
            if value != SPECVERSION:
                raise EnvelopeError(f"CloudEvents specversion {value!r} is not {SPECVERSION}")
        elif name.startswith("ce_"):
            extensions[name[3:]] = value
    if content_type is not None and content_type.startswith(STRUCTURED):
        raise EnvelopeError("structured-mode CloudEvents are not read yet; use binary mode")
    return Meta(**found, extensions=extensions), content_type
