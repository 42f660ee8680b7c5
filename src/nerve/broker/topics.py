"""Topics: names, ids, partitions and per-topic configs, persisted across restarts.

Kafka keeps this in its metadata log; a single node needs far less, so it is one JSON file
(``<data-dir>/meta/topics.json``) replaced atomically on every change. Partition data lives in
Kafka's layout, ``<data-dir>/<topic>-<partition>/``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nerve.broker.config import BrokerConfig
from nerve.broker.errors import ApiError, ErrorCode
from nerve.broker.log.config import LogConfig
from nerve.broker.log.log import PartitionLog
from nerve.broker.topic_configs import TopicConfigError, effective, validate

log = logging.getLogger("nerve.broker")

_LEGAL_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
MAX_NAME_LENGTH = 249
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})


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
    """Creates, opens, changes and deletes topics; the only writer of ``topics.json``."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir)
        self.topics: dict[str, Topic] = {}
        self.by_id: dict[uuid.UUID, Topic] = {}
        self._meta_file = self.data_dir / "meta" / "topics.json"

    # -- lifecycle -------------------------------------------------------------------------

    def open(self) -> None:
        """Load topic metadata and open (recover) every partition log."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self._meta_file.exists():
            return
        entries = json.loads(self._meta_file.read_text())
        for entry in entries["topics"]:
            topic = Topic(
                name=entry["name"],
                topic_id=uuid.UUID(entry["id"]),
                configs=dict(entry["configs"]),
            )
            topic.log_config = self.log_config_for(topic.configs)
            for index in range(entry["partitions"]):
                self._open_partition(topic, index)
            self.topics[topic.name] = topic
            self.by_id[topic.topic_id] = topic

    def close(self) -> None:
        for topic in self.topics.values():
            for partition in topic.partitions:
                partition.log.close()

    def _save(self) -> None:
        entries = [
            {
                "name": t.name,
                "id": str(t.topic_id),
                "partitions": len(t.partitions),
                "configs": t.configs,
            }
            for t in self.topics.values()
        ]
        self._meta_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._meta_file.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump({"version": 1, "topics": entries}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._meta_file)
        dir_fd = os.open(self._meta_file.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

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

    def create(
        self,
        name: str,
        num_partitions: int = -1,
        replication_factor: int = -1,
        configs: Mapping[str, str | None] | None = None,
        validate_only: bool = False,
    ) -> Topic | None:
        """Create a topic; raises ApiError with Kafka's code for each way it can be refused."""
        validate_topic_name(name)
        if name in self.topics:
            raise ApiError(ErrorCode.topic_already_exists, f"topic {name!r} already exists")
        if num_partitions == -1:
            num_partitions = self.config.num_partitions
        if num_partitions < 1:
            raise ApiError(
                ErrorCode.invalid_partitions, "number of partitions must be larger than 0"
            )
        if replication_factor not in (-1, 1):
            raise ApiError(
                ErrorCode.invalid_replication_factor,
                f"replication factor {replication_factor} is larger than the number of "
                "available brokers: 1",
            )
        configs = self.validate_configs(dict(configs or {}))
        if validate_only:
            return None
        topic = Topic(name=name, topic_id=uuid.uuid4(), configs=configs)
        topic.log_config = self.log_config_for(configs)
        for index in range(num_partitions):
            self._open_partition(topic, index)
        self.topics[name] = topic
        self.by_id[topic.topic_id] = topic
        self._save()
        log.info("created topic %s with %d partition(s)", name, num_partitions)
        return topic

    def _open_partition(self, topic: Topic, index: int) -> None:
        directory = self.data_dir / f"{topic.name}-{index}"
        # The broker's own topics are replayed at start: every segment is checked first.
        partition_log = PartitionLog.open(directory, topic.log_config, recover_all=topic.internal)
        topic.partitions.append(Partition(topic=topic, index=index, log=partition_log))

    def delete(self, name: str) -> Topic:
        topic = self.topics.get(name)
        if topic is None:
            raise ApiError(ErrorCode.unknown_topic_or_partition, f"unknown topic {name!r}")
        if topic.internal:
            raise ApiError(ErrorCode.invalid_topic_exception, f"{name} is an internal topic")
        del self.topics[name]
        del self.by_id[topic.topic_id]
        self._save()
        for partition in topic.partitions:
            partition.notify_waiters()
            partition.log.delete()
        log.info("deleted topic %s", name)
        return topic

    def add_partitions(self, name: str, count: int, validate_only: bool = False) -> None:
        topic = self.topics.get(name)
        if topic is None:
            raise ApiError(ErrorCode.unknown_topic_or_partition, f"unknown topic {name!r}")
        current = len(topic.partitions)
        if count <= current:
            raise ApiError(
                ErrorCode.invalid_partitions,
                f"topic currently has {current} partitions, which is higher than or equal to "
                f"the requested {count}",
            )
        if validate_only:
            return
        for index in range(current, count):
            self._open_partition(topic, index)
        self._save()

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
        if validate_only:
            return
        topic.configs = configs
        topic.log_config = self.log_config_for(topic.configs)
        for partition in topic.partitions:
            partition.log.set_config(topic.log_config)
        self._save()
