"""Projections (the read side of CQRS): a function that folds events into a read model kept in
a real database, SQLite or PostgreSQL (:mod:`nerve.es.views`), with the projection's position
(topic, partition, next offset) stored in the same database transaction as the update. A crash
never applies an event twice or skips one: on start the projection resumes from the positions
in its database, not from Kafka's committed offsets.

    @orders.projection(OrderPlaced, OrderShipped, database="orders.db", version=2)
    def orders_by_customer(event, db):
        db.execute("insert into orders ... on conflict do update ...")

A rebuild (:meth:`Projection.rebuild`, ``nerve projection rebuild``) folds every event again
from the start of the topics into a new generation of the view beside the live one, and switches
readers to it in one transaction once it has caught up. Running services follow the switch: a
projection applies events only to a live generation built by its own ``version``, so code whose
function changed (a higher ``version``) waits for the rebuild, and older code stops once a newer
version is live.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError

from nerve.es.views import Generation, Session, ViewError, Views, open_views
from nerve.service import envelope
from nerve.service.content import EventReader
from nerve.service.events import Event

log = logging.getLogger("nerve.es")

# How often an idle projection looks whether a rebuild switched its view, or whether the
# version it waits for is live yet; how long it waits after its database failed.
_CHECK_S = 1.0
_RETRY_S = 2.0


class Projection:
    """``fn(event, db)`` over the events of ``sources``; ``database`` a SQLite file or a
    ``postgresql://`` URL; ``version`` names the function's generation of code (raise it when
    the function changes what it writes, then rebuild)."""

    def __init__(
        self,
        service: str,
        name: str,
        fn: Callable[[Any, Any], Any],
        sources: tuple[type[Event], ...],
        database: str | Path,
        version: int = 1,
    ) -> None:
        if version < 1:
            raise ValueError(f"projection {name}: version must be 1 or more, not {version}")
        self.service = service
        self.name = name
        self.fn = fn
        self.by_topic = {source.topic: source for source in sources}
        self.database = str(database)
        self.version = version
        self.views: Views = open_views(database, name)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reader = EventReader(None)
        self.failures = 0
        self._at: dict[tuple[str, int], int] = {}
        self._following: Generation | None = None

    def positions(self) -> dict[tuple[str, int], int]:
        """The live generation's positions (empty before the projection first ran)."""
        live = self.views.live()
        if live is None:
            return {}
        session = self.views.session(live)
        try:
            return session.positions()
        finally:
            session.close()

    # -- following the live view (in a service) ---------------------------------------------

    def start(self, kafka: dict[str, Any], reader: EventReader | None = None) -> None:
        if reader is not None:
            self._reader = reader
        self._stop = threading.Event()  # a projection may run again (a new Platform, a test)
        self._at = {}
        self._thread = threading.Thread(
            target=self._run, args=(kafka,), daemon=True, name=f"projection-{self.name}"
        )
        self._thread.start()

    def _run(self, kafka: dict[str, Any]) -> None:
        said: Generation | None = None
        while not self._stop.is_set():
            try:
                live = self.views.adopt(self.version)
                if live.version == self.version:
                    said = None
                    self._follow(kafka, live)
                    continue
                if live != said:
                    said = live
                    if live.version < self.version:
                        log.warning(
                            "projection %s: the live view in %s was built by version %d, this "
                            "code is version %d: it waits until `nerve projection rebuild` has "
                            "built version %d beside it and switched (the view is not updated "
                            "meanwhile)",
                            self.name, self.views.describe(), live.version, self.version,
                            self.version,
                        )  # fmt: skip
                    else:
                        log.warning(
                            "projection %s: the live view in %s is of version %d, newer than "
                            "this code's %d: this process no longer updates it",
                            self.name, self.views.describe(), live.version, self.version,
                        )  # fmt: skip
                self._at = {}
                self._stop.wait(_CHECK_S)
            except Exception as exc:
                log.warning(
                    "projection %s: %s failed (%s: %s); trying again in %.0f s",
                    self.name, self.views.describe(), type(exc).__name__, exc, _RETRY_S,
                )  # fmt: skip
                self._stop.wait(_RETRY_S)

    def _follow(self, kafka: dict[str, Any], live: Generation) -> None:
        """Apply events to the live generation ``live`` until it is no longer live."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer

        session = self.views.session(live)
        self._following = live
        consumer = Consumer(
            {
                **kafka,
                "group.id": f"{self.service}.{self.name}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )

        start: dict[tuple[str, int], int] = {}

        def assigned(c: Any, partitions: list[Any]) -> None:
            stored = session.positions()
            for tp in partitions:
                tp.offset = stored.get((tp.topic, tp.partition), OFFSET_BEGINNING)
                start[(tp.topic, tp.partition)] = tp.offset
            c.assign(partitions)

        try:
            consumer.subscribe(list(self.by_topic), on_assign=assigned)
            checked = time.monotonic()
            while not self._stop.is_set():
                messages = self._consume(consumer)
                if messages:
                    if not self._apply(session, messages):
                        log.info("projection %s: its view was switched; following", self.name)
                        return
                    checked = time.monotonic()
                elif time.monotonic() - checked > _CHECK_S:
                    still = session.begin() is not None  # on the session's own connection
                    session.rollback()
                    if not still:
                        log.info("projection %s: its view was switched; following", self.name)
                        return
                    checked = time.monotonic()
                # Where the consumer is now, past transaction markers too: what settled() asks
                # (before it consumed anything from a partition: where it started).
                self._at = {
                    (tp.topic, tp.partition): max(
                        tp.offset, start.get((tp.topic, tp.partition), -1)
                    )
                    for tp in consumer.position(consumer.assignment())
                }
        finally:
            self._at, self._following = {}, None
            consumer.close()
            session.close()

    def _consume(self, consumer: Any) -> list[Any]:
        messages = []
        for message in consumer.consume(500, 0.2):
            error = message.error()
            if error is None:
                messages.append(message)
            elif error.code() != KafkaError._PARTITION_EOF:
                log.warning("projection %s: %s", self.name, error)
        return messages

    def _apply(self, session: Session, messages: list[Any]) -> bool:
        """A batch in one transaction; if it fails, each event in its own, so one bad event
        is recorded in the failures (and logged) without holding back the others. False if
        the session's generation is no longer the one to write (a switch): nothing applied.
        Events below a partition's stored position are skipped: another process applied them
        (one that held the partition before a rebalance, still finishing its batch)."""
        try:
            if session.begin() is None:
                session.rollback()
                return False
            for message in self._unapplied(session, messages):
                self._one(session, message)
            session.commit()
            return True
        except Exception:
            session.rollback()
        for message in messages:
            try:
                if session.begin() is None:
                    session.rollback()
                    return False
                for unapplied in self._unapplied(session, [message]):
                    self._one(session, unapplied)
                session.commit()
            except Exception as exc:
                session.rollback()
                self.failures += 1
                where = f"{message.topic()}[{message.partition()}]@{message.offset()}"
                log.warning("projection %s: the event at %s failed: %s", self.name, where, exc)
                if session.begin() is None:
                    session.rollback()
                    return False
                if self._unapplied(session, [message]):
                    session.failed(
                        message.topic(), message.partition(), message.offset(),
                        f"{type(exc).__name__}: {exc}",
                    )  # fmt: skip
                    session.advance(message.topic(), message.partition(), message.offset() + 1)
                session.commit()
        return True

    def _unapplied(self, session: Session, messages: list[Any]) -> list[Any]:
        floors: dict[tuple[str, int], int] = {}
        unapplied = []
        for message in messages:
            key = (message.topic(), message.partition())
            if key not in floors:
                floors[key] = session.claim(*key)
            if message.offset() >= floors[key]:
                unapplied.append(message)
        if len(unapplied) < len(messages):
            log.info(
                "projection %s: %d events skipped, applied already by another process",
                self.name, len(messages) - len(unapplied),
            )  # fmt: skip
        return unapplied

    def _one(self, session: Session, message: Any) -> None:
        event_type = self.by_topic[message.topic()]
        meta, data, content_type = envelope.read(message.headers(), message.value())
        event = self._reader.read(event_type, data, content_type)
        meta.topic, meta.partition, meta.offset = (
            message.topic(),
            message.partition(),
            message.offset(),
        )
        event.attach(meta)
        self.fn(event, session.conn)
        session.advance(message.topic(), message.partition(), message.offset() + 1)

    # -- rebuilding ---------------------------------------------------------------------------

    def rebuild(
        self,
        kafka: dict[str, Any],
        *,
        reader: EventReader | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> tuple[Generation, Generation | None]:
        """Fold every event from the start of the topics into a new generation of the view,
        beside the live one (a build of this version left by an interrupted rebuild is resumed
        where its positions say), and switch to it in one transaction once it has caught up
        with the topics' ends; the old generation is dropped after. Returns the new live
        generation and the old one. One rebuild of a projection at a time."""
        if reader is not None:
            self._reader = reader
        say = progress or (lambda line: log.info("%s", line))
        with self.views.rebuilding():
            build, applied = self._build(kafka, say)
            old = self.views.switch(build)
        was = (
            f"generation {old.number} (version {old.version}), live before, dropped"
            if old
            else "there was no view before"
        )
        say(
            f"projection {self.name}: generation {build.number} (version {build.version}) is "
            f"live, {applied} events applied; {was}"
        )
        return build, old

    def _build(self, kafka: dict[str, Any], say: Callable[[str], None]) -> tuple[Generation, int]:
        """Fold the topics into the build until it has caught up; the build and how many
        events this run applied."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        build, resumed = self.views.start_build(self.version)
        session = self.views.session(build, building=True)
        consumer = Consumer(
            {
                **kafka,
                "group.id": f"{self.service}.{self.name}.rebuild",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        try:
            stored = session.positions()
            partitions = []
            for topic in self.by_topic:
                metadata = consumer.list_topics(topic, timeout=10).topics[topic]
                for number in sorted(metadata.partitions):
                    offset = stored.get((topic, number), OFFSET_BEGINNING)
                    partitions.append(TopicPartition(topic, number, offset))
            consumer.assign(partitions)
            say(
                f"projection {self.name}: {'resuming' if resumed else 'building'} generation "
                f"{build.number} (version {build.version}) in {self.views.describe()}"
            )
            applied, checked = 0, 0.0
            while True:
                messages = self._consume(consumer)
                if messages:
                    if not self._apply(session, messages):
                        raise ViewError(
                            f"projection {self.name}: another rebuild replaced this one"
                        )
                    applied += len(messages)
                if messages and time.monotonic() - checked < _CHECK_S:
                    continue
                checked = time.monotonic()
                behind = self._behind(consumer, partitions)
                if behind == 0:
                    break
                say(f"projection {self.name}: {applied} events applied, {behind} to go")
        finally:
            consumer.close()
            session.close()
        return build, applied

    def _behind(self, consumer: Any, partitions: list[Any]) -> int:
        """How many offsets the consumer is short of the partitions' ends (0: caught up)."""
        behind = 0
        at = {(tp.topic, tp.partition): tp.offset for tp in consumer.position(partitions)}
        for tp in partitions:  # before anything is consumed from one: where it started
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            position = max(at.get((tp.topic, tp.partition), -1), tp.offset, low)
            behind += max(high - position, 0)
        return behind

    # -- tests ----------------------------------------------------------------------------------

    def settled(self, kafka: dict[str, Any], timeout: float = 30.0) -> None:
        """Wait until the projection has applied everything its topics held when called to
        the live view (for tests: then the read model reflects every event sent before)."""
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
        live = self.views.live()
        while True:
            at, following = self._at, self._following
            if following is not None and following == live:
                if all(at.get(tp, -1) >= end for tp, end in ends.items()):
                    return
            else:  # not following the live view yet (a rebuild switched it just now)
                live = self.views.live()
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"projection {self.name} has not caught up in {timeout} s: at {at}, ends {ends}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
