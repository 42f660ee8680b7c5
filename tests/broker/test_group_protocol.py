"""The classic group protocol spoken directly (kio requests over a socket), asserting the exact
error codes Kafka answers, which real clients would hide behind retries and rejoins. Every test
runs against nerve and against Apache Kafka."""

from __future__ import annotations

import datetime
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kio.schema.delete_groups.v2.request import DeleteGroupsRequest
from kio.schema.describe_groups.v6.request import DescribeGroupsRequest
from kio.schema.errors import ErrorCode
from kio.schema.heartbeat.v4.request import HeartbeatRequest
from kio.schema.join_group.v0.request import JoinGroupRequest as JoinGroupRequestV0
from kio.schema.join_group.v0.request import JoinGroupRequestProtocol as ProtocolV0
from kio.schema.join_group.v5.request import JoinGroupRequest as JoinGroupRequestV5
from kio.schema.join_group.v5.request import JoinGroupRequestProtocol as ProtocolV5
from kio.schema.join_group.v9.request import JoinGroupRequest, JoinGroupRequestProtocol
from kio.schema.leave_group.v5.request import LeaveGroupRequest, MemberIdentity
from kio.schema.list_groups.v5.request import ListGroupsRequest
from kio.schema.offset_commit.v9.request import (
    OffsetCommitRequest,
    OffsetCommitRequestPartition,
    OffsetCommitRequestTopic,
)
from kio.schema.offset_delete.v0.request import (
    OffsetDeleteRequest,
    OffsetDeleteRequestPartition,
    OffsetDeleteRequestTopic,
)
from kio.schema.offset_fetch.v1.request import OffsetFetchRequest as OffsetFetchRequestV1
from kio.schema.offset_fetch.v1.request import OffsetFetchRequestTopic as FetchTopicV1
from kio.schema.offset_fetch.v9.request import (
    OffsetFetchRequest,
    OffsetFetchRequestGroup,
    OffsetFetchRequestTopics,
)
from kio.schema.sync_group.v5.request import SyncGroupRequest, SyncGroupRequestAssignment
from kio.static.primitive import i32, i32Timedelta, i64

from tests._broker import BrokerProcess
from tests._ck import create_topic
from tests._kafka import KafkaProcess
from tests.broker._kio_client import KioClient, await_group_coordinator
from tests.conftest import TopicNameFactory

SESSION_MS = 6000


@pytest.fixture(scope="module", params=["nerve", "kafka"])
def group_broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerProcess | KafkaProcess]:
    """nerve, then Apache Kafka (differential), both with no initial rebalance delay, so a
    lone member's join answers at once."""
    if request.param == "kafka":
        kafka = request.getfixturevalue("kafka")
        await_group_coordinator(kafka.bootstrap)
        yield kafka
        return
    root: Path = tmp_path_factory.mktemp("group-broker")
    proc = BrokerProcess(root / "data", configs={"group.initial.rebalance.delay.ms": 0})
    proc.start()
    try:
        yield proc
    finally:
        proc.close()


def subscription(*topics: str) -> bytes:
    """ConsumerProtocolSubscription v0: version, topics, no user data."""
    out = struct.pack(">hi", 0, len(topics))
    for t in topics:
        out += struct.pack(">h", len(t)) + t.encode()
    return out + struct.pack(">i", -1)


def ms(value: int) -> i32Timedelta:
    return i32Timedelta.parse(datetime.timedelta(milliseconds=value))


def join_request(
    group: str,
    member_id: str = "",
    *,
    topics: tuple[str, ...] = ("t",),
    instance_id: str | None = None,
    protocol_type: str = "consumer",
    session_ms: int = SESSION_MS,
    rebalance_ms: int = 10_000,
) -> JoinGroupRequest:
    return JoinGroupRequest(
        group_id=group,
        session_timeout=ms(session_ms),
        rebalance_timeout=ms(rebalance_ms),
        member_id=member_id,
        group_instance_id=instance_id,
        protocol_type=protocol_type,
        protocols=(JoinGroupRequestProtocol(name="range", metadata=subscription(*topics)),),
        reason=None,
    )


def join(client: KioClient, group: str, **kw: object) -> object:
    """Join as a new dynamic member: the MEMBER_ID_REQUIRED round trip, then the real join."""
    first = client.call(join_request(group, **kw))  # type: ignore[arg-type]
    assert first.error_code == ErrorCode.member_id_required
    assert first.member_id
    return client.call(join_request(group, first.member_id, **kw))  # type: ignore[arg-type]


def sync(
    client: KioClient,
    group: str,
    generation: int,
    member_id: str,
    assignments: dict[str, bytes] | None = None,
    instance_id: str | None = None,
) -> object:
    return client.call(
        SyncGroupRequest(
            group_id=group,
            generation_id=i32(generation),
            member_id=member_id,
            group_instance_id=instance_id,
            protocol_type="consumer",
            protocol_name="range",
            assignments=tuple(
                SyncGroupRequestAssignment(member_id=m, assignment=a)
                for m, a in (assignments or {}).items()
            ),
        )
    )


def heartbeat(
    client: KioClient, group: str, generation: int, member_id: str, instance_id: str | None = None
) -> ErrorCode:
    response = client.call(
        HeartbeatRequest(
            group_id=group,
            generation_id=i32(generation),
            member_id=member_id,
            group_instance_id=instance_id,
        )
    )
    return response.error_code


def commit(
    client: KioClient,
    group: str,
    generation: int,
    member_id: str,
    topic: str,
    offsets: dict[int, int],
    metadata: str = "",
) -> list[ErrorCode]:
    response = client.call(
        OffsetCommitRequest(
            group_id=group,
            generation_id_or_member_epoch=i32(generation),
            member_id=member_id,
            group_instance_id=None,
            topics=(
                OffsetCommitRequestTopic(
                    name=topic,
                    partitions=tuple(
                        OffsetCommitRequestPartition(
                            partition_index=i32(p),
                            committed_offset=i64(o),
                            committed_leader_epoch=i32(-1),
                            committed_metadata=metadata,
                        )
                        for p, o in offsets.items()
                    ),
                ),
            ),
        )
    )
    return [p.error_code for t in response.topics for p in t.partitions]


def fetch_offsets(client: KioClient, group: str, topic: str, partitions: list[int]) -> list[int]:
    response = client.call(
        OffsetFetchRequest(
            groups=(
                OffsetFetchRequestGroup(
                    group_id=group,
                    member_id=None,
                    member_epoch=i32(-1),
                    topics=(
                        OffsetFetchRequestTopics(
                            name=topic, partition_indexes=tuple(i32(p) for p in partitions)
                        ),
                    ),
                ),
            ),
            require_stable=False,
        )
    )
    (group_response,) = response.groups
    assert group_response.error_code == ErrorCode.none
    return [p.committed_offset for t in group_response.topics for p in t.partitions]


def leave(client: KioClient, group: str, member_id: str) -> ErrorCode:
    response = client.call(
        LeaveGroupRequest(
            group_id=group,
            members=(MemberIdentity(member_id=member_id, group_instance_id=None, reason=None),),
        )
    )
    return response.members[0].error_code


def await_rebalance(client: KioClient, group: str, generation: int, member_id: str) -> None:
    """Heartbeat until the broker says a rebalance began: a join sent on another connection
    has then been processed (connections are not ordered with each other)."""
    deadline = time.monotonic() + 10
    while heartbeat(client, group, generation, member_id) != ErrorCode.rebalance_in_progress:
        assert time.monotonic() < deadline, "the join never started a rebalance"
        time.sleep(0.02)


def stable_member(client: KioClient, group: str, topic: str = "t") -> tuple[str, int]:
    """Join a fresh group alone and sync: returns (member id, generation)."""
    joined = join(client, group, topics=(topic,))
    assert joined.error_code == ErrorCode.none  # type: ignore[attr-defined]
    member_id, generation = joined.member_id, joined.generation_id  # type: ignore[attr-defined]
    assert joined.leader == member_id  # type: ignore[attr-defined]
    synced = sync(client, group, generation, member_id, {member_id: b"assignment"})
    assert synced.error_code == ErrorCode.none  # type: ignore[attr-defined]
    assert synced.assignment == b"assignment"  # type: ignore[attr-defined]
    return member_id, generation


def test_join_sync_heartbeat_leave_of_a_single_member(
    group_broker: BrokerProcess | KafkaProcess, topic_name: TopicNameFactory
) -> None:
    group = topic_name()
    with KioClient(group_broker.bootstrap) as client:
        member_id, generation = stable_member(client, group)
        assert generation == 1
        assert heartbeat(client, group, generation, member_id) == ErrorCode.none
        described = client.call(
            DescribeGroupsRequest(groups=(group,), include_authorized_operations=False)
        ).groups[0]
        assert (described.error_code, described.group_state) == (ErrorCode.none, "Stable")
        assert (described.protocol_type, described.protocol_data) == ("consumer", "range")
        assert [m.member_id for m in described.members] == [member_id]
        assert described.members[0].member_assignment == b"assignment"
        assert described.members[0].client_id == "kio-test"
        assert leave(client, group, member_id) == ErrorCode.none
        described = client.call(
            DescribeGroupsRequest(groups=(group,), include_authorized_operations=False)
        ).groups[0]
        assert described.group_state == "Empty"
        assert heartbeat(client, group, generation, member_id) == ErrorCode.unknown_member_id


def test_heartbeat_and_commit_errors_for_unknown_member_and_stale_generation(
    group_broker: BrokerProcess | KafkaProcess, topic_name: TopicNameFactory
) -> None:
    group, topic = topic_name(), topic_name("topic")
    create_topic(group_broker.bootstrap, topic, partitions=2)
    with KioClient(group_broker.bootstrap) as client:
        assert heartbeat(client, "no-such-group", 1, "ghost") == ErrorCode.unknown_member_id
        member_id, generation = stable_member(client, group, topic)
        assert heartbeat(client, group, generation, "ghost") == ErrorCode.unknown_member_id
        assert heartbeat(client, group, generation + 5, member_id) == (ErrorCode.illegal_generation)
        assert commit(client, group, generation, "ghost", topic, {0: 1}) == [
            ErrorCode.unknown_member_id
        ]
        assert commit(client, group, generation - 1, member_id, topic, {0: 1}) == [
            ErrorCode.illegal_generation
        ]
        # A consumer outside group management (generation -1) may not commit into a live group.
        assert commit(client, group, -1, "", topic, {0: 1}) == [ErrorCode.unknown_member_id]
        assert commit(client, group, generation, member_id, topic, {0: 7, 1: 9}) == [
            ErrorCode.none,
            ErrorCode.none,
        ]
        assert fetch_offsets(client, group, topic, [0, 1]) == [7, 9]
        assert sync(client, group, generation + 1, member_id).error_code == (  # type: ignore[attr-defined]
            ErrorCode.illegal_generation
        )


def test_rebalance_in_progress_reaches_heartbeats_syncs_and_commits(
    group_broker: BrokerProcess | KafkaProcess, topic_name: TopicNameFactory
) -> None:
    group, topic = topic_name(), topic_name("topic")
    create_topic(group_broker.bootstrap, topic, partitions=2)
    with KioClient(group_broker.bootstrap) as a, KioClient(group_broker.bootstrap) as b:
        member_a, generation = stable_member(a, group, topic)
        # B joins: the group prepares a rebalance and waits for A to rejoin. (B's join and
        # A's heartbeat travel on different connections: wait until the broker has both.)
        first = b.call(join_request(group, topics=(topic,)))
        b.send(join_request(group, first.member_id, topics=(topic,)))
        await_rebalance(a, group, generation, member_a)
        sync_during_join = sync(a, group, generation, member_a, {member_a: b"x"})
        assert sync_during_join.error_code == ErrorCode.rebalance_in_progress  # type: ignore[attr-defined]
        # Commits of the current generation are still accepted while the group prepares.
        assert commit(a, group, generation, member_a, topic, {0: 3}) == [ErrorCode.none]
        joined_a = a.call(join_request(group, member_a, topics=(topic,)))
        joined_b = b.receive(JoinGroupRequest)
        assert joined_a.error_code == joined_b.error_code == ErrorCode.none
        assert joined_a.generation_id == joined_b.generation_id == generation + 1
        assert joined_a.leader == joined_b.leader == member_a
        assert sorted(m.member_id for m in joined_a.members) == sorted([member_a, first.member_id])
        assert joined_b.members == ()  # only the leader gets the members
        # Between join and the leader's sync, commits must wait for the new assignment.
        assert commit(a, group, generation + 1, member_a, topic, {0: 4}) == [
            ErrorCode.rebalance_in_progress
        ]
        b.send(
            SyncGroupRequest(
                group_id=group,
                generation_id=i32(generation + 1),
                member_id=first.member_id,
                group_instance_id=None,
                protocol_type="consumer",
                protocol_name="range",
                assignments=(),
            )
        )
        synced_a = sync(
            a, group, generation + 1, member_a, {member_a: b"p0", first.member_id: b"p1"}
        )
        synced_b = b.receive(SyncGroupRequest)
        assert (synced_a.assignment, synced_b.assignment) == (b"p0", b"p1")  # type: ignore[attr-defined]
        assert commit(a, group, generation + 1, member_a, topic, {0: 5}) == [ErrorCode.none]


def test_join_refusals(
    group_broker: BrokerProcess | KafkaProcess, topic_name: TopicNameFactory
) -> None:
    group = topic_name()
    with KioClient(group_broker.bootstrap) as client:
        too_short = client.call(join_request(group, session_ms=100))
        assert too_short.error_code == ErrorCode.invalid_session_timeout
        assert client.call(join_request("")).error_code == ErrorCode.invalid_group_id
        assert client.call(join_request(group, "made-up")).error_code == (
            ErrorCode.unknown_member_id
        )
        stable_member(client, group)
        other_type = join_request(group, protocol_type="connect")
        assert client.call(other_type).error_code == ErrorCode.inconsistent_group_protocol


def test_old_join_group_version_needs_no_member_id_round_trip(
    group_broker: BrokerProcess | KafkaProcess, topic_name: TopicNameFactory
) -> None:
    group = topic_name()
    with KioClient(group_broker.bootstrap) as client:
        joined = client.call(
            JoinGroupRequestV0(
                group_id=group,
                session_timeout=ms(SESSION_MS),
                member_id="",
                protocol_type="consumer",
                protocols=(ProtocolV0(name="range", metadata=subscription("t")),),
            )
        )
        assert joined.error_code == ErrorCode.none
        assert joined.generation_id == 1
        assert joined.member_id.startswith("kio-test-")


def test_static_member_restart_fences_the_old_instance_without_rebalance(
    group_broker: BrokerProcess | KafkaProcess, topic_name: TopicNameFactory
) -> None:
    group = topic_name()
    with KioClient(group_broker.bootstrap) as a, KioClient(group_broker.bootstrap) as b:
        leader = join(a, group)
        assert leader.error_code == ErrorCode.none  # type: ignore[attr-defined]
        leader_id = leader.member_id  # type: ignore[attr-defined]
        # A static member joins without the member-id round trip (KIP-345); once the broker
        # has it (the leader's heartbeat says so), the leader rejoins.
        b.send(join_request(group, instance_id="replica-1"))
        await_rebalance(a, group, leader.generation_id, leader_id)  # type: ignore[attr-defined]
        rejoin = a.call(join_request(group, leader_id))
        static = b.receive(JoinGroupRequest)
        assert static.error_code == ErrorCode.none
        generation = rejoin.generation_id
        b.send(SyncGroupRequest(
            group_id=group, generation_id=i32(generation), member_id=static.member_id,
            group_instance_id="replica-1", protocol_type="consumer", protocol_name="range",
            assignments=(),
        ))  # fmt: skip
        sync(a, group, generation, leader_id, {leader_id: b"a", static.member_id: b"b"})
        assert b.receive(SyncGroupRequest).assignment == b"b"

        # The replica restarts: same instance id, new member id, same generation, same work.
        restarted = b.call(join_request(group, instance_id="replica-1"))
        assert restarted.error_code == ErrorCode.none
        assert restarted.member_id != static.member_id
        assert restarted.generation_id == generation
        again = sync(b, group, generation, restarted.member_id, instance_id="replica-1")
        assert again.assignment == b"b"  # type: ignore[attr-defined]
        # The old incarnation is fenced.
        fenced = heartbeat(b, group, generation, static.member_id, instance_id="replica-1")
        assert fenced == ErrorCode.fenced_instance_id
        assert heartbeat(a, group, generation, leader_id) == ErrorCode.none


@pytest.mark.parametrize("join_version", [9, 5])
def test_static_leader_restart_keeps_a_stable_group(
    group_broker: BrokerProcess | KafkaProcess, topic_name: TopicNameFactory, join_version: int
) -> None:
    """A static member that leads a stable group restarts with the same instance id: no
    rebalance, and it is kept from computing an assignment: JoinGroup v9 tells it it leads
    with skip_assignment (KIP-814); older versions name the old leader id, so it follows."""
    group = topic_name()
    with KioClient(group_broker.bootstrap) as a, KioClient(group_broker.bootstrap) as b:
        first = a.call(join_request(group, instance_id="leader-1"))
        assert first.error_code == ErrorCode.none
        leader_id = first.member_id
        assert first.leader == leader_id
        sync(a, group, first.generation_id, leader_id, {leader_id: b"a"}, instance_id="leader-1")
        b.send(join_request(group, instance_id="follower-1"))
        await_rebalance(a, group, first.generation_id, leader_id)
        rejoin = a.call(join_request(group, leader_id, instance_id="leader-1"))
        follower = b.receive(JoinGroupRequest)
        generation = rejoin.generation_id
        assert (rejoin.leader, follower.leader) == (leader_id, leader_id)
        b.send(SyncGroupRequest(
            group_id=group, generation_id=i32(generation), member_id=follower.member_id,
            group_instance_id="follower-1", protocol_type="consumer", protocol_name="range",
            assignments=(),
        ))  # fmt: skip
        sync(a, group, generation, leader_id, {leader_id: b"a", follower.member_id: b"b"},
             instance_id="leader-1")  # fmt: skip
        assert b.receive(SyncGroupRequest).assignment == b"b"

    with KioClient(group_broker.bootstrap) as restarted, KioClient(group_broker.bootstrap) as b:
        # The leader's process restarts: same instance id, same subscription.
        request = join_request(group, instance_id="leader-1")
        if join_version == 5:
            request = JoinGroupRequestV5(
                group_id=group, session_timeout=ms(SESSION_MS), rebalance_timeout=ms(10_000),
                member_id="", group_instance_id="leader-1", protocol_type="consumer",
                protocols=(ProtocolV5(name="range", metadata=subscription("t")),),
            )  # fmt: skip
        joined = restarted.call(request)
        assert joined.error_code == ErrorCode.none
        assert joined.generation_id == generation
        assert joined.member_id != leader_id
        if join_version == 9:
            assert (joined.leader, joined.skip_assignment) == (joined.member_id, True)
            assert sorted(m.group_instance_id for m in joined.members) == [
                "follower-1",
                "leader-1",
            ]
        else:
            assert (joined.leader, joined.members) == (leader_id, ())
        again = sync(restarted, group, generation, joined.member_id, instance_id="leader-1")
        assert again.assignment == b"a"  # type: ignore[attr-defined]
        # The follower was not revoked: its generation still holds.
        assert heartbeat(b, group, generation, follower.member_id, "follower-1") == ErrorCode.none
        described = b.call(
            DescribeGroupsRequest(groups=(group,), include_authorized_operations=False)
        )
        assert described.groups[0].group_state == "Stable"
        assert sorted(m.group_instance_id for m in described.groups[0].members) == [
            "follower-1",
            "leader-1",
        ]


def test_commit_refusals_and_simple_consumer_commits(
    group_broker: BrokerProcess | KafkaProcess, topic_name: TopicNameFactory
) -> None:
    group, topic = topic_name(), topic_name("topic")
    create_topic(group_broker.bootstrap, topic, partitions=1)
    with KioClient(group_broker.bootstrap) as client:
        # A consumer in assign mode commits with generation -1 and no member id.
        assert commit(client, group, -1, "", topic, {0: 42}) == [ErrorCode.none]
        assert commit(client, group, -1, "", "no-such-topic-here", {0: 1}) == [
            ErrorCode.unknown_topic_or_partition
        ]
        assert commit(client, group, -1, "", topic, {0: 43}, metadata="m" * 5000) == [
            ErrorCode.offset_metadata_too_large
        ]
        assert fetch_offsets(client, group, topic, [0, 5]) == [42, -1]
        old = client.call(
            OffsetFetchRequestV1(
                group_id=group, topics=(FetchTopicV1(name=topic, partition_indexes=(i32(0),)),)
            )
        )
        assert old.topics[0].partitions[0].committed_offset == 42
        # A member of a group that does not exist cannot create it by committing.
        assert commit(client, topic_name("fresh"), 3, "ghost", topic, {0: 1}) == [
            ErrorCode.group_id_not_found
        ]


def test_offset_commit_and_fetch_v10_name_topics_by_id(
    group_broker: BrokerProcess | KafkaProcess, topic_name: TopicNameFactory
) -> None:
    """OffsetCommit and OffsetFetch v10 (KIP-848) carry topic ids instead of names."""
    from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
    from kio.schema.offset_commit import v10 as commit_v10
    from kio.schema.offset_fetch import v10 as fetch_v10

    group, topic = topic_name(), topic_name("topic")
    create_topic(group_broker.bootstrap, topic, partitions=1)
    unknown = uuid.uuid4()
    with KioClient(group_broker.bootstrap) as client:
        metadata = client.call(
            MetadataRequest(
                topics=(MetadataRequestTopic(name=topic, topic_id=None),),
                allow_auto_topic_creation=False,
                include_topic_authorized_operations=False,
            )
        )
        topic_id = metadata.topics[0].topic_id
        committed = client.call(
            commit_v10.request.OffsetCommitRequest(
                group_id=group, generation_id_or_member_epoch=i32(-1), member_id="",
                group_instance_id=None,
                topics=tuple(
                    commit_v10.request.OffsetCommitRequestTopic(topic_id=t, partitions=(
                        commit_v10.request.OffsetCommitRequestPartition(
                            partition_index=i32(0), committed_offset=i64(7),
                            committed_metadata="m"),
                    ))
                    for t in (topic_id, unknown)
                ),
            )
        )  # fmt: skip
        assert {t.topic_id: [p.error_code for p in t.partitions] for t in committed.topics} == {
            topic_id: [ErrorCode.none],
            unknown: [ErrorCode.unknown_topic_id],
        }

        def fetch(topics: tuple[fetch_v10.request.OffsetFetchRequestTopics, ...] | None) -> list:
            response = client.call(
                fetch_v10.request.OffsetFetchRequest(
                    groups=(fetch_v10.request.OffsetFetchRequestGroup(
                        group_id=group, member_id=None, member_epoch=i32(-1), topics=topics),),
                    require_stable=False,
                )
            )  # fmt: skip
            return sorted(
                ((t.topic_id, [(p.partition_index, p.committed_offset, p.metadata, p.error_code)
                               for p in t.partitions])
                 for t in response.groups[0].topics),
                key=repr,
            )  # fmt: skip

        by_id = fetch(tuple(
            fetch_v10.request.OffsetFetchRequestTopics(topic_id=t, partition_indexes=(i32(0),))
            for t in (topic_id, unknown)
        ))  # fmt: skip
        assert by_id == sorted([
            (topic_id, [(0, 7, "m", ErrorCode.none)]),
            (unknown, [(0, -1, "", ErrorCode.unknown_topic_id)]),
        ], key=repr)  # fmt: skip
        assert fetch(None) == [(topic_id, [(0, 7, "m", ErrorCode.none)])]


def test_admin_apis_list_describe_delete_and_offset_delete(
    group_broker: BrokerProcess | KafkaProcess, topic_name: TopicNameFactory
) -> None:
    group, idle, topic = topic_name(), topic_name("idle"), topic_name("topic")
    create_topic(group_broker.bootstrap, topic, partitions=1)
    with KioClient(group_broker.bootstrap) as client:
        member_id, generation = stable_member(client, group, topic)
        assert commit(client, group, generation, member_id, topic, {0: 5}) == [ErrorCode.none]
        assert commit(client, idle, -1, "", topic, {0: 1}) == [ErrorCode.none]

        listed = client.call(ListGroupsRequest(states_filter=(), types_filter=()))
        states = {g.group_id: (g.group_state, g.protocol_type) for g in listed.groups}
        assert states[group] == ("Stable", "consumer")
        assert states[idle] == ("Empty", "")
        only_empty = client.call(ListGroupsRequest(states_filter=("Empty",), types_filter=()))
        assert idle in {g.group_id for g in only_empty.groups}
        assert group not in {g.group_id for g in only_empty.groups}

        missing = client.call(
            DescribeGroupsRequest(groups=("no-such-group",), include_authorized_operations=False)
        ).groups[0]
        assert (missing.error_code, missing.group_state) == (
            ErrorCode.group_id_not_found,
            "Dead",
        )

        def delete_offsets(g: str) -> tuple[ErrorCode, list[ErrorCode]]:
            response = client.call(
                OffsetDeleteRequest(
                    group_id=g,
                    topics=(
                        OffsetDeleteRequestTopic(
                            name=topic,
                            partitions=(OffsetDeleteRequestPartition(partition_index=i32(0)),),
                        ),
                    ),
                )
            )
            return response.error_code, [
                p.error_code for t in response.topics for p in t.partitions
            ]

        assert delete_offsets(group) == (ErrorCode.none, [ErrorCode.group_subscribed_to_topic])
        assert delete_offsets("no-such-group") == (ErrorCode.group_id_not_found, [])
        assert delete_offsets(idle) == (ErrorCode.none, [ErrorCode.none])
        assert fetch_offsets(client, idle, topic, [0]) == [-1]

        deleted = client.call(DeleteGroupsRequest(groups_names=(group, "no-such-group")))
        # Kafka answers per coordinator partition, not in request order: compare by group.
        assert {r.group_id: r.error_code for r in deleted.results} == {
            group: ErrorCode.non_empty_group,
            "no-such-group": ErrorCode.group_id_not_found,
        }
        assert leave(client, group, member_id) == ErrorCode.none
        deleted = client.call(DeleteGroupsRequest(groups_names=(group,)))
        assert [r.error_code for r in deleted.results] == [ErrorCode.none]
        assert fetch_offsets(client, group, topic, [0]) == [-1]
