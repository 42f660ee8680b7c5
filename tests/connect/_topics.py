"""Reading what connectors wrote: a consumer that stays assigned across a test's steps."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, TopicPartition


class TopicReader:
    """Reads one partition of one topic from the start, in steps: ``take(n)`` returns the next
    ``n`` records as ``(key, value)`` decoded from JSON (a tombstone's value is ``None``)."""

    def __init__(self, bootstrap: str, topic: str, *, partition: int = 0) -> None:
        self.topic = topic
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "topic.metadata.refresh.interval.ms": 500,
                "log_level": 0,
            }
        )
        self.consumer.assign([TopicPartition(topic, partition, 0)])

    def take(self, count: int, timeout: float = 60) -> list[tuple[Any, Any]]:
        out: list[tuple[Any, Any]] = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            for msg in self.consumer.consume(count - len(out), timeout=0.5):
                if msg.error() is not None:
                    continue
                key, value = msg.key(), msg.value()
                out.append(
                    (
                        json.loads(key) if key else None,
                        json.loads(value) if value is not None else None,
                    )
                )
        return out

    def rest(self, wait: float = 3) -> list[tuple[Any, Any]]:
        """Whatever else arrives within ``wait`` seconds (expected: nothing)."""
        return self.take(10_000, timeout=wait)

    def close(self) -> None:
        self.consumer.close()
