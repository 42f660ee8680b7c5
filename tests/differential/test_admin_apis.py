"""The admin APIs tools call, spoken directly (kio) to nerve and to Apache Kafka 4.4, with the
error codes and texts of their refusals: ElectLeaders, partition reassignments, client quotas,
SCRAM credentials with no users, DescribeLogDirs, DescribeProducers, ListConfigResources."""

from __future__ import annotations

import datetime
import time

from kio.schema.alter_client_quotas.v1 import request as acq
from kio.schema.alter_partition_reassignments.v1 import request as apr
from kio.schema.describe_client_quotas.v1 import request as dcq
from kio.schema.describe_log_dirs.v5 import request as dld
from kio.schema.describe_producers.v0 import request as dp
from kio.schema.describe_user_scram_credentials.v0 import request as dus
from kio.schema.elect_leaders.v2 import request as el
from kio.schema.errors import ErrorCode
from kio.schema.list_config_resources.v1 import request as lcr
from kio.schema.list_partition_reassignments.v0 import request as lpr
from kio.static.primitive import f64, i8, i32, i32Timedelta

from tests.broker._kio_client import KioClient
from tests.conftest import Backend, TopicNameFactory
from tests.differential.test_differential import create

TIMEOUT = i32Timedelta.parse(datetime.timedelta(seconds=10))


def results(response: object, path: str) -> list[tuple[object, ...]]:
    """(name, index, code, message) rows of a topics/partitions response."""
    topics_field, partitions_field, index_field = path.split(".")
    return sorted(
        ((t.name if hasattr(t, "name") else t.topic, getattr(p, index_field), p.error_code,
          p.error_message)
         for t in getattr(response, topics_field)
         for p in getattr(t, partitions_field)),
        key=repr,
    )  # fmt: skip


def test_elect_leaders_and_partition_reassignments(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic, missing = topic_name(), topic_name("missing")
    create(backend, topic)
    with KioClient(backend.bootstrap) as client:
        elected = client.call(
            el.ElectLeadersRequest(
                election_type=i8(0),
                topic_partitions=(
                    el.TopicPartitions(topic=topic, partitions=(i32(0), i32(7))),
                    el.TopicPartitions(topic=missing, partitions=(i32(0),)),
                ),
                timeout=TIMEOUT,
            )
        )
        listed = client.call(lpr.ListPartitionReassignmentsRequest(timeout=TIMEOUT, topics=None))
        altered = client.call(
            apr.AlterPartitionReassignmentsRequest(
                timeout=TIMEOUT,
                allow_replication_factor_change=True,
                topics=(
                    apr.ReassignableTopic(name=topic, partitions=(
                        apr.ReassignablePartition(partition_index=i32(0), replicas=(i32(1),)),
                        apr.ReassignablePartition(partition_index=i32(5), replicas=(i32(1),)),
                    )),
                    apr.ReassignableTopic(name=missing, partitions=(
                        apr.ReassignablePartition(partition_index=i32(0), replicas=(i32(1),)),
                    )),
                ),
            )
        )  # fmt: skip
        moved = client.call(
            apr.AlterPartitionReassignmentsRequest(
                timeout=TIMEOUT,
                allow_replication_factor_change=True,
                topics=(apr.ReassignableTopic(name=topic, partitions=(
                    apr.ReassignablePartition(partition_index=i32(0), replicas=(i32(2),)),
                )),),
            )
        )  # fmt: skip
        cancelled = client.call(
            apr.AlterPartitionReassignmentsRequest(
                timeout=TIMEOUT,
                allow_replication_factor_change=True,
                topics=(apr.ReassignableTopic(name=topic, partitions=(
                    apr.ReassignablePartition(partition_index=i32(0), replicas=None),
                )),),
            )
        )  # fmt: skip
    assert elected.error_code == ErrorCode.none
    assert results(elected, "replica_election_results.partition_result.partition_id") == sorted([
        (missing, 0, ErrorCode.unknown_topic_or_partition, f"No such topic as {missing}"),
        (topic, 0, ErrorCode.election_not_needed,
         "Leader election not needed for topic partition."),
        (topic, 7, ErrorCode.unknown_topic_or_partition, f"No such partition as {topic}-7"),
    ], key=repr)  # fmt: skip
    assert (listed.error_code, listed.topics) == (ErrorCode.none, ())
    assert results(altered, "responses.partitions.partition_index") == sorted([
        (missing, 0, ErrorCode.unknown_topic_or_partition,
         f"Unable to find a topic named {missing}."),
        (topic, 0, ErrorCode.none, None),
        (topic, 5, ErrorCode.unknown_topic_or_partition, f"Unable to find partition {topic}:5."),
    ], key=repr)  # fmt: skip
    assert results(moved, "responses.partitions.partition_index") == [
        (topic, 0, ErrorCode.invalid_replica_assignment,
         "The manual partition assignment includes broker 2, but no such broker is registered."),
    ]  # fmt: skip
    assert results(cancelled, "responses.partitions.partition_index") == [
        (topic, 0, ErrorCode.no_reassignment_in_progress, None),
    ]


def test_client_quotas_are_validated_kept_and_described(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    user, client_id = topic_name("user"), topic_name("client")
    other, third = topic_name("other"), topic_name("third")

    def entry(kind: str, name: str | None, *ops: tuple[str, float, bool]) -> acq.EntryData:
        return acq.EntryData(
            entity=(acq.EntityData(entity_type=kind, entity_name=name),),
            ops=tuple(acq.OpData(key=k, value=f64(v), remove=r) for k, v, r in ops),
        )

    with KioClient(backend.bootstrap) as client:
        refused = client.call(
            acq.AlterClientQuotasRequest(
                entries=(
                    entry("user", user, ("producer_byte_rate", 1024.0, False),
                          ("bogus", 1.0, False)),
                    entry("ip", "10.1.2.3", ("producer_byte_rate", 1.0, False)),
                    entry("user", other, ("request_percentage", -1.0, False)),
                    entry("user", other, ("request_percentage", 5.0, False)),
                    entry("user", third, ("producer_byte_rate", 1.5, False)),
                ),
                validate_only=False,
            )
        )  # fmt: skip
        kept = client.call(
            acq.AlterClientQuotasRequest(
                entries=(
                    entry("user", user, ("producer_byte_rate", 1024.0, False)),
                    entry("client-id", client_id, ("consumer_byte_rate", 2048.0, False)),
                ),
                validate_only=False,
            )
        )

        def described() -> list[tuple[object, ...]]:
            response = client.call(
                dcq.DescribeClientQuotasRequest(
                    components=(dcq.ComponentData(entity_type="user", match_type=i8(0),
                                                  match=user),),
                    strict=False,
                )
            )  # fmt: skip
            return [
                (tuple((e.entity_type, e.entity_name) for e in x.entity),
                 tuple((v.key, v.value) for v in x.values))
                for x in response.entries or ()
            ]  # fmt: skip

        expected = [((("user", user),), (("producer_byte_rate", 1024.0),))]
        deadline = time.monotonic() + 30
        while (got := described()) != expected and time.monotonic() < deadline:
            time.sleep(0.1)
    assert sorted((e.entity[0].entity_type, e.error_code, e.error_message)
                  for e in refused.entries) == [
        ("ip", ErrorCode.invalid_request, "Invalid configuration key producer_byte_rate"),
        # One answer per entity: the second of two entries for one user is refused alone.
        ("user", ErrorCode.invalid_request, "Ignoring duplicate entity ClientQuotaEntity("
                                            f"entries={{user={other}}})"),
        ("user", ErrorCode.invalid_request, "Invalid configuration key bogus"),
        ("user", ErrorCode.invalid_request, "producer_byte_rate cannot be a fractional value."),
    ]  # fmt: skip
    assert [e.error_code for e in kept.entries] == [ErrorCode.none, ErrorCode.none]
    assert got == expected


def test_scram_credentials_when_there_are_no_users(backend: Backend) -> None:
    with KioClient(backend.bootstrap) as client:
        everyone = client.call(dus.DescribeUserScramCredentialsRequest(users=None))
        named = client.call(
            dus.DescribeUserScramCredentialsRequest(
                users=(dus.UserName(name="alice"), dus.UserName(name="bob"),
                       dus.UserName(name="alice"))
            )
        )  # fmt: skip
    assert (everyone.error_code, everyone.results) == (ErrorCode.none, ())
    assert sorted((r.user, r.error_code, r.error_message) for r in named.results) == [
        ("alice", ErrorCode.duplicate_resource,
         "Cannot describe SCRAM credentials for the same user twice in a single request: alice"),
        ("bob", ErrorCode.resource_not_found,
         "Attempt to describe a user credential that does not exist: bob"),
    ]  # fmt: skip


def test_log_dirs_producers_and_config_resources_of_what_exists(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic, missing = topic_name(), topic_name("missing")
    create(backend, topic)
    with KioClient(backend.bootstrap) as client:
        deadline = time.monotonic() + 30
        while True:  # Kafka creates the partition's log a moment after the topic
            dirs = client.call(
                dld.DescribeLogDirsRequest(
                    topics=(
                        dld.DescribableLogDirTopic(topic=topic, partitions=(i32(0), i32(9))),
                        dld.DescribableLogDirTopic(topic=missing, partitions=(i32(0),)),
                    )
                )
            )
            if dirs.results[0].topics or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        producers = client.call(
            dp.DescribeProducersRequest(
                topics=(
                    dp.TopicRequest(name=topic, partition_indexes=(i32(0), i32(9))),
                    dp.TopicRequest(name=missing, partition_indexes=(i32(0),)),
                )
            )
        )
        resources = client.call(lcr.ListConfigResourcesRequest(resource_types=()))
        brokers = client.call(lcr.ListConfigResourcesRequest(resource_types=(i8(4), i8(16))))
    (result,) = dirs.results
    assert (dirs.error_code, result.error_code, result.is_cordoned) == (0, 0, False)
    assert result.total_bytes >= result.usable_bytes > 0
    assert [(t.name, [(p.partition_index, p.partition_size, p.offset_lag) for p in t.partitions])
            for t in result.topics] == [(topic, [(0, 0, 0)])]  # fmt: skip
    assert results(producers, "topics.partitions.partition_index") == sorted([
        (missing, 0, ErrorCode.unknown_topic_or_partition,
         "This server does not host this topic-partition."),
        (topic, 0, ErrorCode.none, None),
        (topic, 9, ErrorCode.unknown_topic_or_partition, None),
    ], key=repr)  # fmt: skip
    listed = {(r.resource_name, r.resource_type) for r in resources.config_resources}
    assert {("1", 8), ("1", 4), (topic, 2)} <= listed
    asked = [(r.resource_name, r.resource_type) for r in brokers.config_resources]
    assert [r for r in asked if r[1] == 4] == [("1", 4)]
    assert {kind for _, kind in asked} <= {4, 16}
