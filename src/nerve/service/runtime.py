"""Running a Service: consume in batches, hand each event to its handlers in order per
partition, emit what they return, commit only what was handled and emitted.

One batch at a time: take what has arrived, up to ``batch_size`` records (without waiting
for the batch to fill), run every partition's records in order (partitions concurrently
while a handler awaits), then make the batch durable: exactly-once commits emits and offsets in
one Kafka transaction per batch; at-least-once waits for the emits' acknowledgements and stores
the offsets after them, once per ``commit_interval_s`` (and whenever the input pauses or a
partition leaves) for all the batches handled since, so that the next batch does not wait a
round trip to the broker (measured: that wait was most of a light stream's time in the service
and of its latency tail). Nothing is buffered beyond that, so a slow handler slows the consumer
instead of filling memory.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import (
    AcknowledgeType,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic
from pydantic import BaseModel, ValidationError

from nerve.security.client_settings import RefusalTrap
from nerve.service import catalog, compatibility, dead_letters, envelope, work_queue
from nerve.service.avro import CONTENT_TYPE as AVRO_CONTENT_TYPE
from nerve.service.avro import AvroCodec
from nerve.service.config import RunConfig
from nerve.service.content import EventReader
from nerve.service.events import Event, Meta
from nerve.service.handlers import Handler, RawEvent
from nerve.service.observability import NULL_OBSERVER, Observer
from nerve.service.service import Service
from nerve.service.tables import Table

log = logging.getLogger("nerve.service")


class ServiceError(RuntimeError):
    """A service cannot start or go on (its schema was refused, Kafka is unreachable, ...)."""


class EmitError(RuntimeError):
    """An event a handler returned cannot be sent (over message.max.bytes, ...)."""


class _BatchAborted(Exception):
    """The batch's transaction can no longer commit (librdkafka put it in an abortable state):
    abort it and do the batch again; not a handler's failure."""


def _aborts_transaction(exc: BaseException) -> bool:
    if not isinstance(exc, KafkaException) or not exc.args:
        return False
    error = exc.args[0]
    return bool(error.code() == KafkaError._STATE or error.txn_requires_abort())


# How long a starting service waits for Kafka to answer.
REACH_TIMEOUT_S = 10.0
# librdkafka's default for the client side of message.max.bytes.
DEFAULT_MESSAGE_MAX_BYTES = 1_000_000
# Delivery errors that sending again cannot cure: the input is charged with them.
_REFUSED_FOR_GOOD = {
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.INVALID_MSG_SIZE,
    KafkaError.INVALID_RECORD,
    KafkaError.RECORD_LIST_TOO_LARGE,
}


def _header(headers: Any, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return None


# A record batch's header (61 bytes) and one record's framing, rounded up.
_BATCH_OVERHEAD = 80


def _size(value: bytes, key: bytes | None, headers: envelope.Headers) -> int:
    """A record's size as librdkafka counts it against message.max.bytes (near enough)."""
    return len(value) + len(key or b"") + sum(len(n) + len(v or b"") + 8 for n, v in headers)


def _record_size(message: Message) -> int:
    headers: Any = message.headers() or []  # a list of pairs as delivered
    return _size(message.value() or b"", message.key(), headers)


def _record_id(message: Message) -> str:
    """An input's event id, as ``_handle`` gives it (a record without ``ce_id`` gets one
    from its position)."""
    return _header(message.headers(), "ce_id") or (
        f"{message.topic()}-{message.partition()}-{message.offset()}"
    )


async def _settled(future: asyncio.Future[None] | None) -> None:
    """Wait for ``future`` to finish, whatever its outcome (the batch fails anyway)."""
    if future is not None:
        await asyncio.gather(future, return_exceptions=True)


def _drive(coro: Any) -> tuple[bool, Any]:
    """Run a coroutine as far as it goes without suspending.

    Most handlers never really wait; driving them by hand saves the event loop a task per
    event (measured: the largest single cost of dispatch). Returns (True, its result) or
    (False, an awaitable that finishes it).
    """
    try:
        pending = coro.send(None)
    except StopIteration as stop:
        return True, stop.value
    return False, _Resumed(coro, pending)


def _take(consumer: Consumer, size: int, timeout: float) -> list[Message]:
    """Up to ``size`` records, handed on as soon as any have arrived: ``consume(size,
    timeout)`` waits the whole timeout for the batch to fill, which put up to that long
    (0.1 s by default) on every record of a light stream. Under load the queue holds a full
    batch and the first call takes it, so batching is kept where it pays."""
    messages = consumer.consume(size, 0)
    if messages:
        return messages
    first = consumer.consume(1, timeout)
    if not first or size == 1:
        return first
    return first + consumer.consume(size - 1, 0)


class _Resumed:
    """The rest of a coroutine that suspended on ``pending``: awaiting this hands ``pending``
    to the event loop and goes on exactly as a task would have."""

    def __init__(self, coro: Any, pending: Any) -> None:
        self.coro, self.pending = coro, pending

    def __await__(self) -> Any:
        pending = self.pending
        while True:
            try:
                sent = yield pending
            except BaseException as exc:  # cancellation, or an error the loop threw in
                try:
                    pending = self.coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                pending = self.coro.send(sent)
            except StopIteration as stop:
                return stop.value


class ServiceRunner:
    def __init__(
        self,
        service: Service,
        config: RunConfig | None = None,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        self.service = service
        self.config = config or RunConfig()
        self.observer = observer
        self.source = f"/nerve/services/{service.name}"
        self.by_topic: dict[str, list[Handler]] = defaultdict(list)
        for handler in service.handlers:
            self.by_topic[handler.topic].append(handler)
        self.owned_tables: dict[type[Event], Table[Any]] = {
            t.owner_event: t for t in service.tables if t.owner_event is not None
        }
        self.schema_ids: dict[type[Event], int] = {}
        self.avro: AvroCodec | None = None
        self.reader = EventReader(None)  # given the registry (and Avro codec) at start
        self.consumer: Consumer | None = None
        # A share-group member (Service(..., share_group=True)) instead of a consumer group's.
        self.share: Any = None  # confluent_kafka.ShareConsumer
        self.acks = work_queue.Acknowledgements()
        self.delivery_limit = work_queue.DEFAULT_DELIVERY_LIMIT
        self.producer: Producer | None = None
        self.handled: Table[Any] | None = None
        self.tables: list[Table[Any]] = list(service.tables)
        # Failed deliveries with the handler and input (topic, partition, offset) they came from.
        self._failed_deliveries: list[tuple[KafkaError, Message, Any]] = []
        # Inputs whose emits the broker refused for good (too large, invalid), by position and
        # handler: how often, and why. A redone batch dead-letters them once the handler's
        # attempts are spent instead of redoing the batch for ever.
        self._refused: dict[tuple[str, int, int, str], tuple[int, str]] = {}
        self._topic_limits: dict[str, int] = {}
        self.max_message_bytes = int(
            self.config.kafka().get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES)
        )
        self._dlq_topics: set[str] = set()
        self._late_topics: set[str] = set()
        self._committed: dict[tuple[str, int], int] = {}
        self._positions_due = 0.0
        # At-least-once: batches handled since the emits were last acknowledged, by partition
        # the first record (where a failure reads again from) and the offset to store after.
        self._unit: dict[tuple[str, int], list[Message]] = {}
        self._unit_offsets: dict[tuple[str, int], TopicPartition] = {}
        self._unit_due = 0.0
        self.streams: Any = None  # nerve.streams.running.StreamsPart, for a service with streams
        self.identity: Any = None  # nerve.service.identity.TransactionalIdentity, the same
        self.events_in = 0
        self.events_out = 0
        self.errors = 0

    # -- start and stop ----------------------------------------------------------------------

    def start(self) -> None:
        """Blocking: create topics, register schemas, restore tables, join the group."""
        kafka = self.config.kafka()
        # Quiet until Kafka answers: librdkafka would log every failed connection attempt,
        # hundreds of lines before the one that says what is wrong.
        trap = RefusalTrap()
        probe_config: dict[str, Any] = {"error_cb": trap, **kafka, "log_level": 0}
        probe = AdminClient(probe_config)
        try:
            probe.list_topics(timeout=REACH_TIMEOUT_S)
        except KafkaException:
            where = f"{self.service.name}: cannot reach Kafka at {self.config.bootstrap_servers}"
            refusal = trap.why(probe, "")
            if refusal:
                raise ServiceError(f"{where}: {refusal}") from None
            raise ServiceError(f"{where} within {REACH_TIMEOUT_S:g} s") from None
        admin = AdminClient(kafka)
        event_types = {h.event_type for h in self.service.handlers if h.event_type} | set(
            self.service.emits
        )
        wanted: dict[str, int | None] = {h.topic: None for h in self.service.handlers}
        for event_type in event_types:
            wanted[event_type.topic] = getattr(event_type, "partitions", None)
        ensure_topics(admin, wanted)
        builder = self.service.streams_builder
        if builder is not None and builder.sources:
            from nerve.streams.running import StreamsPart

            state_dir = Path(self.config.state_dir or Path(".nerve") / "state")
            self.streams = StreamsPart(self, state_dir)
            self.streams.prepare(admin, ensure_topics)
            self.streams.start_queries()
        self._register_schemas()
        self.reader = EventReader(self.config.registry_url, self.avro)
        self._check_readers()
        if any(h.idempotent for h in self.service.handlers):
            topic = f"{self.service.name}.handled"
            ensure_topics(admin, {topic: None}, compact=True)
            # The runner's own: a module-level Service must not collect one per run.
            self.handled = Table(topic)
            self.tables.append(self.handled)
        for table in self.tables:
            table.start(kafka, reader=self.reader)
        for projection in self.service.projections:
            ensure_topics(admin, {t: c.partitions for t, c in projection.by_topic.items()})
            projection.start(kafka, reader=self.reader)
        # Services are known by their name in the cluster (kafka-consumer-groups' CLIENT-ID,
        # broker logs, quotas), unless the run configuration names them otherwise.
        named = {"client.id": self.service.name, **self.config.client_config}
        producer_config = self.config.kafka(
            **{
                "linger.ms": 5,
                "enable.idempotence": True,
                "client.id": named["client.id"],
                # Keys go where the Java client and Kafka Streams put them (murmur2), so a
                # topic written by a nerve service is co-partitioned with one written by any
                # other Kafka producer or streams application: joins need that.
                "partitioner": "murmur2_random",
            }
        )
        if self.service.exactly_once:
            # The id kept in the state directory (nerve.service.identity): a restart fences the
            # killed process and aborts its open transaction at once. A second live process on
            # the same directory gets an id of its own, so replicas never fence each other (the
            # group generation fences zombies, KIP-447). A process that cannot keep its id leaves
            # a killed transaction to the timeout, so the timeout is short; a batch commits well
            # within it.
            from nerve.service.identity import TransactionalIdentity

            state_dir = Path(self.config.state_dir or Path(".nerve") / "state")
            self.identity = TransactionalIdentity(self.service.name, state_dir)
            producer_config["transactional.id"] = self.identity.transactional_id
            producer_config["transaction.timeout.ms"] = 10_000
        self.producer = Producer(producer_config)
        if self.service.exactly_once:
            self.producer.init_transactions(30)
        # Streams: same-numbered partitions of co-partitioned topics to one replica (a join's
        # two sides); otherwise move as little as possible.
        assignor = "range" if self.streams is not None else "cooperative-sticky"
        group: dict[str, object] = {"partition.assignment.strategy": assignor}
        if self.service.group_protocol == "consumer":
            # KIP-848: the broker assigns (its range co-partitions too) and keeps the session.
            remote = "range" if self.streams is not None else "uniform"
            group = {"group.protocol": "consumer", "group.remote.assignor": remote}
        if self.service.share_group:
            self._start_share(admin, named["client.id"])
        else:
            self._start_consumer(group, named["client.id"])
        catalog.announce(self.service, self.config, self.schema_ids)
        self.observer.started(self.service)
        log.info(
            "service %s started%s: consumes %s, emits %s",
            self.service.name,
            " (share group)" if self.share is not None else "",
            ", ".join([*self.by_topic, *sorted(self.streams.topics if self.streams else ())])
            or "nothing",
            ", ".join(e.topic for e in self.service.emits) or "nothing",
        )

    def _start_share(self, admin: AdminClient, client_id: str) -> None:
        name = self.service.name
        if not self.by_topic:
            return
        work_queue.prepare_group(admin, name, self.service.start, name)
        self.delivery_limit = work_queue.delivery_limit(admin, name)
        self.share = work_queue.make_consumer(
            self.config.kafka(**{"group.id": name, "client.id": client_id})
        )
        self.share.subscribe(list(self.by_topic))

    def _start_consumer(self, group: dict[str, object], client_id: str) -> None:
        self.consumer = Consumer(
            self.config.kafka(
                **{
                    "group.id": self.service.name,
                    "client.id": client_id,
                    "auto.offset.reset": self.service.start,
                    "enable.auto.commit": not self.service.exactly_once,
                    "enable.auto.offset.store": False,
                    "isolation.level": "read_committed",
                    **group,
                    # What librdkafka prefetches beyond the batch in hand is bounded too
                    # (its default allows 64 MiB).
                    "queued.max.messages.kbytes": 16_384,
                }
            )
        )
        topics = list(self.by_topic)
        if self.streams is not None:
            topics += [t for t in self.streams.topics if t not in self.by_topic]
        if topics:  # a service of projections or tables only consumes nothing itself
            self.consumer.subscribe(
                topics,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_revoke,
            )

    def _register_schemas(self) -> None:
        """Register what the service emits (JSON Schema, or Avro for ``format="avro"``);
        Avro events in or out need the registry, to encode and to resolve writer schemas."""
        consumed_avro = [
            h.event_type
            for h in self.service.handlers
            if h.event_type is not None and h.event_type.value_format == "avro"
        ]
        emitted_avro = [e for e in self.service.emits if e.value_format == "avro"]
        if not self.config.registry_url:
            if consumed_avro or emitted_avro:
                names = ", ".join(e.__name__ for e in [*consumed_avro, *emitted_avro])
                raise ServiceError(
                    f"{self.service.name}: Avro events ({names}) need a schema registry"
                )
            return
        import json

        from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        if consumed_avro or emitted_avro:
            self.avro = AvroCodec(self.config.registry_url)
        client = SchemaRegistryClient({"url": self.config.registry_url})
        for event_type in self.service.emits:
            subject = f"{event_type.topic}-value"
            try:
                if event_type.value_format == "avro":
                    assert self.avro is not None
                    self.schema_ids[event_type] = self.avro.register(subject, event_type)
                else:
                    schema = Schema(json.dumps(event_type.model_json_schema()), "JSON")
                    self.schema_ids[event_type] = client.register_schema(subject, schema)
            except SchemaRegistryError as exc:
                raise ServiceError(
                    f"{self.service.name}: the registry refused the schema of "
                    f"{event_type.__name__} for {subject}: {exc.error_message}"
                ) from None
            except Exception as exc:  # unreachable registry: say so, do not start half-checked
                raise ServiceError(
                    f"{self.service.name}: cannot register {subject} with the registry at "
                    f"{self.config.registry_url}: {exc}"
                ) from None

    def _check_readers(self) -> None:
        """Refuse to start when a consumed model cannot read its subject's latest schema (a
        field it requires is gone, or changed type); warn when only some events may fail."""
        if not self.config.registry_url:
            return
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        readers: dict[str, type[BaseModel]] = {}
        for handler in self.service.handlers:
            if handler.event_type is not None:
                readers.setdefault(handler.topic, handler.event_type)
        for table in self.service.tables:
            if table.model is not None:
                readers.setdefault(table.topic, table.model)
        if not readers:
            return
        client = SchemaRegistryClient({"url": self.config.registry_url})
        refusals: list[str] = []
        for topic, model in readers.items():
            subject = f"{topic}-value"
            try:
                latest = client.get_latest_version(subject)
            except SchemaRegistryError as exc:
                if exc.http_status_code != 404:  # 404: no producer registered one yet
                    log.warning(
                        "%s: cannot check %s against %s: %s",
                        self.service.name,
                        model.__name__,
                        subject,
                        exc.error_message,
                    )
                continue
            except Exception as exc:
                log.warning(
                    "%s: cannot check %s against %s: the registry at %s: %s",
                    self.service.name,
                    model.__name__,
                    subject,
                    self.config.registry_url,
                    exc,
                )
                continue
            where = f"{subject} version {latest.version} (schema id {latest.schema_id})"
            for problem in self._reader_problems(model, latest.schema):
                text = f"{self.service.name}: {model.__name__} reading {where}: " + (
                    f"field {problem.field!r}: {problem.message}"
                    if problem.field
                    else problem.message
                )
                if problem.fatal:
                    refusals.append(text)
                else:
                    log.warning("%s", text)
        if refusals:
            raise ServiceError("; ".join(refusals))

    @staticmethod
    def _reader_problems(model: type[BaseModel], schema: Any) -> list[compatibility.Problem]:
        # A model reads data by its content type, whatever format it writes itself, so the
        # writer's schema is checked in its own terms.
        schema_type = schema.schema_type or "AVRO"
        if schema_type not in ("AVRO", "JSON"):
            return []  # Protobuf: read through its JSON mapping; not checked at start
        try:
            writer = compatibility.writer_schema(schema_type, schema.schema_str or "")
        except ValueError as exc:
            return [compatibility.Problem("", f"the latest schema is not JSON: {exc}", True)]
        if schema_type == "JSON":
            return compatibility.json_problems(model, writer)
        if getattr(model, "value_format", "json") == "avro":
            from nerve.service.avro import avro_schema

            return compatibility.avro_problems(avro_schema(model), writer)
        return compatibility.avro_writer_problems(model, writer)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Inside poll: a streams task restores its state before its first record.
        if self.streams is not None:
            self.streams.assigned(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Called inside poll, between batches: every stored offset belongs to handled events.
        if not self.service.exactly_once:
            self._finish_unit_now()
            try:
                consumer.commit(asynchronous=False)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError._NO_OFFSET:
                    log.warning("%s: commit on revoke failed: %s", self.service.name, exc)
        if self.streams is not None:
            self.streams.revoked(partitions)

    def close(self) -> None:
        """Graceful: the current batch has finished; commit and leave the group."""
        if self.producer is not None:
            self.producer.flush(30)
        if self.consumer is not None:
            self._on_revoke(self.consumer, [])
            self.consumer.close()
            self.consumer = None
        if self.share is not None:
            try:
                self.share.close()  # sends the last batch's acknowledgements, leaves the group
            except KafkaException as exc:
                log.warning("%s: closing the share consumer: %s", self.service.name, exc)
            self.share = None
        for table in self.tables:
            table.stop()
        if self.streams is not None:
            self.streams.close()
        for projection in self.service.projections:
            projection.stop()
        if self.identity is not None:
            self.identity.close()
            self.identity = None

    # -- the loop ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        if self.service.share_group:
            await self._run_share(stop)
            return
        loop = asyncio.get_running_loop()
        assert self.consumer is not None
        consumer = self.consumer
        batch_size = self.service.max_in_flight or self.config.batch_size
        lag_due = 0.0
        while not stop.is_set():
            messages = await loop.run_in_executor(
                None, _take, consumer, batch_size, self.config.poll_timeout_s
            )
            if messages or (self.streams is not None and self.streams.held):
                await self.handle_batch(messages)
            elif self.producer is not None:
                self.producer.poll(0)
                if self._unit:  # the input paused: what was handled is made durable now
                    await self._finish_unit()
                if self.streams is not None and self.service.exactly_once:
                    if self.streams.wall_clock and self.streams.engine.due():
                        await self._punctuate()
                    await self._commit_positions()
            if self.observer is not NULL_OBSERVER and time.monotonic() >= lag_due:
                lag_due = time.monotonic() + 5
                self._report_lag(consumer)

    async def _run_share(self, stop: asyncio.Event) -> None:
        """A share-group member's loop: poll what the broker hands out (at most its
        ``max.poll.records``), handle it, acknowledge each record once the batch is durable;
        the acknowledgements go with the next poll."""
        loop = asyncio.get_running_loop()
        share = self.share
        while not stop.is_set():
            if share is None:  # consumes nothing itself (tables, projections only)
                await asyncio.sleep(self.config.poll_timeout_s)
                continue
            messages = list(
                await loop.run_in_executor(None, share.poll, self.config.poll_timeout_s)
            )
            if messages:
                await self.handle_batch(messages)
            elif self.producer is not None:
                self.producer.poll(0)

    async def _commit_positions(self) -> None:
        """Exactly-once, idle: commit positions that moved past the last commit without a
        record (over transaction markers), so the group's committed offsets reach the end of
        its inputs, as Kafka Streams' do (tools that watch lag see zero)."""
        now = time.monotonic()
        if now < self._positions_due:
            return
        self._positions_due = now + 1.0
        assert self.consumer is not None and self.producer is not None
        moved = [
            tp
            for tp in self.consumer.position(self.consumer.assignment())
            if tp.offset >= 0
            and tp.offset > self._committed.get((tp.topic, tp.partition), -1)
            and not (self.streams is not None and self.streams.holds(tp.topic, tp.partition))
        ]
        if not moved:
            return
        loop = asyncio.get_running_loop()
        try:
            self.producer.begin_transaction()
            metadata = self.consumer.consumer_group_metadata()
            self.producer.send_offsets_to_transaction(moved, metadata, 30)
            await loop.run_in_executor(None, self.producer.commit_transaction, 30)
        except KafkaException as exc:
            log.info("%s: committing idle positions failed: %s", self.service.name, exc)
            if exc.args[0].txn_requires_abort():
                self.producer.abort_transaction(30)
            return
        for tp in moved:
            self._committed[(tp.topic, tp.partition)] = tp.offset

    async def _punctuate(self) -> None:
        """Idle, exactly-once: deadlines due by the wall clock (sagas) fire in a transaction
        of their own, with the state they change (no input offsets move)."""
        assert self.producer is not None and self.streams is not None
        loop = asyncio.get_running_loop()
        self.producer.begin_transaction()
        try:
            self.streams.engine.punctuate()
            self.streams.before_durable()
            await loop.run_in_executor(None, self.producer.commit_transaction, 30)
        except KafkaException as exc:
            log.warning("%s: a deadline's transaction failed, redone: %s", self.service.name, exc)
            if exc.args[0].txn_requires_abort():
                self.producer.abort_transaction(30)
            self._note_refused()
            self.streams.failed()
            return
        except BaseException:
            self.producer.abort_transaction(30)
            self.streams.failed()
            raise
        self._failed_deliveries = []
        self.streams.durable()

    def _report_lag(self, consumer: Consumer) -> None:
        # Local state only (the high watermark of the last fetch): no request to the broker.
        for tp in consumer.position(consumer.assignment()):
            high = consumer.get_watermark_offsets(tp, cached=True)[1]
            if tp.offset >= 0 and high >= 0:
                self.observer.lag(self.service.name, tp.topic, tp.partition, high - tp.offset)

    async def handle_batch(self, messages: list[Message]) -> None:
        assert self.producer is not None and (self.consumer or self.share) is not None
        by_partition: dict[tuple[str, int], list[Message]] = defaultdict(list)
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("%s: %s", self.service.name, error)
                continue
            by_partition[(message.topic() or "", message.partition() or 0)].append(message)
        for (topic, _), records in by_partition.items():
            self.observer.consumed(self.service.name, topic, len(records))
        runs: Iterable[list[Message]] = by_partition.values()
        if self.streams is not None and self.streams.ordered:
            # Joins: a task's inputs in timestamp order, some held for the next batch.
            runs = self.streams.arrange(by_partition)
            if not by_partition:
                return
        offsets = [
            TopicPartition(topic, partition, (records[-1].offset() or 0) + 1)
            for (topic, partition), records in by_partition.items()
        ]
        sending: asyncio.Future[None] | None = None
        if self.service.exactly_once:
            self.producer.begin_transaction()
            if self.consumer is not None and self.share is None:
                # The batch's offsets are known before it is handled: they go to the
                # transaction while it is (AddOffsetsToTxn and TxnOffsetCommit, two round
                # trips, measured ~2.3 ms of a 500-command batch's 25 ms, were waited for after
                # it). A batch that fails aborts them with the rest.
                metadata = self.consumer.consumer_group_metadata()
                sending = asyncio.get_running_loop().run_in_executor(
                    None, self.producer.send_offsets_to_transaction, offsets, metadata, 30
                )
        pending = [self._handle_partition(records) for records in runs]
        waiting: list[Awaitable[Any]] = []
        try:
            for coro in pending:
                task = self._start(coro)
                if task is not None:
                    waiting.append(task)
            if waiting:
                await asyncio.gather(*waiting)
        except _BatchAborted as exc:
            log.warning(
                "%s: transaction failed, the batch is redone: %s", self.service.name, exc.__cause__
            )
            # Nothing of this batch may go on into the next transaction.
            for task in waiting:
                task.cancel()  # type: ignore[attr-defined]
            await asyncio.gather(*waiting, return_exceptions=True)
            for coro in pending:
                coro.close()  # the partitions not started yet
            await _settled(sending)  # no abort while a call of the transaction is under way
            self.producer.abort_transaction(30)
            self._note_refused()
            self._rewind(by_partition)
            return
        except BaseException:
            await _settled(sending)
            raise
        if self.streams is not None and self.streams.wall_clock:
            self.streams.engine.punctuate()  # deadlines due meanwhile, in this transaction
        if self._defers_durability():
            if not self._unit:
                self._unit_due = time.monotonic() + self.config.commit_interval_s
            for where, records in by_partition.items():
                self._unit.setdefault(where, records[:1])
            for tp in offsets:
                self._unit_offsets[(tp.topic, tp.partition)] = tp
            if time.monotonic() >= self._unit_due:
                await self._finish_unit()
            elif self.streams is not None:
                self.streams.between_commits()
            return
        if self.streams is not None:
            try:
                self.streams.before_durable()
            except BaseException:
                await _settled(sending)
                raise
        await self._make_durable(offsets, by_partition, sending)

    def _defers_durability(self) -> bool:
        """At-least-once in a consumer group makes several batches durable at once."""
        return (
            self.consumer is not None
            and self.share is None
            and not self.service.exactly_once
            and self.config.commit_interval_s > 0
        )

    def _take_unit(self) -> tuple[list[TopicPartition], dict[tuple[str, int], list[Message]]]:
        offsets, unit = list(self._unit_offsets.values()), self._unit
        self._unit, self._unit_offsets = {}, {}
        if self.streams is not None:
            self.streams.before_durable()  # the changed keys to the changelogs, once per unit
        return offsets, unit

    async def _finish_unit(self) -> None:
        """The batches handled since the last acknowledgement: their emits acknowledged, then
        their offsets stored (or, failing, all of them read again)."""
        offsets, unit = self._take_unit()
        await self._make_durable(offsets, unit)

    def _finish_unit_now(self) -> None:
        """``_finish_unit`` inside poll (a partition leaves, the service stops): before the
        offsets are committed."""
        if not self._unit:
            return
        assert self.producer is not None and self.consumer is not None
        offsets, unit = self._take_unit()
        remaining = self.producer.flush(30)
        if remaining or self._failed_deliveries:
            failures = self._note_refused()
            log.error(
                "%s: %d emits not acknowledged (%s); their inputs are read again",
                self.service.name,
                remaining + len(failures),
                failures[0] if failures else "timeout",
            )
            try:
                self._rewind(unit)
            except KafkaException as exc:  # a partition already gone: its next owner reads it
                log.info("%s: rewinding: %s", self.service.name, exc)
            return
        self.consumer.store_offsets(offsets=offsets)
        if self.streams is not None:
            self.streams.durable()

    @staticmethod
    def _start(coro: Any) -> Awaitable[Any] | None:
        """Run one partition's records as far as they go; if a handler suspends, the rest
        becomes a task. Each partition runs in its own context, so that context variables a
        handler call sets (the correlation id in logs, the current span) stay with it across
        awaits instead of leaking into another partition's."""
        context = contextvars.copy_context()
        done, value = context.run(_drive, coro)
        if done:
            return None

        async def finish() -> Any:
            return await value

        return asyncio.get_running_loop().create_task(finish(), context=context)

    async def _make_durable(
        self,
        offsets: list[TopicPartition],
        batch: dict[tuple[str, int], list[Message]],
        sending: asyncio.Future[None] | None = None,
    ) -> None:
        """Commit the batch (exactly-once: its offsets in the transaction, sent already if
        ``sending``), or flush its emits and store its offsets."""
        assert self.producer is not None
        loop = asyncio.get_running_loop()
        if self.share is not None:
            remaining = await loop.run_in_executor(None, self.producer.flush, 30)
            records = [m for records in batch.values() for m in records]
            failed = bool(remaining or self._failed_deliveries)
            if failed:
                failures = self._note_refused()
                log.error(
                    "%s: %d emits not acknowledged (%s); the batch's records are released",
                    self.service.name,
                    remaining + len(failures),
                    failures[0] if failures else "timeout",
                )
            self.acks.settle(self.share, records, release_all=failed)
            return
        assert self.consumer is not None
        if self.service.exactly_once:
            try:
                if sending is not None:
                    await sending
                else:
                    metadata = self.consumer.consumer_group_metadata()
                    self.producer.send_offsets_to_transaction(offsets, metadata, 30)
                await loop.run_in_executor(None, self.producer.commit_transaction, 30)
            except KafkaException as exc:
                log.warning(
                    "%s: transaction failed, the batch is redone: %s", self.service.name, exc
                )
                if exc.args[0].txn_requires_abort():
                    self.producer.abort_transaction(30)
                self._note_refused()
                self._rewind(batch)
                return
            self._failed_deliveries = []
            for tp in offsets:
                self._committed[(tp.topic, tp.partition)] = tp.offset
            if self.streams is not None:
                self.streams.durable()
            return
        remaining = await loop.run_in_executor(None, self.producer.flush, 30)
        if remaining or self._failed_deliveries:
            failures = self._note_refused()
            log.error(
                "%s: %d emits not acknowledged (%s); the batch is redone",
                self.service.name,
                remaining + len(failures),
                failures[0] if failures else "timeout",
            )
            self._rewind(batch)
            return
        self.consumer.store_offsets(offsets=offsets)
        if self.streams is not None:
            self.streams.durable()

    def _note_refused(self) -> list[KafkaError]:
        """Take the failed deliveries. One the broker refused for good counts as a failed
        attempt of the input that caused it. librdkafka sends records in batches and the
        broker refuses a whole batch, so a refusal for size teaches the topic's own limit: the
        redone batch refuses the oversized event before sending it, and the events sent beside
        it are not charged."""
        failures, self._failed_deliveries = self._failed_deliveries, []
        for error, emitted, cause in failures:
            if error.code() not in _REFUSED_FOR_GOOD or cause is None:
                continue
            topic = emitted.topic() or ""
            if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                limit = self._topic_limit(topic)
                if limit is not None and _record_size(emitted) <= limit:
                    continue  # refused for the company it was in
            count, _ = self._refused.get(cause, (0, ""))
            self._refused[cause] = (count + 1, f"emitting to {topic} failed: {error.str()}")
        return [error for error, _, _ in failures]

    def _topic_limit(self, topic: str) -> int | None:
        """The largest record a topic takes (its max.message.bytes less a batch's overhead),
        asked once, after the broker refused a batch of it for size."""
        if topic in self._topic_limits:
            return self._topic_limits[topic]
        from confluent_kafka.admin import ConfigResource

        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        admin = AdminClient(self.config.kafka())  # held until the answer: its futures need it
        try:
            entries = admin.describe_configs([resource])[resource].result(10)
            value = int(entries["max.message.bytes"].value)
        except Exception as exc:
            log.warning(
                "%s: cannot read max.message.bytes of %s: %s", self.service.name, topic, exc
            )
            return None
        limit = self._topic_limits[topic] = value - _BATCH_OVERHEAD
        return limit

    def _rewind(self, batch: dict[tuple[str, int], list[Message]]) -> None:
        if self.share is not None:
            records = [m for records in batch.values() for m in records]
            self.acks.settle(self.share, records, release_all=True)
            return
        assert self.consumer is not None
        if self.streams is not None:
            self.streams.failed()
        for (topic, partition), records in batch.items():
            self.consumer.seek(TopicPartition(topic, partition, records[0].offset() or 0))

    # -- one partition's records, in order ---------------------------------------------------

    async def _handle_partition(self, records: list[Message]) -> None:
        for message in records:
            done, value = _drive(self._handle(message))
            if not done:
                await value

    async def _handle(self, message: Message) -> None:
        topic = message.topic() or ""
        self.events_in += 1
        streams = self.streams
        if streams is not None and topic in streams.internal_sources:
            await self._stream(message, None, None, None)
            return
        try:
            meta, data, content_type = envelope.read(message.headers(), message.value())
        except envelope.EnvelopeError as exc:
            await self._dead_letter(message, exc, 1, "envelope")
            return
        meta.topic, meta.partition, meta.offset = topic, message.partition(), message.offset()
        meta.key = message.key()
        if not meta.id:
            meta.id = f"{topic}-{meta.partition}-{meta.offset}"
        if streams is not None and topic in streams.topics:
            await self._stream(message, meta, data, content_type)
        decoded: dict[type[Event] | None, Any] = {}
        for handler in self.by_topic.get(topic, ()):
            event = decoded.get(handler.event_type)
            if event is None:
                tombstone = data is None and handler.event_type is not None
                if tombstone and handler.event_type.skips_tombstones:  # type: ignore[union-attr]
                    continue  # a compaction marker (Debezium's after a delete), no event
                try:
                    event = self._decode(handler, data, content_type, meta)
                except (ValidationError, ValueError) as exc:
                    await self._dead_letter(message, exc, 1, handler.name)
                    return
                decoded[handler.event_type] = event
            if handler.where is not None:
                try:
                    if not handler.where(event):
                        continue
                except Exception as exc:
                    await self._dead_letter(message, exc, 1, handler.name)
                    continue
            if handler.idempotent and self.handled is not None and meta.id in self.handled:
                continue
            if self._refused:
                position = (topic, meta.partition or 0, meta.offset or 0, handler.name)
                refused = self._refused.get(position)
                if refused is not None and refused[0] >= handler.retry.attempts:
                    del self._refused[position]
                    await self._dead_letter(message, refused[1], refused[0], handler.name, meta)
                    continue
            await self._call(handler, event, meta, message)

    async def _stream(
        self, message: Message, meta: Meta | None, data: Any, content_type: str | None
    ) -> None:
        """A record of a streams source through its task. A function of the user's that
        raises (or an event that cannot be read) dead-letters the record, with the reason."""
        try:
            self.streams.handle(message, meta, data, content_type)
        except (KafkaException, _BatchAborted):
            raise
        except Exception as exc:
            if self.service.exactly_once and _aborts_transaction(exc):
                raise _BatchAborted from exc
            self.errors += 1
            await self._dead_letter(message, exc, 1, "streams", meta, counted=True)

    def _decode(
        self, handler: Handler, data: bytes | None, content_type: str | None, meta: Meta
    ) -> Any:
        if handler.event_type is None:
            return RawEvent(meta.key, data, meta)
        # By the data's media type, whatever the class itself writes (content.EventReader).
        event = self.reader.read(handler.event_type, data, content_type)
        event.attach(meta)
        return event

    async def _call(self, handler: Handler, event: Any, meta: Meta, message: Message) -> None:
        if self.observer is NULL_OBSERVER:  # the hot path pays nothing for observability
            await self._attempt(handler, event, meta, message)
            return
        with self.observer.handling(self.service.name, handler.name, meta):
            await self._attempt(handler, event, meta, message)

    async def _attempt(self, handler: Handler, event: Any, meta: Meta, message: Message) -> None:
        attempt = 0
        if self._refused:  # the broker refused what earlier attempts emitted
            position = (meta.topic or "", meta.partition or 0, meta.offset or 0, handler.name)
            attempt = self._refused.pop(position, (0, ""))[0]
        attempts = handler.retry.attempts
        if self.share is not None:
            # A share group tries again by redelivery (to any replica): this delivery is the
            # attempt its count says, and the broker's limit caps the attempts.
            attempt = max(attempt, (message.delivery_count() or 1) - 1)
            attempts = min(attempts, self.delivery_limit)
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                emitted = await self._invoke(handler, event)
                # A failure to emit (an event over message.max.bytes, one Avro cannot encode)
                # is the handler's failure: retried, then dead-lettered; never a crash.
                self._emit_all(emitted, meta, handler.name)
                break
            except Exception as exc:
                if self.service.exactly_once and _aborts_transaction(exc):
                    raise _BatchAborted from exc
                self.errors += 1
                self.observer.failed(self.service.name, handler.name, meta, exc)
                if attempt >= attempts:
                    await self._dead_letter(message, exc, attempt, handler.name, meta)
                    return
                await asyncio.sleep(handler.retry.delay(attempt))
                if self.share is not None:
                    log.info(
                        "%s: %s failed on event %s (attempt %d of %d), released to be tried "
                        "again: %s: %s",
                        self.service.name,
                        handler.name,
                        meta.id,
                        attempt,
                        attempts,
                        type(exc).__name__,
                        exc,
                    )
                    self.acks.mark(message, AcknowledgeType.RELEASE)
                    return
        if self.observer is not NULL_OBSERVER:
            elapsed = time.perf_counter() - started
            self.observer.handled(self.service.name, handler.name, meta, elapsed)
        if handler.idempotent and self.handled is not None:
            assert self.producer is not None
            key = meta.id.encode()
            self.producer.produce(
                self.handled.topic, value=b"{}", key=key, on_delivery=self._delivered
            )
            self.handled.put_local(key, {})

    async def _invoke(self, handler: Handler, event: Any) -> list[Event]:
        func = handler.func
        if handler.is_async_generator:
            return [item async for item in func(event)]
        result = func(event)
        if isinstance(result, Event):  # the common case first
            return [result]
        if inspect.iscoroutine(result):
            done, value = _drive(result)
            result = value if done else await value
        if result is None:
            return []
        if isinstance(result, Event):
            return [result]
        if inspect.isgenerator(result) or isinstance(result, list | tuple):
            items = list(result)
        else:
            raise TypeError(
                f"{handler.name} returned {type(result).__name__}; return an Event, a list of "
                "events or None, or yield events"
            )
        for item in items:
            if not isinstance(item, Event):
                raise TypeError(f"{handler.name} emitted {type(item).__name__}, not an Event")
        return items

    # -- emitting ----------------------------------------------------------------------------

    def emit(self, event: Event, cause: Meta | None = None) -> None:
        """Send an event; with a cause it inherits the cause's correlation id and trace."""
        self._emit_all([event], cause, None)

    def _emit_all(self, events: list[Event], cause: Meta | None, handler: str | None) -> None:
        """Encode every event, then send them all: one that cannot be sent (too large to
        encode or to send) fails the call before any of them is sent."""
        if not events:
            return
        assert self.producer is not None
        records = [self._encode(event, cause) for event in events]
        delivered: Callable[[KafkaError | None, Message], None] = self._delivered
        if handler is not None and cause is not None:
            # A delivery report has no headers: what a refused one is charged to rides along
            # (measured: a partial per handler call is ~0.2 us, under 1% of an event's cost).
            position = (cause.topic or "", cause.partition or 0, cause.offset or 0, handler)
            delivered = functools.partial(self._delivered, cause=position)
        for event, (value, key, headers) in zip(events, records, strict=True):
            self.producer.produce(
                event.topic, value=value, key=key, headers=headers, on_delivery=delivered
            )
            self.events_out += 1
            table = self.owned_tables.get(type(event))
            if table is not None:
                table.put_local(key, event)

    def _encode(
        self, event: Event, cause: Meta | None
    ) -> tuple[bytes, bytes | None, envelope.Headers]:
        meta = event.meta
        meta.source = self.source
        meta.type = event.event_type
        if cause is not None:
            meta.correlation_id = cause.correlation_id or cause.id
            meta.causation_id = cause.id
            meta.traceparent = meta.traceparent or cause.traceparent
        schema_id = self.schema_ids.get(type(event))
        if schema_id is not None and self.config.registry_url:
            meta.dataschema = f"{self.config.registry_url}/schemas/ids/{schema_id}"
        key = event.record_key()
        if self.observer is not NULL_OBSERVER:
            self.observer.emitted(self.service.name, event.topic, meta)
        if event.value_format == "avro":
            assert self.avro is not None and schema_id is not None
            value = self.avro.encode(event, schema_id)
            content_type = AVRO_CONTENT_TYPE
        else:
            value = event.__pydantic_serializer__.to_json(event)
            content_type = envelope.JSON
        if event.content_mode == envelope.BINARY_MODE:
            headers = envelope.to_headers(meta, content_type)
        else:
            value, headers = envelope.to_structured(meta, value, content_type)
        size = _size(value, key, headers)
        if size > self.max_message_bytes:
            raise EmitError(
                f"{type(event).__name__} for {event.topic} is {size} bytes, over "
                f"message.max.bytes ({self.max_message_bytes})"
            )
        if self._topic_limits and size > self._topic_limits.get(event.topic, size):
            raise EmitError(
                f"{type(event).__name__} for {event.topic} is {size} bytes, too large for the "
                f"topic's max.message.bytes ({self._topic_limits[event.topic] + _BATCH_OVERHEAD})"
            )
        return value, key, headers

    def _delivered(self, error: KafkaError | None, message: Message, cause: Any = None) -> None:
        if error is not None:
            self._failed_deliveries.append((error, message, cause))

    async def _dead_letter(
        self,
        message: Message,
        error: Any,
        attempts: int,
        handler: str,
        meta: Meta | None = None,
        *,
        counted: bool = False,
    ) -> None:
        """``counted``: the log counts such records (a line per interval, streams' skips)
        instead of a line each."""
        assert self.producer is not None
        topic = message.topic() or ""
        if self.share is not None:
            # Never delivered again once its dead letter is durable (with the batch's emits).
            self.acks.mark(message, AcknowledgeType.REJECT)
        self.observer.dead_lettered(self.service.name, topic, meta, error)
        target = dead_letters.dlq_topic(topic)
        event_id = meta.id if meta is not None else _record_id(message)
        reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        if counted:
            from nerve.streams import skips

            skips.skipped(
                f"{self.service.name}: {handler}",
                topic,
                f"dead-lettered to {target}",
                f"event {event_id} [{message.partition()}:{message.offset()}]: {reason}",
            )
        else:
            log.warning(
                "%s: event %s from %s [%s:%s] dead-lettered to %s after %d attempt(s) of %s: %s",
                self.service.name,
                event_id,
                topic,
                message.partition(),
                message.offset(),
                target,
                attempts,
                handler,
                reason,
                extra={"correlation_id": (meta.correlation_id or meta.id) if meta else event_id},
            )
        if target not in self._dlq_topics:
            # Created on first use (a cluster may not auto-create), off the event loop.
            admin = AdminClient(self.config.kafka())
            wanted: dict[str, int | None] = {target: None}
            await asyncio.get_running_loop().run_in_executor(None, ensure_topics, admin, wanted)
            self._dlq_topics.add(target)
        headers = dead_letters.dead_letter_headers(
            message.headers(),
            error=error,
            attempts=attempts,
            topic=topic,
            partition=message.partition() or 0,
            offset=message.offset() or 0,
            service=self.service.name,
            handler=handler,
        )
        try:
            self.producer.produce(
                target,
                value=message.value(),
                key=message.key(),
                headers=headers,
                on_delivery=self._delivered,
            )
        except KafkaException as exc:
            if not (self.service.exactly_once and _aborts_transaction(exc)):
                raise
            # The redone batch dead-letters it at once instead of trying the handler again.
            position = (topic, message.partition() or 0, message.offset() or 0, handler)
            self._refused[position] = (attempts, str(error))
            raise _BatchAborted from exc


def ensure_topics(
    admin: AdminClient,
    wanted: dict[str, int | None],
    *,
    compact: bool = False,
    configs: dict[str, str] | None = None,
) -> None:
    """Create the topics that do not exist (the cluster's defaults unless a count is given);
    on a cluster without auto-creation a service must not depend on it."""
    existing = admin.list_topics(timeout=30).topics
    missing = [
        NewTopic(
            name,
            num_partitions=count or -1,
            replication_factor=-1,
            config={**({"cleanup.policy": "compact"} if compact else {}), **(configs or {})},
        )
        for name, count in wanted.items()
        if name not in existing or existing[name].error is not None
    ]
    if not missing:
        return
    for name, future in admin.create_topics(missing, request_timeout=30).items():
        try:
            future.result(30)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ServiceError(f"cannot create topic {name}: {exc.args[0].str()}") from None
    # Kafka answers CreateTopics before every broker's metadata has the topic: a consumer
    # subscribing now could miss it for its metadata refresh interval (minutes). Wait until
    # the topics show with a leader for each partition.
    deadline = time.monotonic() + 30
    names = [topic.topic for topic in missing]
    while time.monotonic() < deadline:
        shown = admin.list_topics(timeout=10).topics
        if all(
            n in shown
            and shown[n].error is None
            and shown[n].partitions
            and all(p.leader >= 0 for p in shown[n].partitions.values())
            for n in names
        ):
            return
        time.sleep(0.05)
