"""``nerve topics``: list, describe, create and delete topics through the AdminClient."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from nerve.cli import client
from nerve.cli.client import TIMEOUT_S, CommandError, result, table


def add_parser(commands: Any) -> None:
    topics = commands.add_parser("topics", help="list, describe, create and delete topics")
    actions = topics.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="topics and their partition counts")
    listing.add_argument("--all", action="store_true", help="include internal topics (__*)")
    describe = actions.add_parser("describe", help="partitions, offsets and configs of a topic")
    describe.add_argument("topic", help="the topic to describe")
    create = actions.add_parser("create", help="create a topic")
    create.add_argument("topic", help="the topic to create")
    create.add_argument(
        "-p", "--partitions", type=int, default=1, help="how many partitions (default 1)"
    )
    create.add_argument(
        "-c", "--config", action="append", default=[], metavar="NAME=VALUE",
        help="a topic config, e.g. cleanup.policy=compact (repeatable)",
    )  # fmt: skip
    delete = actions.add_parser("delete", help="delete topics and their data")
    delete.add_argument("topic", nargs="+", help="the topics to delete")
    for parser in (listing, describe, create, delete):
        client.add_connection_options(parser)
        parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    try:
        admin = client.admin(args)
        return {
            "list": _list,
            "describe": _describe,
            "create": _create,
            "delete": _delete,
        }[args.action](admin, args)
    except CommandError as exc:
        print(f"nerve topics: {exc}", file=sys.stderr)
        return 1


def _list(admin: Any, args: argparse.Namespace) -> int:
    metadata = admin.list_topics(timeout=TIMEOUT_S)
    rows = sorted(
        (name, len(t.partitions))
        for name, t in metadata.topics.items()
        if args.all or not name.startswith("__")
    )
    if args.json:
        print(json.dumps([{"topic": n, "partitions": p} for n, p in rows]))
    elif rows:
        print(table(rows, ["TOPIC", "PARTITIONS"]))
    return 0


def _describe(admin: Any, args: argparse.Namespace) -> int:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import ConfigResource, ConfigSource, OffsetSpec

    metadata = client.find_topic(admin, args.topic)
    if metadata is None or metadata.error is not None:
        raise CommandError(f"unknown topic {args.topic}")
    partitions = sorted(metadata.partitions.values(), key=lambda p: p.id)

    def offsets(spec: Any) -> dict[int, int]:
        futures = admin.list_offsets(
            {TopicPartition(args.topic, p.id): spec for p in partitions},
            request_timeout=TIMEOUT_S,
        )
        return {tp.partition: result(f).offset for tp, f in futures.items()}

    earliest, latest = offsets(OffsetSpec.earliest()), offsets(OffsetSpec.latest())
    resource = ConfigResource(ConfigResource.Type.TOPIC, args.topic)
    entries = result(admin.describe_configs([resource])[resource])
    # The topic's own settings: broker-wide ones (Kafka 4 sets min.insync.replicas for the
    # whole cluster) are not the topic's.
    configs = {
        name: entry.value
        for name, entry in sorted(entries.items())
        if entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    }
    rows = [(p.id, p.leader, earliest[p.id], latest[p.id]) for p in partitions]
    if args.json:
        print(
            json.dumps(
                {
                    "topic": args.topic,
                    "partitions": [
                        {"partition": r[0], "leader": r[1], "earliest": r[2], "latest": r[3]}
                        for r in rows
                    ],
                    "configs": configs,
                }
            )
        )
        return 0
    print(f"topic {args.topic}: {len(rows)} partition(s)")
    print(table(rows, ["PARTITION", "LEADER", "EARLIEST-OFFSET", "LATEST-OFFSET"]))
    if configs:
        print()
        print(table(sorted(configs.items()), ["CONFIG", "VALUE"]))
    return 0


def _create(admin: Any, args: argparse.Namespace) -> int:
    from confluent_kafka.admin import NewTopic

    configs: dict[str, str] = {}
    for pair in args.config:
        name, sep, value = pair.partition("=")
        if not sep:
            raise CommandError(f"--config wants NAME=VALUE, got {pair!r}")
        configs[name.strip()] = value.strip()
    new = NewTopic(args.topic, num_partitions=args.partitions, config=configs)
    result(admin.create_topics([new], request_timeout=TIMEOUT_S)[args.topic])
    if args.json:
        print(json.dumps({"created": args.topic, "partitions": args.partitions}))
    else:
        print(f"created topic {args.topic} with {args.partitions} partition(s)")
    return 0


def _delete(admin: Any, args: argparse.Namespace) -> int:
    status = 0
    for name, future in admin.delete_topics(args.topic, request_timeout=TIMEOUT_S).items():
        try:
            future.result(timeout=TIMEOUT_S)
        except Exception as exc:
            print(f"nerve topics: cannot delete {name}: {client.reason(exc)}", file=sys.stderr)
            status = 1
            continue
        print(json.dumps({"deleted": name}) if args.json else f"deleted topic {name}")
    return status
