"""``nerve dlq list|replay TOPIC``: look at dead letters and send them back after a fix.

Dead letters of ``TOPIC`` live in ``TOPIC.dlq`` with the ``nerve_dlq_*`` headers of
:mod:`nerve.service.dead_letters`. Replay progress is the committed offset of the consumer group
``nerve-dlq-replay.TOPIC`` on the dlq topic, so any Kafka tool can see (and reset) it; letters
replayed past that offset by a filtered replay are named in the commit's metadata, so running a
replay twice never sends a letter twice.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nerve.cli import client
from nerve.cli.client import TIMEOUT_S, CommandError, add_connection_options, table
from nerve.service import dead_letters

if TYPE_CHECKING:
    from nerve.service.envelope import Headers

REPLAYED_FROM = "nerve_replayed_from"
GROUP_PREFIX = "nerve-dlq-replay."
_ERROR_WIDTH = 60
# Kafka's offset.metadata.max.bytes defaults to 4096; stay clear of it.
_METADATA_MAX = 4000


def replay_group(topic: str) -> str:
    return GROUP_PREFIX + topic


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("dlq", help="list and replay dead-lettered events")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the dead letters of a topic, oldest first")
    listing.add_argument("topic", help="the original topic (its dead letters are in TOPIC.dlq)")
    listing.add_argument("--json", action="store_true", help="one JSON object per dead letter")
    add_connection_options(listing)
    replay = actions.add_parser(
        "replay", help="send dead letters back to their topic (each one once)"
    )
    replay.add_argument("topic", help="the original topic (its dead letters are in TOPIC.dlq)")
    replay.add_argument(
        "--offset",
        action="append",
        default=[],
        metavar="[PARTITION:]OFFSET",
        help="replay only this dead letter (its offset in TOPIC.dlq; repeatable)",
    )
    replay.add_argument("--service", help="replay only letters this service dead-lettered")
    replay.add_argument("--dry-run", action="store_true", help="show what would be replayed")
    add_connection_options(replay)


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "list":
            return _list(args)
        if args.action == "replay":
            return _replay(args)
    except CommandError as exc:
        print(f"nerve dlq: {exc}", file=sys.stderr)
        return 1
    raise AssertionError(args.action)


# -- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    """One record of a dlq topic."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers

    @property
    def where(self) -> str:
        return f"{self.partition}:{self.offset}"

    def header(self, name: str) -> str | None:
        return dead_letters.header(self.headers, name)


@dataclass
class Progress:
    """How far replay got in one dlq partition: every letter below ``next`` is done, and so
    are the ``replayed`` ones at or above it (sent by a filtered replay)."""

    next: int = 0
    replayed: set[int] = field(default_factory=set)

    def done(self, offset: int) -> bool:
        return offset < self.next or offset in self.replayed

    def metadata(self) -> str:
        return "replayed=" + _ranges(sorted(self.replayed)) if self.replayed else ""

    @classmethod
    def parse(cls, offset: int, metadata: str | None) -> Progress:
        replayed: set[int] = set()
        for part in (metadata or "").split(";"):
            name, _, ranges = part.partition("=")
            if name.strip() != "replayed":
                continue
            for item in ranges.split(","):
                low, _, high = item.strip().partition("-")
                if low.isdigit() and (not high or high.isdigit()):
                    replayed.update(range(int(low), int(high or low) + 1))
        start = max(offset, 0)  # no commit yet: librdkafka says -1001
        return cls(start, {o for o in replayed if o >= start})


def _ranges(offsets: list[int]) -> str:
    parts: list[str] = []
    i = 0
    while i < len(offsets):
        j = i
        while j + 1 < len(offsets) and offsets[j + 1] == offsets[j] + 1:
            j += 1
        parts.append(str(offsets[i]) if i == j else f"{offsets[i]}-{offsets[j]}")
        i = j + 1
    return ",".join(parts)


def _dlq_partitions(admin: Any, topic: str) -> tuple[str, list[int]] | None:
    """TOPIC.dlq and its partitions; None when TOPIC exists but nothing of it was ever
    dead-lettered (no TOPIC.dlq yet); CommandError for an unknown TOPIC."""
    dlq = dead_letters.dlq_topic(topic)
    metadata = client.find_topic(admin, dlq)
    if metadata is None or metadata.error is not None:
        if client.find_topic(admin, topic) is None:
            raise CommandError(f"unknown topic {topic} (and no dead-letter topic {dlq})")
        return None
    return dlq, sorted(metadata.partitions)


def _consumer(args: argparse.Namespace) -> Any:
    from confluent_kafka import Consumer

    return Consumer(
        client.client_config(
            args,
            **{
                "group.id": replay_group(args.topic),
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": True,
            },
        )
    )


def _read(args: argparse.Namespace, dlq: str) -> list[DeadLetter]:
    """Every committed letter, start to end (a letter written in an aborted exactly-once
    transaction was never sent, so it is not listed)."""
    from confluent_kafka import KafkaException

    from nerve.service.topic_reader import read_to_end

    try:
        records = read_to_end(client.client_config(args), dlq, timeout_s=TIMEOUT_S)
    except TimeoutError as exc:
        raise CommandError(str(exc)) from None
    except KafkaException as exc:
        raise CommandError(client.reason(exc)) from None
    letters = []
    for m in records or ():
        headers: Any = m.headers() or []  # a list of pairs as consumed
        letters.append(DeadLetter(m.partition() or 0, m.offset() or 0, m.key(), m.value(), headers))
    return sorted(letters, key=lambda letter: (letter.partition, letter.offset))


def _progress(consumer: Any, dlq: str, partitions: list[int]) -> dict[int, Progress]:
    from confluent_kafka import TopicPartition

    try:
        committed = consumer.committed(
            [TopicPartition(dlq, p) for p in partitions], timeout=TIMEOUT_S
        )
    except Exception as exc:
        raise CommandError(f"cannot read the replay progress: {client.reason(exc)}") from None
    return {tp.partition: Progress.parse(tp.offset, tp.metadata) for tp in committed}


# -- list ----------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    admin = client.admin(args)
    found = _dlq_partitions(admin, args.topic)
    if found is None:
        if not args.json:
            print(
                f"no dead letters of {args.topic} (nothing dead-lettered yet: no {args.topic}.dlq)"
            )
        return 0
    dlq, partitions = found
    consumer = _consumer(args)
    try:
        progress = _progress(consumer, dlq, partitions)
        letters = _read(args, dlq)
    finally:
        consumer.close()

    def replayed(letter: DeadLetter) -> bool:
        return progress.get(letter.partition, Progress()).done(letter.offset)

    if args.json:
        for letter in letters:
            print(json.dumps(_as_json(letter, replayed(letter))))
        return 0
    if not letters:
        print(f"no dead letters in {dlq}")
        return 0
    rows = [
        (
            letter.where,
            _origin(letter, args.topic),
            _text(letter.key),
            letter.header(dead_letters.SERVICE),
            letter.header(dead_letters.HANDLER),
            letter.header(dead_letters.ATTEMPTS),
            letter.header(dead_letters.ERROR_TYPE),
            _short(letter.header(dead_letters.ERROR)),
            letter.header(dead_letters.TIME),
            "yes" if replayed(letter) else "no",
        )
        for letter in letters
    ]
    header = ["DLQ", "ORIGIN", "KEY", "SERVICE", "HANDLER", "ATTEMPTS", "ERROR-TYPE", "ERROR"]
    print(table(rows, [*header, "TIME", "REPLAYED"]))
    return 0


def _origin(letter: DeadLetter, topic: str) -> str:
    """Partition:offset in the original topic, with the topic when it is not TOPIC."""
    origin = letter.header(dead_letters.TOPIC)
    where = f"{letter.header(dead_letters.PARTITION)}:{letter.header(dead_letters.OFFSET)}"
    return where if origin in (None, topic) else f"{origin}:{where}"


def _as_json(letter: DeadLetter, replayed: bool) -> dict[str, Any]:
    key, key_encoding = _encoded(letter.key)
    value, value_encoding = _encoded(letter.value)
    out: dict[str, Any] = {"partition": letter.partition, "offset": letter.offset}
    others: dict[str, Any] = {}
    for name, data in letter.headers:
        if name.startswith(dead_letters.PREFIX):
            out[name] = _text(data)
        else:
            others[name] = _text(data)
    out.update(
        key=key,
        key_encoding=key_encoding,
        value=value,
        value_encoding=value_encoding,
        ce_id=letter.header("ce_id"),
        headers=others,
        replayed=replayed,
    )
    return out


def _encoded(data: bytes | None) -> tuple[str | None, str | None]:
    """Text when it is UTF-8, else base64, and which of the two."""
    if data is None:
        return None, None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def _text(data: bytes | str | None) -> str | None:
    if data is None or isinstance(data, str):
        return data
    return data.decode("utf-8", "backslashreplace")


def _short(error: str | None) -> str | None:
    if error is None:
        return None
    line = " ".join(error.split())
    return line if len(line) <= _ERROR_WIDTH else line[: _ERROR_WIDTH - 3] + "..."


# -- replay --------------------------------------------------------------------------------


def _wanted_offsets(specs: Iterable[str]) -> set[tuple[int | None, int]]:
    wanted: set[tuple[int | None, int]] = set()
    for spec in specs:
        partition, _, offset = spec.rpartition(":")
        if not offset.isdigit() or (partition and not partition.isdigit()):
            raise CommandError(f"--offset wants OFFSET or PARTITION:OFFSET, got {spec!r}")
        wanted.add((int(partition) if partition else None, int(offset)))
    return wanted


def _selected(letter: DeadLetter, wanted: set[tuple[int | None, int]], service: str | None) -> bool:
    if wanted and not ({(letter.partition, letter.offset), (None, letter.offset)} & wanted):
        return False
    return service is None or letter.header(dead_letters.SERVICE) == service


def _exists(spec: tuple[int | None, int], letters: list[DeadLetter]) -> bool:
    partition, offset = spec
    return any(x.offset == offset and partition in (None, x.partition) for x in letters)


def _target(letter: DeadLetter, topic: str) -> str:
    return letter.header(dead_letters.TOPIC) or topic


def _replay_headers(letter: DeadLetter, dlq: str) -> Headers:
    kept = [
        (name, data)
        for name, data in letter.headers
        if not name.startswith(dead_letters.PREFIX) and name != REPLAYED_FROM
    ]
    return [*kept, (REPLAYED_FROM, f"{dlq}:{letter.partition}:{letter.offset}".encode())]


def _advanced(before: Progress, letters: list[DeadLetter], sent: set[int]) -> Progress:
    """The progress once ``sent`` are replayed: ``next`` moves over every done letter."""
    done = before.replayed | sent
    after = Progress(before.next, set())
    for letter in letters:  # one partition's, in offset order
        if letter.offset < after.next:
            continue
        if letter.offset not in done:
            break
        after.next = letter.offset + 1
    after.replayed = {o for o in done if o >= after.next}
    return after


@dataclass
class Replay:
    """What a replay chose and did (``dry_run``: only chose)."""

    dlq: str | None
    chosen: list[DeadLetter]
    already: int
    unselected: int
    targets: list[str]
    dry_run: bool
    replayed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def skipped(self) -> str:
        return f"skipped {self.already} already replayed, {self.unselected} not selected"


def replay(
    args: argparse.Namespace,
    wanted: set[tuple[int | None, int]],
    service: str | None,
    dry_run: bool,
) -> Replay:
    """Replay the pending dead letters of ``args.topic`` that ``wanted`` (offsets) and
    ``service`` select, each once: progress is committed as the replay group's offset and
    metadata, so a letter already replayed is never sent again. The console calls this too."""
    admin = client.admin(args)
    found = _dlq_partitions(admin, args.topic)
    if found is None:
        if wanted:
            raise CommandError(
                f"no dead letters of {args.topic}: nothing to replay at "
                + ", ".join(
                    f"{p}:{o}" if p is not None else str(o) for p, o in sorted(wanted, key=str)
                )
            )
        return Replay(None, [], 0, 0, [], dry_run)
    dlq, partitions = found
    consumer = _consumer(args)
    try:
        progress = _progress(consumer, dlq, partitions)
        letters = _read(args, dlq)
        missing = [spec for spec in sorted(wanted, key=str) if not _exists(spec, letters)]
        if missing:
            names = ", ".join(f"{p}:{o}" if p is not None else str(o) for p, o in missing)
            raise CommandError(f"no dead letter at offset(s) {names} in {dlq}")
        already = [letter for letter in letters if progress[letter.partition].done(letter.offset)]
        pending = [
            letter for letter in letters if not progress[letter.partition].done(letter.offset)
        ]
        chosen = [letter for letter in pending if _selected(letter, wanted, service)]
        targets = sorted({_target(letter, args.topic) for letter in chosen})
        outcome = Replay(dlq, chosen, len(already), len(pending) - len(chosen), targets, dry_run)
        absent = [t for t in targets if client.find_topic(admin, t) is None]
        if absent:
            raise CommandError(f"cannot replay to unknown topic(s) {', '.join(absent)}")
        if dry_run:
            return outcome
        by_partition = {p: [x for x in letters if x.partition == p] for p in progress}
        chosen_offsets = {p: {x.offset for x in chosen if x.partition == p} for p in progress}
        planned = {p: _advanced(progress[p], by_partition[p], chosen_offsets[p]) for p in progress}
        too_long = [p for p, after in planned.items() if len(after.metadata()) > _METADATA_MAX]
        if too_long:
            raise CommandError(
                f"too many scattered replays in {dlq} partition(s) {too_long} to record; "
                "replay the letters before them first (fewer filters)"
            )
        sent, outcome.failures = _send(args, dlq, chosen)
        commit = {p: _advanced(progress[p], by_partition[p], sent.get(p, set())) for p in progress}
        _commit(consumer, dlq, {p: a for p, a in commit.items() if a != progress[p]})
    finally:
        consumer.close()
    outcome.replayed = sum(len(offsets) for offsets in sent.values())
    return outcome


def _replay(args: argparse.Namespace) -> int:
    wanted = _wanted_offsets(args.offset)
    outcome = replay(args, wanted, args.service, args.dry_run)
    if outcome.dlq is None:
        print(f"replayed 0 dead letter(s): nothing of {args.topic} has been dead-lettered")
        return 0
    if args.dry_run:
        if outcome.chosen:
            rows = [
                (
                    letter.where,
                    _target(letter, args.topic),
                    _text(letter.key),
                    letter.header(dead_letters.SERVICE),
                    letter.header(dead_letters.ERROR_TYPE),
                    _short(letter.header(dead_letters.ERROR)),
                )
                for letter in outcome.chosen
            ]
            print(table(rows, ["DLQ", "TO", "KEY", "SERVICE", "ERROR-TYPE", "ERROR"]))
        print(
            f"dry run: would replay {len(outcome.chosen)} dead letter(s) from {outcome.dlq}; "
            f"{outcome.skipped}"
        )
        return 0
    to = ", ".join(outcome.targets) if outcome.targets else args.topic
    print(
        f"replayed {outcome.replayed} dead letter(s) from {outcome.dlq} to {to}; {outcome.skipped}"
    )
    if outcome.failures:
        for where, reason in outcome.failures:
            print(f"nerve dlq: {outcome.dlq}:{where} not replayed: {reason}", file=sys.stderr)
        return 1
    return 0


def _send(
    args: argparse.Namespace, dlq: str, letters: list[DeadLetter]
) -> tuple[dict[int, set[int]], list[tuple[str, str]]]:
    """Produce idempotently and flush: the offsets delivered by partition, and the failures."""
    from confluent_kafka import Producer

    sent: dict[int, set[int]] = {}
    failures: list[tuple[str, str]] = []
    if not letters:
        return sent, failures
    producer = Producer(client.client_config(args, **{"enable.idempotence": True, "acks": "all"}))

    def delivered(letter: DeadLetter) -> Any:
        def report(error: Any, _message: Any) -> None:
            if error is None:
                sent.setdefault(letter.partition, set()).add(letter.offset)
            else:
                failures.append((letter.where, error.str()))

        return report

    for letter in letters:
        while True:
            try:
                producer.produce(
                    _target(letter, args.topic),
                    key=letter.key,
                    value=letter.value,
                    headers=_replay_headers(letter, dlq),
                    on_delivery=delivered(letter),
                )
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.5)
    left = producer.flush(TIMEOUT_S * 4)
    if left:
        failures.append(("*", f"{left} record(s) still undelivered after flushing"))
    return sent, failures


def _commit(consumer: Any, dlq: str, progress: dict[int, Progress]) -> None:
    from confluent_kafka import TopicPartition

    if not progress:
        return
    offsets = [TopicPartition(dlq, p, a.next, a.metadata()) for p, a in sorted(progress.items())]
    try:
        committed = consumer.commit(offsets=offsets, asynchronous=False) or []
    except Exception as exc:
        raise CommandError(
            f"replayed, but could not record it (a rerun would send them again): "
            f"{client.reason(exc)}"
        ) from None
    failed = [tp for tp in committed if tp.error is not None]
    if failed:
        raise CommandError(
            "replayed, but could not record it (a rerun would send them again): "
            + "; ".join(f"{tp.topic}-{tp.partition}: {tp.error.str()}" for tp in failed)
        )
