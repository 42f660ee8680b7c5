"""An aggregate's history: its events read back from Kafka by key, folded as of a version or a
time, old revisions of an event upcast to the class's current shape first.

Where one key's events are: each event type's topic, in the partition its key hashes to
(murmur2, as every producer places keyed records), in version order (one writer per aggregate).
Kafka has no lookup by key, so a history reads that one partition of each event topic from its
start and keeps the key's records: the cost is the partition's records (every aggregate that
hashes there), not the topic's, and it stops early at ``as_of_version``/``as_of``. Reads are
read-committed: an aborted decision's events are never seen.

Upcasting: an event type may declare ``revision`` (a ClassVar, default 1); the aggregate stamps
each event it emits with it (the ``nerverevision`` CloudEvents extension). ``@upcast(Type, 1)``
registers how the data of revision 1 becomes revision 2; a history applies the chain from the
record's revision up to the class's before it validates the data.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from nerve.es.aggregate import Aggregate
from nerve.es.node import REVISION, VERSION
from nerve.service import envelope
from nerve.service.config import RunConfig
from nerve.service.content import EventReader
from nerve.service.events import Event
from nerve.streams.partitioner import partition_for

log = logging.getLogger("nerve.es")


A = TypeVar("A", bound=Aggregate)
# Events after a snapshot are looked for from its time less this (another replica's clock may
# lag; a shorter lag is found by the versions' gap and the load starts over from the start).
SNAPSHOT_CLOCK_MARGIN_MS = 5_000
OFFSET_END_MARK = -100  # no record at or after the snapshot's time: nothing to read
# Partitions are read from offset 0 rather than OFFSET_BEGINNING: a logical offset costs a
# ListOffsets round trip before a consumer's first fetch of a partition. Where retention has
# removed offset 0, the fetch is out of range and the consumer's auto.offset.reset (earliest)
# starts at the first record kept, as OFFSET_BEGINNING would.
FIRST_OFFSET = 0
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
_UPCASTERS: dict[tuple[type[Event], int], Upcaster] = {}


def revision_of(event_type: type[Event]) -> int:
    return int(getattr(event_type, "revision", 1))


def upcast(event_type: type[Event], revision: int) -> Callable[[Upcaster], Upcaster]:
    """Register ``fn(data) -> data``: the data of ``event_type`` at ``revision`` as it is at
    ``revision + 1`` (a chain of these brings any old record up to the class's revision)."""
    if revision < 1 or revision >= revision_of(event_type):
        raise ValueError(
            f"{event_type.__name__} is at revision {revision_of(event_type)}: an upcaster goes "
            f"from an older revision (1..{revision_of(event_type) - 1}), not from {revision}"
        )

    def register(fn: Upcaster) -> Upcaster:
        _UPCASTERS[(event_type, revision)] = fn
        return fn

    return register


def upcast_data(event_type: type[Event], revision: int, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` of ``event_type`` written at ``revision``, brought to the class's revision."""
    current = revision_of(event_type)
    if revision > current:
        raise ValueError(
            f"{event_type.__name__} revision {revision} is newer than this code's ({current}): "
            "run the newer code to read it"
        )
    while revision < current:
        fn = _UPCASTERS.get((event_type, revision))
        if fn is None:
            raise LookupError(
                f"{event_type.__name__}: no upcaster from revision {revision} to {revision + 1} "
                f"(register one with @upcast({event_type.__name__}, {revision}))"
            )
        data = fn(data)
        revision += 1
    return data


@dataclass
class History(Generic[A]):
    """An aggregate as of a point: ``state`` (folded), ``version``, the ``events`` (in version
    order) and ``records_read`` (what it cost: every record of the partitions read)."""

    state: A
    version: int
    events: list[Event] = field(default_factory=list)
    records_read: int = 0
    snapshot_version: int = 0
    """The snapshot it started from (0: none; ``events`` are those after it)."""


def _event_ms(ce_time: str | None, record_ms: int) -> int:
    if ce_time:
        try:
            return int(datetime.fromisoformat(ce_time).timestamp() * 1000)
        except ValueError:
            pass
    return record_ms


_PLAIN_JSON = (None, envelope.JSON)
_VERSION_HEADER = f"ce_{VERSION}"
_REVISION_HEADER = f"ce_{REVISION}"


def _marks(headers: Any) -> tuple[int, int, str | None, str | None]:
    """Version, revision, CloudEvents time and content type from a record's headers (the
    few a fold needs, without building its whole envelope)."""
    version, revision, ce_time, content_type = 0, 1, None, None
    for name, raw in headers or ():
        if name == _VERSION_HEADER:
            version = int(raw)
        elif name == "ce_time":
            ce_time = raw.decode() if raw is not None else None
        elif name == "content-type" or name == "ce_datacontenttype":
            content_type = raw.decode() if raw is not None else None
        elif name == _REVISION_HEADER:
            revision = int(raw)
    return version, revision, ce_time, content_type


class Histories:
    """Loads histories with one consumer kept between loads (a fresh consumer costs a
    connection and metadata, tens of milliseconds; a load after the first costs the reads)."""

    def __init__(
        self,
        config: RunConfig | dict[str, Any] | None = None,
        *,
        clock_margin_ms: int = SNAPSHOT_CLOCK_MARGIN_MS,
    ) -> None:
        self.kafka = (
            config.kafka() if isinstance(config, RunConfig) else (config or RunConfig().kafka())
        )
        self._consumer: Any = None
        self._partitions: dict[str, int] = {}
        self._reader = EventReader(None)
        self.clock_margin_ms = clock_margin_ms

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def __enter__(self) -> Histories:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(
        self,
        cls: type[A],
        key: str,
        *,
        as_of_version: int | None = None,
        as_of: datetime | None = None,
        timeout: float = 30.0,
        keep_events: bool = True,
        snapshots: bool = True,
    ) -> History[A]:
        """Read ``key``'s events of aggregate ``cls`` from Kafka and fold them (up to
        ``as_of_version`` events, or those whose event time is at or before ``as_of``).
        ``keep_events=False`` folds them without keeping them (nor their envelopes: faster).
        An aggregate with snapshots starts from the latest one at or before that point
        (``snapshots=False``: fold every event from the first); ``events`` holds those after
        the snapshot."""
        from confluent_kafka import Consumer, TopicPartition

        if self._consumer is None:
            self._consumer = Consumer(
                {
                    **self.kafka,
                    "group.id": "nerve-es-history",
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                    "isolation.level": "read_committed",
                    # A load's records are there already; what waits is the empty fetch
                    # in flight after a load's end, which the next load's first fetch queues
                    # behind (one fetch in flight per connection): measured, 10 ms here made
                    # a 1,000-event load 29-33 ms, 1 ms 10-19 ms (the data itself: one
                    # 349 KB fetch, 1-2 ms round trip).
                    "fetch.wait.max.ms": 1,
                    "auto.offset.reset": "earliest",
                }
            )
        by_topic = {t.topic: t for t in cls.emits()}
        # Looked up once: a missing attribute on a pydantic class goes through its metaclass's
        # __getattr__ (measured ~7 us a call, a fifth of a 1,000-event load).
        revisions = {topic: revision_of(t) for topic, t in by_topic.items()}
        raw_key = key.encode()
        limit_ms = None if as_of is None else int(as_of.timestamp() * 1000)
        reader = self._reader
        deadline = time.monotonic() + timeout
        what = f"{cls.__name__} {key}"
        snapshot, read = (None, 0)
        if snapshots:
            snapshot, read = self._snapshot(cls, raw_key, as_of_version, limit_ms, deadline, what)
        base = 0 if snapshot is None else snapshot[0]
        found: list[tuple[int, Event]] = []
        wanted = []
        for topic in by_topic:
            partition = self._partition_of(topic, raw_key)
            if partition is not None:
                wanted.append(TopicPartition(topic, partition, FIRST_OFFSET))
        if snapshot is not None and wanted:
            # Events after the snapshot were written after it: start where the event
            # partitions' records reach the snapshot's time (less a margin for another
            # replica's clock); a gap in the versions below says the margin was short.
            since = [TopicPartition(tp.topic, tp.partition, snapshot[1] - self.clock_margin_ms)
                     for tp in wanted]  # fmt: skip
            for tp, at in zip(wanted, self._consumer.offsets_for_times(since, 10), strict=True):
                tp.offset = at.offset if at.offset >= 0 else OFFSET_END_MARK

        def take(topic: str, message: Any) -> bool:
            version, revision, ce_time, content_type = _marks(message.headers())
            meta = None
            data = message.value()
            if keep_events or content_type not in _PLAIN_JSON:
                meta, data, content_type = envelope.read(message.headers(), data)
                if VERSION in meta.extensions:  # structured mode: they are in the value
                    version = int(meta.extensions[VERSION])
                    revision = int(meta.extensions.get(REVISION, 1))
            if version <= base:  # folded into the snapshot already
                return True
            if as_of_version is not None and version > as_of_version:
                return False  # versions only grow within a topic
            if limit_ms is not None and _event_ms(ce_time, message.timestamp()[1]) > limit_ms:
                return False
            event_type = by_topic[topic]
            if revision != revisions[topic]:
                data = json.dumps(
                    upcast_data(event_type, revision, json.loads(data or b"null"))
                ).encode()
            if content_type in _PLAIN_JSON and data is not None:
                event = event_type.model_validate_json(data, extra="allow")
            else:
                event = reader.read(event_type, data, content_type)
            if meta is not None:
                meta.topic, meta.partition = topic, message.partition()
                meta.offset, meta.key = message.offset(), raw_key
                event.attach(meta)
            found.append((version, event))
            return True

        read += self._read([tp for tp in wanted if tp.offset != OFFSET_END_MARK], raw_key,
                           take, deadline, what)  # fmt: skip
        found.sort(key=lambda pair: pair[0])
        versions = [v for v, _ in found]
        if versions != list(range(base + 1, base + len(versions) + 1)):
            if snapshot is not None:
                log.warning(
                    "%s: the events after its snapshot at version %d are not all after the "
                    "snapshot's time (a clock more than %d ms behind?): reading it from the start",
                    what, base, self.clock_margin_ms,
                )  # fmt: skip
                return self.load(
                    cls,
                    key,
                    as_of_version=as_of_version,
                    as_of=as_of,
                    timeout=timeout,
                    keep_events=keep_events,
                    snapshots=False,
                )
            raise RuntimeError(
                f"{what}: its events' versions are {versions[:5]}..., not 1..N "
                "in order (events written by something other than the aggregate?)"
            )
        state = cls() if snapshot is None else snapshot[2]
        for _, event in found:
            state.apply(event)
        events = [e for _, e in found] if keep_events else []
        return History(state, base + len(found), events, read, base)

    def _partition_of(self, topic: str, raw_key: bytes) -> int | None:
        count = self._partitions.get(topic)
        if count is None:
            metadata = self._consumer.list_topics(topic, timeout=10).topics[topic]
            if metadata.error is not None:  # no such topic yet: nothing in it
                return None
            count = self._partitions[topic] = len(metadata.partitions)
        return partition_for(raw_key, count)

    def _snapshot(
        self,
        cls: type[A],
        raw_key: bytes,
        as_of_version: int | None,
        limit_ms: int | None,
        deadline: float,
        what: str,
    ) -> tuple[tuple[int, int, A] | None, int]:
        """The latest snapshot at or before the point asked for: (version, its record's
        timestamp, the state), and how many records finding it read."""
        from confluent_kafka import TopicPartition

        topic = getattr(cls, "snapshot_topic", None)
        if topic is None:
            return None, 0
        partition = self._partition_of(topic, raw_key)
        if partition is None:
            return None, 0
        best: list[Any] = []

        def take(_: str, message: Any) -> bool:
            body = json.loads(message.value())
            version, at = int(body["version"]), int(body["time"])
            if as_of_version is not None and version > as_of_version:
                return False
            if limit_ms is not None and at > limit_ms:
                return False
            best[:] = [version, at, body["state"]]
            return True

        read = self._read([TopicPartition(topic, partition, FIRST_OFFSET)], raw_key, take,
                          deadline, what)  # fmt: skip
        if not best:
            return None, read
        try:
            return (best[0], best[1], cls.model_validate(best[2])), read
        except ValueError as exc:  # the aggregate's fields changed since: fold from the start
            log.warning("%s: its snapshot at version %d no longer fits %s (%s): reading it "
                        "from the start", what, best[0], cls.__name__, exc)  # fmt: skip
            return None, read

    def _read(
        self,
        wanted: list[Any],
        raw_key: bytes,
        take: Callable[[str, Any], bool],
        deadline: float,
        what: str,
    ) -> int:
        """Read ``wanted`` (topic partitions from their offsets) to their ends, handing
        ``take`` each record of the key until it answers False for its topic; returns the
        records read."""
        from confluent_kafka import KafkaError

        consumer = self._consumer
        remaining = {tp.topic for tp in wanted}
        if not remaining:
            return 0
        read = 0
        consumer.assign(wanted)
        try:
            while remaining:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {what}'s records took too long")
                # consume(n, timeout) waits for n records or the timeout: poll for the first,
                # then take what has come with it without waiting.
                first = consumer.poll(0.5)
                if first is None:
                    continue
                for message in [first, *consumer.consume(10_000, 0)]:
                    error = message.error()
                    topic = message.topic() or ""
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            remaining.discard(topic)
                            continue
                        raise RuntimeError(f"reading {topic}: {error}")
                    if topic not in remaining:
                        continue
                    read += 1
                    if message.key() == raw_key and not take(topic, message):
                        remaining.discard(topic)
        finally:
            consumer.unassign()
        return read


def load(
    cls: type[A],
    key: str,
    *,
    config: RunConfig | dict[str, Any] | None = None,
    as_of_version: int | None = None,
    as_of: datetime | None = None,
    timeout: float = 30.0,
) -> History[A]:
    """One history with a consumer of its own (``Histories`` keeps one for many)."""
    with Histories(config) as histories:
        return histories.load(cls, key, as_of_version=as_of_version, as_of=as_of, timeout=timeout)


async def load_async(cls: type[A], key: str, **kwargs: Any) -> History[A]:
    """``load`` from a coroutine (run in a thread: the reads block)."""
    return await asyncio.get_running_loop().run_in_executor(None, lambda: load(cls, key, **kwargs))
