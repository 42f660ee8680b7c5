import struct

import pytest
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic

from nerve.protocol import codec
from nerve.protocol.framing import (
    SCRATCH_BYTES,
    FrameDecoder,
    FrameTooLargeError,
    RequestMemoryPool,
)
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


# -- memory follows the bytes received --------------------------------------------------------


def test_a_size_prefix_alone_reserves_nothing_like_the_declared_size():
    decoder = FrameDecoder()
    decoder.feed(struct.pack(">i", 100 * 1024 * 1024) + b"x")
    assert decoder.buffered == 1
    assert decoder.reserved <= 2 * SCRATCH_BYTES


def test_a_large_frame_buffer_grows_with_what_arrived():
    decoder = FrameDecoder()
    payload = bytes(range(256)) * 4096  # 1 MiB
    stream = frame(payload)
    out = []
    for start in range(0, len(stream), 1000):
        out += decoder.feed(stream[start : start + 1000])
        if not out:
            # Never more than a few times what was received (plus the scratch floor).
            assert decoder.reserved <= 4 * decoder.buffered + 2 * SCRATCH_BYTES
    assert out == [payload]
    assert decoder.reserved <= SCRATCH_BYTES


def test_idle_decoder_trims_its_scratch_buffer():
    decoder = FrameDecoder()
    assert decoder.feed(frame(b"abc")) == [b"abc"]
    assert decoder.reserved == SCRATCH_BYTES
    decoder.trim()
    assert decoder.reserved == 0
    assert decoder.feed(frame(b"again")) == [b"again"]


def test_trim_keeps_a_partial_frame():
    decoder = FrameDecoder()
    decoder.feed(frame(b"abcdef")[:6])
    decoder.trim()
    assert decoder.feed(b"cdef") == [b"abcdef"]


def test_pool_bounds_what_partial_frames_hold_across_decoders():
    pool = RequestMemoryPool(100_000)
    first, second = FrameDecoder(pool=pool), FrameDecoder(pool=pool)
    big = bytes(300_000)
    first.feed(frame(big)[:150_000])  # the oldest frame: may always grow
    assert pool.used > pool.limit
    second.feed(frame(big)[:10_000])
    assert second.waiting_for_memory, "the pool is over its limit: the second must wait"
    assert second.buffered == 10_000  # what arrived is kept, in scratch
    woken = []
    pool.wait(second, lambda: woken.append(second.retry()))
    assert first.feed(frame(big)[150_000:]) == [big]
    assert woken == [True], "completing the first frame released memory to the waiter"
    assert second.feed(frame(big)[10_000:]) == [big]
    assert pool.used == 0


def test_closing_a_decoder_gives_its_memory_back():
    pool = RequestMemoryPool(1 << 20)
    decoder = FrameDecoder(pool=pool)
    decoder.feed(frame(bytes(500_000))[:200_000])
    assert pool.used > 0
    decoder.close()
    assert pool.used == 0 and pool.holders() == 0


def test_a_peer_that_completed_a_large_frame_gets_the_next_one_buffered_at_once():
    decoder = FrameDecoder()
    payload = bytes(1 << 20)
    assert decoder.feed(frame(payload)) == [payload]
    decoder.feed(frame(payload)[:100])
    assert decoder.reserved >= len(payload), "a size this peer has sent before is trusted"
    decoder.feed(frame(payload)[100:])
    decoder.feed(struct.pack(">i", 50 << 20) + b"x")
    assert decoder.reserved < 2 << 20, "a larger size than ever sent is not"
