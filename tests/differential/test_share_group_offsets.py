"""The share-group offset admin APIs against Apache Kafka 4.4: DescribeShareGroupOffsets,
AlterShareGroupOffsets and DeleteShareGroupOffsets, sent raw (kio), their refusals and what a
member reads after them."""

from __future__ import annotations

import time
from typing import Any

from kio.schema.alter_share_group_offsets.v0 import request as alter
from kio.schema.delete_share_group_offsets.v0 import request as delete
from kio.schema.describe_share_group_offsets.v1 import request as describe
from kio.static.primitive import i32, i64

from tests._ck import produce_ok
from tests.broker._kio_client import KioClient
from tests.conftest import Backend, TopicNameFactory
from tests.differential.test_differential import create
from tests.differential.test_share_groups import ShareMember, acquired, earliest, heartbeat


def described(client: KioClient, group: str, topics: dict[str, list[int]] | None = None) -> Any:
    request = describe.DescribeShareGroupOffsetsRequest(
        groups=(
            describe.DescribeShareGroupOffsetsRequestGroup(
                group_id=group,
                topics=None
                if topics is None
                else tuple(
                    describe.DescribeShareGroupOffsetsRequestTopic(
                        topic_name=t, partitions=tuple(i32(p) for p in ps)
                    )
                    for t, ps in topics.items()
                ),
            ),
        )
    )
    (answer,) = client.call(request).groups
    return (
        int(answer.error_code),
        sorted(
            (t.topic_name, p.partition_index, p.start_offset, p.leader_epoch, p.lag,
             int(p.error_code))
            for t in answer.topics
            for p in t.partitions
        ),
    )  # fmt: skip


def altered(client: KioClient, group: str, offsets: dict[str, dict[int, int]]) -> Any:
    response = client.call(
        alter.AlterShareGroupOffsetsRequest(
            group_id=group,
            topics=tuple(
                alter.AlterShareGroupOffsetsRequestTopic(
                    topic_name=t,
                    partitions=tuple(
                        alter.AlterShareGroupOffsetsRequestPartition(
                            partition_index=i32(p), start_offset=i64(o)
                        )
                        for p, o in ps.items()
                    ),
                )
                for t, ps in offsets.items()
            ),
        )
    )
    return (
        int(response.error_code),
        sorted(
            (t.topic_name, p.partition_index, int(p.error_code))
            for t in response.responses
            for p in t.partitions
        ),
    )


def deleted(client: KioClient, group: str, topics: list[str]) -> Any:
    response = client.call(
        delete.DeleteShareGroupOffsetsRequest(
            group_id=group,
            topics=tuple(delete.DeleteShareGroupOffsetsRequestTopic(topic_name=t) for t in topics),
        )
    )
    return (
        int(response.error_code),
        sorted((t.topic_name, int(t.error_code)) for t in response.responses),
    )


def test_share_group_offsets_are_described_altered_and_deleted_as_kafka(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic, other, group = topic_name(), topic_name("other"), topic_name("share")
    absent_topic, absent_group = topic_name("none"), topic_name("nogroup")
    create(backend, topic)
    create(backend, other)
    earliest(backend, group)
    produce_ok(backend.bootstrap, topic, [f"v{i}".encode() for i in range(10)])
    got: dict[str, Any] = {}
    with KioClient(backend.bootstrap) as client:
        member = ShareMember(client, group, topic)
        first = member.fetch()
        deadline = time.monotonic() + 20
        while not acquired(first):
            assert time.monotonic() < deadline, first
            first = member.fetch()
        got["acquired"] = acquired(first)
        # 0-3 accepted, 4 rejected, 5 released, the rest still held.
        member.acknowledge([(0, 5, [1, 1, 1, 1, 3, 2])])
        time.sleep(0.5)
        # Until an alter sets it, Kafka's start offset shows the acknowledgements only once
        # its share coordinator has them (0 here in some runs, 5 in others); the lag counts
        # them at once, and is compared alone.
        error, rows = described(client, group)
        got["with member"] = (error, [(t, p, lag) for t, p, _, _, lag, _ in rows])
        # (A partition the topic does not have is left out: Kafka 4.4 answers that once in a
        # while only after the client's timeout.)
        error, rows = described(client, group, {topic: [0], absent_topic: [0]})
        got["named"] = (error, [(t, p, lag) for t, p, _, _, lag, _ in rows])
        got["named, no state"] = [row for row in rows if row[:2] != (topic, 0)]
        got["unknown group"] = described(client, absent_group)
        got["alter with member"] = altered(client, group, {topic: {0: 8}})
        got["delete with member"] = deleted(client, group, [topic])
        got["leave"] = heartbeat(client, group, member.id, -1, None).error_code
        time.sleep(0.5)
        error, rows = described(client, group)
        got["after leaving"] = (error, [(t, p, lag) for t, p, _, _, lag, _ in rows])
        got["alter"] = altered(client, group, {topic: {0: 8}, absent_topic: {0: 1}})
        got["altered"] = described(client, group)
        got["alter other"] = altered(client, group, {other: {0: 0}})
        got["alter unknown group"] = altered(client, absent_group, {topic: {0: 2}})
        got["unknown group after alter"] = described(client, absent_group)
        # A group whose share-partition no member has read since starts where it was set.
        again = ShareMember(client, absent_group, topic)
        fetched = again.fetch()
        deadline = time.monotonic() + 20
        while not acquired(fetched):
            assert time.monotonic() < deadline, fetched
            fetched = again.fetch()
        got["fetched after alter"] = acquired(fetched)
        heartbeat(client, group, again.id, -1, None)
        time.sleep(0.5)
        got["delete"] = deleted(client, group, [other, absent_topic])
        got["after delete"] = described(client, group)
        got["delete unknown group"] = deleted(client, absent_group + "x", [topic])
    T, O, X = topic, other, absent_topic  # noqa: E741
    assert got == {
        "acquired": [(0, 9, 1)],
        "with member": (0, [(T, 0, 5)]),  # 4 of 0-5 accepted, 1 rejected, 1 released
        "named": (0, [(T, 0, 5), (X, 0, -1)]),
        "named, no state": [(X, 0, -1, 0, -1, 0)],  # no such topic: no error either
        "unknown group": (0, []),
        "alter with member": (68, []),  # NON_EMPTY_GROUP
        "delete with member": (68, []),
        "leave": 0,
        "after leaving": (0, [(T, 0, 5)]),  # 5-9 released when it left
        "alter": (0, [(T, 0, 0), (X, 0, 3)]),  # UNKNOWN_TOPIC_OR_PARTITION
        "altered": (0, [(T, 0, 8, 0, 2, 0)]),
        "alter other": (0, [(O, 0, 0)]),  # a topic the group never read
        "alter unknown group": (0, [(T, 0, 0)]),  # made by it
        "unknown group after alter": (0, [(T, 0, 2, 0, 8, 0)]),
        "fetched after alter": [(2, 9, 1)],
        "delete": (0, [(O, 0), (X, 3)]),
        "after delete": (0, [(T, 0, 8, 0, 2, 0)]),
        "delete unknown group": (69, []),  # GROUP_ID_NOT_FOUND
    }
