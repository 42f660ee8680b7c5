"""The broker's own compacted topics (``__consumer_offsets``, ``__transaction_state``).

Coordinators keep their state where Kafka keeps it, as keyed records in a compacted topic:
this module creates such a topic, writes batches to it (the same append path client data
takes: offsets, indexes, group commit, waiting fetches woken) and replays it at start.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from nerve.broker.groups.records import partition_for
from nerve.protocol import records
from nerve.protocol.records import BatchHeader

if TYPE_CHECKING:
    from nerve.broker.server import Broker
    from nerve.broker.topics import Partition, Topic

_READ_CHUNK = 1 << 20


def ensure(broker: Broker, name: str, partitions: int, segment_bytes: int) -> Topic:
    """The topic, created compacted on the first start."""
    topic = broker.topics.get(name)
    if topic is None:
        topic = broker.topics.create(
            name,
            partitions,
            configs={"cleanup.policy": "compact", "segment.bytes": str(segment_bytes)},
        )
    assert topic is not None
    return topic


def partition_of(topic: Topic, key: str) -> Partition:
    """Where a group's or transactional id's records go (Kafka's hash of the id)."""
    return topic.partitions[partition_for(key, len(topic.partitions))]


def append(
    broker: Broker,
    partition: Partition,
    pairs: Sequence[tuple[bytes | None, bytes | None]],
    producer: tuple[int, int] | None = None,
) -> None:
    """Write records as one batch (transactional when ``producer`` is (id, epoch))."""
    if producer is None:
        batch = bytearray(records.encode_batch(list(pairs)))
    else:
        batch = bytearray(
            records.encode_batch(
                list(pairs),
                producer_id=producer[0],
                producer_epoch=producer[1],
                is_transactional=True,
            )
        )
    partition.log.append(batch, records.validate_batches(batch), int(time.time() * 1000))
    broker.group_commit.mark_dirty(partition.log)
    partition.notify_waiters()


def replay(topic: Topic) -> Iterator[tuple[Partition, BatchHeader, memoryview]]:
    """Every batch of every partition, in offset order within each partition."""
    for partition in topic.partitions:
        partition_log = partition.log
        offset = partition_log.log_start_offset
        while offset < partition_log.log_end_offset:
            data = partition_log.read_bytes(offset, _READ_CHUNK)
            if not data:
                break
            for header, batch in records.iter_batches(data):
                offset = header.last_offset + 1
                yield partition, header, batch
