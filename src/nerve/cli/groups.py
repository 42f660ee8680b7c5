"""``nerve groups``: list, describe (with lag), reset offsets of and delete consumer groups.

Everything goes through confluent-kafka's AdminClient, so the command works the same against
nerve's broker and any Kafka cluster. Output follows kafka-consumer-groups.sh closely enough
that people who know that tool read it without a legend.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Any

from nerve.cli import client
from nerve.cli.client import (
    TIMEOUT_S,
    CommandError,
    add_connection_options,
    result,
    table,
)


def add_parser(commands: Any) -> None:
    groups = commands.add_parser("groups", help="list, describe, reset and delete consumer groups")
    actions = groups.add_subparsers(dest="action", required=True)

    def common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        add_connection_options(parser)
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        return parser

    common(actions.add_parser("list", help="every consumer group and its state"))
    describe = common(actions.add_parser("describe", help="members, offsets and lag of a group"))
    describe.add_argument("group", help="the consumer group to describe")
    reset = common(
        actions.add_parser("reset-offsets", help="move an inactive group's committed offsets")
    )
    reset.add_argument("group", help="the consumer group (its consumers stopped)")
    reset.add_argument("--topic", required=True, help="TOPIC or TOPIC:PARTITION[,PARTITION...]")
    target = reset.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-earliest", action="store_true", help="to each partition's start")
    target.add_argument("--to-latest", action="store_true", help="to each partition's end")
    target.add_argument("--to-offset", type=int, metavar="N", help="to offset N")
    target.add_argument(
        "--to-datetime",
        metavar="ISO",
        help="to the first record at or after, e.g. 2026-11-24T10:00:00Z",
    )
    mode = reset.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print the new offsets only")
    mode.add_argument(
        "--execute",
        action="store_true",
        help="apply them (the default here; accepted as kafka-consumer-groups.sh wants it)",
    )
    delete = common(actions.add_parser("delete", help="delete inactive groups and their offsets"))
    delete.add_argument("group", nargs="+", help="the groups to delete")


def run(args: argparse.Namespace) -> int:
    try:
        admin = client.admin(args)
        if args.action == "list":
            return _list(admin, args.json)
        if args.action == "describe":
            return _describe(admin, args.group, args.json)
        if args.action == "reset-offsets":
            return _reset(admin, args)
        if args.action == "delete":
            return _delete(admin, args.group)
    except CommandError as exc:
        print(f"nerve groups: {exc}", file=sys.stderr)
        return 1
    raise AssertionError(args.action)


# -- list ----------------------------------------------------------------------------------


def _list(admin: Any, as_json: bool) -> int:
    listed = result(admin.list_consumer_groups(request_timeout=TIMEOUT_S))
    groups = sorted(listed.valid, key=lambda g: g.group_id)
    rows = [
        (
            g.group_id,
            g.state.name.lower() if g.state else "unknown",
            "simple" if g.is_simple_consumer_group else "consumer",
        )
        for g in groups
    ]
    if as_json:
        print(json.dumps([{"group": r[0], "state": r[1], "kind": r[2]} for r in rows]))
    elif rows:
        print(table(rows, ["GROUP", "STATE", "KIND"]))
    return 0


# -- describe ------------------------------------------------------------------------------


def _describe(admin: Any, group: str, as_json: bool) -> int:
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import OffsetSpec

    try:
        description = _describe_group(admin, group)
    except Exception as exc:
        # Kafka 4 answers GROUP_ID_NOT_FOUND; older brokers a group in state Dead.
        if _not_found(exc):
            raise CommandError(f"unknown group {group}") from None
        raise CommandError(client.reason(exc)) from None
    committed = result(
        admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
    ).topic_partitions
    state_name = description.state.name if description.state else ""
    if state_name == "DEAD" and not description.members and not committed:
        raise CommandError(f"unknown group {group}")
    owners: dict[tuple[str, int], Any] = {}
    for member in description.members:
        for tp in member.assignment.topic_partitions if member.assignment else []:
            owners[(tp.topic, tp.partition)] = member
    offsets = {(tp.topic, tp.partition): tp.offset for tp in committed}
    keys = sorted(set(offsets) | set(owners))
    ends: dict[tuple[str, int], int] = {}
    if keys:
        futures = admin.list_offsets(
            {TopicPartition(t, p): OffsetSpec.latest() for t, p in keys},
            request_timeout=TIMEOUT_S,
        )
        for tp, future in futures.items():
            try:
                ends[(tp.topic, tp.partition)] = future.result(timeout=TIMEOUT_S).offset
            except Exception:
                ends[(tp.topic, tp.partition)] = -1
    partitions = []
    for key in keys:
        current = offsets.get(key, -1)
        end = ends.get(key, -1)
        member = owners.get(key)
        partitions.append(
            {
                "topic": key[0],
                "partition": key[1],
                "current_offset": current if current >= 0 else None,
                "log_end_offset": end if end >= 0 else None,
                "lag": end - current if current >= 0 and end >= 0 else None,
                "member_id": member.member_id if member else None,
                "host": member.host if member else None,
                "client_id": member.client_id if member else None,
            }
        )
    state = description.state.name.lower() if description.state else "unknown"
    if as_json:
        print(
            json.dumps(
                {
                    "group": group,
                    "state": state,
                    "assignor": description.partition_assignor or None,
                    "members": [
                        {
                            "member_id": m.member_id,
                            "client_id": m.client_id,
                            "host": m.host,
                            "group_instance_id": m.group_instance_id,
                            "assignment": sorted(
                                [tp.topic, tp.partition] for tp in m.assignment.topic_partitions
                            )
                            if m.assignment
                            else [],
                        }
                        for m in description.members
                    ],
                    "partitions": partitions,
                }
            )
        )
        return 0
    members = len(description.members)
    print(f"group {group}: {state}, {members} member(s)", end="")
    print(f", assignor {description.partition_assignor}" if description.partition_assignor else "")
    if partitions:
        print()
        print(
            table(
                [
                    (
                        p["topic"],
                        p["partition"],
                        p["current_offset"],
                        p["log_end_offset"],
                        p["lag"],
                        p["member_id"],
                        p["host"],
                        p["client_id"],
                    )
                    for p in partitions
                ],
                [
                    "TOPIC",
                    "PARTITION",
                    "CURRENT-OFFSET",
                    "LOG-END-OFFSET",
                    "LAG",
                    "CONSUMER-ID",
                    "HOST",
                    "CLIENT-ID",
                ],
            )
        )
    return 0


def _describe_group(admin: Any, group: str) -> Any:
    """The group's description, asked again while its coordinator is moving or loading (a
    cluster that just started answers NOT_COORDINATOR first), as Kafka's own tool does."""
    import time

    from confluent_kafka import KafkaError

    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            return admin.describe_consumer_groups([group])[group].result(timeout=TIMEOUT_S)
        except Exception as exc:
            error = exc.args[0] if exc.args else None
            retriable = getattr(error, "code", lambda: None)() in (
                KafkaError.NOT_COORDINATOR,
                KafkaError.COORDINATOR_NOT_AVAILABLE,
                KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
            )
            if not retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _not_found(exc: Exception) -> bool:
    from confluent_kafka import KafkaError

    error = exc.args[0] if exc.args else None
    return bool(getattr(error, "code", lambda: None)() == KafkaError.GROUP_ID_NOT_FOUND)


# -- reset-offsets -------------------------------------------------------------------------


def _reset(admin: Any, args: argparse.Namespace) -> int:
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import OffsetSpec

    description = result(admin.describe_consumer_groups([args.group])[args.group])
    if description.members:
        raise CommandError(
            f"group {args.group} has {len(description.members)} active member(s); "
            "stop its consumers before resetting its offsets"
        )
    topic, _, wanted = args.topic.partition(":")
    metadata = client.find_topic(admin, topic)
    if metadata is None or metadata.error is not None:
        raise CommandError(f"unknown topic {topic}")
    available = sorted(metadata.partitions)
    partitions = [int(p) for p in wanted.split(",")] if wanted else available
    unknown = sorted(set(partitions) - set(available))
    if unknown:
        raise CommandError(f"topic {topic} has no partition(s) {unknown}")
    if args.to_offset is not None:
        targets = dict.fromkeys(partitions, args.to_offset)
    else:
        if args.to_earliest:
            spec = OffsetSpec.earliest()
        elif args.to_latest:
            spec = OffsetSpec.latest()
        else:
            spec = OffsetSpec.for_timestamp(_timestamp_ms(args.to_datetime))
        latest = {
            tp.partition: result(f).offset
            for tp, f in admin.list_offsets(
                {TopicPartition(topic, p): OffsetSpec.latest() for p in partitions},
                request_timeout=TIMEOUT_S,
            ).items()
        }
        targets = {}
        for tp, future in admin.list_offsets(
            {TopicPartition(topic, p): spec for p in partitions}, request_timeout=TIMEOUT_S
        ).items():
            offset = result(future).offset
            # No record at or after that time: the end, as kafka-consumer-groups.sh does.
            targets[tp.partition] = offset if offset >= 0 else latest[tp.partition]
    rows = [(topic, p, targets[p]) for p in sorted(targets)]
    if not args.dry_run:
        request = ConsumerGroupTopicPartitions(
            args.group, [TopicPartition(topic, p, o) for _, p, o in rows]
        )
        altered = result(admin.alter_consumer_group_offsets([request])[args.group])
        failed = [tp for tp in altered.topic_partitions if tp.error is not None]
        if failed:
            raise CommandError(
                "; ".join(f"{tp.topic}-{tp.partition}: {tp.error.str()}" for tp in failed)
            )
    if args.json:
        print(json.dumps([{"topic": t, "partition": p, "new_offset": o} for t, p, o in rows]))
    else:
        print(table(rows, ["TOPIC", "PARTITION", "NEW-OFFSET"]))
        if args.dry_run:
            print("(dry run: nothing changed)")
    return 0


def _timestamp_ms(text: str) -> int:
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(
            f"--to-datetime wants ISO 8601, like 2026-11-24T10:00:00Z: {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time, as a person typing it means it
    return int(moment.timestamp() * 1000)


# -- delete --------------------------------------------------------------------------------


def _delete(admin: Any, groups: list[str]) -> int:
    status = 0
    for group, future in admin.delete_consumer_groups(groups, request_timeout=TIMEOUT_S).items():
        try:
            future.result(timeout=TIMEOUT_S)
            print(f"deleted group {group}")
        except Exception as exc:
            print(f"nerve groups: cannot delete {group}: {client.reason(exc)}", file=sys.stderr)
            status = 1
    return status
