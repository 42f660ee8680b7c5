"""``nerve produce TOPIC``: one record per line of standard input, acknowledged by all."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from nerve.cli import client
from nerve.cli.client import CommandError


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "produce",
        help="write lines from stdin as records",
        description="Write each line of standard input as a record. With --event MODULE:Class "
        "each line is the JSON of that event type: validated (a bad line stops with the field "
        "and the reason), sent as a CloudEvent to the event's topic, keyed by its key field, "
        "its schema registered as a service would.",
    )
    parser.add_argument(
        "topic", nargs="?", help="the topic to write to (with --event: the event's own)"
    )
    parser.add_argument(
        "--event",
        metavar="MODULE:CLASS",
        help="an Event class (events.orders:Placed or path/events.py:Placed): an event a line",
    )
    parser.add_argument(
        "--no-registry", action="store_true", help="with --event: do not register its schema"
    )
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
    client.add_registry_option(parser)


def run(args: argparse.Namespace) -> int:
    try:
        return _produce(args)
    except CommandError as exc:
        print(f"nerve produce: {exc}", file=sys.stderr)
        return 1


def _produce(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaError, Message, Producer

    typed = _typed(args) if args.event else None
    if typed is None and args.topic is None:
        raise CommandError("give a topic, or --event MODULE:Class")
    if typed is not None and args.key_separator is not None:
        raise CommandError("--event takes the key from the event; drop -K")
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
        record_headers = headers
        if typed is not None:
            if not line.strip():
                continue
            key, value, record_headers = typed.encode(line, count + 1, key)
            record_headers = [*record_headers, *headers]
        elif args.key_separator is not None:
            sep = args.key_separator.encode()
            if sep not in line:
                raise CommandError(f"line {count + 1} has no key separator {args.key_separator!r}")
            key, value = line.split(sep, 1)
        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": on_delivery}
        if record_headers:
            kwargs["headers"] = record_headers
        if args.partition is not None:
            kwargs["partition"] = args.partition
        while True:
            try:
                producer.produce(typed.topic if typed else args.topic, **kwargs)
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
        topic = typed.topic if typed else args.topic
        print(f"wrote {count} record(s) to {topic}" + (f" ({spans})" if spans else ""))
    return 0


class _Typed:
    """Lines as events of one Event class, encoded as a service emits them."""

    def __init__(self, event_type: Any, schema_id: int | None, registry: str | None) -> None:
        self.event_type = event_type
        self.topic: str = event_type.topic
        self.schema_id, self.registry = schema_id, registry
        self.avro: Any = None
        if event_type.value_format == "avro":
            from nerve.service.avro import AvroCodec

            assert registry is not None
            self.avro = AvroCodec(registry)

    def encode(self, line: bytes, number: int, key: bytes | None) -> tuple[Any, bytes, Any]:
        from pydantic import ValidationError

        from nerve.service import envelope

        try:
            event = self.event_type.model_validate_json(line)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(the line)'}: {e['msg']}"
                for e in exc.errors()
            )
            raise CommandError(
                f"line {number} is not a {self.event_type.__name__}: {problems}"
            ) from None
        meta = event.meta
        meta.source, meta.type = "/nerve/cli/produce", event.event_type
        if self.schema_id is not None:
            meta.dataschema = f"{self.registry}/schemas/ids/{self.schema_id}"
        if self.avro is not None:
            assert self.schema_id is not None
            data, content_type = self.avro.encode(event, self.schema_id), "application/avro"
        else:
            data, content_type = event.__pydantic_serializer__.to_json(event), envelope.JSON
        value, headers = envelope.write(meta, data, content_type, event.content_mode)
        return (key if key is not None else event.record_key()), value, headers


def _typed(args: argparse.Namespace) -> _Typed:
    event_type = load_event(args.event)
    if args.topic is not None and args.topic != event_type.topic:
        raise CommandError(
            f"{event_type.__name__} is an event of topic {event_type.topic}, not {args.topic}"
        )
    avro = event_type.value_format == "avro"
    if args.no_registry:
        if avro:
            raise CommandError(f"{event_type.__name__} is Avro: it needs the registry")
        return _Typed(event_type, None, None)
    url = client.registry_url(args)
    subject = f"{event_type.topic}-value"
    try:
        if avro:
            from nerve.service.avro import AvroCodec

            schema_id = AvroCodec(url).register(subject, event_type)
        else:
            from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

            text = json.dumps(event_type.model_json_schema())
            registry = SchemaRegistryClient({"url": url})
            schema_id = registry.register_schema(subject, Schema(text, "JSON"))
    except Exception as exc:
        reason = getattr(exc, "error_message", None) or str(exc)
        raise CommandError(
            f"cannot register {event_type.__name__} as {subject} at {url}: {reason} "
            "(--no-registry sends without)"
        ) from None
    return _Typed(event_type, int(schema_id), url)


def load_event(spec: str) -> Any:
    """``module:Class`` (importable from the current directory) or ``file.py:Class``."""
    import importlib
    import importlib.util
    import os

    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise CommandError(f"--event wants MODULE:Class or FILE.py:Class, got {spec!r}")
    try:
        if where.endswith(".py"):
            path = os.path.abspath(where)
            sys.path.insert(0, os.path.dirname(path))  # its sibling modules
            module_name = f"nerve_events_{os.path.basename(path)[:-3]}"
            module_spec = importlib.util.spec_from_file_location(module_name, path)
            if module_spec is None or module_spec.loader is None:
                raise CommandError(f"cannot load {where}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module
            module_spec.loader.exec_module(module)
        else:
            sys.path.insert(0, os.getcwd())
            module = importlib.import_module(where)
    except CommandError:
        raise
    except Exception as exc:
        raise CommandError(f"cannot load {where}: {type(exc).__name__}: {exc}") from None
    from nerve.service.events import event_types

    found = getattr(module, name, None)
    if not event_types(found):
        raise CommandError(f"{where} has no Event class {name} bound to a topic")
    return found
