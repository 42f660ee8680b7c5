"""Share groups (KIP-932) against Apache Kafka 4.4, requests sent raw (kio): the refusals of
ShareGroupHeartbeat, ShareFetch and ShareAcknowledge, and acquisition, release, rejection and
delivery counts as a member sees them."""

from __future__ import annotations

import datetime
import time
import uuid
from typing import Any

from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
from kio.schema.find_coordinator.v4.request import FindCoordinatorRequest
from kio.schema.list_groups.v5.request import ListGroupsRequest
from kio.schema.share_acknowledge.v1 import request as sa
from kio.schema.share_fetch.v1 import request as sf
from kio.schema.share_group_describe.v1.request import ShareGroupDescribeRequest
from kio.schema.share_group_heartbeat.v1.request import ShareGroupHeartbeatRequest
from kio.static.primitive import i8, i32, i32Timedelta, i64

from tests._ck import produce_ok
from tests.broker._kio_client import KioClient
from tests.conftest import Backend, TopicNameFactory
from tests.differential.test_consumer_groups import COORDINATOR_LOADING
from tests.differential.test_differential import create


def heartbeat(
    client: KioClient, group: str, member: str, epoch: int, topics: tuple[str, ...] | None
) -> Any:
    deadline = time.monotonic() + 30
    while True:
        response = client.call(
            ShareGroupHeartbeatRequest(
                group_id=group,
                member_id=member,
                member_epoch=i32(epoch),
                subscribed_topic_names=topics,
            )
        )
        if response.error_code not in COORDINATOR_LOADING or time.monotonic() > deadline:
            return response
        client.call(FindCoordinatorRequest(key_type=i8(0), coordinator_keys=(group,)))
        time.sleep(0.2)


def earliest(backend: Backend, group: str) -> None:
    admin = AdminClient({"bootstrap.servers": backend.bootstrap})
    resource = ConfigResource(
        "group",
        group,
        incremental_configs=[
            ConfigEntry(
                "share.auto.offset.reset",
                "earliest",
                incremental_operation=AlterConfigOpType.SET,
            )
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(10)


class ShareMember:
    """A raw share-group member with its share session."""

    def __init__(self, client: KioClient, group: str, topic: str) -> None:
        self.client, self.group, self.id = client, group, uuid.uuid4().hex[:22]
        self.epoch = -2
        self.session = 0
        joined = heartbeat(client, group, self.id, 0, (topic,))
        assert joined.error_code == 0, joined
        deadline = time.monotonic() + 20
        while joined.assignment is None or not joined.assignment.topic_partitions:
            assert time.monotonic() < deadline, joined
            time.sleep(0.3)
            joined = heartbeat(client, group, self.id, joined.member_epoch, None)
        self.epoch = joined.member_epoch
        self.topic_id = joined.assignment.topic_partitions[0].topic_id

    def fetch(
        self, acks: list[tuple[int, int, list[int]]] | None = None, epoch: int | None = None
    ) -> Any:
        batches = tuple(
            sf.AcknowledgementBatch(
                first_offset=i64(first),
                last_offset=i64(last),
                acknowledge_types=tuple(i8(t) for t in types),
            )
            for first, last, types in acks or ()
        )
        response = self.client.call(
            sf.ShareFetchRequest(
                group_id=self.group,
                member_id=self.id,
                share_session_epoch=i32(self.session if epoch is None else epoch),
                max_wait=i32Timedelta.parse(datetime.timedelta(milliseconds=1000)),
                min_bytes=i32(1),
                max_records=i32(500),
                batch_size=i32(500),
                topics=(
                    sf.FetchTopic(
                        topic_id=self.topic_id,
                        partitions=(
                            sf.FetchPartition(
                                partition_index=i32(0), acknowledgement_batches=batches
                            ),
                        ),
                    ),
                ),
                forgotten_topics_data=(),
            )
        )
        if epoch is None and response.error_code == 0:
            self.session += 1
        return response

    def acknowledge(self, acks: list[tuple[int, int, list[int]]], epoch: int | None = None) -> Any:
        response = self.client.call(
            sa.ShareAcknowledgeRequest(
                group_id=self.group,
                member_id=self.id,
                share_session_epoch=i32(self.session if epoch is None else epoch),
                topics=(
                    sa.AcknowledgeTopic(
                        topic_id=self.topic_id,
                        partitions=(
                            sa.AcknowledgePartition(
                                partition_index=i32(0),
                                acknowledgement_batches=tuple(
                                    sa.AcknowledgementBatch(
                                        first_offset=i64(first),
                                        last_offset=i64(last),
                                        acknowledge_types=tuple(i8(t) for t in types),
                                    )
                                    for first, last, types in acks
                                ),
                            ),
                        ),
                    ),
                ),
            )
        )
        if epoch is None and response.error_code == 0:
            self.session += 1
        return response


def acquired(response: Any) -> list[tuple[int, int, int]]:
    return [
        (r.first_offset, r.last_offset, r.delivery_count)
        for t in response.responses
        for p in t.partitions
        for r in p.acquired_records
    ]


def ack_errors(response: Any) -> list[int]:
    return [int(p.acknowledge_error_code) for t in response.responses for p in t.partitions]


def test_share_group_heartbeat_refusals_as_kafka(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic, group = topic_name(), topic_name("share")
    create(backend, topic)
    member = uuid.uuid4().hex[:22]
    with KioClient(backend.bootstrap) as client:
        got = {
            "empty group": heartbeat(client, "", member, 0, (topic,)).error_code,
            "no member id": heartbeat(client, group, "", 0, (topic,)).error_code,
            "no subscription": heartbeat(client, group, member, 0, None).error_code,
            "unknown group": heartbeat(client, topic_name("none"), member, 3, None).error_code,
        }
        joined = heartbeat(client, group, member, 0, (topic,))
        got["join"] = joined.error_code
        got["unknown member"] = heartbeat(
            client, group, "stranger", joined.member_epoch, None
        ).error_code
        got["leave"] = heartbeat(client, group, member, -1, None).error_code
    assert got == {
        "empty group": 42,  # INVALID_REQUEST
        "no member id": 42,
        "no subscription": 42,
        "unknown group": 69,  # GROUP_ID_NOT_FOUND
        "join": 0,
        "unknown member": 25,  # UNKNOWN_MEMBER_ID
        "leave": 0,
    }


def test_records_are_acquired_released_rejected_and_counted_as_kafka(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic, group = topic_name(), topic_name("share")
    create(backend, topic)
    earliest(backend, group)
    produce_ok(backend.bootstrap, topic, [f"v{i}".encode() for i in range(5)])
    with KioClient(backend.bootstrap) as client:
        member = ShareMember(client, group, topic)
        first = member.fetch()
        deadline = time.monotonic() + 20
        while not acquired(first):
            assert time.monotonic() < deadline, first
            first = member.fetch()
        # 0 released (to be delivered again), 1 rejected, 2-4 accepted; 0 comes back at once.
        second = member.fetch([(0, 4, [2, 3, 1, 1, 1])])
        not_held = member.fetch([(1, 1, [1])])
        third = member.fetch([(0, 0, [1])])
        wrong_epoch = member.fetch(epoch=member.session + 5)
        unknown_session = ShareMember(client, group, topic).fetch(epoch=3)
        ack_wrong_epoch = member.acknowledge([(0, 0, [1])], epoch=member.session + 5)
    got = {
        "first": acquired(first),
        "second": (acquired(second), ack_errors(second)),
        "not held": ack_errors(not_held),
        "third": (acquired(third), ack_errors(third)),
        "wrong epoch": wrong_epoch.error_code,
        "unknown session": unknown_session.error_code,
        "ack wrong epoch": ack_wrong_epoch.error_code,
    }
    assert got == {
        "first": [(0, 4, 1)],
        "second": ([(0, 0, 2)], [0]),
        "not held": [121],  # INVALID_RECORD_STATE
        "third": ([], [0]),
        "wrong epoch": 123,  # INVALID_SHARE_SESSION_EPOCH
        "unknown session": 122,  # SHARE_SESSION_NOT_FOUND
        "ack wrong epoch": 123,
    }


def test_share_groups_are_described_and_listed_as_kafka(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic, group, absent = topic_name(), topic_name("share"), topic_name("none")
    create(backend, topic)
    with KioClient(backend.bootstrap) as client:
        member = ShareMember(client, group, topic)
        described = client.call(
            ShareGroupDescribeRequest(
                group_ids=(group, absent), include_authorized_operations=False
            )
        )
        listed = client.call(ListGroupsRequest(types_filter=("share",)))
    by_id = {g.group_id: g for g in described.groups}
    ours, missing = by_id[group], by_id[absent]
    (m,) = ours.members
    (listed_group,) = [g for g in listed.groups if g.group_id == group]
    got = {
        "describe": (ours.error_code, ours.group_state, ours.assignor_name),
        "member": (m.member_id, m.subscribed_topic_names, m.client_id),
        "assignment": [(tp.topic_name, tp.partitions) for tp in m.assignment.topic_partitions],
        "missing": missing.error_code,
        "listed": (listed_group.group_type, listed_group.group_state),
    }
    assert got == {
        "describe": (0, "Stable", "simple"),
        "member": (member.id, (topic,), "kio-test"),
        "assignment": [(topic, (0,))],
        "missing": 69,  # GROUP_ID_NOT_FOUND
        "listed": ("share", "Stable"),
    }
