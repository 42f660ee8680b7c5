"""CloudEvents in Kafka records as the Kafka protocol binding and the JSON event format define
them: binary and structured content modes, required attributes, media types, trace context."""

from __future__ import annotations

import base64
import json

import pytest

from nerve.service import content, envelope
from nerve.service.envelope import EnvelopeError
from nerve.service.events import Meta

BINARY = [
    ("ce_specversion", b"1.0"),
    ("ce_id", b"e-1"),
    ("ce_source", b"/orders"),
    ("ce_type", b"orders.placed"),
    ("ce_time", b"2026-12-02T10:00:00Z"),
    ("content-type", b"application/json"),
]


def test_binary_mode_round_trips_every_attribute() -> None:
    meta = Meta(
        source="/nerve/services/s",
        type="t.placed",
        subject="order-1",
        dataschema="http://registry/schemas/ids/3",
        correlation_id="c",
        causation_id="k",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        tracestate="congo=t61rcWkgMzE",
        extensions={"tenant": "acme"},
    )
    headers = envelope.to_headers(meta)
    read, data, content_type = envelope.read(headers, b"{}")
    assert (data, content_type) == (b"{}", "application/json")
    for field in ("id", "source", "type", "time", "subject", "dataschema", "correlation_id"):
        assert getattr(read, field) == getattr(meta, field), field
    assert (read.causation_id, read.traceparent, read.tracestate) == (
        "k",
        meta.traceparent,
        meta.tracestate,
    )
    assert read.extensions == {"tenant": "acme"} and read.datacontenttype == "application/json"


@pytest.mark.parametrize("missing", ["ce_id", "ce_source", "ce_type"])
def test_a_cloudevent_without_a_required_attribute_is_refused(missing: str) -> None:
    headers = [(name, value) for name, value in BINARY if name != missing]
    with pytest.raises(EnvelopeError, match=f"without {missing}"):
        envelope.read(headers, b"{}")
    empty = [(name, b"" if name == missing else value) for name, value in BINARY]
    with pytest.raises(EnvelopeError, match=f"without {missing}"):
        envelope.read(empty, b"{}")


def test_a_record_without_cloudevents_headers_is_readable_without_an_id() -> None:
    meta, data, content_type = envelope.read([("trace", b"x")], b'{"a": 1}')
    assert (meta.id, data, content_type) == ("", b'{"a": 1}', None)
    meta, _, _ = envelope.read(None, b"{}")
    assert meta.id == ""
    # ce_ headers without ce_specversion do not claim a CloudEvent: read as they are.
    meta, _, _ = envelope.read([("ce_type", b"t")], b"{}")
    assert (meta.id, meta.type) == ("", "t")


def test_another_specversion_is_refused() -> None:
    headers = [("ce_specversion", b"0.3"), *BINARY[1:]]
    with pytest.raises(EnvelopeError, match=r"0\.3"):
        envelope.read(headers, b"{}")


def test_trace_context_is_written_as_the_extension_and_the_plain_header() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    headers = dict(envelope.to_headers(Meta(source="/s", type="t", traceparent=parent)))
    assert headers["ce_traceparent"] == headers["traceparent"] == parent
    assert "ce_tracestate" not in headers
    # Read from either; the plain header (the latest hop's) wins when both are there.
    only_extension = [*BINARY, ("ce_traceparent", parent.encode())]
    assert envelope.read(only_extension, b"{}")[0].traceparent == parent
    hop = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    for headers_in in (
        [*only_extension, ("traceparent", hop.encode())],
        [*BINARY, ("traceparent", hop.encode()), ("ce_traceparent", parent.encode())],
    ):
        meta = envelope.read(headers_in, b"{}")[0]
        assert meta.traceparent == hop and "traceparent" not in meta.extensions


SPEC_EXAMPLE = """{
    "specversion" : "1.0",
    "type" : "com.example.someevent",
    "source" : "/mycontext/subcontext",
    "id" : "1234-1234-1234",
    "time" : "2018-04-05T03:56:24Z",
    "datacontenttype" : "application/json",
    "comexampleextension1" : "value",
    "comexampleothervalue" : 5,
    "flag" : true,
    "subject": null,
    "data" : {"amount": 0.12345678901234567890, "note": "caf\\u00e9"}
}"""


def test_structured_mode_is_read_from_the_value() -> None:
    headers = [("content-type", b"application/cloudevents+json; charset=UTF-8")]
    meta, data, content_type = envelope.read(headers, SPEC_EXAMPLE.encode())
    assert (meta.id, meta.source, meta.type) == (
        "1234-1234-1234",
        "/mycontext/subcontext",
        "com.example.someevent",
    )
    assert meta.time == "2018-04-05T03:56:24Z" and meta.subject is None  # null: unset
    assert meta.extensions == {
        "comexampleextension1": "value",
        "comexampleothervalue": "5",
        "flag": "true",
    }
    # JSON data is its own text, not re-encoded: numbers keep every digit.
    assert content_type == "application/json"
    assert data == b'{"amount": 0.12345678901234567890, "note": "caf\\u00e9"}'
    # The media type is matched without case, parameters aside.
    upper = [("content-type", b"Application/CloudEvents+JSON")]
    assert envelope.read(upper, SPEC_EXAMPLE.encode())[0].id == "1234-1234-1234"


def test_structured_data_by_the_json_formats_rules() -> None:
    def event(**members: object) -> bytes:
        base = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}
        return json.dumps({**base, **members}).encode()

    headers = [("content-type", b"application/cloudevents+json")]
    # No datacontenttype: the data is JSON, and the implied type is said.
    meta, data, content_type = envelope.read(headers, event(data={"a": 1}))
    assert (data, content_type, meta.datacontenttype) == (
        b'{"a": 1}',
        "application/json",
        "application/json",
    )
    # A +json type is JSON too; a string is a JSON string there, never parsed again.
    _, data, _ = envelope.read(headers, event(datacontenttype="application/vnd.x+json", data="{}"))
    assert data == b'"{}"'
    # Text data is the string itself.
    _, data, content_type = envelope.read(headers, event(datacontenttype="text/plain", data="hé"))
    assert (data, content_type) == ("hé".encode(), "text/plain")
    # Binary data in base64, with its type; without one, no type is assumed (not JSON).
    avro = b"\x00\x00\x00\x00\x07\x02"
    encoded = base64.b64encode(avro).decode()
    _, data, content_type = envelope.read(
        headers, event(datacontenttype="application/avro", data_base64=encoded)
    )
    assert (data, content_type) == (avro, "application/avro")
    _, data, content_type = envelope.read(headers, event(data_base64=encoded))
    assert data == avro and content.kind(content_type) == content.OTHER
    # No data at all.
    assert envelope.read(headers, event())[1] is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b'{"specversion": "1.0", "source": "/s", "type": "t"}', "without id"),
        (b'{"specversion": "1.0", "id": "1", "type": "t"}', "without source"),
        (b'{"specversion": "1.0", "id": "1", "source": "/s", "type": ""}', "without type"),
        (b'{"id": "1", "source": "/s", "type": "t"}', "without specversion"),
        (b'{"specversion": "0.3", "id": "1", "source": "/s", "type": "t"}', "0.3"),
        (b'{"specversion": "1.0", "id": 1, "source": "/s", "type": "t"}', "id is not a string"),
        (b'{"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "x": 1.5}', "x has"),
        (b'[{"specversion": "1.0"}]', "not a JSON object"),
        (b'{"specversion": "1.0", "id": "1"', "not a JSON object"),
        (b'{"specversion": "1.0", "id": "1", "source": "/s", "type": "t"} x', "after the"),
        (b"\xff", "not a JSON object"),
        (
            b'{"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "data_base64": "@"}',
            "not base64",
        ),
        (
            b'{"specversion": "1.0", "id": "1", "source": "/s", "type": "t", '
            b'"datacontenttype": "text/plain", "data": {"a": 1}}',
            "not a string",
        ),
    ],
)
def test_an_invalid_structured_event_is_refused_with_the_reason(value: bytes, reason: str) -> None:
    headers = [("content-type", b"application/cloudevents+json")]
    with pytest.raises(EnvelopeError, match=reason):
        envelope.read(headers, value)


def test_structured_formats_other_than_json_and_batches_are_refused() -> None:
    for media in (b"application/cloudevents+avro", b"application/cloudevents-batch+json"):
        with pytest.raises(EnvelopeError, match="not read"):
            envelope.read([("content-type", media)], b"{}")
    with pytest.raises(EnvelopeError, match="without a value"):
        envelope.read([("content-type", b"application/cloudevents+json")], None)
    # from_headers reads binary mode only, and says why it cannot read this one.
    with pytest.raises(EnvelopeError, match="without a value"):
        envelope.from_headers([("content-type", b"application/cloudevents+json")])


def test_structured_mode_written_reads_back_as_the_same_event() -> None:
    meta = Meta(
        source="/nerve/services/s",
        type="t.placed",
        correlation_id="c",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        extensions={"tenant": "acme"},
    )
    value, headers = envelope.to_structured(meta, b'{"total":"42.10"}')
    assert dict(headers) == {
        "content-type": "application/cloudevents+json; charset=UTF-8",
        "traceparent": meta.traceparent,
    }
    event = json.loads(value)
    assert event["data"] == {"total": "42.10"} and event["datacontenttype"] == "application/json"
    assert event["correlationid"] == "c" and event["traceparent"] == meta.traceparent
    assert "causationid" not in event and "subject" not in event  # unset: left out
    read, data, content_type = envelope.read(headers, value)
    assert (read.id, read.source, read.type, read.time) == (
        meta.id,
        meta.source,
        meta.type,
        meta.time,
    )
    assert (data, content_type, read.extensions) == (
        b'{"total":"42.10"}',
        "application/json",
        {"tenant": "acme"},
    )
    # Avro data goes as data_base64, with its media type.
    value, _ = envelope.to_structured(meta, b"\x00\x01", "application/avro")
    assert json.loads(value)["data_base64"] == "AAE="
    assert envelope.read(headers, value)[1:] == (b"\x00\x01", "application/avro")


@pytest.mark.parametrize(
    ("media", "kind"),
    [
        ("application/json", content.JSON),
        ("application/json; charset=utf-8", content.JSON),
        ("text/json", content.JSON),
        ("application/vnd.nerve.order+json", content.JSON),
        ("application/avro", content.AVRO),
        ("avro/binary", content.AVRO),
        ("application/protobuf", content.PROTOBUF),
        ("application/x-protobuf", content.PROTOBUF),
        ("text/plain; charset=utf-8", content.TEXT),
        ("application/cloudevents+json", content.STRUCTURED),
        ("application/xml", content.OTHER),
        ("application/octet-stream", content.OTHER),
        ("", None),
        (None, None),
    ],
)
def test_media_types_are_classified_as_the_cloudevents_json_format_says(
    media: str | None, kind: str | None
) -> None:
    assert content.kind(media) == kind
