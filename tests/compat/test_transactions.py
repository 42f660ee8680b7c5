"""Idempotent and transactional producers with real clients, and the exact codes behind them.

librdkafka's transactional producer and read_committed consumer against nerve: commit, abort,
fencing, timeouts, a consume-transform-produce loop killed with SIGKILL, a broker killed in
the middle of a transaction. Sequence checks are driven over kio, where the codes are visible.
"""

from __future__ import annotations

import datetime
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from kio.schema.describe_transactions.v0.request import DescribeTransactionsRequest
from kio.schema.errors import ErrorCode
from kio.schema.init_producer_id.v4.request import InitProducerIdRequest
from kio.schema.list_transactions.v1.request import ListTransactionsRequest
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.static.primitive import i16, i32, i32Timedelta, i64

from nerve.protocol import records
from tests._broker import BrokerProcess
from tests._ck import Out, create_topic, produce_ok, watermarks
from tests.broker._kio_client import KioClient
from tests.conftest import BrokerFactory, TopicNameFactory

EOS_WORKER = Path(__file__).with_name("_eos_worker.py")
REPO = Path(__file__).resolve().parents[2]


def read_all(bootstrap: str, topic: str, partitions: int, isolation: str) -> list[bytes]:
    """Every record up to the end of each partition, in the given isolation level."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused",
            "isolation.level": isolation,
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got: list[bytes] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + 30
        while len(at_end) < partitions and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            if message.error():
                at_end.add(message.partition())
                continue
            got.append(message.value())
        assert len(at_end) == partitions, "did not reach the end of every partition"
        return got
    finally:
        consumer.close()


def output_end(bootstrap: str, topic: str) -> int:
    return sum(watermarks(bootstrap, topic, p)[1] for p in range(3))


def txn_producer(bootstrap: str, transactional_id: str, **extra: object) -> Producer:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": transactional_id, **extra}
    )
    producer.init_transactions(30)
    return producer


def test_aborted_transactions_are_invisible_to_read_committed_only(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    bootstrap = shared_broker.bootstrap
    topic = topic_name()
    create_topic(bootstrap, topic, partitions=2)
    producer = txn_producer(bootstrap, topic_name("txn"))
    producer.begin_transaction()
    for i in range(4):
        producer.produce(topic, f"committed-{i}".encode(), partition=i % 2)
    producer.commit_transaction(30)
    producer.begin_transaction()
    for i in range(4):
        producer.produce(topic, f"aborted-{i}".encode(), partition=i % 2)
    producer.flush(30)
    producer.abort_transaction(30)
    produce_ok(bootstrap, topic, [Out(b"plain", partition=0)])

    committed = read_all(bootstrap, topic, 2, "read_committed")
    uncommitted = read_all(bootstrap, topic, 2, "read_uncommitted")
    assert sorted(committed) == sorted([f"committed-{i}".encode() for i in range(4)] + [b"plain"])
    assert sorted(uncommitted) == sorted(
        [f"committed-{i}".encode() for i in range(4)]
        + [f"aborted-{i}".encode() for i in range(4)]
        + [b"plain"]
    )


def test_open_transaction_holds_back_read_committed_until_it_commits(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    bootstrap = shared_broker.bootstrap
    topic = topic_name()
    create_topic(bootstrap, topic, partitions=1)
    producer = txn_producer(bootstrap, topic_name("txn"))
    producer.begin_transaction()
    producer.produce(topic, b"in-flight")
    producer.flush(30)
    # A plain record after the open transaction is behind the last stable offset too.
    produce_ok(bootstrap, topic, [b"after"])
    assert read_all(bootstrap, topic, 1, "read_committed") == []
    assert read_all(bootstrap, topic, 1, "read_uncommitted") == [b"in-flight", b"after"]
    producer.commit_transaction(30)
    assert read_all(bootstrap, topic, 1, "read_committed") == [b"in-flight", b"after"]


def test_a_second_producer_with_the_same_transactional_id_fences_the_first(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    bootstrap = shared_broker.bootstrap
    topic, transactional_id = topic_name(), topic_name("txn")
    create_topic(bootstrap, topic, partitions=1)
    zombie = txn_producer(bootstrap, transactional_id)
    zombie.begin_transaction()
    zombie.produce(topic, b"zombie-open")
    zombie.flush(30)

    successor = txn_producer(bootstrap, transactional_id)  # aborts the zombie's transaction
    successor.begin_transaction()
    successor.produce(topic, b"successor")
    successor.commit_transaction(30)

    with pytest.raises(KafkaException) as raised:
        zombie.produce(topic, b"zombie-late")
        zombie.commit_transaction(10)
    assert raised.value.args[0].fatal() or "fenced" in str(raised.value).lower()
    assert read_all(bootstrap, topic, 1, "read_committed") == [b"successor"]


def test_transaction_left_open_past_its_timeout_is_aborted(
    broker_factory: BrokerFactory, topic_name: TopicNameFactory
) -> None:
    broker = broker_factory({"transaction.abort.timed.out.transaction.cleanup.interval.ms": 200})
    topic = topic_name()
    create_topic(broker.bootstrap, topic, partitions=1)
    producer = txn_producer(broker.bootstrap, topic_name("txn"), **{"transaction.timeout.ms": 1000})
    producer.begin_transaction()
    producer.produce(topic, b"forgotten")
    producer.flush(30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if read_all(broker.bootstrap, topic, 1, "read_uncommitted") and (
            read_all(broker.bootstrap, topic, 1, "read_committed") == []
        ):
            break
        time.sleep(0.2)
    # The abort marker makes the data stable (and invisible): read_committed reaches the end.
    assert read_all(broker.bootstrap, topic, 1, "read_committed") == []
    with KioClient(broker.bootstrap) as client:
        listed = client.call(
            ListTransactionsRequest(
                state_filters=("CompleteAbort",), producer_id_filters=(), duration_filter=i64(-1)
            )
        )
        assert len(listed.transaction_states) == 1
    with pytest.raises(KafkaException):
        producer.commit_transaction(10)


@pytest.mark.slow
def test_consume_transform_produce_killed_repeatedly_leaves_every_input_exactly_once(
    broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    bootstrap = broker.bootstrap
    source, sink, group = topic_name("in"), topic_name("out"), topic_name("group")
    create_topic(bootstrap, source, partitions=3)
    create_topic(bootstrap, sink, partitions=3)
    count = 3000
    produce_ok(
        bootstrap, source, [Out(f"m{i}".encode(), key=f"k{i}".encode()) for i in range(count)]
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    argv = [sys.executable, str(EOS_WORKER), bootstrap, source, sink, group, "eos-1", "20"]
    rng = random.Random(7)
    kills = 0
    for fraction in (0.2, 0.45, 0.7):
        worker = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        # Kill it mid-stream: once the output has grown past a point (offsets count aborted
        # records and markers too, so this is progress, not the result).
        target = int(count * fraction)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and output_end(bootstrap, sink) < target:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.3))
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            kills += 1
        worker.wait(10)
    assert kills == 3, "the worker finished before it could be killed"
    final = subprocess.run(argv, env=env, capture_output=True, timeout=240, check=True)
    assert b"done" in final.stdout

    out = Counter(read_all(bootstrap, sink, 3, "read_committed"))
    expected = Counter(f"m{i}!".encode() for i in range(count))
    assert out == expected, (
        f"{sum((out - expected).values())} duplicated, {sum((expected - out).values())} missing"
    )


def test_broker_killed_mid_transaction_keeps_committed_data_and_aborts_the_open_one(
    broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic, transactional_id = topic_name(), topic_name("txn")
    create_topic(broker.bootstrap, topic, partitions=1)
    producer = txn_producer(broker.bootstrap, transactional_id)
    producer.begin_transaction()
    producer.produce(topic, b"committed")
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, b"open-at-crash")
    producer.flush(30)
    broker.kill()
    broker.restart()
    # Still open after the restart: read_committed waits for it.
    assert read_all(broker.bootstrap, topic, 1, "read_committed") == [b"committed"]
    with KioClient(broker.bootstrap) as client:
        described = client.call(DescribeTransactionsRequest(transactional_ids=(transactional_id,)))
        (state,) = described.transaction_states
        assert (state.error_code, state.transaction_state) == (ErrorCode.none, "Ongoing")
    successor = txn_producer(broker.bootstrap, transactional_id)
    successor.begin_transaction()
    successor.produce(topic, b"after-restart")
    successor.commit_transaction(30)
    assert read_all(broker.bootstrap, topic, 1, "read_committed") == [
        b"committed",
        b"after-restart",
    ]


def test_librdkafka_idempotent_producer_round_trip_without_warnings(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(shared_broker.bootstrap, topic, partitions=3)
    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger = logging.getLogger(f"librdkafka.{topic}")
    logger.addHandler(Collect())
    logger.setLevel(logging.DEBUG)
    producer = Producer(
        {
            "bootstrap.servers": shared_broker.bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "logger": logger,
        }
    )
    failures: list[str] = []
    for i in range(3000):
        producer.produce(
            topic,
            f"v{i}".encode(),
            key=f"k{i % 7}".encode(),
            on_delivery=lambda err, _m: failures.append(str(err)) if err else None,
        )
        producer.poll(0)
    assert producer.flush(30) == 0
    assert failures == []
    warnings = [r.getMessage() for r in seen if r.levelno >= logging.WARNING]
    assert warnings == []
    values = read_all(shared_broker.bootstrap, topic, 3, "read_uncommitted")
    assert sorted(values) == sorted(f"v{i}".encode() for i in range(3000))


# -- sequence checks over the wire ----------------------------------------------------------


def produce_batch(
    client: KioClient, topic: str, producer_id: int, epoch: int, sequence: int, values: list[bytes]
) -> tuple[ErrorCode, int]:
    batch = records.encode_batch(
        [(None, v) for v in values],
        producer_id=producer_id,
        producer_epoch=epoch,
        base_sequence=sequence,
    )
    response = client.call(
        ProduceRequest(
            transactional_id=None,
            acks=i16(-1),
            timeout=i32Timedelta.parse(datetime.timedelta(seconds=30)),
            topic_data=(
                TopicProduceData(
                    name=topic,
                    partition_data=(PartitionProduceData(index=i32(0), records=batch),),
                ),
            ),
        )
    )
    result = response.responses[0].partition_responses[0]
    return result.error_code, result.base_offset


def init_producer_id(client: KioClient) -> tuple[int, int]:
    response = client.call(
        InitProducerIdRequest(
            transactional_id=None,
            transaction_timeout=i32Timedelta.parse(datetime.timedelta(seconds=60)),
            producer_id=i64(-1),
            producer_epoch=i16(-1),
        )
    )
    assert response.error_code == ErrorCode.none
    return response.producer_id, response.producer_epoch


def test_duplicates_are_acknowledged_once_and_gaps_refused_also_after_a_broker_kill(
    broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(broker.bootstrap, topic, partitions=1)
    with KioClient(broker.bootstrap) as client:
        pid, epoch = init_producer_id(client)
        other_pid, _ = init_producer_id(client)
        assert other_pid != pid
        assert produce_batch(client, topic, pid, epoch, 0, [b"a", b"b"]) == (ErrorCode.none, 0)
        assert produce_batch(client, topic, pid, epoch, 2, [b"c"]) == (ErrorCode.none, 2)
        # The same batch again (a retry): acknowledged with its first offset, not written.
        assert produce_batch(client, topic, pid, epoch, 0, [b"a", b"b"]) == (ErrorCode.none, 0)
        assert produce_batch(client, topic, pid, epoch, 2, [b"c"]) == (ErrorCode.none, 2)
        code, _ = produce_batch(client, topic, pid, epoch, 5, [b"gap"])
        assert code == ErrorCode.out_of_order_sequence_number
        code, _ = produce_batch(client, topic, pid, epoch - 1, 3, [b"old"])
        assert code == ErrorCode.invalid_producer_epoch
    broker.kill()
    broker.restart()
    with KioClient(broker.bootstrap) as client:
        # Producer state is rebuilt from the log: the retry is still recognised.
        assert produce_batch(client, topic, pid, epoch, 2, [b"c"]) == (ErrorCode.none, 2)
        assert produce_batch(client, topic, pid, epoch, 3, [b"d"]) == (ErrorCode.none, 3)
        code, _ = produce_batch(client, topic, pid, epoch, 9, [b"gap"])
        assert code == ErrorCode.out_of_order_sequence_number
        # Ids are never handed out twice, even across the restart.
        assert init_producer_id(client)[0] not in (pid, other_pid)
    assert read_all(broker.bootstrap, topic, 1, "read_uncommitted") == [b"a", b"b", b"c", b"d"]


def test_transactional_offsets_are_unstable_until_commit_and_dropped_on_abort(
    shared_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    from kio.schema.add_offsets_to_txn.v3.request import AddOffsetsToTxnRequest
    from kio.schema.end_txn.v3.request import EndTxnRequest
    from kio.schema.offset_fetch.v8.request import (
        OffsetFetchRequest,
        OffsetFetchRequestGroup,
        OffsetFetchRequestTopics,
    )
    from kio.schema.txn_offset_commit.v3.request import (
        TxnOffsetCommitRequest,
        TxnOffsetCommitRequestPartition,
        TxnOffsetCommitRequestTopic,
    )

    topic, group, transactional_id = topic_name(), topic_name("group"), topic_name("txn")
    create_topic(shared_broker.bootstrap, topic, partitions=1)
    with KioClient(shared_broker.bootstrap) as client:
        init = client.call(
            InitProducerIdRequest(
                transactional_id=transactional_id,
                transaction_timeout=i32Timedelta.parse(datetime.timedelta(seconds=60)),
                producer_id=i64(-1),
                producer_epoch=i16(-1),
            )
        )
        pid, epoch = init.producer_id, init.producer_epoch

        def fetch() -> tuple[ErrorCode, int]:
            response = client.call(
                OffsetFetchRequest(
                    groups=(
                        OffsetFetchRequestGroup(
                            group_id=group,
                            topics=(
                                OffsetFetchRequestTopics(name=topic, partition_indexes=(i32(0),)),
                            ),
                        ),
                    ),
                    require_stable=True,
                )
            )
            partition = response.groups[0].topics[0].partitions[0]
            return partition.error_code, partition.committed_offset

        def transaction(offset: int, commit: bool) -> None:
            added = client.call(
                AddOffsetsToTxnRequest(
                    transactional_id=transactional_id,
                    producer_id=pid,
                    producer_epoch=epoch,
                    group_id=group,
                )
            )
            assert added.error_code == ErrorCode.none
            committed = client.call(
                TxnOffsetCommitRequest(
                    transactional_id=transactional_id,
                    group_id=group,
                    producer_id=pid,
                    producer_epoch=epoch,
                    generation_id=i32(-1),
                    member_id="",
                    group_instance_id=None,
                    topics=(
                        TxnOffsetCommitRequestTopic(
                            name=topic,
                            partitions=(
                                TxnOffsetCommitRequestPartition(
                                    partition_index=i32(0),
                                    committed_offset=i64(offset),
                                    committed_leader_epoch=i32(-1),
                                    committed_metadata="",
                                ),
                            ),
                        ),
                    ),
                )
            )
            assert committed.topics[0].partitions[0].error_code == ErrorCode.none
            assert fetch()[0] == ErrorCode.unstable_offset_commit
            ended = client.call(
                EndTxnRequest(
                    transactional_id=transactional_id,
                    producer_id=pid,
                    producer_epoch=epoch,
                    committed=commit,
                )
            )
            assert ended.error_code == ErrorCode.none

        transaction(5, commit=True)
        assert fetch() == (ErrorCode.none, 5)
        transaction(9, commit=False)
        assert fetch() == (ErrorCode.none, 5)
