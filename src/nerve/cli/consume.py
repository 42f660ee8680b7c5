"""``nerve consume TOPIC``: print records, one per line, like kcat -C."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from nerve.cli import client
from nerve.cli.client import CommandError

FORMAT_HELP = (
    "output template with {key} {value} {offset} {partition} {timestamp} {headers}, "
    "e.g. '{partition}:{offset} {value}'; {headers} is NAME=VALUE words, CloudEvents "
    "attributes by their names (type=, source=, id=, ...)"
)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("consume", help="print records of a topic")
    parser.add_argument("topic", help="the topic to read")
    parser.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest record (else new ones)"
    )
    parser.add_argument("-g", "--group", help="join this consumer group and commit its offsets")
    parser.add_argument("-p", "--partition", type=int, help="read this partition only")
    parser.add_argument("-n", "--max-messages", type=int, metavar="N", help="exit after N")
    parser.add_argument(
        "-e", "--exit-at-end", action="store_true", help="exit at the end of every partition"
    )
    parser.add_argument("-k", "--key", action="store_true", help="print KEY<TAB>VALUE")
    parser.add_argument("-f", "--format", help=FORMAT_HELP)
    parser.add_argument(
        "--headers",
        action="store_true",
        help="print each record's headers on a line before it (CloudEvents attributes by name)",
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="print Confluent-framed values as they are (default: decoded through the registry)",
    )
    client.add_connection_options(parser)
    client.add_registry_option(parser)


def run(args: argparse.Namespace) -> int:
    try:
        return _consume(args)
    except CommandError as exc:
        print(f"nerve consume: {exc}", file=sys.stderr)
        return 1


def _text(data: bytes | None) -> str:
    """Bytes as text; what is not UTF-8 is printed escaped rather than crashing the tool."""
    if data is None:
        return ""
    return data.decode("utf-8", "backslashreplace")


def _consume(args: argparse.Namespace) -> int:
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, TopicPartition

    admin = client.admin(args)  # fails fast and clearly when the broker is unreachable
    metadata = client.find_topic(admin, args.topic)
    if metadata is None or metadata.error is not None:
        raise CommandError(f"unknown topic {args.topic}")
    partitions = sorted(metadata.partitions)
    if args.partition is not None:
        if args.partition not in partitions:
            raise CommandError(f"topic {args.topic} has no partition {args.partition}")
        partitions = [args.partition]
    config = client.client_config(
        args,
        **{
            "group.id": args.group or "nerve-consume",
            "enable.auto.commit": bool(args.group),
            "auto.offset.reset": "earliest" if args.from_beginning else "latest",
            "enable.partition.eof": True,
        },
    )
    consumer = Consumer(config)
    if args.group and args.partition is None:
        consumer.subscribe([args.topic])
    else:
        start = OFFSET_BEGINNING if args.from_beginning else OFFSET_END
        consumer.assign([TopicPartition(args.topic, p, start) for p in partitions])

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    printed = 0
    at_end: set[int] = set()
    out = sys.stdout
    from nerve.cli.decode import FramedDecoder

    decoder = None if args.raw else FramedDecoder(client.registry_url(args))
    try:
        while not stopping:
            if args.max_messages is not None and printed >= args.max_messages:
                break
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition() or 0)
                    assigned = {tp.partition for tp in consumer.assignment()}
                    if args.exit_at_end and assigned and assigned <= at_end:
                        break
                    continue
                raise CommandError(error.str())
            at_end.discard(message.partition() or 0)
            out.write(_render(args, message, decoder) + "\n")
            out.flush()
            printed += 1
    finally:
        consumer.close()
    return 0


def headers_text(headers: Any) -> str:
    """Headers as ``name=value`` words; CloudEvents attributes (``ce_type``) by their own
    names (``type=``), first, in the spec's order, then the others."""
    ce: dict[str, str] = {}
    others: list[str] = []
    for name, raw in headers or []:
        value = _text(raw)
        if name.startswith("ce_"):
            ce[name[3:]] = value
        elif name == "content-type":
            ce["datacontenttype"] = value
        else:
            others.append(f"{name}={value}")
    ordered = sorted(ce, key=lambda n: (_CE_ORDER.index(n) if n in _CE_ORDER else 99, n))
    return " ".join([*(f"{n}={ce[n]}" for n in ordered), *others])


_CE_ORDER = ["type", "source", "id", "time", "subject", "specversion", "datacontenttype",
             "dataschema", "correlationid", "causationid"]  # fmt: skip


def _render(args: argparse.Namespace, message: Any, decoder: Any = None) -> str:
    raw = message.value()
    decoded = decoder.text(raw) if decoder is not None else None
    value = decoded if decoded is not None else _text(raw)
    if args.format:
        return str(args.format).format(
            key=_text(message.key()),
            value=value,
            offset=message.offset(),
            partition=message.partition(),
            timestamp=message.timestamp()[1],
            headers=headers_text(message.headers()),
        )
    line = f"{_text(message.key())}\t{value}" if args.key else value
    if args.headers:
        where = f"{message.topic()}[{message.partition()}]@{message.offset()}"
        return f"# {where} {headers_text(message.headers())}\n{line}"
    return line
