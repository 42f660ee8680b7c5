"""The `_schemas` topic: read into a RegistryState by a background consumer, written through a
transactional producer that makes this instance the only writer while it writes.

Why transactions: two registry instances must never give one id to two schemas. Confluent and
Karapace elect a leader through a consumer group and forward writes to it over HTTP. nerve gets
the same guarantee from Kafka itself: every instance uses the same ``transactional.id``, and
``init_transactions`` fences whichever instance wrote before. A writer that is not fenced knows
that nobody else has written since it read to the end on becoming the writer; a fenced writer's
transaction fails and it re-initialises, reads to the end and decides again. This needs no
leader, no HTTP between instances, and works on any Kafka with transactions (0.11+), nerve's
broker included.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from nerve.registry import errors
from nerve.registry.state import RegistryState

log = logging.getLogger("nerve.registry")

T = TypeVar("T")
# A write decides, from the state it sees after reading to the end, which records to append
# and what to answer; it may raise RegistryError to refuse.
Write = Callable[[RegistryState], tuple[list[tuple[bytes, bytes | None]], T]]

TRANSACTION_TIMEOUT_MS = 10_000
_NO_LEADER_YET = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
)
WRITE_ATTEMPTS = 5


class SchemasTopic:
    """One registry instance's view of the `_schemas` topic."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = "_schemas",
        client_config: dict[str, Any] | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.topic = topic
        self.timeout_s = timeout_s
        self.state = RegistryState()
        # Guards `state` and `_position`: the reader thread folds records in, request threads
        # read and decide under it.
        self.lock = threading.RLock()
        self._advanced = threading.Condition(self.lock)
        self._position = 0  # the next offset the reader will apply
        self._config: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            # librdkafka would log every failed connection attempt; failures reach the user as
            # one clear error from the call that needed the cluster instead.
            "log_level": 0,
            **(client_config or {}),
        }
        self._write_lock = threading.Lock()
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        # Asks for the end offset. Not the reader itself: a watermark query on a consumer that
        # another thread is polling waits until the query times out.
        self._probe: Consumer | None = None
        self._stopping = threading.Event()
        self._reader: threading.Thread | None = None
        self._reader_error: str | None = None
        self.cluster_id: str | None = None  # the Kafka cluster's id, for /v1/metadata/id
        self.started_at: float | None = None  # monotonic time start() returned

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Create the topic if needed, start reading it, return once everything is read."""
        self._ensure_topic()
        self._consumer = Consumer(
            {
                **self._config,
                "group.id": f"nerve-registry-reader-{self.topic}",  # never joined or committed
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 100,
            }
        )
        self._consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        self._probe = Consumer({**self._config, "group.id": f"nerve-registry-probe-{self.topic}"})
        self._reader = threading.Thread(target=self._read, name="registry-reader", daemon=True)
        self._reader.start()
        self.catch_up()
        self.started_at = time.monotonic()

    def close(self) -> None:
        self._stopping.set()
        if self._reader is not None:
            self._reader.join(timeout=5)
        for consumer in (self._consumer, self._probe):
            if consumer is not None:
                consumer.close()
        self._producer = None

    def _ensure_topic(self) -> None:
        admin = AdminClient(self._config)
        try:
            self.cluster_id = admin.list_topics(timeout=self.timeout_s).cluster_id
        except KafkaException as exc:
            raise errors.store_error(
                f"cannot reach Kafka at {self._config['bootstrap.servers']}: {exc.args[0].str()}"
            ) from None
        wanted = NewTopic(
            self.topic,
            num_partitions=1,
            replication_factor=-1,
            config={"cleanup.policy": "compact"},
        )
        future = admin.create_topics([wanted], request_timeout=self.timeout_s)[self.topic]
        try:
            future.result(timeout=self.timeout_s)
            log.info("created topic %s", self.topic)
        except TimeoutError:
            raise errors.store_timeout(f"creating topic {self.topic}") from None
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise errors.store_error(f"cannot create topic {self.topic}: {exc}") from None

    # -- reading -----------------------------------------------------------------------------

    def _read(self) -> None:
        assert self._consumer is not None
        while not self._stopping.is_set():
            try:
                # poll returns at the first record; consume() alone would wait out its timeout
                # for a full batch, adding that wait to every write's read-back.
                first = self._consumer.poll(0.2)
                if first is None:
                    continue
                messages = [first, *self._consumer.consume(500, timeout=0)]
            except KafkaException as exc:  # closed under us at shutdown, or a fatal error
                self._reader_error = str(exc)
                log.error("reading %s failed: %s", self.topic, exc)
                return
            with self._advanced:
                for message in messages:
                    error, offset = message.error(), message.offset() or 0
                    if error is None:
                        self.state.apply(message.key(), message.value())
                        self._position = max(self._position, offset + 1)
                    elif error.code() == KafkaError._PARTITION_EOF:
                        # At the end, past any transaction markers the records skipped.
                        self._position = max(self._position, offset)
                    else:
                        log.warning("reading %s: %s", self.topic, error)
                self._advanced.notify_all()

    def _wait_for(self, offset: int) -> None:
        deadline = time.monotonic() + self.timeout_s
        with self._advanced:
            while self._position < offset:
                left = deadline - time.monotonic()
                if left <= 0 or self._reader_error:
                    why = f": {self._reader_error}" if self._reader_error else ""
                    raise errors.store_timeout(
                        f"the registry has read {self.topic} to offset {self._position}, "
                        f"not yet to {offset}{why}"
                    )
                self._advanced.wait(min(left, 0.5))

    def health(self) -> dict[str, Any]:
        """What the reader knows without asking Kafka: cheap enough for a probe."""
        with self.lock:
            position = self._position
        return {
            "ready": self.started_at is not None,
            "reader_position": position,
            "reader_error": self._reader_error,
        }

    def catch_up(self) -> None:
        """Return once every record committed to the topic before this call is applied."""
        assert self._probe is not None
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                _, end = self._probe.get_watermark_offsets(
                    TopicPartition(self.topic, 0), timeout=self.timeout_s, cached=False
                )
                break
            except KafkaException as exc:
                # A topic created a moment ago may have no leader yet (seen on Apache Kafka).
                retriable = exc.args[0].code() in _NO_LEADER_YET
                if not retriable or time.monotonic() > deadline:
                    raise errors.store_error(
                        f"cannot read the end of {self.topic}: {exc}"
                    ) from None
                time.sleep(0.1)
        self._wait_for(end)

    # -- writing -----------------------------------------------------------------------------

    def write(self, decide: Write[T]) -> T:
        """Append what ``decide`` returns as this instance's exclusive write, then return its
        answer once the reader has applied the records (so the caller reads its own write)."""
        with self._write_lock:
            for attempt in range(WRITE_ATTEMPTS):
                # Only a new writer must read to the end first. A writer that is still the
                # writer has applied its own last write, and anyone who wrote since had to
                # fence it, which fails this attempt's commit and starts it over.
                if self._producer is None:
                    producer = self._writer()
                    self.catch_up()
                else:
                    producer = self._producer
                with self.lock:
                    items, answer = decide(self.state)
                if not items:
                    return answer
                try:
                    last = self._append(producer, items)
                except KafkaException as exc:
                    # Fenced by another instance's write (or the transaction failed): start
                    # over as the writer, with what it wrote read first.
                    log.info("write to %s retried (%d): %s", self.topic, attempt + 1, exc)
                    self._producer = None
                    continue
                self._wait_for(last + 1)
                return answer
        raise errors.store_error(f"could not write to {self.topic} in {WRITE_ATTEMPTS} attempts")

    def _writer(self) -> Producer:
        if self._producer is None:
            producer = Producer(
                {
                    **self._config,
                    "transactional.id": f"nerve-registry-{self.topic}",
                    "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
                    "linger.ms": 0,
                }
            )
            try:
                producer.init_transactions(self.timeout_s)
            except KafkaException as exc:
                raise errors.store_error(
                    f"cannot become the writer of {self.topic}: {exc}"
                ) from None
            self._producer = producer
        return self._producer

    def _append(self, producer: Producer, items: list[tuple[bytes, bytes | None]]) -> int:
        offsets: list[int] = []
        failures: list[KafkaError] = []

        def delivered(error: KafkaError | None, message: Any) -> None:
            if error is not None:
                failures.append(error)
            else:
                offsets.append(message.offset())

        producer.begin_transaction()
        try:
            for key, value in items:
                producer.produce(
                    self.topic, key=key, value=value, partition=0, on_delivery=delivered
                )
            producer.commit_transaction(self.timeout_s)
        except KafkaException as exc:
            with contextlib.suppress(KafkaException):
                producer.abort_transaction(self.timeout_s)
            failures.append(exc.args[0])
        if any(f.code() == KafkaError.MSG_SIZE_TOO_LARGE for f in failures):
            # Not a fencing: trying again cannot help (Confluent: SchemaTooLargeException).
            raise errors.schema_too_large("Register operation failed because schema is too large")
        if failures or not offsets:
            raise KafkaException(failures[0] if failures else KafkaError(KafkaError._FAIL))
        return max(offsets)
