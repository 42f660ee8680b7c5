import struct

import pytest
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic

from nerve.protocol import codec
from nerve.protocol.framing import SCRATCH_BYTES, FrameDecoder, FrameTooLargeError
from tests.protocol.test_codec import encode_request


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def test_frames_split_across_reads_are_reassembled():
    decoder = FrameDecoder()
    stream = frame(b"hello") + frame(b"") + frame(b"world!")
    out = []
    for i in range(len(stream)):
        out += decoder.feed(stream[i : i + 1])
    assert out == [b"hello", b"", b"world!"]
    assert decoder.buffered == 0


def test_many_frames_in_one_read_come_out_in_order():
    decoder = FrameDecoder()
    assert decoder.feed(b"".join(frame(bytes([i]) * i) for i in range(10))) == [
        bytes([i]) * i for i in range(10)
    ]


def test_oversized_frame_is_refused_before_buffering_it():
    decoder = FrameDecoder(max_frame_bytes=1024)
    with pytest.raises(FrameTooLargeError, match="1025"):
        decoder.feed(struct.pack(">i", 1025))


def test_negative_size_is_refused():
    with pytest.raises(FrameTooLargeError):
        FrameDecoder().feed(struct.pack(">i", -5))


def test_frame_larger_than_scratch_comes_out_whole_and_decodable():
    # A produce request of several MB is read into a buffer of its own; kio must accept what
    # comes out (it refuses writable buffers, which once closed every 1 MB producer).
    request = MetadataRequest(
        topics=tuple(
            MetadataRequestTopic(name=f"t{i:05d}" + "x" * 200, topic_id=None) for i in range(2000)
        ),
        allow_auto_topic_creation=True,
        include_topic_authorized_operations=False,
    )
    payload = encode_request(3, 12, request)
    assert len(payload) > SCRATCH_BYTES * 4
    decoder = FrameDecoder()
    stream = b"".join([frame(b"small"), frame(payload), frame(b"after")])
    out = []
    for start in range(0, len(stream), 9000):
        out += decoder.feed(stream[start : start + 9000])
    assert out == [b"small", payload, b"after"]
    header, pos = codec.decode_header(out[1])
    assert codec.decode_body(header, out[1], pos) == request
