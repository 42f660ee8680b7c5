"""Dead letters: every ``<topic>.dlq`` with its failed records (error, attempts, origin,
service), and replay of one or all back to their topic by the rule of ``nerve dlq replay``
(the same code: progress committed by the group ``nerve-dlq-replay.<topic>``, so a letter is
never sent twice, whether replayed from here or from the command line)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from nerve.cli import dlq as dlq_command
from nerve.cli.client import CommandError
from nerve.console.cluster import Cluster, ConsoleError
from nerve.console.decoding import Decoder, Record, record
from nerve.service import dead_letters

LETTERS_SHOWN = 200  # the newest letters a page shows per dlq topic


@dataclass
class DlqRow:
    topic: str  # the original topic
    dlq: str
    letters: int
    pending: int | None


@dataclass
class Letter:
    record: Record
    error: str | None
    error_type: str | None
    attempts: str | None
    origin: str
    service: str | None
    handler: str | None
    time: str | None
    replayed: bool


def _args(cluster: Cluster, topic: str) -> argparse.Namespace:
    """The settings ``nerve dlq`` takes from its command line, for its functions."""
    config = cluster.config
    return argparse.Namespace(
        bootstrap_servers=config.bootstrap_servers,
        client_config=[f"{k}={v}" for k, v in config.client_config.items()],
        topic=topic,
    )


def list_dlqs(cluster: Cluster) -> list[DlqRow]:
    from confluent_kafka import TopicPartition

    metadata = cluster.metadata().topics
    names = sorted(n for n in metadata if n.endswith(dead_letters.DLQ_SUFFIX))
    rows = []
    for name in names:
        partitions = sorted(metadata[name].partitions)
        marks = cluster.watermarks(name, partitions)
        count = sum(max(high - low, 0) for low, high in marks.values())
        topic = name[: -len(dead_letters.DLQ_SUFFIX)]
        pending: int | None = None
        try:
            committed = cluster.result(
                _committed(cluster, topic, [TopicPartition(name, p) for p in partitions])
            )
            pending = 0
            for tp in committed.topic_partitions:
                done = dlq_command.Progress.parse(tp.offset, tp.metadata)
                low, high = marks[tp.partition]
                pending += sum(1 for o in range(max(done.next, low), high) if not done.done(o))
        except ConsoleError:
            pending = None
        rows.append(DlqRow(topic, name, count, pending))
    return rows


def _committed(cluster: Cluster, topic: str, partitions: list[Any]) -> Any:
    from confluent_kafka import ConsumerGroupTopicPartitions

    group = dlq_command.replay_group(topic)
    return cluster.admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, partitions)], request_timeout=cluster.timeout
    )[group]


def letters(cluster: Cluster, decoder: Decoder, topic: str) -> list[Letter]:
    """The newest letters of ``topic``'s dlq, newest first, with whether each was replayed."""
    from confluent_kafka import TopicPartition

    from nerve.console.messages import read_range

    dlq = dead_letters.dlq_topic(topic)
    metadata = cluster.topic(dlq)
    partitions = sorted(metadata.partitions)
    marks = cluster.watermarks(dlq, partitions)
    committed = cluster.result(
        _committed(cluster, topic, [TopicPartition(dlq, p) for p in partitions])
    )
    progress = {
        tp.partition: dlq_command.Progress.parse(tp.offset, tp.metadata)
        for tp in committed.topic_partitions
    }
    start = {p: max(low, high - LETTERS_SHOWN) for p, (low, high) in marks.items()}
    stop = {p: high for p, (_, high) in marks.items()}
    messages = read_range(cluster, dlq, start, stop, LETTERS_SHOWN, lambda m: m)
    out = []
    for message in messages:
        headers = message.headers() or []

        def header(name: str, headers: Any = headers) -> str | None:
            return dead_letters.header(headers, name)

        origin = (
            f"{header(dead_letters.TOPIC) or topic}:{header(dead_letters.PARTITION)}:"
            f"{header(dead_letters.OFFSET)}"
        )
        done = progress.get(message.partition(), dlq_command.Progress())
        out.append(
            Letter(
                record(decoder, message),
                header(dead_letters.ERROR),
                header(dead_letters.ERROR_TYPE),
                header(dead_letters.ATTEMPTS),
                origin,
                header(dead_letters.SERVICE),
                header(dead_letters.HANDLER),
                header(dead_letters.TIME),
                done.done(message.offset()),
            )
        )
    out.sort(key=lambda letter: letter.record.timestamp, reverse=True)
    return out


def replay(cluster: Cluster, topic: str, where: str | None, dry_run: bool) -> dlq_command.Replay:
    """Replay one letter (``where`` = ``PARTITION:OFFSET`` in the dlq) or all pending ones."""
    try:
        wanted = dlq_command._wanted_offsets([where] if where else [])
        return dlq_command.replay(_args(cluster, topic), wanted, None, dry_run)
    except CommandError as exc:
        raise ConsoleError(str(exc), 409) from None
