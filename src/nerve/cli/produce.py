"""``nerve produce TOPIC``: one record per line of standard input, acknowledged by all."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from nerve.cli import client
from nerve.cli.client import CommandError


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("produce", help="write lines from stdin as records")
    parser.add_argument("topic", help="the topic to write to")
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument("-k", "--key", help="the same key for every record")
    keys.add_argument(
        "-K", "--key-separator", metavar="SEP", help="split each line into KEY SEP VALUE"
    )
    parser.add_argument(
        "-H", "--header", action="append", default=[], metavar="NAME=VALUE",
        help="a header on every record (repeatable)",
    )  # fmt: skip
    parser.add_argument("-p", "--partition", type=int, help="write to this partition only")
    parser.add_argument("-v", "--verbose", action="store_true", help="report what was written")
    client.add_connection_options(parser)


def run(args: argparse.Namespace) -> int:
    try:
        return _produce(args)
    except CommandError as exc:
        print(f"nerve produce: {exc}", file=sys.stderr)
        return 1


def _produce(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaError, Message, Producer

    client.admin(args)  # fails fast and clearly when the broker is unreachable
    headers = []
    for pair in args.header:
        name, sep, value = pair.partition("=")
        if not sep:
            raise CommandError(f"--header wants NAME=VALUE, got {pair!r}")
        headers.append((name, value.encode()))
    producer = Producer(client.client_config(args, acks="all", **{"message.timeout.ms": 30000}))
    failures: list[str] = []
    offsets: dict[int, list[int]] = {}

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            failures.append(err.str())
        else:
            offsets.setdefault(msg.partition() or 0, []).append(msg.offset() or 0)

    count = 0
    for raw in sys.stdin.buffer:
        line = raw.rstrip(b"\r\n")
        key: bytes | None = args.key.encode() if args.key is not None else None
        value = line
        if args.key_separator is not None:
            sep = args.key_separator.encode()
            if sep not in line:
                raise CommandError(f"line {count + 1} has no key separator {args.key_separator!r}")
            key, value = line.split(sep, 1)
        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": on_delivery}
        if headers:
            kwargs["headers"] = headers
        if args.partition is not None:
            kwargs["partition"] = args.partition
        while True:
            try:
                producer.produce(args.topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        count += 1
    remaining = producer.flush(60)
    if remaining:
        failures.append(f"{remaining} record(s) not acknowledged within 60 s")
    if failures:
        raise CommandError(f"{len(failures)} record(s) failed: {failures[0]}")
    if args.verbose:
        spans = ", ".join(
            f"partition {p}: offsets {min(o)}-{max(o)}" for p, o in sorted(offsets.items())
        )
        print(f"wrote {count} record(s) to {args.topic}" + (f" ({spans})" if spans else ""))
    return 0
