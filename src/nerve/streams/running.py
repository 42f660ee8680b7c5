"""The streams part of a running service: what ``ServiceRunner`` calls when the service has
streams. Kept here so the service framework knows streams only through these few calls."""

from __future__ import annotations

import functools
import gc
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

# At-least-once makes several batches durable at once (the runner's commit interval): once
# this many keys have changed since the changelogs were last written, they are written after
# the batch in hand instead of all at the commit, where their encoding held up every record
# behind it (measured: ~2,000 keys a commit at 21,000 events/s, 20-50 ms); fewer are left
# for the commit, so that a key changing in every batch goes to its changelog once.
CHANGELOG_CHUNK = 1000
# Consumed records of repartition topics are deleted this often (DeleteRecords), as Kafka
# Streams does (repartition.purge.interval.ms, 30 s).
PURGE_INTERVAL_S = 30.0
# A join task waits this long at most for records of one input that the broker has and the
# consumer has not fetched yet; then it goes on without them, with a log line.
HOLD_MAX_S = 10.0
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


def _joins(sub: Any) -> bool:
    from nerve.streams.joins import JoinSide

    return any(isinstance(n, JoinSide) or getattr(n, "co_partitioned", False) for n in sub.nodes)


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
        self.state_dir = state_dir
        self.topology = Topology(builder)
        self.sink = KafkaSink(runner)
        self.engine = StreamsEngine(self.topology, self.sink, state_dir)
        self.topics = set(self.topology.topics)
        self.wall_clock = any(
            getattr(n, "clock", None) == "wall" for sub in self.topology.subs for n in sub.nodes
        )
        self.internal_sources = {t for t, s in self.topology.sources_of_topic.items() if s.internal}
        self._purge_due = time.monotonic() + PURGE_INTERVAL_S
        self._consumed: dict[tuple[str, int], int] = {}
        self.partitions: dict[int, int] = {}  # sub-topology -> its partitions
        from nerve.streams.queries import Queries, server_for

        config = runner.config
        self.server = None
        if config.http_port is not None:
            self.server = server_for(config.http_host, config.http_port)
        self.queries = Queries(self, self.server.endpoint if self.server else None)
        self.topology.builder.queries = self.queries
        # Joins: topics whose tasks take their records in timestamp order across partitions,
        # records fetched but held until the other input's are, since when a task holds them.
        self.ordered = {
            t
            for sub in self.topology.subs
            if _joins(sub)
            for t in sub.topics
            if len(sub.topics) > 1
        }
        self.held: dict[tuple[str, int], list[Message]] = {}
        self._holding_since: dict[tuple[int, int], float] = {}
        self._start_offsets: dict[tuple[str, int], int] = {}

    def prepare(self, admin: Any, ensure: Any) -> None:
        """Create the input topics that are missing, then the internal ones with the
        partitions of their inputs."""
        # As their event types declare (else the cluster's default): a command topic made
        # here first must have the partitions its other writers (a saga's) expect.
        declared = {
            s.topic: getattr(s.event_type, "partitions", None)
            for s in self.topology.builder.sources
            if not s.internal
        }
        ensure(admin, declared)
        builder = self.topology.builder
        ensure(admin, {t: None for t in builder.retained_topics}, configs={"retention.ms": "-1"})
        ensure(admin, {t: None for t in builder.output_topics})
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
        for sub in self.topology.subs:
            self.partitions[sub.index] = internal[self.topology.changelogs(sub)[0]][0]
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
        # What exists now (the stores' rows, the imported modules) lives as long as the
        # assignment: collected once, then kept out of the collector's passes, which otherwise
        # walked it all every ~1.3 s at 21,000 events/s (measured: full passes of 30-45 ms, most
        # of the latency tail). The rows put since are still collected; a cycle frozen here
        # is freed only after close().
        gc.collect()
        gc.freeze()
        self.queries.announce()

    def revoked(self, partitions: list[TopicPartition]) -> None:
        self.engine.revoke((tp.topic, tp.partition) for tp in partitions)
        for tp in partitions:  # the next owner reads them from the committed offset
            self.held.pop((tp.topic, tp.partition), None)
            self._start_offsets.pop((tp.topic, tp.partition), None)

    # -- a join task's records in timestamp order ------------------------------------------

    def arrange(self, batch: dict[tuple[str, int], list[Message]]) -> list[list[Message]]:
        """The batch as lists to run, each in order: a partition's records as they came,
        except for join tasks, whose partitions are merged into one list by timestamp, as a
        Kafka Streams task takes them (``max.task.idle.ms`` 0): the smallest timestamp among
        the inputs' next records, and when an input has no record fetched but the broker has
        some (lag > 0, or not known yet), the task waits for them. What waits is held (taken
        out of ``batch``, so not committed) and comes first in a later batch."""
        runs: list[list[Message]] = []
        tasks: dict[tuple[int, int], Any] = {}
        for where, records in batch.items():
            if where[0] in self.ordered:
                sub = self.topology.sub_of_topic[where[0]]
                tasks[(sub.index, where[1])] = sub
            else:
                runs.append(records)
        for topic, partition in self.held:
            sub = self.topology.sub_of_topic[topic]
            tasks[(sub.index, partition)] = sub
        for (index, partition), sub in tasks.items():
            queues = {}
            for topic in sub.topics:
                where = (topic, partition)
                queues[where] = self.held.pop(where, []) + batch.pop(where, [])
            merged, taken = self._merge(queues, (index, partition))
            if merged:
                runs.append(merged)
            for where, queue in queues.items():
                if queue:
                    self.held[where] = queue
            for where, records in taken.items():
                if records:
                    batch[where] = records
        return runs

    def _merge(
        self, queues: dict[tuple[str, int], list[Message]], task: tuple[int, int]
    ) -> tuple[list[Message], dict[tuple[str, int], list[Message]]]:
        """The records to run in order, and what of each input they are."""
        merged: list[Message] = []
        heads = {where: 0 for where in queues}
        waited = self._holding_since.get(task)
        patient = waited is None or time.monotonic() - waited < HOLD_MAX_S
        # An input's lag cannot change within one merge (cached watermark, fetch position):
        # asked once, not once per record of the other input (measured: a fifth of a join's
        # time went to this loop).
        lags: dict[tuple[str, int], int | None] = {}
        while True:
            ready = [w for w, q in queues.items() if heads[w] < len(q)]
            if not ready:
                break
            if len(ready) < len(queues):
                if patient:
                    for w in queues:
                        if w not in ready and w not in lags:
                            lags[w] = self._lag(w)
                    if any(lags[w] != 0 for w in queues if w not in ready):
                        break
                if len(ready) == 1:  # the only input with records, nothing to wait for
                    (where,) = ready
                    merged += queues[where][heads[where] :]
                    heads[where] = len(queues[where])
                    break
            where = min(ready, key=lambda w: queues[w][heads[w]].timestamp()[1])
            merged.append(queues[where][heads[where]])
            heads[where] += 1
        taken = {}
        for where in queues:
            taken[where] = queues[where][: heads[where]]
            del queues[where][: heads[where]]
        if any(queues.values()):
            if waited is None:
                self._holding_since[task] = time.monotonic()
            elif not patient:
                log.warning(
                    "%s: task %d_%d waited %.0f s for records the broker reported: "
                    "going on without them (the join may see its inputs out of time order)",
                    self.runner.service.name,
                    task[0],
                    task[1],
                    HOLD_MAX_S,
                )
                self._holding_since[task] = time.monotonic()
        else:
            self._holding_since.pop(task, None)
        return merged, taken

    def _lag(self, where: tuple[str, int]) -> int | None:
        """How many records of a partition the broker has beyond what was fetched (None:
        not known yet), from the consumer's cached high watermark."""
        consumer = self.runner.consumer
        assert consumer is not None
        tp = TopicPartition(*where)
        high = consumer.get_watermark_offsets(tp, cached=True)[1]
        if high < 0:
            return None
        position = consumer.position([tp])[0].offset
        if position < 0:  # nothing consumed since the assignment: from the committed offset
            position = self._start_offsets.get(where, -1)
            if position < 0:
                committed = consumer.committed([tp], timeout=10)[0].offset
                low = consumer.get_watermark_offsets(tp, cached=True)[0]
                position = committed if committed >= 0 else max(low, 0)
                self._start_offsets[where] = position
        return max(0, high - position)

    def holds(self, topic: str, partition: int) -> bool:
        return bool(self.held.get((topic, partition)))

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

    def between_commits(self) -> None:
        """A batch handled, its commit later (at-least-once): the changelogs written now if
        many keys wait for them."""
        if self.engine.pending() >= CHANGELOG_CHUNK:
            self.engine.flush()

    def durable(self) -> None:
        self.engine.committed()
        if self._consumed and time.monotonic() >= self._purge_due:
            self._purge()

    def failed(self) -> None:
        self.engine.aborted()
        consumer = self.runner.consumer
        held, self.held = self.held, {}
        for (topic, partition), records in held.items():  # read again with the batch
            if records and consumer is not None:
                consumer.seek(TopicPartition(topic, partition, records[0].offset() or 0))

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

    def start_queries(self) -> None:
        """With an HTTP port: serve this service's tables and say where, for other replicas."""
        if self.server is not None:
            self.server.services[self.topology.service] = self.queries
            self.queries.start(self.runner.config.kafka())

    def close(self) -> None:
        if self.server is not None:
            self.server.services.pop(self.topology.service, None)
            self.queries.stop()
        # The builder belongs to the Service, which outlives this run (a module-level service
        # under nerve.testing): left attached, it would answer table.get from a stopped
        # replica's state and keep this runner, its producer and stores alive.
        if self.topology.builder.queries is self.queries:
            self.topology.builder.queries = None
        self.engine.close()
        gc.unfreeze()  # this run's objects collectable again (a Platform runs services anew)
