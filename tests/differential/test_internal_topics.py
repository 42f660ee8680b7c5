"""The broker's own topics are not the clients' to delete (issue 11, item 10): DeleteRecords on
``__consumer_offsets`` is INVALID_TOPIC_EXCEPTION on nerve as on Kafka, and the committed offsets
are still there. (Config changes on internal topics differ: Kafka accepts them, nerve refuses
those that would delete its state; tests/hardening/test_internal_topics.py and
docs/compatibility.md.)"""

from __future__ import annotations

import datetime

from confluent_kafka import Consumer, TopicPartition
from kio.schema.delete_records.v2.request import (
    DeleteRecordsPartition,
    DeleteRecordsRequest,
    DeleteRecordsTopic,
)
from kio.static.primitive import i32, i32Timedelta, i64

from tests._ck import Out, produce_ok
from tests.broker._kio_client import KioClient, await_group_coordinator
from tests.conftest import Backend, TopicNameFactory
from tests.differential.test_differential import create


def test_delete_records_on_the_offsets_topic_is_refused(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic, group = topic_name(), topic_name("group")
    create(backend, topic)
    produce_ok(backend.bootstrap, topic, [Out(b"x%d" % i) for i in range(5)])
    await_group_coordinator(backend.bootstrap)
    consumer = Consumer({"bootstrap.servers": backend.bootstrap, "group.id": group})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 4)], asynchronous=False)
    finally:
        consumer.close()
    with KioClient(backend.bootstrap) as client:
        answers = []
        for offset in (-1, 1):
            response = client.call(
                DeleteRecordsRequest(
                    topics=(
                        DeleteRecordsTopic(
                            name="__consumer_offsets",
                            partitions=(
                                DeleteRecordsPartition(partition_index=i32(0), offset=i64(offset)),
                            ),
                        ),
                    ),
                    timeout=i32Timedelta.parse(datetime.timedelta(seconds=30)),
                )
            )
            result = response.topics[0].partitions[0]
            answers.append((result.error_code.name, result.low_watermark))
    assert answers == [("invalid_topic_exception", -1)] * 2
    consumer = Consumer({"bootstrap.servers": backend.bootstrap, "group.id": group})
    try:
        (committed,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
    finally:
        consumer.close()
    assert committed.offset == 4
