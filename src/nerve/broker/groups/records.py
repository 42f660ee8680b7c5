"""Records of the ``__consumer_offsets`` topic, in Kafka's own binary layout.

Kafka keeps committed offsets and group metadata as compacted records keyed by what they
describe; nerve writes the same keys and values, so tools that read Kafka's offsets topic read
nerve's too, and a group's state is rebuilt at start by replaying the topic (last record per
key wins, a null value deletes).

Keys: version 0/1 is an offset commit (group, topic, partition); version 2 is group metadata
(group). Values: offset commit v3 (offset, leader epoch, metadata, commit timestamp) and group
metadata v3 (protocol, generation, leader, members with their subscription and assignment).
These schemas are a few fixed fields each; kio covers only the request/response APIs, so they
are encoded here with ``struct``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Self

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")

OFFSET_KEY_VERSION = 1
GROUP_KEY_VERSION = 2
OFFSET_VALUE_VERSION = 3
GROUP_VALUE_VERSION = 3


class RecordFormatError(ValueError):
    """A record of the offsets topic that nerve cannot read (written by a newer Kafka)."""


@dataclass(frozen=True)
class OffsetKey:
    group: str
    topic: str
    partition: int


@dataclass(frozen=True)
class GroupKey:
    group: str


@dataclass(frozen=True)
class OffsetValue:
    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp: int


@dataclass(frozen=True)
class MemberValue:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(frozen=True)
class GroupValue:
    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    state_timestamp: int
    members: list[MemberValue] = field(default_factory=list)


# -- writing -------------------------------------------------------------------------------


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def i16(self, value: int) -> Self:
        self.out += _I16.pack(value)
        return self

    def i32(self, value: int) -> Self:
        self.out += _I32.pack(value)
        return self

    def i64(self, value: int) -> Self:
        self.out += _I64.pack(value)
        return self

    def string(self, value: str | None) -> Self:
        if value is None:
            return self.i16(-1)
        data = value.encode()
        self.i16(len(data))
        self.out += data
        return self

    def bytes_(self, value: bytes) -> Self:
        self.i32(len(value))
        self.out += value
        return self


def encode_key(key: OffsetKey | GroupKey) -> bytes:
    if isinstance(key, OffsetKey):
        w = _Writer().i16(OFFSET_KEY_VERSION).string(key.group).string(key.topic)
        return bytes(w.i32(key.partition).out)
    return bytes(_Writer().i16(GROUP_KEY_VERSION).string(key.group).out)


def encode_offset_value(value: OffsetValue) -> bytes:
    w = _Writer().i16(OFFSET_VALUE_VERSION).i64(value.offset).i32(value.leader_epoch)
    return bytes(w.string(value.metadata).i64(value.commit_timestamp).out)


def encode_group_value(value: GroupValue) -> bytes:
    w = _Writer().i16(GROUP_VALUE_VERSION).string(value.protocol_type).i32(value.generation)
    w.string(value.protocol).string(value.leader).i64(value.state_timestamp)
    w.i32(len(value.members))
    for m in value.members:
        w.string(m.member_id).string(m.group_instance_id).string(m.client_id)
        w.string(m.client_host).i32(m.rebalance_timeout_ms).i32(m.session_timeout_ms)
        w.bytes_(m.subscription).bytes_(m.assignment)
    return bytes(w.out)


# -- reading -------------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, s: struct.Struct) -> int:
        if self.pos + s.size > len(self.data):
            raise RecordFormatError("record ends early")
        (value,) = s.unpack_from(self.data, self.pos)
        self.pos += s.size
        return int(value)

    def i16(self) -> int:
        return self._take(_I16)

    def i32(self) -> int:
        return self._take(_I32)

    def i64(self) -> int:
        return self._take(_I64)

    def string(self) -> str | None:
        size = self.i16()
        if size < 0:
            return None
        return self._raw(size).decode()

    def bytes_(self) -> bytes:
        size = self.i32()
        return b"" if size < 0 else self._raw(size)

    def _raw(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise RecordFormatError("record ends early")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk


def decode_key(data: bytes) -> OffsetKey | GroupKey | ConsumerKey | None:
    """The key, or None for a key type nerve does not use (share and streams groups)."""
    r = _Reader(data)
    version = r.i16()
    if version in (0, 1):
        return OffsetKey(r.string() or "", r.string() or "", r.i32())
    if version == GROUP_KEY_VERSION:
        return GroupKey(r.string() or "")
    if version in CONSUMER_KEY_TYPES:
        group = r.string() or ""
        member = r.string() or "" if version in _MEMBER_KEYS else ""
        return ConsumerKey(version, group, member)
    return None


def decode_offset_value(data: bytes) -> OffsetValue:
    r = _Reader(data)
    version = r.i16()
    if version not in (1, 3):
        raise RecordFormatError(f"offset commit value version {version} is not supported")
    offset = r.i64()
    leader_epoch = r.i32() if version == 3 else -1
    metadata = r.string() or ""
    commit_timestamp = r.i64()
    return OffsetValue(offset, leader_epoch, metadata, commit_timestamp)


def decode_group_value(data: bytes) -> GroupValue:
    r = _Reader(data)
    version = r.i16()
    if version != GROUP_VALUE_VERSION:
        raise RecordFormatError(f"group metadata value version {version} is not supported")
    value = GroupValue(
        protocol_type=r.string() or "",
        generation=r.i32(),
        protocol=r.string(),
        leader=r.string(),
        state_timestamp=r.i64(),
    )
    for _ in range(r.i32()):
        value.members.append(
            MemberValue(
                member_id=r.string() or "",
                group_instance_id=r.string(),
                client_id=r.string() or "",
                client_host=r.string() or "",
                rebalance_timeout_ms=r.i32(),
                session_timeout_ms=r.i32(),
                subscription=r.bytes_(),
                assignment=r.bytes_(),
            )
        )
    return value


def subscribed_topics(subscription: bytes) -> set[str]:
    """Topics in a ``consumer`` protocol subscription (ConsumerProtocolSubscription, any version).

    Only the leading version and topic array are read; later fields (user data, owned
    partitions, rack) do not matter to the broker.
    """
    r = _Reader(subscription)
    try:
        r.i16()
        return {r.string() or "" for _ in range(r.i32())}
    except RecordFormatError:
        return set()


def java_string_hash(value: str) -> int:
    """Java's ``String.hashCode`` (over UTF-16 code units), as Kafka partitions groups by it."""
    h = 0
    data = value.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def partition_for(group: str, partitions: int) -> int:
    """The offsets-topic partition that holds ``group`` (Kafka: abs(hashCode) % count)."""
    h = java_string_hash(group)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


# -- consumer groups (KIP-848) -------------------------------------------------------------
#
# Kafka keeps a consumer group as several records, each keyed by its type (the key's version
# field) and the group, some also by member: the group epoch (3), the subscribed topics'
# metadata (4, not written: nerve reads partition counts from its own topics), a member's
# subscription (5), the target assignment's epoch (6) and each member's target (7), and each
# member's current assignment and epoch (8). Values are flexible versions (compact strings
# and arrays, tagged fields), version 0.

CONSUMER_GROUP_METADATA = 3
CONSUMER_GROUP_PARTITION_METADATA = 4
CONSUMER_GROUP_MEMBER_METADATA = 5
CONSUMER_GROUP_TARGET_METADATA = 6
CONSUMER_GROUP_TARGET_MEMBER = 7
CONSUMER_GROUP_CURRENT_MEMBER = 8
CONSUMER_KEY_TYPES = frozenset(range(3, 9))
_MEMBER_KEYS = frozenset(
    (CONSUMER_GROUP_MEMBER_METADATA, CONSUMER_GROUP_TARGET_MEMBER, CONSUMER_GROUP_CURRENT_MEMBER)
)

TopicPartitions = list[tuple[bytes, list[int]]]  # (topic id's 16 bytes, partitions)


@dataclass(frozen=True)
class ConsumerKey:
    record_type: int
    group: str
    member: str = ""


@dataclass(frozen=True)
class ConsumerMemberValue:
    instance_id: str | None
    rack_id: str | None
    client_id: str
    client_host: str
    subscribed_topic_names: list[str]
    subscribed_topic_regex: str | None
    rebalance_timeout_ms: int
    server_assignor: str | None


@dataclass(frozen=True)
class ConsumerCurrentValue:
    member_epoch: int
    previous_member_epoch: int
    state: int
    assigned: TopicPartitions
    pending_revocation: TopicPartitions


def encode_consumer_key(key: ConsumerKey) -> bytes:
    w = _Writer().i16(key.record_type).string(key.group)
    if key.record_type in _MEMBER_KEYS:
        w.string(key.member)
    return bytes(w.out)


class _Compact(_Writer):
    """The flexible-version encoding of Kafka's generated records."""

    def uvarint(self, value: int) -> Self:
        while value >= 0x80:
            self.out.append((value & 0x7F) | 0x80)
            value >>= 7
        self.out.append(value)
        return self

    def cstring(self, value: str | None) -> Self:
        if value is None:
            return self.uvarint(0)
        data = value.encode()
        self.uvarint(len(data) + 1)
        self.out += data
        return self

    def partitions(self, value: TopicPartitions) -> Self:
        self.uvarint(len(value) + 1)
        for topic_id, parts in value:
            self.out += topic_id
            self.uvarint(len(parts) + 1)
            for p in parts:
                self.i32(p)
            self.uvarint(0)  # tagged fields
        return self


def encode_consumer_group_value(epoch: int) -> bytes:
    w = _Compact()
    w.i16(0).i32(epoch).uvarint(0)
    return bytes(w.out)


def encode_target_metadata_value(assignment_epoch: int) -> bytes:
    w = _Compact()
    w.i16(0).i32(assignment_epoch).uvarint(0)
    return bytes(w.out)


def encode_target_member_value(partitions: TopicPartitions) -> bytes:
    w = _Compact()
    w.i16(0).partitions(partitions).uvarint(0)
    return bytes(w.out)


def encode_member_value(value: ConsumerMemberValue) -> bytes:
    w = _Compact()
    w.i16(0).cstring(value.instance_id).cstring(value.rack_id).cstring(value.client_id)
    w.cstring(value.client_host).uvarint(len(value.subscribed_topic_names) + 1)
    for name in value.subscribed_topic_names:
        w.cstring(name)
    w.cstring(value.subscribed_topic_regex).i32(value.rebalance_timeout_ms)
    w.cstring(value.server_assignor).uvarint(0)
    return bytes(w.out)


def encode_current_value(value: ConsumerCurrentValue) -> bytes:
    w = _Compact()
    w.i16(0).i32(value.member_epoch).i32(value.previous_member_epoch)
    w.out.append(value.state & 0xFF)
    w.partitions(value.assigned).partitions(value.pending_revocation).uvarint(0)
    return bytes(w.out)


class _CompactReader(_Reader):
    def uvarint(self) -> int:
        shift = value = 0
        while True:
            if self.pos >= len(self.data):
                raise RecordFormatError("record ends early")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def cstring(self) -> str | None:
        size = self.uvarint()
        return None if size == 0 else self._raw(size - 1).decode()

    def i8(self) -> int:
        return self._raw(1)[0]

    def partitions(self) -> TopicPartitions:
        out: TopicPartitions = []
        for _ in range(max(self.uvarint() - 1, 0)):
            topic_id = self._raw(16)
            parts = [self.i32() for _ in range(max(self.uvarint() - 1, 0))]
            self.tags()
            out.append((topic_id, parts))
        return out

    def tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self._raw(self.uvarint())

    def version(self, what: str) -> None:
        version = self.i16()
        if version != 0:
            raise RecordFormatError(f"{what} value version {version} is not supported")


def decode_epoch_value(data: bytes) -> int:
    """The epoch of a group metadata (3) or target assignment metadata (6) value."""
    r = _CompactReader(data)
    r.version("consumer group epoch")
    return r.i32()


def decode_target_member_value(data: bytes) -> TopicPartitions:
    r = _CompactReader(data)
    r.version("target assignment")
    return r.partitions()


def decode_member_value(data: bytes) -> ConsumerMemberValue:
    r = _CompactReader(data)
    r.version("consumer group member")
    instance_id, rack_id = r.cstring(), r.cstring()
    client_id, client_host = r.cstring() or "", r.cstring() or ""
    names = [r.cstring() or "" for _ in range(max(r.uvarint() - 1, 0))]
    regex = r.cstring()
    rebalance_timeout_ms = r.i32()
    assignor = r.cstring()
    return ConsumerMemberValue(
        instance_id, rack_id, client_id, client_host, names, regex, rebalance_timeout_ms, assignor
    )


def decode_current_value(data: bytes) -> ConsumerCurrentValue:
    r = _CompactReader(data)
    r.version("current member assignment")
    epoch, previous, state = r.i32(), r.i32(), r.i8()
    return ConsumerCurrentValue(epoch, previous, state, r.partitions(), r.partitions())


# -- the consumer protocol's embedded data (classic members of a consumer group) -----------


def parse_subscription(data: bytes) -> tuple[list[str], list[tuple[str, list[int]]]]:
    """Topics and owned partitions (v1+) of a ConsumerProtocolSubscription; raises
    RecordFormatError when it is not one."""
    r = _Reader(data)
    version = r.i16()
    if version < 0:
        raise RecordFormatError(f"subscription version {version}")
    count = r.i32()
    if count < 0 or count > len(data):
        raise RecordFormatError("subscription topic count")
    topics = [r.string() or "" for _ in range(count)]
    r.bytes_()  # user data
    owned: list[tuple[str, list[int]]] = []
    if version >= 1 and r.pos < len(data):
        for _ in range(r.i32()):
            name = r.string() or ""
            owned.append((name, [r.i32() for _ in range(r.i32())]))
    return topics, owned


def encode_assignment(partitions: list[tuple[str, list[int]]]) -> bytes:
    """A ConsumerProtocolAssignment v0 (what SyncGroup hands a classic consumer)."""
    w = _Writer().i16(0).i32(len(partitions))
    for name, parts in partitions:
        w.string(name).i32(len(parts))
        for p in parts:
            w.i32(p)
    return bytes(w.i32(-1).out)  # no user data


def parse_assignment(data: bytes) -> list[tuple[str, list[int]]]:
    if not data:
        return []
    r = _Reader(data)
    r.i16()
    out = []
    for _ in range(r.i32()):
        name = r.string() or ""
        out.append((name, [r.i32() for _ in range(r.i32())]))
    return out
