"""Absurd partition counts (issue 11, item 3), spoken directly (kio) to nerve and to Kafka: the
same POLICY_VIOLATION or INVALID_PARTITIONS answers, with Kafka's messages, and no work done.
Requests that would succeed are sent validate-only, so Kafka is not made to build them."""

from __future__ import annotations

import datetime
import uuid

from kio.schema.create_partitions.v3.request import CreatePartitionsRequest, CreatePartitionsTopic
from kio.schema.create_topics.v7.request import (
    CreatableTopic,
    CreatableTopicConfig,
    CreateTopicsRequest,
)
from kio.static.primitive import i16, i32, i32Timedelta

from tests.broker._kio_client import KioClient
from tests.conftest import Backend, TopicNameFactory
from tests.differential.test_differential import create

EXCESSIVE = "Excessively large number of partitions per request."


def _create(client: KioClient, counts: list[int], configs: int = 0) -> list[tuple[str, str]]:
    topics = tuple(
        CreatableTopic(
            name=f"limits-{uuid.uuid4().hex[:10]}",
            num_partitions=i32(count),
            replication_factor=i16(-1),
            assignments=(),
            configs=tuple(
                CreatableTopicConfig(name="retention.ms", value="1000") for _ in range(configs)
            ),
        )
        for count in counts
    )
    response = client.call(CreateTopicsRequest(topics=topics, validate_only=True))
    return [(t.error_code.name, t.error_message) for t in response.topics]


def test_too_many_partitions_in_create_topics(backend: Backend) -> None:
    with KioClient(backend.bootstrap) as client:
        answers = {
            "2^31-1": _create(client, [2**31 - 1]),
            "100,000": _create(client, [100_000]),
            "10,001": _create(client, [10_001]),
            "10,000 (one record too many)": _create(client, [10_000]),
            "9,999 and a config": _create(client, [9_999], configs=1),
            "6,000 twice": _create(client, [6_000, 6_000]),
            "9,999 alone": _create(client, [9_999]),
        }
    batch = "Unable to perform excessively large batch operation."
    assert answers == {
        "2^31-1": [("policy_violation", EXCESSIVE)],
        "100,000": [("policy_violation", EXCESSIVE)],
        "10,001": [("policy_violation", EXCESSIVE)],
        "10,000 (one record too many)": [("policy_violation", batch)],
        "9,999 and a config": [("policy_violation", batch)],
        "6,000 twice": [("policy_violation", EXCESSIVE)] * 2,
        "9,999 alone": [("none", None)],
    }


def test_too_many_partitions_in_create_partitions(
    backend: Backend, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create(backend, topic, 2)
    with KioClient(backend.bootstrap) as client:

        def grow(count: int) -> tuple[str, str | None]:
            response = client.call(
                CreatePartitionsRequest(
                    topics=(CreatePartitionsTopic(name=topic, count=i32(count), assignments=None),),
                    timeout=i32Timedelta.parse(datetime.timedelta(seconds=30)),
                    validate_only=True,
                )
            )
            result = response.results[0]
            return result.error_code.name, result.error_message

        answers = [grow(n) for n in (2**31 - 1, 100_000, 10_003, 10_002, 1, -5)]
    more = "Excessively large number of additional partitions per request."
    shrink = f"The topic {topic} currently has 2 partition(s); {{}} would not be an increase."
    assert answers == [
        ("policy_violation", more),
        ("policy_violation", more),
        ("policy_violation", more),
        ("none", None),
        ("invalid_partitions", shrink.format(1)),
        ("invalid_partitions", shrink.format(-5)),
    ]
