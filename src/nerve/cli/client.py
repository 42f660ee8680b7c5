"""What the client commands (topics, produce, consume, groups) share: where the broker is,
how a failure is reported, how a table is printed."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
TIMEOUT_S = 15.0


class CommandError(Exception):
    """A failure to report in one line and exit 1 with."""


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-b",
        "--bootstrap-servers",
        default=None,
        help="bootstrap servers (default: $NERVE_BOOTSTRAP_SERVERS, else 127.0.0.1:9092)",
    )
    parser.add_argument(
        "-X",
        dest="client_config",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a librdkafka setting, e.g. -X security.protocol=SSL (repeatable)",
    )


def client_config(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """librdkafka settings: bootstrap servers, quiet logs, then the user's -X overrides."""
    servers = (
        args.bootstrap_servers or os.environ.get("NERVE_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP
    )
    config: dict[str, Any] = {"bootstrap.servers": servers, "log_level": 0, **extra}
    for pair in args.client_config:
        name, sep, value = pair.partition("=")
        if not sep:
            raise CommandError(f"-X wants NAME=VALUE, got {pair!r}")
        config[name.strip()] = value.strip()
    return config


def admin(args: argparse.Namespace) -> Any:
    """An AdminClient that has reached the cluster (else CommandError within seconds)."""
    from confluent_kafka.admin import AdminClient

    config = client_config(args)
    client = AdminClient(config)
    try:
        client.list_topics(timeout=5)
    except Exception as exc:
        raise CommandError(
            f"cannot reach a broker at {config['bootstrap.servers']}: {reason(exc)}"
        ) from None
    return client


def reason(exc: BaseException) -> str:
    """The human part of a confluent-kafka exception."""
    error = exc.args[0] if exc.args else exc
    return str(getattr(error, "str", lambda: error)())


def result(future: Any) -> Any:
    try:
        return future.result(timeout=TIMEOUT_S)
    except Exception as exc:
        raise CommandError(reason(exc)) from None


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    """Left-aligned columns, '-' for missing values, like Kafka's own tools print."""
    cells = [list(map(str, header))] + [[("-" if v is None else str(v)) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def find_topic(admin_client: Any, name: str) -> Any:
    """A topic's metadata, or None. Asks for all topics: asking for one by name would make a
    broker with auto-creation on create it."""
    return admin_client.list_topics(timeout=TIMEOUT_S).topics.get(name)
