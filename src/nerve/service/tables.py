"""Tables: a topic materialised into a local dict, read from the beginning and kept current by
a background consumer (every replica holds every partition, like Kafka Streams' global tables).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from pydantic import BaseModel, ValidationError

log = logging.getLogger("nerve.service")

V = TypeVar("V")


class Table(Generic[V]):
    def __init__(
        self,
        topic: str,
        model: type[BaseModel] | None = None,
        *,
        name: str | None = None,
        owner_event: type[Any] | None = None,
    ) -> None:
        self.topic = topic
        self.model = model
        self.name = name or topic
        self.owner_event = owner_event  # set for a service's own state table
        self._rows: dict[str, V] = {}
        self._lock = threading.Lock()
        self._consumer: Consumer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._ends: dict[int, int] = {}
        self._positions: dict[int, int] = {}
        self._ready = threading.Event()

    # -- reading ---------------------------------------------------------------------------

    def get(self, key: str, default: V | None = None) -> V | None:
        with self._lock:
            return self._rows.get(key, default)

    def __getitem__(self, key: str) -> V:
        with self._lock:
            return self._rows[key]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._rows

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def items(self) -> Iterator[tuple[str, V]]:
        with self._lock:
            return iter(list(self._rows.items()))

    # -- keeping it current ----------------------------------------------------------------

    def _decode(self, value: bytes | None) -> V | None:
        if value is None:
            return None
        if self.model is None:
            import json

            return json.loads(value)
        return self.model.model_validate_json(value)  # type: ignore[return-value]

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        name = key.decode("utf-8", "replace")
        try:
            row = self._decode(value)
        except (ValidationError, ValueError) as exc:
            log.warning("table %s: skipping the record for %r: %s", self.name, name, exc)
            return
        with self._lock:
            if row is None:
                self._rows.pop(name, None)
            else:
                self._rows[name] = row

    def put_local(self, key: bytes | None, row: V) -> None:
        """What this service just emitted, visible before it comes back from Kafka."""
        if key is not None:
            with self._lock:
                self._rows[key.decode("utf-8", "replace")] = row

    def start(self, config: dict[str, Any], timeout_s: float = 60.0) -> None:
        """Read the topic to its end (the table is then current), then follow it."""
        consumer = Consumer(
            {
                **config,
                "group.id": f"nerve-table-{uuid.uuid4().hex}",  # never joined
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
        metadata = consumer.list_topics(self.topic, timeout=timeout_s).topics.get(self.topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            partitions: list[int] = []
        else:
            partitions = sorted(metadata.partitions)
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=timeout_s
            )
            if high > low:
                self._ends[partition] = high
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
        self._consumer = consumer
        if not self._ends:
            self._ready.set()
        self._thread = threading.Thread(target=self._follow, name=f"table-{self.name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"table {self.name}: not restored from {self.topic} in {timeout_s}s")

    def _follow(self) -> None:
        assert self._consumer is not None
        while not self._stopping.is_set():
            try:
                message = self._consumer.poll(0.2)
            except KafkaException as exc:
                log.error("table %s: %s", self.name, exc)
                return
            if message is None:
                continue
            error = message.error()
            partition = message.partition() or 0
            if error is None:
                self.apply(message.key(), message.value())
                self._positions[partition] = (message.offset() or 0) + 1
            elif error.code() == KafkaError._PARTITION_EOF:
                self._positions[partition] = message.offset() or 0
            else:
                log.warning("table %s: %s", self.name, error)
                continue
            if not self._ready.is_set() and all(
                self._positions.get(p, 0) >= end for p, end in self._ends.items()
            ):
                self._ready.set()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def __repr__(self) -> str:
        return f"Table({self.name!r} from {self.topic!r}, {len(self)} rows)"
