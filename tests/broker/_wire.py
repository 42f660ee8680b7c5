"""Hand-encoded Kafka requests over raw sockets, for feeding a broker malformed input.

Only non-flexible request versions are used, so every encoding here is a few ``struct`` calls
and follows the protocol guide directly: size-prefixed frames, request header v1
(api_key, api_version, correlation_id, client_id), response header v0 (correlation_id).
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

import crc32c

API_PRODUCE = 0
API_METADATA = 3
API_VERSIONS = 18
API_CREATE_TOPICS = 19
API_CREATE_PARTITIONS = 37

NONE = 0
CORRUPT_MESSAGE = 2
UNSUPPORTED_VERSION = 35


def i8(v: int) -> bytes:
    return struct.pack(">b", v)


def i16(v: int) -> bytes:
    return struct.pack(">h", v)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def i64(v: int) -> bytes:
    return struct.pack(">q", v)


def string(v: str | None) -> bytes:
    if v is None:
        return i16(-1)
    raw = v.encode()
    return i16(len(raw)) + raw


def varint(v: int) -> bytes:
    """Zig-zag signed varint, as used inside v2 records."""
    z = (v << 1) ^ (v >> 63)
    out = bytearray()
    while True:
        byte = z & 0x7F
        z >>= 7
        if z:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def frame(payload: bytes) -> bytes:
    return i32(len(payload)) + payload


def header(api_key: int, version: int, correlation_id: int, client_id: str | None = "raw") -> bytes:
    return i16(api_key) + i16(version) + i32(correlation_id) + string(client_id)


# -- requests -----------------------------------------------------------------------------------


def api_versions_request(correlation_id: int, version: int = 0) -> bytes:
    return frame(header(API_VERSIONS, version, correlation_id))


def metadata_request(correlation_id: int, version: int, topics: list[str] | None = None) -> bytes:
    """Metadata v1..v8 (non-flexible); ``topics=None`` asks for all topics."""
    assert 1 <= version <= 8, version
    body = i32(-1) if topics is None else i32(len(topics)) + b"".join(string(t) for t in topics)
    if version >= 4:
        body += i8(1)  # allow_auto_topic_creation
    if version >= 8:
        body += i8(0) + i8(0)  # include cluster / topic authorized operations
    return frame(header(API_METADATA, version, correlation_id) + body)


def record(offset_delta: int, key: bytes | None, value: bytes | None) -> bytes:
    body = i8(0) + varint(0) + varint(offset_delta)
    body += varint(-1) if key is None else varint(len(key)) + key
    body += varint(-1) if value is None else varint(len(value)) + value
    body += varint(0)  # no headers
    return varint(len(body)) + body


def record_batch(values: list[bytes], timestamp_ms: int | None = None) -> bytes:
    """An uncompressed magic-2 RecordBatch with a correct CRC-32C."""
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    records = b"".join(record(i, b"key-%d" % i, v) for i, v in enumerate(values))
    after_crc = (
        i16(0)  # attributes: no compression, CreateTime
        + i32(len(values) - 1)  # last offset delta
        + i64(ts)
        + i64(ts)
        + i64(-1)  # producer id
        + i16(-1)  # producer epoch
        + i32(-1)  # base sequence
        + i32(len(values))
        + records
    )
    crc = struct.pack(">I", crc32c.crc32c(after_crc))
    after_length = i32(0) + i8(2) + crc + after_crc  # partition leader epoch, magic, crc
    return i64(0) + i32(len(after_length)) + after_length


CRC_OFFSET = 8 + 4 + 4 + 1  # base offset, batch length, leader epoch, magic


def produce_request(
    correlation_id: int,
    version: int,
    topic: str,
    batch: bytes,
    partition: int = 0,
    acks: int = -1,
) -> bytes:
    """Produce v3..v8 (non-flexible) with one batch for one partition."""
    assert 3 <= version <= 8, version
    body = (
        string(None)  # transactional id
        + i16(acks)
        + i32(10_000)  # timeout ms
        + i32(1)
        + string(topic)
        + i32(1)
        + i32(partition)
        + i32(len(batch))
        + batch
    )
    return frame(header(API_PRODUCE, version, correlation_id) + body)


def create_topics_request(
    correlation_id: int,
    version: int,
    topics: list[tuple[str, int, int]],
    validate_only: bool = False,
) -> bytes:
    """CreateTopics v2..v4 (non-flexible): (name, partitions, replication factor) per topic."""
    assert 2 <= version <= 4, version
    body = i32(len(topics))
    for name, partitions, replication in topics:
        body += string(name) + i32(partitions) + i16(replication)
        body += i32(0) + i32(0)  # no assignments, no configs
    body += i32(30_000) + i8(1 if validate_only else 0)
    return frame(header(API_CREATE_TOPICS, version, correlation_id) + body)


def create_partitions_request(
    correlation_id: int, version: int, topics: list[tuple[str, int]], validate_only: bool = False
) -> bytes:
    """CreatePartitions v0..v1 (non-flexible): (name, new count) per topic."""
    assert 0 <= version <= 1, version
    body = i32(len(topics))
    for name, count in topics:
        body += string(name) + i32(count) + i32(-1)  # assignments: null
    body += i32(30_000) + i8(1 if validate_only else 0)
    return frame(header(API_CREATE_PARTITIONS, version, correlation_id) + body)


# -- responses ----------------------------------------------------------------------------------


class Closed(Exception):
    """The broker closed the connection."""


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except ConnectionResetError as exc:
            raise Closed from exc
        if not chunk:
            raise Closed
        buf += chunk
    return bytes(buf)


def recv_frame(sock: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    return recv_exact(sock, size)


def closed_by_peer(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True if the broker closes the connection within ``timeout`` (any bytes are discarded)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        sock.settimeout(remaining)
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False


@dataclass(frozen=True)
class Reader:
    data: bytes
    pos: int = 0

    def take(self, fmt: str) -> tuple[int, Reader]:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        return value, Reader(self.data, self.pos + struct.calcsize(fmt))

    def take_string(self) -> tuple[str | None, Reader]:
        length, rest = self.take(">h")
        if length < 0:
            return None, rest
        end = rest.pos + length
        return self.data[rest.pos : end].decode(), Reader(self.data, end)


def parse_api_versions_v0(payload: bytes) -> tuple[int, int, dict[int, tuple[int, int]]]:
    """-> (correlation id, error code, {api key: (min, max)})."""
    r = Reader(payload)
    correlation_id, r = r.take(">i")
    error, r = r.take(">h")
    count, r = r.take(">i")
    ranges: dict[int, tuple[int, int]] = {}
    for _ in range(max(count, 0)):
        key, r = r.take(">h")
        low, r = r.take(">h")
        high, r = r.take(">h")
        ranges[key] = (low, high)
    return correlation_id, error, ranges


def parse_produce_partition_error(payload: bytes) -> tuple[int, int, int]:
    """-> (correlation id, first partition's error code, its base offset); Produce v3..v8."""
    r = Reader(payload)
    correlation_id, r = r.take(">i")
    topics, r = r.take(">i")
    assert topics == 1, topics
    _, r = r.take_string()
    partitions, r = r.take(">i")
    assert partitions == 1, partitions
    _, r = r.take(">i")
    error, r = r.take(">h")
    base_offset, r = r.take(">q")
    return correlation_id, error, base_offset


def parse_topic_errors(payload: bytes) -> tuple[int, list[tuple[str | None, int]]]:
    """-> (correlation id, [(topic, error code)]) of CreateTopics v2..v4 or CreatePartitions
    v0..v1: both answer throttle time, then topics of (name, error code, error message)."""
    r = Reader(payload)
    correlation_id, r = r.take(">i")
    _, r = r.take(">i")  # throttle time
    count, r = r.take(">i")
    out = []
    for _ in range(count):
        name, r = r.take_string()
        error, r = r.take(">h")
        _, r = r.take_string()
        out.append((name, error))
    return correlation_id, out


def connect(bootstrap: str, timeout: float = 10.0) -> socket.socket:
    host, _, port = bootstrap.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def api_versions(bootstrap: str) -> dict[int, tuple[int, int]]:
    with connect(bootstrap) as sock:
        sock.sendall(api_versions_request(7))
        correlation_id, error, ranges = parse_api_versions_v0(recv_frame(sock))
    assert (correlation_id, error) == (7, NONE)
    return ranges


def pick_version(ranges: dict[int, tuple[int, int]], api_key: int, low: int, high: int) -> int:
    """Lowest version the broker supports within our encoder's range ``low..high``."""
    assert api_key in ranges, f"broker does not advertise API {api_key}"
    lo, hi = ranges[api_key]
    version = max(lo, low)
    assert version <= min(hi, high), f"API {api_key}: broker {lo}..{hi}, encoder {low}..{high}"
    return version


def assert_answers_api_versions_and_metadata(bootstrap: str) -> None:
    """A fresh connection gets ApiVersions and Metadata answered, correlation ids matching."""
    ranges = api_versions(bootstrap)
    assert {API_PRODUCE, API_METADATA, API_VERSIONS} <= ranges.keys()
    version = pick_version(ranges, API_METADATA, 1, 8)
    with connect(bootstrap) as sock:
        sock.sendall(metadata_request(11, version))
        (correlation_id,) = struct.unpack_from(">i", recv_frame(sock))
    assert correlation_id == 11
