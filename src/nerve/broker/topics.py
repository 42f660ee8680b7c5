"""Topics: names, ids, partitions and per-topic configs, persisted across restarts.

Kafka keeps this in its metadata log; a single node needs far less: one small file per topic
(``topic_store``). Partition data lives in Kafka's layout, ``<data-dir>/<topic>-<partition>/``.

Creating, growing and deleting topics does its file-system work (a directory and files per
partition, an fsync per change) in a worker thread, so a request for many partitions never
stops the event loop; a topic becomes visible only once it is on disk, so nothing can be
acknowledged into a topic that a restart would not find. At start the topic files and the
partition directories are reconciled: nothing on disk is forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import threading
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from nerve.broker.config import BrokerConfig
from nerve.broker.errors import ApiError, ErrorCode
from nerve.broker.log.config import LogConfig
from nerve.broker.log.log import PartitionLog
from nerve.broker.topic_configs import TopicConfigError, effective, validate
from nerve.broker.topic_store import TopicRecord, TopicStore

log = logging.getLogger("nerve.broker")

_LEGAL_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
MAX_NAME_LENGTH = 249
INTERNAL_TOPICS = frozenset(
    {"__consumer_offsets", "__transaction_state", "__nerve_security", "__share_group_state"}
)


@dataclass(eq=False)
class Partition:
    """One partition's log and the fetches waiting for it to grow."""

    topic: Topic
    index: int
    log: PartitionLog
    waiters: set[asyncio.Future[None]] = field(default_factory=set)

    def notify_waiters(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.waiters.clear()


@dataclass(eq=False)
class Topic:
    name: str
    topic_id: uuid.UUID
    configs: dict[str, str]  # overrides set on the topic, Kafka names
    partitions: list[Partition] = field(default_factory=list)
    log_config: LogConfig = field(default_factory=LogConfig)

    @property
    def internal(self) -> bool:
        """Kafka's internal topics: written by the broker itself, never by clients."""
        return self.name in INTERNAL_TOPICS

    def record(self, partitions: int | None = None) -> TopicRecord:
        count = len(self.partitions) if partitions is None else partitions
        return TopicRecord(self.name, self.topic_id, count, dict(self.configs))


@dataclass
class NewTopic:
    """A topic that passed CreateTopics' checks and is to be made."""

    name: str
    partitions: int
    configs: dict[str, str]


def validate_topic_name(name: str) -> None:
    if not name or name in (".", ".."):
        raise ApiError(ErrorCode.invalid_topic_exception, f"topic name {name!r} is illegal")
    if len(name) > MAX_NAME_LENGTH:
        raise ApiError(
            ErrorCode.invalid_topic_exception,
            f"topic name is {len(name)} characters; the limit is {MAX_NAME_LENGTH}",
        )
    if not _LEGAL_NAME.match(name):
        raise ApiError(
            ErrorCode.invalid_topic_exception,
            f"topic name {name!r} may only contain ASCII letters, digits, '.', '_' and '-'",
        )


class TopicManager:
    """Creates, opens, changes and deletes topics; the only writer of their metadata."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir)
        self.topics: dict[str, Topic] = {}
        self.by_id: dict[uuid.UUID, Topic] = {}
        self.store = TopicStore(self.data_dir)
        self._creating: dict[str, int] = {}  # names being made off the loop -> partitions
        self._creating_count = 0  # partitions being made off the loop, in all
        self._auto_pending: list[NewTopic] = []  # auto-created, to start at the next loop turn
        self._auto_tasks: set[asyncio.Task[list[Topic | ApiError]]] = set()
        # One thread: topic file-system work happens in order, never two changes at once.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nerve-topics")

    # -- lifecycle -------------------------------------------------------------------------

    def open(self) -> None:
        """Load topic metadata, reconcile it with the partition directories, open every log.

        A topic file without directories, directories without a topic file, partitions beyond
        a topic's count: each is resolved so that data on disk is kept (and said so), and what
        never held data (a creation a crash interrupted) is removed. Raises MetadataError,
        one line, for a topic file that cannot be read.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        records = self.store.load()
        for name, topic_id in self.store.deleted_dirs().items():
            record = records.get(name)
            if record is not None and record.topic_id == topic_id:
                # Deleted, but the crash came before its file went: finish the deletion.
                self.store.remove([name])
                del records[name]
                log.info("finished deleting topic %s (interrupted by a restart)", name)
        self.store.remove_deleted_dirs()
        on_disk = self.store.partition_dirs()
        changed: list[TopicRecord] = []
        for name, partitions in on_disk.items():
            record = records.get(name)
            known = record.partitions if record is not None else 0
            extra = [path for index, path in partitions.items() if index >= known]
            if not extra:
                continue
            if not any(_holds_data(path) for path in extra):
                for path in extra:
                    shutil.rmtree(path, ignore_errors=True)
                log.info(
                    "removed %d empty partition director%s of %s left by an interrupted change",
                    len(extra),
                    "y" if len(extra) == 1 else "ies",
                    name,
                )
                continue
            count = max(partitions) + 1
            if record is None:
                ids = {self.store.read_partition_metadata(path) for path in partitions.values()}
                found = [i for i in ids if i is not None]
                topic_id = found[0] if len(found) == 1 else uuid.uuid4()
                record = TopicRecord(name, topic_id, count, {})
                log.warning(
                    "topic %s had no metadata file but %d partition director%s with data: "
                    "rebuilt it from them (topic id %s); its configs are the defaults now",
                    name,
                    len(partitions),
                    "y" if len(partitions) == 1 else "ies",
                    topic_id,
                )
            else:
                log.warning(
                    "topic %s has %d partitions on disk, %d in its metadata: kept all %d",
                    name,
                    count,
                    record.partitions,
                    count,
                )
                record.partitions = count
            records[name] = record
            changed.append(record)
        if changed:
            self.store.save(changed)
        for record in records.values():
            topic = Topic(name=record.name, topic_id=record.topic_id, configs=record.configs)
            topic.log_config = self.log_config_for(topic.configs)
            for index in range(record.partitions):
                if index not in on_disk.get(record.name, {}):
                    log.warning(
                        "partition %s-%d has no directory: it starts again empty",
                        record.name,
                        index,
                    )
                self._open_partition(topic, index)
            self.topics[topic.name] = topic
            self.by_id[topic.topic_id] = topic

    def close(self, progress: list[int] | None = None) -> None:
        """Finish the topic change in progress, then close every log (indexes written,
        fsynced), many at a time: each close waits on the disk, and one after the other a
        broker with thousands of partitions took tens of seconds to stop. ``progress`` gets
        [closed, total] as it goes."""
        self._executor.shutdown(wait=True)
        logs = [p.log for topic in self.topics.values() for p in topic.partitions]
        if progress is not None:
            progress[:] = [0, len(logs)]

        counted = threading.Lock()

        def close(partition_log: PartitionLog) -> None:
            try:
                partition_log.close()
            except OSError as exc:
                log.error("closing %s failed: %s", partition_log.directory.name, exc)
            if progress is not None:
                with counted:
                    progress[0] += 1

        workers = min(16, max(len(logs), 1))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nerve-close") as pool:
            list(pool.map(close, logs))

    # -- configs ---------------------------------------------------------------------------

    def effective_configs(self, overrides: Mapping[str, str]) -> dict[str, str]:
        """Topic configs as the topic obeys them: Kafka default < broker setting < topic."""
        return effective(overrides, self.config.levels)

    def log_config_for(self, overrides: Mapping[str, str]) -> LogConfig:
        try:
            return LogConfig.from_configs(self.effective_configs(overrides))
        except ValueError as exc:
            raise ApiError(ErrorCode.invalid_config, str(exc)) from None

    def validate_configs(self, configs: Mapping[str, str | None]) -> dict[str, str]:
        """Kafka's checks of a topic's overrides; returns them normalized (as stored)."""
        try:
            return validate(configs, self.config.levels)
        except TopicConfigError as exc:
            raise ApiError(ErrorCode.invalid_config, str(exc)) from None

    # -- lookups ---------------------------------------------------------------------------

    def get(self, name: str) -> Topic | None:
        return self.topics.get(name)

    def partition(self, name: str, index: int) -> Partition | None:
        topic = self.topics.get(name)
        if topic is None or not 0 <= index < len(topic.partitions):
            return None
        return topic.partitions[index]

    def all_partitions(self) -> Iterable[Partition]:
        for topic in list(self.topics.values()):
            yield from topic.partitions

    # -- changes ---------------------------------------------------------------------------

    @property
    def max_partitions_per_request(self) -> int:
        return self.config.max_partitions_per_request

    def check_new(
        self,
        name: str,
        num_partitions: int = -1,
        replication_factor: int = -1,
        configs: Mapping[str, str | None] | None = None,
    ) -> NewTopic:
        """CreateTopics' checks of one topic; raises ApiError with Kafka's code for each."""
        validate_topic_name(name)
        if name in self.topics or name in self._creating:
            raise ApiError(ErrorCode.topic_already_exists, f"topic {name!r} already exists")
        if num_partitions == -1:
            num_partitions = self.config.num_partitions
        if num_partitions < 1:
            raise ApiError(
                ErrorCode.invalid_partitions, "number of partitions must be larger than 0"
            )
        if num_partitions > self.max_partitions_per_request:
            raise ApiError(
                ErrorCode.policy_violation, "Excessively large number of partitions per request."
            )
        if replication_factor not in (-1, 1):
            raise ApiError(
                ErrorCode.invalid_replication_factor,
                f"replication factor {replication_factor} is larger than the number of "
                "available brokers: 1",
            )
        return NewTopic(name, num_partitions, self.validate_configs(dict(configs or {})))

    def create(
        self,
        name: str,
        num_partitions: int = -1,
        replication_factor: int = -1,
        configs: Mapping[str, str | None] | None = None,
        validate_only: bool = False,
    ) -> Topic | None:
        """Create a topic on the calling thread (start-up, tests); raises ApiError."""
        new = self.check_new(name, num_partitions, replication_factor, configs)
        if validate_only:
            return None
        (made,) = self._make([new])
        if isinstance(made, ApiError):
            raise made
        self._publish(made)
        return made

    async def create_many(self, new: list[NewTopic]) -> list[Topic | ApiError]:
        """Make checked topics in the worker thread; each is visible once it is on disk."""
        for topic in new:
            if topic.name not in self._creating:
                self._creating[topic.name] = topic.partitions
                self._creating_count += topic.partitions
        try:
            made = await asyncio.get_running_loop().run_in_executor(self._executor, self._make, new)
        finally:
            for topic in new:
                self._creating_count -= self._creating.pop(topic.name, 0)
        for item in made:
            if isinstance(item, Topic):
                self._publish(item)
        return made

    @property
    def partitions_being_created(self) -> int:
        return self._creating_count

    def auto_create(self, name: str) -> bool:
        """Start creating ``name`` with the defaults (Metadata's auto-creation), off the loop.

        Returns True if the topic is being created (the caller answers that it does not exist
        yet, as Kafka 4 does; the client's next request sees it), False if the broker is
        already creating ``max.partitions.per.request`` partitions: the client retries later,
        so a request naming thousands of unknown topics creates them a bounded batch at a time.
        Raises ApiError for a name that cannot be a topic.
        """
        if name in self._creating:
            return True
        if self._creating_count + self.config.num_partitions > self.max_partitions_per_request:
            return False
        new = self.check_new(name)
        self._creating[name] = new.partitions
        self._creating_count += new.partitions
        if not self._auto_pending:
            asyncio.get_running_loop().call_soon(self._start_auto_creation)
        self._auto_pending.append(new)
        return True

    def _start_auto_creation(self) -> None:
        batch, self._auto_pending = self._auto_pending, []
        task = asyncio.get_running_loop().create_task(self.create_many(batch))
        self._auto_tasks.add(task)
        task.add_done_callback(self._auto_created)

    def _auto_created(self, task: asyncio.Task[list[Topic | ApiError]]) -> None:
        self._auto_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("auto-creating topics failed: %r", task.exception())

    def _make(self, new: list[NewTopic]) -> list[Topic | ApiError]:
        """Directories, logs and metadata files of new topics (any thread), all or nothing
        per topic: a topic that fails leaves nothing behind."""
        made: list[Topic | ApiError] = []
        for spec in new:
            topic = Topic(name=spec.name, topic_id=uuid.uuid4(), configs=spec.configs)
            topic.log_config = self.log_config_for(spec.configs)
            try:
                for index in range(spec.partitions):
                    self._open_partition(topic, index)
            except OSError as exc:
                self._discard(topic)
                made.append(_storage_error(f"cannot create topic {spec.name}", exc))
                continue
            made.append(topic)
        good = [t for t in made if isinstance(t, Topic)]
        try:
            if good:
                self.store.sync_partition_dirs()
            self.store.save(t.record() for t in good)
        except OSError as exc:
            for topic in good:
                self._discard(topic)
            error = _storage_error("cannot save topic metadata", exc)
            return [error if isinstance(t, Topic) else t for t in made]
        return made

    def _discard(self, topic: Topic, first: int = 0) -> None:
        """Remove partitions ``first``.. of a topic that was never published."""
        for partition in topic.partitions[first:]:
            with contextlib.suppress(OSError):
                partition.log.close()
            shutil.rmtree(partition.log.directory, ignore_errors=True)
        del topic.partitions[first:]

    def _publish(self, topic: Topic) -> None:
        self.topics[topic.name] = topic
        self.by_id[topic.topic_id] = topic
        log.info("created topic %s with %d partition(s)", topic.name, len(topic.partitions))

    def _open_partition(self, topic: Topic, index: int) -> None:
        directory = self.store.partition_dir(topic.name, index)
        # The broker's own topics are replayed at start: every segment is checked first.
        partition_log = PartitionLog.open(directory, topic.log_config, recover_all=topic.internal)
        try:
            if self.store.read_partition_metadata(directory) != topic.topic_id:
                self.store.write_partition_metadata(directory, topic.topic_id)
        except OSError:
            partition_log.close()
            raise
        topic.partitions.append(Partition(topic=topic, index=index, log=partition_log))

    def _check_delete(self, name: str) -> Topic:
        topic = self.topics.get(name)
        if topic is None:
            raise ApiError(ErrorCode.unknown_topic_or_partition, f"unknown topic {name!r}")
        if topic.internal:
            raise ApiError(ErrorCode.invalid_topic_exception, f"{name} is an internal topic")
        return topic

    def delete(self, name: str) -> Topic:
        """Delete a topic on the calling thread (tests); raises ApiError."""
        topic = self._check_delete(name)
        self._unpublish(topic)
        try:
            self._remove(topic)
        except ApiError:
            self._publish_again(topic)
            raise
        return topic

    async def delete_async(self, name: str) -> Topic:
        """Delete a topic: it is gone for clients at once, its files in the worker thread."""
        topic = self._check_delete(name)
        self._unpublish(topic)
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._remove, topic)
        except ApiError:
            self._publish_again(topic)
            raise
        return topic

    def _unpublish(self, topic: Topic) -> None:
        del self.topics[topic.name]
        del self.by_id[topic.topic_id]
        for partition in topic.partitions:
            partition.notify_waiters()

    def _publish_again(self, topic: Topic) -> None:
        self.topics[topic.name] = topic
        self.by_id[topic.topic_id] = topic

    def _remove(self, topic: Topic) -> None:
        """Rename the partition directories for deletion, remove the topic's file (the point
        of no return), then the data. Raises ApiError(KAFKA_STORAGE_ERROR), changing nothing,
        if the first two steps fail."""
        renamed: list[tuple[Path, Path]] = []
        try:
            for partition in topic.partitions:
                directory = partition.log.directory
                renamed.append((directory, self.store.mark_deleted(directory, topic.topic_id)))
            self.store.remove([topic.name])
        except OSError as exc:
            for original, target in renamed:
                with contextlib.suppress(OSError):
                    target.rename(original)
            raise _storage_error(f"cannot delete topic {topic.name}", exc) from None
        for partition in topic.partitions:
            with contextlib.suppress(OSError):
                partition.log.close(flush=False)
        for _, target in renamed:
            shutil.rmtree(target, ignore_errors=True)
        log.info("deleted topic %s", topic.name)

    def check_add_partitions(self, name: str, count: int) -> Topic:
        topic = self.topics.get(name)
        if topic is None:
            raise ApiError(ErrorCode.unknown_topic_or_partition, f"unknown topic {name!r}")
        current = len(topic.partitions)
        if count <= current:
            raise ApiError(
                ErrorCode.invalid_partitions,
                f"The topic {name} currently has {current} partition(s); {count} would not be "
                "an increase.",
            )
        if count - current > self.max_partitions_per_request:
            raise ApiError(
                ErrorCode.policy_violation,
                "Excessively large number of additional partitions per request.",
            )
        return topic

    def add_partitions(self, name: str, count: int, validate_only: bool = False) -> None:
        """Grow a topic on the calling thread (tests); raises ApiError."""
        topic = self.check_add_partitions(name, count)
        if not validate_only:
            self._grow(topic, count)

    async def add_partitions_async(self, name: str, count: int) -> None:
        """Grow a topic; its new partitions are made in the worker thread, then published."""
        topic = self.check_add_partitions(name, count)
        added = count - len(topic.partitions)
        self._creating_count += added
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._executor, self._grow, topic, count
            )
        finally:
            self._creating_count -= added

    def _grow(self, topic: Topic, count: int) -> None:
        """New partitions and the topic's new metadata; the topic sees them only at the end
        (appending to its list is one step, safe to watch from the loop)."""
        grown = Topic(name=topic.name, topic_id=topic.topic_id, configs=topic.configs)
        grown.log_config = topic.log_config
        current = len(topic.partitions)
        try:
            for index in range(current, count):
                self._open_partition(grown, index)
                grown.partitions[-1].topic = topic
            self.store.sync_partition_dirs()
            self.store.save([topic.record(partitions=count)])
        except OSError as exc:
            self._discard(grown)
            raise _storage_error(f"cannot add partitions to {topic.name}", exc) from None
        topic.partitions.extend(grown.partitions)
        log.info("topic %s has %d partitions now", topic.name, count)

    def refresh_log_configs(self) -> None:
        """Broker-level defaults changed: every topic obeys its new effective configs."""
        for topic in self.topics.values():
            topic.log_config = self.log_config_for(topic.configs)
            for partition in topic.partitions:
                partition.log.set_config(topic.log_config)

    def set_configs(self, name: str, configs: Mapping[str, str], validate_only: bool) -> None:
        """Replace a topic's overrides with ``configs`` (AlterConfigs semantics)."""
        topic = self.topics.get(name)
        if topic is None:
            raise ApiError(ErrorCode.unknown_topic_or_partition, f"unknown topic {name!r}")
        configs = self.validate_configs(configs)
        if topic.internal:
            _check_internal_configs(name, configs, self.effective_configs(configs))
        if validate_only:
            return
        log_config = self.log_config_for(configs)
        # One small file, written before the change applies: a failure changes nothing.
        record = topic.record()
        record.configs = dict(configs)
        try:
            self.store.save([record])
        except OSError as exc:
            raise _storage_error(f"cannot save the configs of {name}", exc) from None
        topic.configs = configs
        topic.log_config = log_config
        for partition in topic.partitions:
            partition.log.set_config(topic.log_config)


def _check_internal_configs(
    name: str, configs: Mapping[str, str], effective: Mapping[str, str]
) -> None:
    """The broker keeps its own state in its internal topics, compacted: a change that would
    let retention delete it (committed offsets, transactions) is refused."""
    policy = effective.get("cleanup.policy", "")
    if policy != "compact":
        raise ApiError(
            ErrorCode.invalid_config,
            f"{name} is an internal topic: its cleanup.policy must stay compact (the broker's "
            f"own state would be deleted), not {policy}",
        )
    for retention in ("retention.ms", "retention.bytes"):
        if retention in configs:
            raise ApiError(
                ErrorCode.invalid_config,
                f"{name} is an internal topic: {retention} cannot be set on it (the broker "
                "keeps its own state there, compacted, never deleted by age or size)",
            )


def _holds_data(directory: Path) -> bool:
    """True if a partition directory has any record batch in it."""
    return any(p.stat().st_size > 0 for p in directory.glob("*.log"))


def _storage_error(what: str, exc: OSError) -> ApiError:
    log.error("%s: %s", what, exc)
    return ApiError(ErrorCode.kafka_storage_error, f"{what}: {exc.strerror or exc}")
