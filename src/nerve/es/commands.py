"""Sending commands and getting their outcome back over Kafka.

A command is an event on its command topic, keyed by the aggregate's key, with two CloudEvents
extension attributes: ``nervereplyto`` (the service's reply topic, ``<service>.replies``) and,
for optimistic concurrency, ``nerveexpectedversion``. The aggregate's task answers on the reply
topic, keyed by the command's id, in the same transaction as its events. ``CommandClient``
reads the reply topic from its end (read_committed) and hands each answer to the waiting
``send``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from nerve.es.aggregate import Rejected
from nerve.es.node import EXPECTED_VERSION, REPLY_TO
from nerve.service import envelope
from nerve.service.config import RunConfig
from nerve.service.events import Event


class Conflict(Exception):
    """A command's expected version was not the aggregate's version."""

    def __init__(self, reason: str, version: int) -> None:
        super().__init__(reason)
        self.version = version


@dataclass
class Outcome:
    """What the aggregate decided: ``status`` is accepted, rejected, conflict or error;
    ``version`` the aggregate's version after it (or as it was, if refused)."""

    status: str
    version: int
    reason: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    command_id: str = ""

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"

    def unwrap(self) -> list[dict[str, Any]]:
        """The events, or the refusal raised (``Rejected``, ``Conflict``, RuntimeError)."""
        if self.status == "accepted":
            return self.events
        if self.status == "rejected":
            raise Rejected(self.reason or "rejected")
        if self.status == "conflict":
            raise Conflict(self.reason or "conflict", self.version)
        raise RuntimeError(self.reason or self.status)


class CommandClient:
    """Sends commands to a service's aggregates and waits for their outcome; one per process
    is enough (thread-safe, usable from any event loop)."""

    def __init__(self, service: Any, config: RunConfig | None = None) -> None:
        self.service = service if isinstance(service, str) else service.name
        self.config = config or RunConfig()
        self.reply_topic = f"{self.service}.replies"
        self.source = f"/nerve/clients/{uuid.uuid4().hex[:8]}"
        self._waiting: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[Outcome]]] = {}
        self._lock = threading.Lock()
        self._started = False
        self._stop = threading.Event()
        self._producer: Any = None
        self._consumer: Any = None
        self._thread: threading.Thread | None = None
        self._topics: set[str] = set()  # those made sure of, with their declared partitions

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            from confluent_kafka import Consumer, Producer, TopicPartition
            from confluent_kafka.admin import AdminClient

            from nerve.service.runtime import ensure_topics

            kafka = self.config.kafka()
            ensure_topics(AdminClient(kafka), {self.reply_topic: None})
            self._producer = Producer(
                {
                    **kafka,
                    "enable.idempotence": True,
                    "linger.ms": 1,
                    "partitioner": "murmur2_random",
                }
            )
            consumer = Consumer(
                {
                    **kafka,
                    "group.id": f"{self.source}-replies",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "fetch.wait.max.ms": 10,
                }
            )
            topic = consumer.list_topics(self.reply_topic, timeout=10).topics[self.reply_topic]
            positions = []
            for partition in topic.partitions:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(self.reply_topic, partition), timeout=10
                )
                positions.append(TopicPartition(self.reply_topic, partition, high))
            consumer.assign(positions)
            self._consumer = consumer
            self._stop = threading.Event()  # a closed client starts again on its next send
            self._thread = threading.Thread(target=self._read, daemon=True, name="nerve-replies")
            self._thread.start()
            self._started = True

    def _read(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(500, 0.1):
                if message.error() is not None or message.value() is None:
                    continue
                body = json.loads(message.value())
                with self._lock:
                    waiting = self._waiting.pop(body.get("command_id", ""), None)
                if waiting is None:
                    continue
                loop, future = waiting
                outcome = Outcome(
                    status=body["status"],
                    version=body["version"],
                    reason=body.get("reason"),
                    events=body.get("events", []),
                    command_id=body["command_id"],
                )
                if not loop.is_closed():  # a caller gone meanwhile has nobody to tell
                    loop.call_soon_threadsafe(_resolve, future, outcome)

    async def send(
        self, command: Event, *, expected_version: int | None = None, timeout: float = 10.0
    ) -> Outcome:
        """Send ``command`` and wait (up to ``timeout`` s) for the aggregate's decision."""
        if not self._started:
            await asyncio.get_running_loop().run_in_executor(None, self.start)
        if command.topic not in self._topics:
            # A command sent before its service created the topic would have it made with
            # the cluster's default partition count, and placed elsewhere than the same
            # aggregate's commands sent by the service itself (a saga's): make it as declared.
            await asyncio.get_running_loop().run_in_executor(None, self._ensure, command)
        meta = command.meta
        meta.source = self.source
        meta.type = command.event_type
        meta.extensions[REPLY_TO] = self.reply_topic
        if expected_version is not None:
            meta.extensions[EXPECTED_VERSION] = str(expected_version)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        with self._lock:
            self._waiting[meta.id] = (loop, future)
        value = command.__pydantic_serializer__.to_json(command)
        self._producer.produce(
            command.topic,
            value=value,
            key=command.record_key(),
            headers=envelope.to_headers(meta, envelope.JSON),
        )
        self._producer.poll(0)
        await loop.run_in_executor(None, self._producer.flush, timeout)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            with self._lock:
                self._waiting.pop(meta.id, None)
            raise TimeoutError(
                f"no answer to {type(command).__name__} {meta.id} from {self.service} in "
                f"{timeout:g} s (is it running?)"
            ) from None

    def _ensure(self, command: Event) -> None:
        from confluent_kafka.admin import AdminClient

        from nerve.service.runtime import ensure_topics

        ensure_topics(AdminClient(self.config.kafka()), {command.topic: command.partitions})
        self._topics.add(command.topic)

    def close(self) -> None:
        """Stops the reader (before its consumer is closed under it) and lets the producer go
        once flushed: a client kept after its cluster stopped logs no connection failures."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.flush(10)
            self._producer = None
        self._started = False


def _resolve(future: asyncio.Future[Outcome], outcome: Outcome) -> None:
    if not future.done():
        future.set_result(outcome)
