"""Reading a whole topic once, from its beginning to its end as of now: what the catalog, the
testing platform and the command line need when they look at a topic rather than follow it."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)


def read_to_end(
    client_config: dict[str, Any],
    topic: str,
    *,
    timeout_s: float = 10.0,
    read_committed: bool = True,
) -> list[Message] | None:
    """Every record of ``topic`` (all partitions, in order per partition), or None when the
    topic does not exist. Raises TimeoutError when the end is not reached in time."""
    consumer = Consumer(
        {
            **client_config,
            "group.id": f"nerve-reader-{uuid.uuid4().hex}",  # never joined or committed
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        }
    )
    try:
        # All topics, not this one by name: that would make an auto-creating broker create it.
        metadata = consumer.list_topics(timeout=timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return None
        partitions = list(metadata.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[Message] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(at_end) < len(partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} not read to its end in {timeout_s}s")
            message = consumer.poll(0.1)
            if message is None:
                continue
            error = message.error()
            if error is None:
                records.append(message)
            elif error.code() == KafkaError._PARTITION_EOF:
                at_end.add(message.partition() or 0)
            else:
                raise KafkaException(error)
        return records
    finally:
        consumer.close()
