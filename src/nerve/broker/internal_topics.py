"""The broker's own compacted topics (``__consumer_offsets``, ``__transaction_state``).

Coordinators keep their state where Kafka keeps it, as keyed records in a compacted topic:
this module creates such a topic, writes batches to it (the same append path client data
takes: offsets, indexes, group commit, waiting fetches woken) and replays it at start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from nerve.broker.groups.records import partition_for
from nerve.broker.log.log import CorruptBatchError
from nerve.protocol import records
from nerve.protocol.records import BatchHeader

if TYPE_CHECKING:
    from nerve.broker.server import Broker
    from nerve.broker.topics import Partition, Topic

_READ_CHUNK = 1 << 20

log = logging.getLogger("nerve.broker")


def ensure(broker: Broker, name: str, partitions: int, segment_bytes: int) -> Topic:
    """The topic, created compacted on the first start, and compacted whatever happened since
    (a topic rebuilt from its partition directories comes back with default configs)."""
    configs = {"cleanup.policy": "compact", "segment.bytes": str(segment_bytes)}
    topic = broker.topics.get(name)
    if topic is None:
        topic = broker.topics.create(name, partitions, configs=configs)
    elif topic.configs.get("cleanup.policy") != "compact":
        log.warning("%s was not compacted (cleanup.policy=%s): compacted again", name,
                    topic.configs.get("cleanup.policy", "the default"))  # fmt: skip
        broker.topics.set_configs(name, {**topic.configs, **configs}, validate_only=False)
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
            try:
                data = partition_log.read_bytes(offset, _READ_CHUNK)
            except CorruptBatchError as exc:  # logged by the log; recovery normally cuts these
                if exc.damage.last_lost is None:
                    break
                offset = exc.damage.last_lost + 1
                continue
            if not data:
                break
            for header, batch in records.iter_batches(data):
                offset = header.last_offset + 1
                yield partition, header, batch


def report_damage(topic: Topic, name_of: Callable[[bytes], str | None], whose: str) -> None:
    """Say, for every record recovery had to cut out of ``topic``, whose state may now be older
    than what was acknowledged: ``name_of`` turns a record key into a group or transactional
    id, read from the kept copy of the cut bytes as far as it can still be decoded."""
    for partition in topic.partitions:
        for damage in partition.log.damage:
            if damage.torn or damage.copy is None:
                continue  # a write cut short was never acknowledged
            names = sorted(_names_in(damage.copy.read_bytes(), name_of))
            lost = (
                f"offsets {damage.first_lost}-{damage.last_lost}"
                if damage.last_lost is not None
                else f"offsets from {damage.first_lost}"
            )
            if names:
                who = f"the state of {whose} {', '.join(names)} may be older than acknowledged"
            else:
                who = f"their keys cannot be read: any {whose[:-1]}'s state may be older"
            log.error(
                "%s-%d lost %s to disk damage (copy in %s): %s; nothing else in the broker "
                "rolled back",
                topic.name,
                partition.index,
                lost,
                damage.copy,
                who,
            )


def _names_in(data: bytes, name_of: Callable[[bytes], str | None]) -> set[str]:
    """Keys of whatever records in ``data`` still decode (the CRC is known to fail)."""
    names: set[str] = set()
    pos = 0
    while pos + records.BATCH_HEADER_SIZE <= len(data):
        try:
            header = records.read_batch_header(data, pos)
            end = pos + header.size
            if header.batch_length < records.BATCH_OVERHEAD or end > len(data):
                break
            for record in records.decode_records(data[pos:end]):
                name = name_of(record.key) if record.key else None
                if name:
                    names.add(name)
        except Exception:  # damaged bytes: take what decodes, whatever fails
            break
        pos = end
    return names
