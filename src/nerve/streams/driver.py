"""``TestDriver``: a service's streams run in-process, without Kafka, for unit tests (what
Kafka Streams' TopologyTestDriver is to Java): records in, outputs, emitted events, late
records and store contents out, synchronously.

It runs the same nodes and tasks as a running service. Keys are placed on ``partitions``
partitions by murmur2 (as a producer would), stream time is per partition, and repartition
topics are followed at once. ``restart()`` drops every task's memory and restores it from the
changelog records written so far, as a replica taking over a partition would.

    with TestDriver(fraud) as driver:
        driver.send(TransactionRecorded(...), timestamp=at(3))
        assert driver.emitted(SuspiciousActivity) == [...]
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from nerve.service.events import Event, Meta
from nerve.service.service import Service
from nerve.streams.engine import StreamsEngine, Topology
from nerve.streams.partitioner import partition_for
from nerve.streams.records import Record
from nerve.streams.serde import decode_value
from nerve.streams.task import Task


def _ms(timestamp: int | float | datetime | None, default: int) -> int:
    if timestamp is None:
        return default
    if isinstance(timestamp, datetime):
        return int(timestamp.timestamp() * 1000)
    return int(timestamp)


class Output:
    """A record written to a topic: key and value as the topic holds them (text decoded)."""

    __slots__ = ("headers", "key", "timestamp", "topic", "value")

    def __init__(
        self, topic: str, key: Any, value: Any, timestamp: int, headers: Any = None
    ) -> None:
        self.topic, self.key, self.value = topic, key, value
        self.timestamp, self.headers = timestamp, headers

    def __iter__(self) -> Any:
        return iter((self.key, self.value, self.timestamp))

    def __repr__(self) -> str:
        return f"Output({self.topic!r}, {self.key!r}, {self.value!r}, {self.timestamp})"


class _Collector:
    def __init__(self, driver: TestDriver) -> None:
        self.driver = driver

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
        driver = self.driver
        if changelog_of is not None:
            log = driver.changelogs[(topic, changelog_of.partition)]
            log.append((key, value))
            changelog_of.state.offsets[topic] = len(log)
            return
        if topic in driver.topology.sub_of_topic:  # a repartition topic: on at once
            target = partition_for(key, driver.partitions) if partition is None else partition
            driver.pending.append((topic, target, key, value, timestamp, headers))
            return
        text_key = None if key is None else key.decode("utf-8", "replace")
        text_value = None if value is None else value.decode("utf-8", "replace")
        driver.outputs[topic].append(Output(topic, text_key, text_value, timestamp, headers))

    def emit(self, events: list[Any], record: Record, operator: str) -> None:
        for event in events:
            if not isinstance(event, Event):
                raise TypeError(f"{operator} emitted {type(event).__name__}, not an Event")
            meta = event.meta
            if record.cause is not None:
                meta.correlation_id = record.cause.correlation_id or record.cause.id
                meta.causation_id = record.cause.id
            self.driver.events.append(event)

    def late(self, record: Record, operator: str, window: str, late_by_ms: int) -> None:
        self.driver.late_records[f"{record.origin}.late"].append(
            Output(
                f"{record.origin}.late",
                record.key,
                record.value,
                record.timestamp,
                [("nerve-late-window", window), ("nerve-late-by-ms", str(late_by_ms))],
            )
        )


class TestDriver:
    """Runs ``service``'s streams on ``partitions`` partitions per topic."""

    __test__ = False  # not a pytest test class

    def __init__(self, service: Service, *, partitions: int = 1) -> None:
        if service.streams_builder is None:
            raise ValueError(f"{service.name} has no streams")
        self.service = service
        self.partitions = partitions
        self.topology = Topology(service.streams_builder)
        self.outputs: dict[str, list[Output]] = defaultdict(list)
        self.events: list[Event] = []
        self.late_records: dict[str, list[Output]] = defaultdict(list)
        self.changelogs: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = (
            defaultdict(list)
        )
        self.pending: list[tuple[str, int, Any, Any, int, Any]] = []
        self._clock = 0
        self._offsets: dict[tuple[str, int], int] = defaultdict(int)
        self.engine = self._new_engine()

    def _new_engine(self) -> StreamsEngine:
        engine = StreamsEngine(self.topology, _Collector(self), None)
        engine.new_tasks((t, p) for t in self.topology.topics for p in range(self.partitions))
        return engine

    def __enter__(self) -> TestDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine.close()

    # -- input -----------------------------------------------------------------------------

    def send(
        self,
        source: Event | type[Event] | str,
        value: Any = None,
        *,
        key: Any = None,
        timestamp: int | float | datetime | None = None,
    ) -> None:
        """One input record: an event (to its topic, keyed by its key field), or ``value``
        for a topic name (text, bytes or JSON-able data, as the stream reads it).
        ``timestamp``: epoch ms or a datetime (default: 1 ms after the previous input)."""
        self._clock = _ms(timestamp, self._clock + 1)
        ts = self._clock
        if isinstance(source, Event):
            topic, value = source.topic, source
            raw_key = source.record_key() if key is None else str(key).encode()
            meta = source.meta
            meta.time = datetime.fromtimestamp(ts / 1000).astimezone().isoformat()
        else:
            topic = source if isinstance(source, str) else source.topic
            raw_key = None if key is None else str(key).encode()
            meta = Meta()
        sub = self.topology.sources_of_topic.get(topic)
        if sub is None:
            raise ValueError(f"{self.service.name} streams nothing from {topic}")
        if sub.value_format == "json" and isinstance(value, bytes | str):
            value = decode_value(value.encode() if isinstance(value, str) else value)
        partition = partition_for(raw_key, self.partitions)
        offset = self._offsets[(topic, partition)]
        self._offsets[(topic, partition)] += 1
        meta.topic, meta.partition, meta.offset, meta.key = topic, partition, offset, raw_key
        self.engine.process(topic, partition, raw_key, value, ts, meta, None)
        self._drain()
        self.engine.flush()
        self.engine.committed()

    def advance(self, timestamp: int | datetime) -> None:
        """Sets the clock the next ``send`` continues from (stream time moves with records
        only, as in Kafka Streams)."""
        self._clock = _ms(timestamp, self._clock)

    def punctuate(self, now: int | datetime) -> None:
        """Wall-clock deadlines (sagas) due at ``now`` fire, as an idle replica fires them."""
        self.engine.punctuate(_ms(now, self._clock))
        self._drain()
        self.engine.flush()
        self.engine.committed()

    def _drain(self) -> None:
        while self.pending:
            topic, partition, key, value, ts, headers = self.pending.pop(0)
            self.engine.process(topic, partition, key, value, ts, None, None, headers)

    # -- output ----------------------------------------------------------------------------

    def output(self, topic: str) -> list[Output]:
        """What was written to ``topic`` so far (and forgets it)."""
        found, self.outputs[topic] = self.outputs[topic], []
        return found

    def emitted(self, event_type: type[Event] | None = None) -> list[Event]:
        """Events emitted so far (of one type), and forgets them."""
        if event_type is None:
            found, self.events = self.events, []
            return found
        found = [e for e in self.events if isinstance(e, event_type)]
        self.events = [e for e in self.events if not isinstance(e, event_type)]
        return found

    def late(self, topic: str) -> list[Output]:
        found, self.late_records[f"{topic}.late"] = self.late_records[f"{topic}.late"], []
        return found

    def store(self, name: str, partition: int | None = None) -> dict[Any, Any]:
        """A store's contents (over every partition unless one is given)."""
        out: dict[Any, Any] = {}
        for (_, p), task in self.engine.tasks.items():
            if name in task.state.stores and (partition is None or p == partition):
                out.update(task.state.stores[name].snapshot())
        return out

    def restart(self) -> None:
        """Every task starts again from its changelogs alone."""
        self.engine.close()
        self.engine = self._new_engine()
        for task in self.engine.tasks.values():
            for changelog in self.topology.changelogs(task.sub):
                for key, value in self.changelogs.get((changelog, task.partition), []):
                    task.state.apply(changelog, key, value)
            task.state.persist()
