"""Projections (the read side of CQRS): a function that folds events into a read model kept in
a real database, SQLite here, with the projection's position (topic, partition, offset) stored
in the same database transaction as the update. A crash never applies an event twice or skips
one: on start the projection resumes from the positions in its database, not from Kafka's
committed offsets.

    @orders.projection(OrderPlaced, OrderShipped, database="orders.db")
    def orders_by_customer(event, db):
        db.execute("insert into orders ... on conflict do update ...")
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError

from nerve.service import envelope
from nerve.service.content import EventReader
from nerve.service.events import Event

log = logging.getLogger("nerve.es")

_POSITIONS = """create table if not exists nerve_positions (
    projection text, topic text, partition integer, next_offset integer,
    primary key (projection, topic, partition))"""
_FAILURES = """create table if not exists nerve_failures (
    projection text, topic text, partition integer, offset integer, error text, at real)"""


class Projection:
    """``fn(event, db)`` over the events of ``sources``; ``database`` a SQLite file."""

    def __init__(
        self,
        service: str,
        name: str,
        fn: Callable[[Any, sqlite3.Connection], Any],
        sources: tuple[type[Event], ...],
        database: str | Path,
    ) -> None:
        self.service = service
        self.name = name
        self.fn = fn
        self.by_topic = {source.topic: source for source in sources}
        self.database = str(database)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reader = EventReader(None)
        self.failures = 0
        self._at: dict[tuple[str, int], int] = {}

    def connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.database, isolation_level=None, check_same_thread=False)
        db.execute("pragma journal_mode=wal")
        db.execute(_POSITIONS)
        db.execute(_FAILURES)
        return db

    def positions(self) -> dict[tuple[str, int], int]:
        db = self.connect()
        try:
            rows = db.execute(
                "select topic, partition, next_offset from nerve_positions where projection = ?",
                (self.name,),
            ).fetchall()
            return {(t, p): o for t, p, o in rows}
        finally:
            db.close()

    def start(self, kafka: dict[str, Any], reader: EventReader | None = None) -> None:
        from confluent_kafka import Consumer

        if reader is not None:
            self._reader = reader
        self._stop = threading.Event()  # a projection may run again (a new Platform, a test)
        self._at = {}
        consumer = Consumer(
            {
                **kafka,
                "group.id": f"{self.service}.{self.name}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )
        db = self.connect()

        def assigned(c: Any, partitions: list[Any]) -> None:
            stored = self.positions()
            for tp in partitions:
                found = stored.get((tp.topic, tp.partition))
                if found is not None:
                    tp.offset = found
            c.assign(partitions)

        consumer.subscribe(list(self.by_topic), on_assign=assigned)
        self._thread = threading.Thread(
            target=self._run, args=(consumer, db), daemon=True, name=f"projection-{self.name}"
        )
        self._thread.start()

    def _run(self, consumer: Any, db: sqlite3.Connection) -> None:
        try:
            while not self._stop.is_set():
                messages = []
                for message in consumer.consume(500, 0.2):
                    error = message.error()
                    if error is None:
                        messages.append(message)
                    elif error.code() != KafkaError._PARTITION_EOF:
                        log.warning("projection %s: %s", self.name, error)
                if messages:
                    self._apply(db, messages)
                # Where the consumer is now, past transaction markers too: what settled() asks.
                self._at = {
                    (tp.topic, tp.partition): tp.offset
                    for tp in consumer.position(consumer.assignment())
                }
        finally:
            consumer.close()
            db.close()

    def _apply(self, db: sqlite3.Connection, messages: list[Any]) -> None:
        """A batch in one transaction; if it fails, each event in its own, so one bad event
        is recorded in nerve_failures (and logged) without holding back the others."""
        try:
            db.execute("begin")
            for message in messages:
                self._one(db, message)
            db.execute("commit")
            return
        except Exception:
            db.execute("rollback")
        for message in messages:
            try:
                db.execute("begin")
                self._one(db, message)
                db.execute("commit")
            except Exception as exc:
                db.execute("rollback")
                self.failures += 1
                where = f"{message.topic()}[{message.partition()}]@{message.offset()}"
                log.warning("projection %s: the event at %s failed: %s", self.name, where, exc)
                db.execute("begin")
                db.execute(
                    "insert into nerve_failures values (?, ?, ?, ?, ?, ?)",
                    (self.name, message.topic(), message.partition(), message.offset(),
                     f"{type(exc).__name__}: {exc}", time.time()),
                )  # fmt: skip
                self._position(db, message)
                db.execute("commit")

    def _one(self, db: sqlite3.Connection, message: Any) -> None:
        event_type = self.by_topic[message.topic()]
        meta, data, content_type = envelope.read(message.headers(), message.value())
        event = self._reader.read(event_type, data, content_type)
        meta.topic, meta.partition, meta.offset = (
            message.topic(),
            message.partition(),
            message.offset(),
        )
        event.attach(meta)
        self.fn(event, db)
        self._position(db, message)

    def _position(self, db: sqlite3.Connection, message: Any) -> None:
        db.execute(
            "insert into nerve_positions values (?, ?, ?, ?) on conflict "
            "(projection, topic, partition) do update set next_offset = excluded.next_offset",
            (self.name, message.topic(), message.partition(), message.offset() + 1),
        )

    def settled(self, kafka: dict[str, Any], timeout: float = 30.0) -> None:
        """Wait until the projection has applied everything its topics held when called (for
        tests: then the read model reflects every event sent before)."""
        from confluent_kafka import Consumer, TopicPartition

        probe = Consumer({**kafka, "group.id": f"{self.service}.{self.name}.probe"})
        try:
            ends: dict[tuple[str, int], int] = {}
            for topic in self.by_topic:
                metadata = probe.list_topics(topic, timeout=10).topics[topic]
                for partition in metadata.partitions:
                    _, high = probe.get_watermark_offsets(
                        TopicPartition(topic, partition), timeout=10
                    )
                    if high > 0:
                        ends[(topic, partition)] = high
        finally:
            probe.close()
        deadline = time.monotonic() + timeout
        while True:
            at = self._at
            if all(at.get(tp, -1) >= end for tp, end in ends.items()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"projection {self.name} has not caught up in {timeout} s: at {at}, ends {ends}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
