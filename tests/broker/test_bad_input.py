"""Malformed input over raw sockets: the broker answers like Kafka or drops that connection,
and keeps serving everyone else."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Iterator

import crc32c
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nerve.protocol.records import (
    BATCH_HEADER_SIZE,
    COMPRESSION_GZIP,
    COMPRESSION_LZ4,
    COMPRESSION_SNAPPY,
    COMPRESSION_ZSTD,
    encode_batch,
)
from tests._broker import BrokerProcess
from tests._ck import broker_serves_clients, create_topic, watermarks
from tests.broker import _wire as w
from tests.conftest import TopicNameFactory


@pytest.fixture
def bootstrap(shared_broker: BrokerProcess) -> str:
    return shared_broker.bootstrap


def test_unknown_api_key_closes_connection(bootstrap: str, topic_name: TopicNameFactory) -> None:
    with w.connect(bootstrap) as sock:
        sock.sendall(w.frame(w.header(api_key=9999, version=0, correlation_id=1)))
        assert w.closed_by_peer(sock)

    w.assert_answers_api_versions_and_metadata(bootstrap)
    broker_serves_clients(bootstrap, topic_name())


def test_api_versions_with_unsupported_version_answers_v0_with_error_35(
    bootstrap: str, topic_name: TopicNameFactory
) -> None:
    with w.connect(bootstrap) as sock:
        sock.sendall(w.api_versions_request(correlation_id=42, version=99))
        correlation_id, error, ranges = w.parse_api_versions_v0(w.recv_frame(sock))

        assert correlation_id == 42
        assert error == w.UNSUPPORTED_VERSION
        assert w.API_VERSIONS in ranges, "the client needs ApiVersions' range to retry"
        low, _ = ranges[w.API_VERSIONS]
        assert low == 0
        # Clients retry on the same connection with a version the broker named.
        sock.sendall(w.api_versions_request(correlation_id=43, version=0))
        correlation_id, error, _ = w.parse_api_versions_v0(w.recv_frame(sock))
        assert (correlation_id, error) == (43, w.NONE)

    broker_serves_clients(bootstrap, topic_name())


def test_metadata_with_unsupported_version_gets_no_normal_answer(
    bootstrap: str, topic_name: TopicNameFactory
) -> None:
    with w.connect(bootstrap) as sock:
        sock.sendall(w.frame(w.header(w.API_METADATA, 99, 5) + w.i32(-1)))
        # Kafka closes the connection; an error answer correlated to the request is tolerable.
        sock.settimeout(5)
        try:
            payload = w.recv_frame(sock)
        except w.Closed:
            pass
        else:
            assert struct.unpack_from(">i", payload) == (5,)

    w.assert_answers_api_versions_and_metadata(bootstrap)
    broker_serves_clients(bootstrap, topic_name())


def test_request_truncated_inside_its_frame_closes_connection(
    bootstrap: str, topic_name: TopicNameFactory
) -> None:
    # The header claims a 10-byte client id but the frame ends after 3 of them.
    payload = w.i16(w.API_METADATA) + w.i16(1) + w.i32(9) + w.i16(10) + b"abc"
    with w.connect(bootstrap) as sock:
        sock.sendall(w.frame(payload))
        assert w.closed_by_peer(sock)

    w.assert_answers_api_versions_and_metadata(bootstrap)
    broker_serves_clients(bootstrap, topic_name())


def test_metadata_body_truncated_after_topic_count_closes_connection(
    bootstrap: str, topic_name: TopicNameFactory
) -> None:
    version = w.pick_version(w.api_versions(bootstrap), w.API_METADATA, 1, 8)
    payload = w.header(w.API_METADATA, version, 9) + w.i32(5) + w.string("only-one-topic")
    with w.connect(bootstrap) as sock:
        sock.sendall(w.frame(payload))
        assert w.closed_by_peer(sock)

    broker_serves_clients(bootstrap, topic_name())


def test_frame_cut_short_by_client_half_close_is_dropped(
    bootstrap: str, topic_name: TopicNameFactory
) -> None:
    with w.connect(bootstrap) as sock:
        sock.sendall(w.i32(100) + b"\x00" * 20)
        sock.shutdown(socket.SHUT_WR)
        assert w.closed_by_peer(sock)

    broker_serves_clients(bootstrap, topic_name())


@pytest.mark.parametrize(
    "size_prefix", [b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00"], ids=["2GiB-1", "2GiB-negative"]
)
def test_oversized_frame_size_prefix_closes_connection_without_waiting_for_body(
    bootstrap: str, topic_name: TopicNameFactory, size_prefix: bytes
) -> None:
    with w.connect(bootstrap) as sock:
        sock.sendall(size_prefix + w.header(w.API_METADATA, 1, 1))
        assert w.closed_by_peer(sock)

    w.assert_answers_api_versions_and_metadata(bootstrap)
    broker_serves_clients(bootstrap, topic_name())


def _corrupt_crc_field(batch: bytes) -> bytes:
    crc = bytes(b ^ 0xFF for b in batch[w.CRC_OFFSET : w.CRC_OFFSET + 4])
    return batch[: w.CRC_OFFSET] + crc + batch[w.CRC_OFFSET + 4 :]


def _corrupt_record_byte(batch: bytes) -> bytes:
    return batch[:-3] + bytes([batch[-3] ^ 0x01]) + batch[-2:]


@pytest.mark.parametrize(
    "corrupt", [_corrupt_crc_field, _corrupt_record_byte], ids=["crc-field", "record-byte"]
)
def test_produce_batch_with_bad_crc_is_rejected_with_corrupt_message(
    bootstrap: str, topic_name: TopicNameFactory, corrupt: Callable[[bytes], bytes]
) -> None:
    topic = topic_name()
    create_topic(bootstrap, topic)
    version = w.pick_version(w.api_versions(bootstrap), w.API_PRODUCE, 3, 8)
    good = w.record_batch([b"first", b"second"])

    with w.connect(bootstrap) as sock:
        sock.sendall(w.produce_request(1, version, topic, corrupt(good)))
        correlation_id, error, _ = w.parse_produce_partition_error(w.recv_frame(sock))
        assert (correlation_id, error) == (1, w.CORRUPT_MESSAGE)
        # Same connection, same bytes with the right CRC: accepted at offset 0.
        sock.sendall(w.produce_request(2, version, topic, good))
        correlation_id, error, base_offset = w.parse_produce_partition_error(w.recv_frame(sock))
        assert (correlation_id, error, base_offset) == (2, w.NONE, 0)

    assert watermarks(bootstrap, topic) == (0, 2)
    broker_serves_clients(bootstrap, topic)


# -- property: nothing a client sends takes the broker down ------------------------------------

FUZZ_TOPIC = "fuzz-target"
VALID_REQUESTS = 10  # what _valid_requests returns, for hypothesis to pick from


def _valid_requests(bootstrap: str) -> list[bytes]:
    ranges = w.api_versions(bootstrap)
    metadata_v = w.pick_version(ranges, w.API_METADATA, 1, 8)
    produce_v = w.pick_version(ranges, w.API_PRODUCE, 3, 8)
    create_v = w.pick_version(ranges, w.API_CREATE_TOPICS, 2, 4)
    grow_v = w.pick_version(ranges, w.API_CREATE_PARTITIONS, 0, 1)
    compressed = [
        w.produce_request(
            5 + codec, produce_v, FUZZ_TOPIC,
            encode_batch([(b"k%d" % i, b"value-%d" % i * 20) for i in range(12)],
                         compression=codec),
        )
        for codec in (COMPRESSION_GZIP, COMPRESSION_SNAPPY, COMPRESSION_LZ4, COMPRESSION_ZSTD)
    ]  # fmt: skip
    return [
        w.api_versions_request(1),
        w.metadata_request(2, metadata_v),
        w.metadata_request(3, metadata_v, [FUZZ_TOPIC]),
        w.produce_request(4, produce_v, FUZZ_TOPIC, w.record_batch([b"a" * 30, b"b"])),
        *compressed,
        w.create_topics_request(
            10, create_v, [("fuzz-made", 3, 1), ("fuzz-other", 1, -1)], validate_only=True
        ),
        w.create_partitions_request(11, grow_v, [(FUZZ_TOPIC, 4)], validate_only=True),
    ]


Mutation = tuple[str, int, bytes]

mutations = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 16), st.binary(min_size=1, max_size=1)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 16), st.just(b"")),
    st.tuples(st.just("insert"), st.integers(0, 1 << 16), st.binary(min_size=1, max_size=32)),
    st.tuples(st.just("overwrite"), st.integers(0, 1 << 16), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("resize"), st.integers(-(1 << 31), (1 << 31) - 1), st.just(b"")),
)


def _mutate(data: bytes, steps: list[Mutation]) -> bytes:
    buf = bytearray(data)
    for kind, n, blob in steps:
        pos = n % (len(buf) + 1)
        if kind == "flip" and buf:
            pos %= len(buf)
            buf[pos] ^= blob[0] or 0xFF
        elif kind == "truncate":
            del buf[pos:]
        elif kind == "insert":
            buf[pos:pos] = blob
        elif kind == "overwrite":
            buf[pos : pos + len(blob)] = blob
        elif kind == "resize" and len(buf) >= 4:
            buf[:4] = struct.pack(">i", n)
    return bytes(buf)


def _send_and_drain(bootstrap: str, data: bytes) -> None:
    with w.connect(bootstrap) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            return  # dropped us mid-send: fine
        w.closed_by_peer(sock, timeout=0.5)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    choice=st.one_of(
        st.tuples(st.just("raw"), st.binary(max_size=512), st.just(0), st.just([])),
        st.tuples(st.just("framed"), st.binary(max_size=512), st.just(0), st.just([])),
        st.tuples(
            st.just("mutated"),
            st.just(b""),
            st.integers(0, VALID_REQUESTS - 1),
            st.lists(mutations, min_size=1, max_size=4),
        ),
    )
)
def test_random_and_mutated_requests_never_stop_broker_from_answering(
    shared_broker: BrokerProcess,
    valid_requests: list[bytes],
    choice: tuple[str, bytes, int, list[Mutation]],
) -> None:
    kind, blob, index, steps = choice
    if kind == "raw":
        data = blob
    elif kind == "framed":
        data = w.frame(blob)
    else:
        data = _mutate(valid_requests[index], steps)

    _send_and_drain(shared_broker.bootstrap, data)

    assert shared_broker.running, f"broker died on {data[:64]!r}"
    w.assert_answers_api_versions_and_metadata(shared_broker.bootstrap)


@pytest.fixture(scope="module")
def valid_requests(shared_broker: BrokerProcess) -> list[bytes]:
    requests = _valid_requests(shared_broker.bootstrap)
    assert len(requests) == VALID_REQUESTS
    # The unmutated requests must be answered, or the mutations prove nothing.
    for data in requests:
        with w.connect(shared_broker.bootstrap) as sock:
            sock.sendall(data)
            w.recv_frame(sock)
    return requests


def test_after_fuzzing_a_real_client_still_round_trips(
    bootstrap: str, topic_name: TopicNameFactory
) -> None:
    broker_serves_clients(bootstrap, topic_name())


# -- property: absurd admin requests and compressed batches (issue 11) -------------------------

LIMIT = 200  # max.partitions.per.request of the broker below: real creations stay small
CODECS = [COMPRESSION_GZIP, COMPRESSION_SNAPPY, COMPRESSION_LZ4, COMPRESSION_ZSTD]


@pytest.fixture(scope="module")
def limited_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(
        tmp_path_factory.mktemp("limited") / "data",
        configs={"max.partitions.per.request": LIMIT, "auto.create.topics.enable": "false"},
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.close()


topic_names = st.one_of(
    st.from_regex(r"\Afuzz-[a-z0-9._-]{1,20}\Z"),
    st.text(max_size=300),
    st.just("__consumer_offsets"),
)
partition_counts = st.one_of(
    st.integers(-3, LIMIT + 3),
    st.sampled_from([0, 2**31 - 1, -(2**31), 10_000, 10_001, 100_000]),
    st.integers(-(2**31), 2**31 - 1),
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    topics=st.lists(
        st.tuples(topic_names, partition_counts, st.integers(-(2**15), 2**15 - 1)),
        min_size=1,
        max_size=4,
    ),
    validate_only=st.booleans(),
    grow=st.lists(st.tuples(topic_names, partition_counts), max_size=3),
)
def test_random_create_topics_and_partitions_are_answered_within_the_limit(
    limited_broker: BrokerProcess,
    topics: list[tuple[str, int, int]],
    validate_only: bool,
    grow: list[tuple[str, int]],
) -> None:
    bootstrap = limited_broker.bootstrap
    allowed = {0, 17, 36, 37, 38, 39, 40, 42, 44, 3, 56}  # none and Kafka's admin codes
    with w.connect(bootstrap, timeout=30) as sock:
        sock.sendall(w.create_topics_request(7, 2, topics, validate_only))
        correlation_id, answers = w.parse_topic_errors(w.recv_frame(sock))
        assert correlation_id == 7 and len(answers) == len(topics)
        assert {code for _, code in answers} <= allowed, answers
        if sum(max(count, 0) for _, count, _ in topics) > LIMIT:
            assert {code for _, code in answers} <= {44, 42}  # POLICY_VIOLATION, or INVALID_REQUEST
        if grow:
            sock.sendall(w.create_partitions_request(8, 0, grow, validate_only))
            correlation_id, answers = w.parse_topic_errors(w.recv_frame(sock))
            assert correlation_id == 8 and {code for _, code in answers} <= allowed, answers
    assert limited_broker.running
    w.assert_answers_api_versions_and_metadata(bootstrap)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    codec=st.sampled_from(
        [COMPRESSION_GZIP, COMPRESSION_SNAPPY, COMPRESSION_LZ4, COMPRESSION_ZSTD]
    ),
    values=st.lists(st.binary(max_size=200), min_size=1, max_size=20),
    steps=st.lists(mutations, max_size=3),
)
def test_compressed_batches_with_damaged_payloads_are_answered(
    shared_broker: BrokerProcess, codec: int, values: list[bytes], steps: list[Mutation]
) -> None:
    batch = bytearray(encode_batch([(b"k", v) for v in values], compression=codec))
    # Damage the compressed payload, then make the frame and the CRC right again: only what is
    # inside the batch is wrong, which the CRC cannot catch.
    body = _mutate(bytes(batch[BATCH_HEADER_SIZE:]), [s for s in steps if s[0] != "resize"])
    batch = batch[:BATCH_HEADER_SIZE] + body
    struct.pack_into(">i", batch, 8, len(batch) - 12)
    struct.pack_into(">I", batch, w.CRC_OFFSET, crc32c.crc32c(bytes(batch[21:])))
    bootstrap = shared_broker.bootstrap
    with w.connect(bootstrap) as sock:
        sock.sendall(w.produce_request(9, 3, FUZZ_TOPIC, bytes(batch), acks=1))
        correlation_id, error, _ = w.parse_produce_partition_error(w.recv_frame(sock))
    assert correlation_id == 9
    assert error in (w.NONE, w.CORRUPT_MESSAGE, 87, 3), error  # 87 INVALID_RECORD
    if not steps:
        assert error in (w.NONE, 3)
    assert shared_broker.running
