import struct

import pytest

from nerve.protocol.framing import FrameDecoder, FrameTooLargeError


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
