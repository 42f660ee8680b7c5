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

    def __init__(self, config: RunConfig | dict[str, Any] | None = None) -> None:
        self.kafka = (
            config.kafka() if isinstance(config, RunConfig) else (config or RunConfig().kafka())
        )
        self._consumer: Any = None
        self._partitions: dict[str, int] = {}
        self._reader = EventReader(None)

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
    ) -> History[A]:
        """Read ``key``'s events of aggregate ``cls`` from Kafka and fold them (up to
        ``as_of_version`` events, or those whose event time is at or before ``as_of``).
        ``keep_events=False`` folds them without keeping them (nor their envelopes: faster)."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

        if self._consumer is None:
            self._consumer = Consumer(
                {
                    **self.kafka,
                    "group.id": "nerve-es-history",
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                    "isolation.level": "read_committed",
                    "fetch.wait.max.ms": 10,
                }
            )
        consumer = self._consumer
        by_topic = {t.topic: t for t in cls.emits()}
        # Looked up once: a missing attribute on a pydantic class goes through its metaclass's
        # __getattr__ (measured ~7 us a call, a fifth of a 1,000-event load).
        revisions = {topic: revision_of(t) for topic, t in by_topic.items()}
        raw_key = key.encode()
        limit_ms = None if as_of is None else int(as_of.timestamp() * 1000)
        reader = self._reader
        found: list[tuple[int, Event]] = []
        read = 0
        wanted = []
        for topic in by_topic:
            count = self._partitions.get(topic)
            if count is None:
                metadata = consumer.list_topics(topic, timeout=10).topics[topic]
                if metadata.error is not None:  # no such topic yet: no events
                    continue
                count = self._partitions[topic] = len(metadata.partitions)
            partition = partition_for(raw_key, count)
            wanted.append(TopicPartition(topic, partition, OFFSET_BEGINNING))
        remaining = {tp.topic for tp in wanted}
        if wanted:
            consumer.assign(wanted)
        try:
            deadline = time.monotonic() + timeout
            while remaining:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"reading {cls.__name__} {key}'s events took over {timeout} s"
                    )
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
                    if message.key() != raw_key:
                        continue
                    version, revision, ce_time, content_type = _marks(message.headers())
                    if as_of_version is not None and version > as_of_version:
                        remaining.discard(topic)  # versions only grow within a topic
                        continue
                    if (
                        limit_ms is not None
                        and _event_ms(ce_time, message.timestamp()[1]) > limit_ms
                    ):
                        remaining.discard(topic)
                        continue
                    event_type = by_topic[topic]
                    meta = None
                    data = message.value()
                    if keep_events or content_type not in _PLAIN_JSON:
                        meta, data, content_type = envelope.read(message.headers(), data)
                        if VERSION in meta.extensions:  # structured mode: they are in the value
                            version = int(meta.extensions[VERSION])
                            revision = int(meta.extensions.get(REVISION, 1))
                            if as_of_version is not None and version > as_of_version:
                                remaining.discard(topic)
                                continue
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
        finally:
            consumer.unassign()
        found.sort(key=lambda pair: pair[0])
        versions = [v for v, _ in found]
        if versions != list(range(1, len(versions) + 1)):
            raise RuntimeError(
                f"{cls.__name__} {key}: its events' versions are {versions[:5]}..., not 1..N "
                "in order (events written by something other than the aggregate?)"
            )
        state = cls()
        for _, event in found:
            state.apply(event)
        events = [e for _, e in found] if keep_events else []
        return History(state, len(found), events, read)


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
