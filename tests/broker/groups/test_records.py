"""The ``__consumer_offsets`` record layout and Kafka's group-to-partition mapping."""

from __future__ import annotations

import pytest

from nerve.broker.groups import records as r


def test_offset_key_and_value_round_trip_in_kafkas_layout() -> None:
    key = r.OffsetKey("orders-service", "orders", 7)
    encoded = r.encode_key(key)
    # version 1, then group, topic (int16-length strings), then partition.
    assert encoded == b"\x00\x01\x00\x0eorders-service\x00\x06orders\x00\x00\x00\x07"
    assert r.decode_key(encoded) == key
    value = r.OffsetValue(offset=42, leader_epoch=3, metadata="m", commit_timestamp=1700)
    assert r.decode_offset_value(r.encode_offset_value(value)) == value


def test_group_metadata_round_trips_with_members() -> None:
    value = r.GroupValue(
        protocol_type="consumer",
        generation=5,
        protocol="range",
        leader="a-1",
        state_timestamp=123,
        members=[
            r.MemberValue("a-1", None, "client-a", "/127.0.0.1", 300000, 45000, b"sub", b"asg"),
            r.MemberValue("b-1", "replica-b", "client-b", "/10.0.0.2", 1, 2, b"", b""),
        ],
    )
    assert r.decode_key(r.encode_key(r.GroupKey("g"))) == r.GroupKey("g")
    assert r.decode_group_value(r.encode_group_value(value)) == value


def test_unknown_key_versions_are_skipped_and_bad_values_refused() -> None:
    assert r.decode_key(b"\x00\x0a\x00\x01g") is None  # a share group record type
    with pytest.raises(r.RecordFormatError):
        r.decode_offset_value(b"\x00\x03\x00")
    with pytest.raises(r.RecordFormatError, match="version 9"):
        r.decode_group_value(b"\x00\x09")


@pytest.mark.parametrize(
    ("text", "java_hash"),
    [("", 0), ("a", 97), ("hello", 99162322), ("polygenelubricants", -2147483648), ("é", 233)],
)
def test_java_string_hash_matches_java(text: str, java_hash: int) -> None:
    assert r.java_string_hash(text) == java_hash


def test_groups_map_to_partitions_as_kafka_maps_them() -> None:
    assert r.partition_for("hello", 50) == 99162322 % 50
    # Integer.MIN_VALUE has no absolute value in Java; Kafka's Utils.abs maps it to 0.
    assert r.partition_for("polygenelubricants", 50) == 0
    assert r.partition_for("anything", 1) == 0


def test_subscription_topics_are_read_from_any_consumer_protocol_version() -> None:
    v0 = b"\x00\x00\x00\x00\x00\x02\x00\x01a\x00\x02bb\xff\xff\xff\xff"
    assert r.subscribed_topics(v0) == {"a", "bb"}
    assert r.subscribed_topics(b"\x00") == set()


def test_consumer_group_records_in_kafkas_layout() -> None:
    # Keys: the record type as the version, then the group (and member), int16 strings.
    group_key = r.ConsumerKey(r.CONSUMER_GROUP_METADATA, "g")
    assert r.encode_consumer_key(group_key) == b"\x00\x03\x00\x01g"
    member_key = r.ConsumerKey(r.CONSUMER_GROUP_CURRENT_MEMBER, "g", "m")
    assert r.encode_consumer_key(member_key) == b"\x00\x08\x00\x01g\x00\x01m"
    assert r.decode_key(r.encode_consumer_key(member_key)) == member_key
    # Values: version 0, flexible (tagged fields last).
    assert r.encode_consumer_group_value(7) == b"\x00\x00\x00\x00\x00\x07\x00"
    assert r.decode_epoch_value(r.encode_consumer_group_value(7)) == 7
    topic = bytes(range(16))
    current = r.ConsumerCurrentValue(5, 4, 2, [(topic, [0, 2])], [(topic, [1])])
    encoded = r.encode_current_value(current)
    assert encoded[:11] == b"\x00\x00\x00\x00\x00\x05\x00\x00\x00\x04\x02"
    assert r.decode_current_value(encoded) == current
    member = r.ConsumerMemberValue("i", None, "c", "/h", ["a", "b"], "x.*", 300000, "range")
    assert r.decode_member_value(r.encode_member_value(member)) == member
    target = [(topic, [3])]
    assert r.decode_target_member_value(r.encode_target_member_value(target)) == target
