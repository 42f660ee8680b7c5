"""A service as a work queue: its replicas are members of a share group (KIP-932).

Each record is handed to one replica at a time, under the broker's acquisition lock, and
acknowledged on its own once the batch it came in is durable (its emits acknowledged):

- ACCEPT: every handler took it (or skipped it);
- RELEASE: a handler failed with attempts left, or the batch's emits failed; the broker hands it
  out again (to any replica) with its delivery count one higher, which is the attempt number;
- REJECT: it went to the dead-letter topic; the broker never delivers it again.

The broker archives a record released ``group.share.delivery.count.limit`` times (5 by default)
without telling anyone, so the last attempt a replica makes is the lesser of the handler's and
that limit: it is dead-lettered then, never released into the broker's silent archive.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import AcknowledgeType, KafkaException, Message, ShareConsumer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
)

log = logging.getLogger("nerve.service")

# Kafka's default for group.share.delivery.count.limit.
DEFAULT_DELIVERY_LIMIT = 5
# Which acknowledgement wins when handlers of one record disagree: trying again loses nothing
# (a handler that had succeeded runs again, as after any at-least-once redelivery).
_PRECEDENCE = {AcknowledgeType.ACCEPT: 0, AcknowledgeType.REJECT: 1, AcknowledgeType.RELEASE: 2}


def position(message: Message) -> tuple[str, int, int]:
    return (message.topic() or "", message.partition() or 0, message.offset() or 0)


def make_consumer(config: dict[str, Any]) -> ShareConsumer:
    """A share consumer that acknowledges each record explicitly."""
    return ShareConsumer({**config, "share.acknowledgement.mode": "explicit"})


def prepare_group(admin: AdminClient, group: str, start: str, service: str) -> None:
    """A new share group begins at the log end (Kafka's ``share.auto.offset.reset``); the
    service's ``start`` says otherwise. Set on the group unless someone set it already."""
    resource = ConfigResource("group", group)
    try:
        entries = admin.describe_configs([resource])[resource].result(10)
        entry = entries.get("share.auto.offset.reset")
        if entry is not None and not entry.is_default and entry.value:
            if entry.value != start:
                log.info(
                    "%s: share group %s starts at %s (its share.auto.offset.reset), not %s",
                    service,
                    group,
                    entry.value,
                    start,
                )
            return
    except KafkaException as exc:
        log.info("%s: cannot read the configs of share group %s: %s", service, group, exc)
    setting = ConfigResource(
        "group",
        group,
        incremental_configs=[
            ConfigEntry(
                "share.auto.offset.reset", start, incremental_operation=AlterConfigOpType.SET
            )
        ],
    )
    admin.incremental_alter_configs([setting])[setting].result(10)


def delivery_limit(admin: AdminClient, service: str) -> int:
    """The broker's ``group.share.delivery.count.limit``; Kafka's default if unreadable."""
    try:
        brokers = admin.list_topics(timeout=10).brokers
        resource = ConfigResource("broker", str(next(iter(brokers))))
        entries = admin.describe_configs([resource])[resource].result(10)
        entry = entries.get("group.share.delivery.count.limit")
        if entry is not None and entry.value:
            return int(entry.value)
    except (KafkaException, StopIteration, ValueError) as exc:
        log.info(
            "%s: cannot read group.share.delivery.count.limit (%s); taking %d",
            service,
            exc,
            DEFAULT_DELIVERY_LIMIT,
        )
    return DEFAULT_DELIVERY_LIMIT


class Acknowledgements:
    """What each record of the batch in hand will be acknowledged with (ACCEPT unless a
    handler said otherwise), sent once the batch is durable."""

    def __init__(self) -> None:
        self.marked: dict[tuple[str, int, int], AcknowledgeType] = {}

    def mark(self, message: Message, kind: AcknowledgeType) -> None:
        key = position(message)
        current = self.marked.get(key, AcknowledgeType.ACCEPT)
        if _PRECEDENCE[kind] >= _PRECEDENCE[current]:
            self.marked[key] = kind

    def settle(
        self, consumer: ShareConsumer, messages: list[Message], *, release_all: bool = False
    ) -> None:
        """Acknowledge every record of the batch; they go to the broker with the next poll
        (or on close)."""
        marked, self.marked = self.marked, {}
        for message in messages:
            if message.error() is not None:
                continue
            kind = (
                AcknowledgeType.RELEASE
                if release_all
                else marked.get(position(message), AcknowledgeType.ACCEPT)
            )
            consumer.acknowledge(message, kind)
