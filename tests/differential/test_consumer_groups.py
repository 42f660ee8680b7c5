"""The consumer group protocol (KIP-848) against Apache Kafka 4.4: the error codes of
ConsumerGroupHeartbeat, ConsumerGroupDescribe, and of OffsetCommit/OffsetFetch checked against
member epochs, and how the groups look to the classic APIs. Requests are sent raw (kio), so
what each broker answers is seen as it is, without a client's retries."""

from __future__ import annotations

import datetime
import struct
import time
import uuid
from typing import Any

from kio.schema.consumer_group_describe.v1.request import ConsumerGroupDescribeRequest
from kio.schema.consumer_group_heartbeat.v1 import request as hb
from kio.schema.delete_groups.v2.request import DeleteGroupsRequest
from kio.schema.describe_groups.v6.request import DescribeGroupsRequest
from kio.schema.find_coordinator.v4.request import FindCoordinatorRequest
from kio.schema.heartbeat.v4.request import HeartbeatRequest
from kio.schema.join_group.v9.request import JoinGroupRequest, JoinGroupRequestProtocol
from kio.schema.list_groups.v5.request import ListGroupsRequest
from kio.schema.offset_commit.v9 import request as oc
from kio.schema.offset_fetch.v9 import request as of
from kio.schema.sync_group.v5.request import SyncGroupRequest
from kio.static.primitive import i8, i32, i32Timedelta, i64

from tests.broker._kio_client import KioClient
from tests.conftest import Backend, TopicNameFactory
from tests.differential.test_differential import create

NOT_CHANGED = None
# COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR
COORDINATOR_LOADING = (14, 15, 16)


def heartbeat(
    client: KioClient,
    group: str,
    member: str,
    epoch: int,
    *,
    topics: tuple[str, ...] | None = NOT_CHANGED,
    regex: str | None = None,
    assignor: str | None = None,
    owned: tuple[hb.TopicPartitions, ...] | None = (),
    rebalance_ms: int = 30_000,
    instance: str | None = None,
) -> Any:
    """One heartbeat; retried while Kafka's coordinator is still loading the offsets topic."""
    deadline = time.monotonic() + 30
    while True:
        response = _heartbeat(
            client, group, member, epoch, topics, regex, assignor, owned, rebalance_ms, instance
        )
        if response.error_code not in COORDINATOR_LOADING or time.monotonic() > deadline:
            return response
        # Kafka creates its offsets topic when a client first looks for a coordinator.
        client.call(FindCoordinatorRequest(key_type=i8(0), coordinator_keys=(group,)))
        time.sleep(0.2)


def _heartbeat(
    client: KioClient,
    group: str,
    member: str,
    epoch: int,
    topics: tuple[str, ...] | None,
    regex: str | None,
    assignor: str | None,
    owned: tuple[hb.TopicPartitions, ...] | None,
    rebalance_ms: int,
    instance: str | None,
) -> Any:
    return client.call(
        hb.ConsumerGroupHeartbeatRequest(
            group_id=group,
            member_id=member,
            member_epoch=i32(epoch),
            instance_id=instance,
            rebalance_timeout=i32Timedelta.parse(datetime.timedelta(milliseconds=rebalance_ms)),
            subscribed_topic_names=topics,
            subscribed_topic_regex=regex,
            server_assignor=assignor,
            topic_partitions=owned,
        )
    )


def join(client: KioClient, group: str, topic: str, assignor: str = "uniform") -> Any:
    """A member that joined and got partitions: its id and the heartbeat that gave them (Kafka
    may see a just-created topic a moment later than the join)."""
    member = uuid.uuid4().hex[:22]
    response = heartbeat(client, group, member, 0, topics=(topic,), assignor=assignor)
    deadline = time.monotonic() + 30
    seen = [response]
    while response.assignment is None or not response.assignment.topic_partitions:
        assert response.error_code == 0 and time.monotonic() < deadline, seen
        time.sleep(0.2)
        response = heartbeat(client, group, member, response.member_epoch, owned=None)
        seen.append(response)
    return member, response


def codes(response: Any) -> int:
    return int(response.error_code)


def commit(client: KioClient, group: str, member: str, epoch: int, topic: str) -> int:
    response = client.call(
        oc.OffsetCommitRequest(
            group_id=group,
            generation_id_or_member_epoch=i32(epoch),
            member_id=member,
            group_instance_id=None,
            topics=(
                oc.OffsetCommitRequestTopic(
                    name=topic,
                    partitions=(
                        oc.OffsetCommitRequestPartition(
                            partition_index=i32(0),
                            committed_offset=i64(0),
                            committed_leader_epoch=i32(-1),
                            committed_metadata="",
                        ),
                    ),
                ),
            ),
        )
    )
    return int(response.topics[0].partitions[0].error_code)


def fetch(client: KioClient, group: str, member: str | None, epoch: int, topic: str) -> int:
    response = client.call(
        of.OffsetFetchRequest(
            groups=(
                of.OffsetFetchRequestGroup(
                    group_id=group,
                    member_id=member,
                    member_epoch=i32(epoch),
                    topics=(of.OffsetFetchRequestTopics(name=topic, partition_indexes=(i32(0),)),),
                ),
            ),
            require_stable=False,
        )
    )
    return int(response.groups[0].error_code)


def test_heartbeat_refuses_malformed_requests_as_kafka(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic, group = topic_name(), topic_name("group")
    create(backend, topic)
    member = uuid.uuid4().hex[:22]
    with KioClient(backend.bootstrap) as client:
        got = {
            "empty group": codes(heartbeat(client, "", member, 0, topics=(topic,))),
            "no member id": codes(heartbeat(client, group, "", 0, topics=(topic,))),
            "no subscription": codes(heartbeat(client, group, member, 0)),
            "no rebalance timeout": codes(
                heartbeat(client, group, member, 0, topics=(topic,), rebalance_ms=-1)
            ),
            "owned on join": codes(
                heartbeat(
                    client,
                    group,
                    member,
                    0,
                    topics=(topic,),
                    owned=(hb.TopicPartitions(topic_id=uuid.uuid4(), partitions=(i32(0),)),),
                )
            ),
            "bad epoch": codes(heartbeat(client, group, member, -3, topics=(topic,))),
            "unknown assignor": codes(
                heartbeat(client, group, member, 0, topics=(topic,), assignor="sticky")
            ),
            "lookahead regex": codes(heartbeat(client, group, member, 0, regex="(?=a).*")),
            "unknown group": codes(heartbeat(client, topic_name("none"), member, 5)),
            "leave unknown group": codes(
                heartbeat(client, topic_name("none"), member, -1, owned=None, rebalance_ms=-1)
            ),
            "static leave unknown group": codes(
                heartbeat(
                    client,
                    topic_name("none"),
                    member,
                    -2,
                    owned=None,
                    rebalance_ms=-1,
                    instance="i-1",
                )
            ),
        }
    assert got == {
        "empty group": 42,  # INVALID_REQUEST
        "no member id": 42,
        "no subscription": 42,
        "no rebalance timeout": 42,
        "owned on join": 42,
        "bad epoch": 42,
        "unknown assignor": 112,  # UNSUPPORTED_ASSIGNOR
        "lookahead regex": 128,  # INVALID_REGULAR_EXPRESSION
        "unknown group": 69,  # GROUP_ID_NOT_FOUND
        "leave unknown group": 69,  # a leave too, whatever the client does with it
        "static leave unknown group": 69,
    }


def test_heartbeat_fences_wrong_epochs_and_unknown_members_as_kafka(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic, group = topic_name(), topic_name("group")
    create(backend, topic, 2)
    with KioClient(backend.bootstrap) as client:
        member, joined = join(client, group, topic)
        epoch = joined.member_epoch
        assert epoch >= 1
        assert joined.heartbeat_interval.total_seconds() > 0
        assigned = sorted(p for tp in joined.assignment.topic_partitions for p in tp.partitions)
        got = {
            "assigned": assigned,
            "ahead": codes(heartbeat(client, group, member, epoch + 1)),
            "unknown member": codes(heartbeat(client, group, "stranger", epoch)),
            "same epoch": codes(heartbeat(client, group, member, epoch)),
        }
        left = heartbeat(client, group, member, -1)
        got["leave"] = (codes(left), left.member_epoch)
        got["after leaving"] = codes(heartbeat(client, group, member, epoch))
    assert got == {
        "assigned": [0, 1],
        "ahead": 110,  # FENCED_MEMBER_EPOCH
        "unknown member": 25,  # UNKNOWN_MEMBER_ID
        "same epoch": 0,
        "leave": (0, -1),
        "after leaving": 25,
    }


class Member:
    """A raw consumer-protocol member that remembers its epoch and what it was given."""

    def __init__(self, client: KioClient, group: str, topic: str) -> None:
        self.client, self.group, self.id = client, group, uuid.uuid4().hex[:22]
        first = heartbeat(client, group, self.id, 0, topics=(topic,), assignor="uniform")
        assert first.error_code == 0, first
        self.epoch = first.member_epoch
        self.assigned = partitions(first)
        self.answers = [first]

    def beat(self, owned: list[int] | None, topic_id: uuid.UUID | None = None) -> Any:
        reported = None
        if owned is not None:
            assert topic_id is not None
            reported = (hb.TopicPartitions(topic_id=topic_id, partitions=tuple(map(i32, owned))),)
        answer = heartbeat(self.client, self.group, self.id, self.epoch, owned=reported)
        assert answer.error_code == 0, answer
        self.epoch = answer.member_epoch
        if answer.assignment is not None:
            self.assigned = partitions(answer)
        self.answers.append(answer)
        return answer


def partitions(answer: Any) -> list[int]:
    if answer.assignment is None:
        return []
    return sorted(p for tp in answer.assignment.topic_partitions for p in tp.partitions)


def test_a_second_member_gets_partitions_only_once_the_first_revokes_them(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic, group = topic_name(), topic_name("group")
    create(backend, topic, 2)
    with KioClient(backend.bootstrap) as client:
        first = Member(client, group, topic)
        deadline = time.monotonic() + 20
        while first.assigned != [0, 1]:
            assert time.monotonic() < deadline, first.answers
            time.sleep(0.2)
            first.beat(None)
        topic_id = next(
            a.assignment.topic_partitions[0].topic_id
            for a in first.answers
            if a.assignment is not None and a.assignment.topic_partitions
        )
        first.beat([0, 1], topic_id)
        epoch_before = first.epoch
        second = Member(client, group, topic)
        # The first member is told to give one partition up, at its old epoch; meanwhile
        # the newcomer has nothing, as both still belong to the first.
        deadline = time.monotonic() + 20
        while first.assigned == [0, 1]:
            assert time.monotonic() < deadline, first.answers
            second.beat(None)
            time.sleep(0.2)
            first.beat([0, 1], topic_id)
        newcomer_before = list(second.assigned)
        kept, revoking_epoch = list(first.assigned), first.epoch
        # Once it says it revoked, it moves to a new epoch and the newcomer gets the rest.
        first.beat(kept, topic_id)
        deadline = time.monotonic() + 20
        while not second.assigned:
            assert time.monotonic() < deadline, second.answers
            time.sleep(0.2)
            second.beat(None)
    assert newcomer_before == []
    assert len(kept) == 1
    assert revoking_epoch == epoch_before
    assert first.epoch > epoch_before
    assert sorted(kept + second.assigned) == [0, 1]


def test_offset_commit_and_fetch_check_the_member_epoch_as_kafka(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic, group = topic_name(), topic_name("group")
    create(backend, topic)
    with KioClient(backend.bootstrap) as client:
        member, joined = join(client, group, topic)
        epoch = joined.member_epoch
        got = {
            "current epoch": commit(client, group, member, epoch, topic),
            "older epoch": commit(client, group, member, epoch - 1, topic),
            "newer epoch": commit(client, group, member, epoch + 1, topic),
            "unknown member": commit(client, group, "stranger", epoch, topic),
            "outside the group": commit(client, group, "", -1, topic),
            "fetch current": fetch(client, group, member, epoch, topic),
            "fetch older": fetch(client, group, member, epoch - 1, topic),
            "fetch unknown member": fetch(client, group, "stranger", epoch, topic),
            "fetch without member": fetch(client, group, None, -1, topic),
        }
        heartbeat(client, group, member, -1)
    assert got == {
        "current epoch": 0,
        "older epoch": 113,  # STALE_MEMBER_EPOCH
        "newer epoch": 113,
        "unknown member": 25,
        "outside the group": 25,
        "fetch current": 0,
        "fetch older": 113,
        "fetch unknown member": 25,
        "fetch without member": 0,
    }


def test_consumer_groups_seen_by_describe_list_and_delete_as_kafka(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic, group, classic = topic_name(), topic_name("group"), topic_name("classic")
    absent = topic_name("none")
    create(backend, topic, 3)
    with KioClient(backend.bootstrap) as client:
        member, _ = join(client, group, topic, assignor="range")
        described = client.call(
            ConsumerGroupDescribeRequest(
                group_ids=(group, absent), include_authorized_operations=False
            )
        )
        by_id = {g.group_id: g for g in described.groups}  # Kafka answers in its own order
        ours, missing = by_id[group], by_id[absent]
        old_describe = client.call(
            DescribeGroupsRequest(groups=(group,), include_authorized_operations=False)
        )
        listed = client.call(ListGroupsRequest(types_filter=("consumer",)))
        listed_classic = client.call(ListGroupsRequest(types_filter=("classic",)))
        deleted = client.call(DeleteGroupsRequest(groups_names=(group,)))
        heartbeat(client, group, member, -1)
        deleted_after = client.call(DeleteGroupsRequest(groups_names=(group,)))
        # A classic group is not a consumer group to ConsumerGroupDescribe.
        client.call(
            JoinGroupRequest(
                group_id=classic,
                session_timeout=i32Timedelta.parse(datetime.timedelta(seconds=10)),
                rebalance_timeout=i32Timedelta.parse(datetime.timedelta(seconds=10)),
                member_id="",
                group_instance_id=None,
                protocol_type="consumer",
                protocols=(JoinGroupRequestProtocol(name="range", metadata=b""),),
            )
        )
        classic_described = client.call(
            ConsumerGroupDescribeRequest(group_ids=(classic,), include_authorized_operations=False)
        )
    assert len(ours.members) == 1, ours
    m = ours.members[0]
    (listed_group,) = [g for g in listed.groups if g.group_id == group]
    got = {
        "describe": (ours.error_code, ours.group_state, ours.assignor_name, m.member_id),
        "epochs": (ours.group_epoch == ours.assignment_epoch == m.member_epoch),
        "member": (m.client_id, m.subscribed_topic_names, m.member_type),
        "assignment": [
            (tp.topic_name, sorted(tp.partitions)) for tp in m.assignment.topic_partitions
        ],
        "missing": missing.error_code,
        "old describe": (old_describe.groups[0].error_code, old_describe.groups[0].group_state),
        "listed": (listed_group.group_type, listed_group.group_state, listed_group.protocol_type),
        "listed as classic": group in {g.group_id for g in listed_classic.groups},
        "delete while a member": deleted.results[0].error_code,
        "delete after": deleted_after.results[0].error_code,
        "classic described": classic_described.groups[0].error_code,
    }
    assert got == {
        "describe": (0, "Stable", "range", member),
        "epochs": True,
        "member": ("kio-test", (topic,), 1),
        "assignment": [(topic, [0, 1, 2])],
        "missing": 69,  # GROUP_ID_NOT_FOUND
        "old describe": (69, "Dead"),  # "not a classic group"
        "listed": ("consumer", "Stable", "consumer"),
        "listed as classic": False,
        "delete while a member": 68,  # NON_EMPTY_GROUP
        "delete after": 0,
        "classic described": 69,
    }


def subscription(*topics: str) -> bytes:
    """A ConsumerProtocolSubscription v0, as a classic consumer sends in JoinGroup."""
    out = struct.pack(">hi", 0, len(topics))
    for topic in topics:
        out += struct.pack(">h", len(topic)) + topic.encode()
    return out + struct.pack(">i", -1)


def assigned_partitions(assignment: bytes) -> list[int]:
    """The partitions of a ConsumerProtocolAssignment (one topic here)."""
    if not assignment:
        return []
    (topics,) = struct.unpack_from(">i", assignment, 2)
    pos, out = 6, []
    for _ in range(topics):
        (size,) = struct.unpack_from(">h", assignment, pos)
        pos += 2 + size
        (count,) = struct.unpack_from(">i", assignment, pos)
        out += list(struct.unpack_from(f">{count}i", assignment, pos + 4))
        pos += 4 + 4 * count
    return sorted(out)


def classic_join_request(group: str, member_id: str, metadata: bytes) -> JoinGroupRequest:
    return JoinGroupRequest(
        group_id=group,
        session_timeout=i32Timedelta.parse(datetime.timedelta(seconds=30)),
        rebalance_timeout=i32Timedelta.parse(datetime.timedelta(seconds=10)),
        member_id=member_id,
        group_instance_id=None,
        protocol_type="consumer",
        protocols=(JoinGroupRequestProtocol(name="range", metadata=metadata),),
    )


def test_a_classic_member_joins_a_consumer_group_and_shares_its_partitions(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    """KIP-848's migration path: a classic consumer (JoinGroup/SyncGroup/Heartbeat) inside a
    consumer group gets its partitions from the coordinator, as a consumer-protocol member
    gives them up."""
    topic, group = topic_name(), topic_name("group")
    create(backend, topic, 2)
    with KioClient(backend.bootstrap) as client, KioClient(backend.bootstrap) as classic:
        first = Member(client, group, topic)
        deadline = time.monotonic() + 20
        while first.assigned != [0, 1]:
            assert time.monotonic() < deadline, first.answers
            time.sleep(0.2)
            first.beat(None)
        topic_id = next(
            a.assignment.topic_partitions[0].topic_id
            for a in first.answers
            if a.assignment is not None and a.assignment.topic_partitions
        )
        first.beat([0, 1], topic_id)
        required = classic.call(classic_join_request(group, "", subscription(topic)))
        member_id = required.member_id
        unreadable = classic.call(classic_join_request(group, member_id, b""))
        # The join may wait for partitions another member must release first: answered
        # while the consumer-protocol member keeps heartbeating.
        classic.send(classic_join_request(group, member_id, subscription(topic)))
        joined = None
        classic_partitions: list[int] = []
        generation = -1
        deadline = time.monotonic() + 30
        while len(classic_partitions) != 1 or first.assigned == [0, 1]:
            assert time.monotonic() < deadline, (first.answers[-3:], joined, classic_partitions)
            first.beat(first.assigned, topic_id)
            if joined is None:
                classic.sock.settimeout(0.3)
                try:
                    joined = classic.receive(JoinGroupRequest)
                except TimeoutError:
                    continue
                finally:
                    classic.sock.settimeout(30)
                assert joined.error_code == 0, joined
                generation = joined.generation_id
                synced = classic.call(
                    SyncGroupRequest(
                        group_id=group,
                        generation_id=i32(generation),
                        member_id=member_id,
                        group_instance_id=None,
                        protocol_type="consumer",
                        protocol_name="range",
                        assignments=(),
                    )
                )
                assert synced.error_code == 0, synced
                classic_partitions = assigned_partitions(synced.assignment)
                first_join = joined
                continue
            beat = classic.call(
                HeartbeatRequest(
                    group_id=group,
                    generation_id=i32(generation),
                    member_id=member_id,
                    group_instance_id=None,
                )
            )
            if beat.error_code == 27:  # REBALANCE_IN_PROGRESS: rejoin, as a classic client
                classic.send(classic_join_request(group, member_id, subscription(topic)))
                joined = None
            else:
                assert beat.error_code == 0, beat
            time.sleep(0.2)
        described = client.call(
            ConsumerGroupDescribeRequest(group_ids=(group,), include_authorized_operations=False)
        )
    got = {
        "member id required": required.error_code,
        "unreadable subscription": unreadable.error_code,
        "join": (
            first_join.protocol_type,
            first_join.protocol_name,
            first_join.leader,
            first_join.members,
        ),
        "split": sorted(first.assigned + classic_partitions),
        "member types": sorted(m.member_type for m in described.groups[0].members),
    }
    assert got == {
        "member id required": 79,  # MEMBER_ID_REQUIRED
        "unreadable subscription": 23,  # INCONSISTENT_GROUP_PROTOCOL
        "join": ("consumer", "range", "", ()),
        "split": [0, 1],
        "member types": [0, 1],  # a classic member and a consumer-protocol member
    }
