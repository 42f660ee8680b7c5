import io
import struct

import pytest
from kio.schema.errors import ErrorCode
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
from kio.schema.request_header.v2.header import RequestHeader as KioHeader
from kio.serial import entity_writer

from nerve.protocol import codec


def encode_request(api_key: int, version: int, body, correlation_id: int = 7) -> bytes:
    """A request frame body (without size prefix) written by kio, as a client would."""
    buffer = io.BytesIO()
    entity_writer(KioHeader)(
        buffer,
        KioHeader(
            request_api_key=api_key,
            request_api_version=version,
            correlation_id=correlation_id,
            client_id="test",
        ),
    )
    entity_writer(type(body))(buffer, body)
    return buffer.getvalue()


def test_flexible_request_round_trips_through_header_and_body():
    request = MetadataRequest(
        topics=(MetadataRequestTopic(name="orders", topic_id=None),),
        allow_auto_topic_creation=True,
        include_topic_authorized_operations=False,
    )
    frame = encode_request(3, 12, request)
    header, pos = codec.decode_header(frame)
    assert header == codec.RequestHeader(3, 12, 7, "test")
    assert codec.decode_body(header, frame, pos) == request


def test_truncated_body_is_a_decode_error():
    request = MetadataRequest(
        topics=(MetadataRequestTopic(name="orders", topic_id=None),),
        allow_auto_topic_creation=True,
        include_topic_authorized_operations=False,
    )
    frame = encode_request(3, 12, request)
    header, pos = codec.decode_header(frame)
    with pytest.raises(codec.RequestDecodeError):
        codec.decode_body(header, frame[:-3], pos)


def test_trailing_bytes_are_ignored_as_kafka_does():
    request = MetadataRequest(
        topics=None, allow_auto_topic_creation=True, include_topic_authorized_operations=False
    )
    frame = encode_request(3, 12, request) + b"\0\0"
    header, pos = codec.decode_header(frame)
    assert codec.decode_body(header, frame, pos) == request


def test_short_header_is_a_decode_error():
    with pytest.raises(codec.RequestDecodeError):
        codec.decode_header(b"\0\3\0")


def test_response_is_framed_with_size_and_correlation_id():
    module = codec.schema_module(18, 0, True)
    body = codec.make(module, "ApiVersionsResponse", error_code=ErrorCode.none, api_keys=())
    data = codec.encode_response(codec.RequestHeader(18, 0, 99, None), body)
    size, correlation_id = struct.unpack_from(">ii", data)
    assert size == len(data) - 4
    assert correlation_id == 99


def test_make_drops_fields_an_older_version_lacks():
    old = codec.schema_module(3, 1, True)
    topic = codec.make(
        old,
        "MetadataResponseTopic",
        error_code=0,
        name="t",
        topic_id=None,
        is_internal=False,
        partitions=(),
        topic_authorized_operations=0,
    )
    assert not hasattr(topic, "topic_id")


def test_uvarint_round_trip():
    for value in (0, 1, 127, 128, 300, 2**28):
        encoded = codec.write_uvarint(value)
        assert codec.read_uvarint(encoded, 0) == (value, len(encoded))
