"""The API versions nerve took up to match Kafka 4.4, spoken directly (kio) to both brokers:
ListOffsets v11's special timestamps, ListTransactions v2's id pattern, DescribeCluster v2."""

from __future__ import annotations

import datetime

from confluent_kafka import Producer
from kio.schema.describe_cluster.v2.request import DescribeClusterRequest
from kio.schema.errors import ErrorCode
from kio.schema.list_offsets import v10, v11
from kio.schema.list_transactions.v2.request import ListTransactionsRequest
from kio.static.primitive import i8, i32, i32Timedelta, i64

from tests._ck import Out, produce_ok
from tests._kafka import KAFKA_VERSION
from tests.broker._kio_client import KioClient
from tests.conftest import Backend, TopicNameFactory
from tests.differential.test_differential import create

LATEST, EARLIEST, MAX_TIMESTAMP, EARLIEST_LOCAL, LATEST_TIERED, EARLIEST_PENDING_UPLOAD = (
    -1, -2, -3, -4, -5, -6,
)  # fmt: skip


def test_list_offsets_v11_special_timestamps(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create(backend, topic)
    produce_ok(backend.bootstrap, topic, [Out(b"x%d" % i, timestamp=1000 + i) for i in range(3)])
    specials = [LATEST, EARLIEST, MAX_TIMESTAMP, EARLIEST_LOCAL, LATEST_TIERED,
                EARLIEST_PENDING_UPLOAD]  # fmt: skip
    # v11 (for EARLIEST_PENDING_UPLOAD) is Kafka 4.4's; the 4.1 baseline is asked in v10.
    schema = v11.request if KAFKA_VERSION >= "4.4" else v10.request
    if schema is v10.request:
        specials.remove(EARLIEST_PENDING_UPLOAD)
    answers = []
    with KioClient(backend.bootstrap) as client:
        for timestamp in specials:
            response = client.call(
                schema.ListOffsetsRequest(
                    replica_id=i32(-1),
                    isolation_level=i8(0),
                    topics=(
                        schema.ListOffsetsTopic(
                            name=topic,
                            partitions=(
                                schema.ListOffsetsPartition(
                                    partition_index=i32(0), timestamp=i64(timestamp)
                                ),
                            ),
                        ),
                    ),
                    timeout=i32Timedelta.parse(datetime.timedelta(seconds=10)),
                )
            )
            (partition,) = response.topics[0].partitions
            answers.append((partition.error_code, partition.timestamp, partition.offset))
    ok = ErrorCode.none
    assert (
        answers
        == [
            (ok, -1, 3),
            (ok, -1, 0),
            (ok, 1002, 2),
            (ok, -1, 0),
            (ok, -1, -1),
            (ok, -1, -1),
        ][: len(specials)]
    )


def test_list_transactions_v2_filters_by_id_pattern(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create(backend, topic)
    prefix = topic_name("txn")
    for suffix in ("a1", "a2", "b1"):
        producer = Producer(
            {"bootstrap.servers": backend.bootstrap, "transactional.id": f"{prefix}-{suffix}"}
        )
        producer.init_transactions(30)
        producer.begin_transaction()
        producer.produce(topic, b"v")
        producer.commit_transaction(30)

    def listed(pattern: str) -> tuple[ErrorCode, list[str]]:
        with KioClient(backend.bootstrap) as client:
            response = client.call(
                ListTransactionsRequest(
                    state_filters=(),
                    producer_id_filters=(),
                    duration_filter=i64(-1),
                    transactional_id_pattern=pattern,
                )
            )
        ids = sorted(
            t.transactional_id
            for t in response.transaction_states
            if t.transactional_id.startswith(prefix)
        )
        return response.error_code, ids

    assert listed(f"{prefix}-a.") == (ErrorCode.none, [f"{prefix}-a1", f"{prefix}-a2"])
    assert listed(f"{prefix}-a") == (ErrorCode.none, [])  # the whole id must match
    assert listed(f"{prefix}.*") == (
        ErrorCode.none,
        [f"{prefix}-a1", f"{prefix}-a2", f"{prefix}-b1"],
    )
    assert listed("(unclosed") == (ErrorCode.invalid_regular_expression, [])


def test_describe_cluster_v2(backend: Backend) -> None:
    with KioClient(backend.bootstrap) as client:
        response = client.call(
            DescribeClusterRequest(
                include_cluster_authorized_operations=False,
                endpoint_type=i8(1),
                include_fenced_brokers=True,
            )
        )
    assert response.error_code == ErrorCode.none
    assert [(b.broker_id, b.is_fenced, b.rack) for b in response.brokers] == [(1, False, None)]
    assert response.controller_id == 1
