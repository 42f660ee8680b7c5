"""The streams part of a running service: what ``ServiceRunner`` calls when the service has
streams. Kept here so the service framework knows streams only through these few calls."""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, Message, TopicPartition

from nerve.streams.engine import StreamsEngine, Topology
from nerve.streams.serde import decode_value
from nerve.streams.task import Task

if TYPE_CHECKING:
    from nerve.service.runtime import ServiceRunner

log = logging.getLogger("nerve.streams")

# Consumed records of repartition topics are deleted this often (DeleteRecords), as Kafka
# Streams does (repartition.purge.interval.ms, 30 s).
PURGE_INTERVAL_S = 30.0
# A text value that is not valid UTF-8 is shown with replacement characters, never refused.
_TEXT_FORMATS = ("text", "json", "bytes")


class KafkaSink:
    """Where a running service's tasks write: its producer (in the batch's transaction)."""

    def __init__(self, runner: ServiceRunner) -> None:
        self.runner = runner
        self.current: Message | None = None  # the input being processed

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        timestamp: int,
        headers: Any = None,
        partition: int | None = None,
        changelog_of: Task | None = None,
    ) -> None:
        producer = self.runner.producer
        assert producer is not None
        extra: dict[str, Any] = {}
        if partition is not None:
            extra["partition"] = partition
        if timestamp >= 0:
            extra["timestamp"] = timestamp
        if headers:
            extra["headers"] = headers
        delivered: Any = self.runner._delivered
        if changelog_of is not None:
            delivered = functools.partial(_changelogged, self.runner, changelog_of)
        producer.produce(topic, value=value, key=key, on_delivery=delivered, **extra)

    def emit(self, events: list[Any], record: Any, operator: str) -> None:
        self.runner._emit_all(events, record.cause, operator)

    def late(self, record: Any, operator: str, window: str, late_by_ms: int) -> None:
        message = self.current
        assert message is not None
        topic = f"{record.origin}.late"
        original: Any = message.headers() or []  # a list of pairs as delivered
        headers: list[tuple[str, str | bytes | None]] = [(str(n), v) for n, v in original]
        headers += [
            ("nerve-late-operator", operator),
            ("nerve-late-window", window),
            ("nerve-late-by-ms", str(late_by_ms)),
            ("nerve-late-topic", message.topic() or ""),
            ("nerve-late-partition", str(message.partition())),
            ("nerve-late-offset", str(message.offset())),
        ]
        self.runner._late_topics.add(topic)
        producer = self.runner.producer
        assert producer is not None
        producer.produce(
            topic,
            value=message.value(),
            key=message.key(),
            headers=headers,
            timestamp=record.timestamp,
            on_delivery=self.runner._delivered,
        )


def _changelogged(runner: ServiceRunner, task: Task, error: Any, message: Message) -> None:
    if error is not None:
        runner._delivered(error, message)
        return
    topic = message.topic() or ""
    offset = (message.offset() or 0) + 1
    if offset > task.state.offsets.get(topic, -1):
        task.state.offsets[topic] = offset


class StreamsPart:
    def __init__(self, runner: ServiceRunner, state_dir: Path | None) -> None:
        builder = runner.service.streams_builder
        assert builder is not None
        self.runner = runner
        self.topology = Topology(builder)
        self.sink = KafkaSink(runner)
        self.engine = StreamsEngine(self.topology, self.sink, state_dir)
        self.topics = set(self.topology.topics)
        self.internal_sources = {t for t, s in self.topology.sources_of_topic.items() if s.internal}
        self._purge_due = time.monotonic() + PURGE_INTERVAL_S
        self._consumed: dict[tuple[str, int], int] = {}

    def prepare(self, admin: Any, ensure: Any) -> None:
        """Create the input topics that are missing, then the internal ones with the
        partitions of their inputs."""
        ensure(admin, {t: None for t in self.topology.user_topics})
        ensure(admin, {t: None for t in self.topology.builder.output_topics})
        deadline = time.monotonic() + 30
        while True:  # a topic just created may take a moment to show in metadata
            metadata = admin.list_topics(timeout=30).topics
            ready = all(
                t in metadata and metadata[t].error is None for t in self.topology.user_topics
            )
            if ready or time.monotonic() > deadline:
                break
            time.sleep(0.1)

        def partitions_of(topic: str) -> int:
            found = metadata.get(topic)
            if found is None or found.error is not None:
                raise RuntimeError(f"topic {topic} has no metadata")
            return len(found.partitions)

        internal = self.topology.internal_topics(partitions_of)
        ensure(
            admin,
            {t: n for t, (n, compact) in internal.items() if compact},
            compact=True,
        )
        # Repartition topics keep what they hold until it is consumed and purged: retention
        # by time would delete records with old timestamps before they are read.
        ensure(
            admin,
            {t: n for t, (n, compact) in internal.items() if not compact},
            configs={"retention.ms": "-1"},
        )

    # -- assignment ------------------------------------------------------------------------

    def assigned(self, partitions: list[TopicPartition]) -> None:
        tasks = self.engine.new_tasks(
            (tp.topic, tp.partition) for tp in partitions if tp.topic in self.topics
        )
        self.engine.restore(tasks, self.runner.config.kafka())

    def revoked(self, partitions: list[TopicPartition]) -> None:
        self.engine.revoke((tp.topic, tp.partition) for tp in partitions)

    # -- records ---------------------------------------------------------------------------

    def handle(self, message: Message, meta: Any, data: Any, content_type: str | None) -> None:
        topic = message.topic() or ""
        partition = message.partition() or 0
        source = self.topology.sources_of_topic[topic]
        self.sink.current = message
        if source.internal:
            value: Any = message.value()
            ce_time = None
        else:
            value = self._decode(source, message, meta, data, content_type)
            ce_time = meta.time if meta is not None and meta.type else None
        _, ts = message.timestamp()
        self.engine.process(
            topic, partition, message.key(), value, ts, meta, ce_time, message.headers()
        )
        if source.internal:
            self._consumed[(topic, partition)] = (message.offset() or 0) + 1

    def _decode(
        self, source: Any, message: Message, meta: Any, data: Any, content_type: str | None
    ) -> Any:
        fmt = source.value_format
        if fmt == "event":
            event = self.runner.reader.read(source.event_type, data, content_type)
            event.attach(meta)
            return event
        raw = message.value()
        if raw is None:
            return None
        if fmt == "text":
            return raw.decode("utf-8", "replace")
        if fmt == "json":
            return decode_value(raw)
        return raw

    def before_durable(self) -> None:
        self.engine.flush()

    def durable(self) -> None:
        self.engine.committed()
        if self._consumed and time.monotonic() >= self._purge_due:
            self._purge()

    def failed(self) -> None:
        self.engine.aborted()

    def _purge(self) -> None:
        """Delete what the service has consumed of its repartition topics."""
        self._purge_due = time.monotonic() + PURGE_INTERVAL_S
        consumed, self._consumed = self._consumed, {}
        from confluent_kafka.admin import AdminClient

        consumer = self.runner.consumer
        if not self.runner.service.exactly_once and consumer is not None:
            # At-least-once stores offsets for the periodic commit: commit them now, so no
            # record is deleted before its offset is committed.
            try:
                consumer.commit(asynchronous=False)
            except Exception as exc:
                log.info("%s: commit before purging failed: %s", self.runner.service.name, exc)
                return
        admin = AdminClient(self.runner.config.kafka())
        wanted = [TopicPartition(t, p, o) for (t, p), o in consumed.items()]
        try:
            for tp, future in admin.delete_records(wanted, request_timeout=10).items():
                try:
                    future.result(10)
                except Exception as exc:
                    code = exc.args[0].code() if exc.args and hasattr(exc.args[0], "code") else None
                    if code != KafkaError.OFFSET_OUT_OF_RANGE:
                        log.info("purging %s[%d] failed: %s", tp.topic, tp.partition, exc)
        except Exception as exc:
            log.info("%s: purging repartition topics failed: %s", self.runner.service.name, exc)

    def close(self) -> None:
        self.engine.close()
