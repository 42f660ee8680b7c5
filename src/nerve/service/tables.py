"""Tables: a topic materialised into a local dict, read from the beginning and kept current by
a background consumer (every replica holds every partition, like Kafka Streams' global tables).

The consumer assigns partitions itself (it never joins a group), so it looks at the topic's
metadata from time to time: a topic created after the service started, and partitions added
later, are followed from their beginning.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from pydantic import BaseModel, ValidationError

from nerve.service import content, envelope
from nerve.service.content import EventReader

log = logging.getLogger("nerve.service")

# How often a table looks for its topic while it does not exist, and for new partitions after.
MISSING_TOPIC_REFRESH_S = 1.0
METADATA_REFRESH_S = 5.0

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
        self._assigned: set[int] = set()
        self._ready = threading.Event()
        self._users = 0  # runners sharing this table (replicas of a service in one process)
        self._reader = EventReader(None)

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

    def _decode(self, data: bytes, content_type: str | None) -> V:
        """A row from a record's data, by its media type (JSON when none is given), as a
        handler reads its events."""
        if self.model is not None:
            row: V = self._reader.read(self.model, data, content_type)
            return row
        found = content.kind(content_type)
        if found is None or found == content.JSON:
            return json.loads(data)
        if found == content.AVRO:
            return self._reader.avro().read(data)
        if found == content.PROTOBUF:
            return self._reader.protobuf().read(data)  # type: ignore[return-value]
        raise content.ContentError(f"{content_type} data is not a table row (JSON, Avro, Protobuf)")

    def apply(self, key: bytes | None, value: bytes | None, headers: Any = None) -> None:
        """One record of the topic: a row (any content mode and media type a handler
        reads), or a tombstone (no value) that deletes its key. A record that cannot be read
        is skipped, with a warning."""
        if key is None:
            return
        name = key.decode("utf-8", "replace")
        row: V | None = None
        try:
            if value is not None:
                _, data, content_type = envelope.read(headers, value)
                if data is None:
                    raise content.ContentError("the CloudEvent has no data")
                row = self._decode(data, content_type)
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

    def start(
        self, config: dict[str, Any], timeout_s: float = 60.0, reader: EventReader | None = None
    ) -> None:
        """Read the topic to its end (the table is then current), then follow it; ``reader``
        reads Avro and Protobuf rows (the runner's, which knows the registry).

        A table starts from nothing: rows of an earlier run (a service restarted in the same
        process, a second ``nerve.testing.Platform``) are forgotten and read again from the
        topic. Replicas of a service in one process share one running table.
        """
        self._users += 1
        if self._users > 1:
            return
        if reader is not None:
            self._reader = reader
        with self._lock:
            self._rows = {}
        self._ends, self._positions, self._assigned = {}, {}, set()
        self._stopping = threading.Event()
        self._ready = threading.Event()
        consumer = Consumer(
            {
                **config,
                "group.id": f"nerve-table-{uuid.uuid4().hex}",  # never joined
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
        self._consumer = consumer
        partitions = self._partitions(timeout_s)
        if partitions is None:
            log.info(
                "table %s: topic %s does not exist yet; the table is empty and follows the "
                "topic once it is created",
                self.name,
                self.topic,
            )
        for partition in partitions or []:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=timeout_s
            )
            if high > low:
                self._ends[partition] = high
        self._assign(partitions or [])
        if not self._ends:
            self._ready.set()
        self._thread = threading.Thread(target=self._follow, name=f"table-{self.name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"table {self.name}: not restored from {self.topic} in {timeout_s}s")

    def _partitions(self, timeout_s: float) -> list[int] | None:
        """The topic's partitions, or None while it does not exist. Asked by name: a
        consumer's metadata request never auto-creates a topic."""
        assert self._consumer is not None
        metadata = self._consumer.list_topics(self.topic, timeout=timeout_s).topics.get(self.topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            return None
        return sorted(metadata.partitions)

    def _assign(self, partitions: list[int]) -> None:
        assert self._consumer is not None
        new = [p for p in partitions if p not in self._assigned]
        if new:
            self._consumer.incremental_assign(
                [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in new]
            )
            self._assigned.update(new)

    def _refresh(self) -> None:
        """Follow partitions that appeared since the last look (all of them, for a topic
        created after the service started)."""
        try:
            partitions = self._partitions(timeout_s=5)
        except KafkaException as exc:
            log.warning("table %s: cannot read the metadata of %s: %s", self.name, self.topic, exc)
            return
        if partitions is None:
            return
        new = [p for p in partitions if p not in self._assigned]
        if new:
            log.info("table %s: following %s partition(s) %s", self.name, self.topic, new)
            self._assign(new)

    def _follow(self) -> None:
        assert self._consumer is not None
        refresh_due = time.monotonic() + MISSING_TOPIC_REFRESH_S
        while not self._stopping.is_set():
            if time.monotonic() >= refresh_due:
                self._refresh()
                every = METADATA_REFRESH_S if self._assigned else MISSING_TOPIC_REFRESH_S
                refresh_due = time.monotonic() + every
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
                self.apply(message.key(), message.value(), message.headers())
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
        self._users = max(0, self._users - 1)
        if self._users:
            return
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def __repr__(self) -> str:
        return f"Table({self.name!r} from {self.topic!r}, {len(self)} rows)"
