"""Issue 11, item 8: a full disk, on a small tmpfs the broker's data lives on. Every request that
writes is answered (KAFKA_STORAGE_ERROR, or NOT_COORDINATOR where Kafka's coordinators answer
that), the connection stays open, nothing is acknowledged that is not on disk, and nothing is
left half-made: a topic created while the disk is full does not exist after a restart, and no
directory of it is orphaned."""

from __future__ import annotations

import contextlib
import datetime
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kio.schema.create_partitions.v3.request import CreatePartitionsRequest, CreatePartitionsTopic
from kio.schema.create_topics.v7.request import CreatableTopic, CreateTopicsRequest
from kio.schema.delete_records.v2.request import (
    DeleteRecordsPartition,
    DeleteRecordsRequest,
    DeleteRecordsTopic,
)
from kio.schema.incremental_alter_configs.v1.request import (
    AlterableConfig,
    AlterConfigsResource,
    IncrementalAlterConfigsRequest,
)
from kio.schema.init_producer_id.v5.request import InitProducerIdRequest
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
from kio.schema.offset_commit.v9.request import (
    OffsetCommitRequest,
    OffsetCommitRequestPartition,
    OffsetCommitRequestTopic,
)
from kio.schema.offset_fetch.v7.request import OffsetFetchRequest, OffsetFetchRequestTopic
from kio.schema.produce.v11.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.static.primitive import i8, i16, i32, i32Timedelta, i64

from nerve.protocol.records import encode_batch
from tests._broker import BrokerProcess
from tests._ck import Out, consume, create_topic, produce_ok
from tests.broker._kio_client import KioClient
from tests.conftest import TopicNameFactory

SECONDS_30 = i32Timedelta.parse(datetime.timedelta(seconds=30))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full; returns it (delete it to free the disk)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    chunk = bytes(1 << 20)
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)
    return filler


def commit_at(group: str, topic: str, offset: int) -> OffsetCommitRequest:
    return OffsetCommitRequest(
        group_id=group,
        member_id="",
        topics=(
            OffsetCommitRequestTopic(
                name=topic,
                partitions=(
                    OffsetCommitRequestPartition(
                        partition_index=i32(0),
                        committed_offset=i64(offset),
                        committed_metadata="m" * 4000,
                    ),
                ),
            ),
        ),
    )


def offset_fetch(group: str, topic: str) -> OffsetFetchRequest:
    return OffsetFetchRequest(
        group_id=group,
        topics=(OffsetFetchRequestTopic(name=topic, partition_indexes=(i32(0),)),),
        require_stable=False,
    )


def produce_error(client: KioClient, topic: str) -> str:
    # Larger than what is left of the segment's last page, so it needs new space.
    batch = encode_batch([(b"k", b"written while full" + bytes(100_000))])
    response = client.call(
        ProduceRequest(
            acks=i16(-1),
            timeout=SECONDS_30,
            topic_data=(
                TopicProduceData(
                    name=topic, partition_data=(PartitionProduceData(index=i32(0), records=batch),)
                ),
            ),
        )
    )
    return response.responses[0].partition_responses[0].error_code.name


def test_a_full_disk_answers_every_request_and_loses_nothing(
    small_disk: Path, topic_name: TopicNameFactory
) -> None:
    broker = BrokerProcess(small_disk / "data", log_path=small_disk.parent / "broker.log")
    broker.start()
    try:
        topic, group, late = topic_name(), topic_name("group"), topic_name("late")
        create_topic(broker.bootstrap, topic)
        produce_ok(broker.bootstrap, topic, [Out(b"before-%d" % i) for i in range(10)])
        with KioClient(broker.bootstrap) as client:
            commit = OffsetCommitRequest(
                group_id=group,
                member_id="",
                topics=(
                    OffsetCommitRequestTopic(
                        name=topic,
                        partitions=(
                            OffsetCommitRequestPartition(
                                partition_index=i32(0), committed_offset=i64(5),
                                committed_metadata=None,
                            ),
                        ),
                    ),
                ),
            )  # fmt: skip
            assert client.call(commit).topics[0].partitions[0].error_code.name == "none"

            filler = fill(small_disk)
            # One connection for all of it: none of these may close it.
            assert produce_error(client, topic) == "kafka_storage_error"
            # Small records may still fit in a page the log already has: keep committing (4 KB
            # of metadata each) until the disk refuses; what was acknowledged is what is kept.
            acknowledged = 5
            for attempt in range(1, 50):
                code = client.call(commit_at(group, topic, 100 + attempt)).topics[0]
                code = code.partitions[0].error_code.name
                if code != "none":
                    break
                acknowledged = 100 + attempt
            assert code == "not_coordinator"
            for _ in range(50):
                init = client.call(
                    InitProducerIdRequest(
                        transactional_id=topic_name("txn") + "x" * 3000,
                        transaction_timeout=SECONDS_30,
                    )
                )
                if init.error_code.name != "none":
                    break
            assert init.error_code.name == "not_coordinator"
            created = client.call(
                CreateTopicsRequest(
                    topics=(
                        CreatableTopic(name=late, num_partitions=i32(3), replication_factor=i16(-1),
                                       assignments=(), configs=()),
                    ),
                    validate_only=False,
                )
            )  # fmt: skip
            assert created.topics[0].error_code.name == "kafka_storage_error"
            grown = client.call(
                CreatePartitionsRequest(
                    topics=(CreatePartitionsTopic(name=topic, count=i32(3), assignments=None),),
                    timeout=SECONDS_30,
                    validate_only=False,
                )
            )
            assert grown.results[0].error_code.name == "kafka_storage_error"
            deleted = client.call(
                DeleteRecordsRequest(
                    topics=(
                        DeleteRecordsTopic(
                            name=topic,
                            partitions=(
                                DeleteRecordsPartition(partition_index=i32(0), offset=i64(2)),
                            ),
                        ),
                    ),
                    timeout=SECONDS_30,
                )
            )
            assert deleted.topics[0].partitions[0].error_code.name == "kafka_storage_error"
            altered = client.call(
                IncrementalAlterConfigsRequest(
                    resources=(
                        AlterConfigsResource(
                            resource_type=i8(2),
                            resource_name=topic,
                            configs=(
                                AlterableConfig(
                                    name="retention.ms", config_operation=i8(0), value="60000"
                                ),
                            ),
                        ),
                    ),
                    validate_only=False,
                )
            )
            assert altered.responses[0].error_code.name == "kafka_storage_error"
            seen = client.call(
                MetadataRequest(
                    topics=(MetadataRequestTopic(name=late, topic_id=None),),
                    allow_auto_topic_creation=False,
                    include_topic_authorized_operations=False,
                )
            )
            assert seen.topics[0].error_code.name == "unknown_topic_or_partition"

            with KioClient(broker.bootstrap) as other:  # the committed offset is the last acked
                fetched = other.call(offset_fetch(group, topic))
                assert fetched.topics[0].partitions[0].committed_offset == acknowledged
            filler.unlink()  # space again: everything works
            assert produce_error(client, topic) == "none"
            last = client.call(commit_at(group, topic, 7)).topics[0].partitions[0]
            assert last.error_code.name == "none"
        broker.restart()
        with KioClient(broker.bootstrap) as client:
            fetched = client.call(offset_fetch(group, topic))
            assert fetched.topics[0].partitions[0].committed_offset == 7
        got = consume(broker.bootstrap, topic, 11)
        assert [r.value for r in got][:10] == [b"before-%d" % i for i in range(10)]
        assert [r.value[:18] for r in got][10:] == [b"written while full"]
        assert not list((small_disk / "data").glob(f"{late}-*")), "no orphaned directories"
        assert not (small_disk / "data" / "meta" / "topics" / f"{late}.json").exists()
        assert "Traceback" not in broker.stderr_text()
    finally:
        with contextlib.suppress(Exception):
            broker.close()
