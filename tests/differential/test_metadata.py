"""Metadata and cluster answers on nerve and on Apache Kafka 4.4: authorized operations (all of
them while there is no authorizer), and auto-creation, where the request that creates a topic
does not see it yet and the next one does."""

from __future__ import annotations

import time

from kio.schema.describe_cluster.v1.request import DescribeClusterRequest
from kio.schema.describe_groups.v5.request import DescribeGroupsRequest
from kio.schema.describe_topic_partitions.v0 import request as dtp
from kio.schema.errors import ErrorCode
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
from kio.static.primitive import i8, i32

from tests.broker._kio_client import KioClient, await_group_coordinator
from tests.conftest import Backend, TopicNameFactory
from tests.differential.test_differential import create

NOT_REQUESTED = -(2**31)


def metadata(
    client: KioClient, *names: str, create: bool = False, operations: bool = False
) -> dict[str, tuple[ErrorCode, int, int]]:
    response = client.call(
        MetadataRequest(
            topics=tuple(MetadataRequestTopic(name=n, topic_id=None) for n in names),
            allow_auto_topic_creation=create,
            include_topic_authorized_operations=operations,
        )
    )
    return {
        t.name: (t.error_code, len(t.partitions), t.topic_authorized_operations)
        for t in response.topics
    }


def test_authorized_operations_are_all_of_them_without_an_authorizer(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic, group = topic_name(), topic_name("group")
    create(backend, topic)
    await_group_coordinator(backend.bootstrap)
    with KioClient(backend.bootstrap) as client:
        asked = metadata(client, topic, operations=True)
        not_asked = metadata(client, topic)
        cluster = [
            client.call(
                DescribeClusterRequest(
                    include_cluster_authorized_operations=asked_for, endpoint_type=i8(1)
                )
            ).cluster_authorized_operations
            for asked_for in (True, False)
        ]
        groups = [
            client.call(
                DescribeGroupsRequest(groups=(group,), include_authorized_operations=asked_for)
            ).groups[0]
            for asked_for in (True, False)
        ]
    # READ WRITE CREATE DELETE ALTER DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS
    assert asked == {topic: (ErrorCode.none, 1, 3576)}
    assert not_asked == {topic: (ErrorCode.none, 1, NOT_REQUESTED)}
    # CREATE ALTER DESCRIBE CLUSTER_ACTION DESCRIBE_CONFIGS ALTER_CONFIGS IDEMPOTENT_WRITE
    assert cluster == [8096, NOT_REQUESTED]
    # READ DELETE DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS, for a group that does not exist yet
    assert [(g.error_code, g.group_state, g.authorized_operations) for g in groups] == [
        (ErrorCode.none, "Dead", 3400),
        (ErrorCode.none, "Dead", NOT_REQUESTED),
    ]


def test_metadata_that_creates_a_topic_does_not_show_it_yet(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic, absent = topic_name(), topic_name("absent")
    with KioClient(backend.bootstrap) as client:
        assert metadata(client, absent) == {
            absent: (ErrorCode.unknown_topic_or_partition, 0, NOT_REQUESTED)
        }
        first = metadata(client, topic, create=True)
        assert first == {topic: (ErrorCode.unknown_topic_or_partition, 0, NOT_REQUESTED)}
        # Kafka creates it through its controller a moment later; nerve at once.
        deadline = time.monotonic() + 30
        while (later := metadata(client, topic))[topic][0] != ErrorCode.none:
            assert time.monotonic() < deadline, later
            time.sleep(0.1)
        assert later == {topic: (ErrorCode.none, 1, NOT_REQUESTED)}
        # Asking again with creation allowed neither fails nor creates anything new.
        assert metadata(client, topic, create=True) == later


def test_describe_topic_partitions_pages_with_a_cursor(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    first, second, missing = topic_name("a"), topic_name("b"), topic_name("c-missing")
    create(backend, first, 3)
    create(backend, second, 2)

    def page(limit: int, cursor: dtp.Cursor | None = None) -> object:
        with KioClient(backend.bootstrap) as client:
            return client.call(
                dtp.DescribeTopicPartitionsRequest(
                    topics=tuple(dtp.TopicRequest(name=n) for n in (second, missing, first)),
                    response_partition_limit=i32(limit),
                    cursor=cursor,
                )
            )

    def shape(response: object) -> list[tuple[object, ...]]:
        return [
            (t.name, t.error_code, t.is_internal, t.topic_authorized_operations,
             [(p.partition_index, p.leader_id, p.replica_nodes, p.isr_nodes,
               p.eligible_leader_replicas, p.last_known_elr) for p in t.partitions])
            for t in response.topics  # type: ignore[attr-defined]
        ]  # fmt: skip

    whole = page(100)
    assert shape(whole) == [
        (first, ErrorCode.none, False, 3576, [(i, 1, (1,), (1,), (), ()) for i in range(3)]),
        (second, ErrorCode.none, False, 3576, [(i, 1, (1,), (1,), (), ()) for i in range(2)]),
        (missing, ErrorCode.unknown_topic_or_partition, False, 3576, []),
    ]
    assert whole.next_cursor is None  # type: ignore[attr-defined]
    head = page(2)
    assert [(t[0], [p[0] for p in t[4]]) for t in shape(head)] == [(first, [0, 1])]
    cursor = head.next_cursor  # type: ignore[attr-defined]
    assert (cursor.topic_name, cursor.partition_index) == (first, 2)
    rest = page(2, dtp.Cursor(topic_name=first, partition_index=i32(2)))
    assert [(t[0], [p[0] for p in t[4]]) for t in shape(rest)] == [(first, [2]), (second, [0])]
    cursor = rest.next_cursor  # type: ignore[attr-defined]
    assert (cursor.topic_name, cursor.partition_index) == (second, 1)
