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


def to_headers(meta: Meta, content_type: str = JSON) -> Headers:
    headers: Headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", meta.id.encode()),
        ("ce_source", meta.source.encode()),
        ("ce_type", meta.type.encode()),
        ("ce_time", meta.time.encode()),
        ("content-type", content_type.encode()),
    ]
    for header, name in (
        ("ce_subject", meta.subject),
        ("ce_dataschema", meta.dataschema),
        ("ce_correlationid", meta.correlation_id),
        ("ce_causationid", meta.causation_id),
        ("traceparent", meta.traceparent),
        ("tracestate", meta.tracestate),
    ):
        if name is not None:
            headers.append((header, name.encode()))
    for name, value in meta.extensions.items():
        headers.append((f"ce_{name}", value.encode()))
    return headers


def from_headers(headers: Any) -> tuple[Meta, str | None]:
    """The envelope of a record and its content type. Records without ``ce_`` headers (written
    by a plain producer) get a synthetic id from their position, so they are still traceable."""
    meta = Meta(id="", time="")
    content_type = None
    for name, raw in headers or ():
        value = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw or ""
        attribute = _ATTRIBUTES.get(name)
        if attribute is not None:
            setattr(meta, attribute, value)
        elif name == "content-type":
            content_type = value
        elif name in ("traceparent", "tracestate"):
            setattr(meta, name, value)
        elif name == "ce_specversion":
            if value != SPECVERSION:
                raise EnvelopeError(f"CloudEvents specversion {value!r} is not {SPECVERSION}")
        elif name.startswith("ce_"):
            meta.extensions[name[3:]] = value
    if content_type is not None and content_type.startswith(STRUCTURED):
        raise EnvelopeError("structured-mode CloudEvents are not read yet; use binary mode")
    return meta, content_type
