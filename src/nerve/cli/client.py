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


def port(value: str) -> int:
    """A TCP port (0 to 65535), as argparse's ``type=``: a bad one is a usage error."""
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {value!r}")
    return int(value)


def address(value: str) -> tuple[str, int]:
    """HOST:PORT, as argparse's ``type=``. ``:PORT`` means 127.0.0.1: a development platform
    is not served to the network unless an address says so (``0.0.0.0:PORT``)."""
    host, sep, number = value.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", port(number)


def local_address(value: str) -> tuple[str, int]:
    """PORT (on 127.0.0.1) or HOST:PORT, as argparse's ``type=``."""
    return address(value if ":" in value else f":{value}")


def add_connection_options(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``-b`` and ``-X``, given before the command (``nerve -b HOST topics list``) or after it
    (``nerve topics list -b HOST``). The top-level parser holds the defaults; a command's own
    copies default to nothing, so that leaving them out does not undo what came first."""
    parser.add_argument(
        "-b",
        "--bootstrap-servers",
        default=None if top else argparse.SUPPRESS,
        metavar="HOST:PORT",
        help="bootstrap servers (default: $NERVE_BOOTSTRAP_SERVERS, else 127.0.0.1:9092)",
    )
    parser.add_argument(
        "-X",
        dest="client_config" if top else "command_client_config",
        action="append",
        default=[] if top else argparse.SUPPRESS,
        metavar="NAME=VALUE",
        help="a librdkafka setting, e.g. -X security.protocol=SASL_SSL (repeatable; after "
        "$NERVE_CLIENT_PROPERTIES and $NERVE_KAFKA_*)",
    )
    parser.add_argument(
        "-F",
        dest="client_properties" if top else "command_client_properties",
        default=None if top else argparse.SUPPRESS,
        metavar="FILE",
        help="a file of librdkafka settings (NAME=VALUE lines), as kcat -F reads; "
        "-X settings win over it",
    )


DEFAULT_REGISTRY = "http://127.0.0.1:8081"


def add_registry_option(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``-r URL``, in any position like ``-b``."""
    parser.add_argument(
        "-r",
        "--registry",
        default=None if top else argparse.SUPPRESS,
        metavar="URL",
        help=f"schema registry URL (default: $NERVE_SCHEMA_REGISTRY_URL, else {DEFAULT_REGISTRY})",
    )


def registry_url(args: argparse.Namespace) -> str:
    url = getattr(args, "registry", None) or os.environ.get("NERVE_SCHEMA_REGISTRY_URL")
    return (url or DEFAULT_REGISTRY).rstrip("/")


def client_config(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """librdkafka settings: the environment's (NERVE_CLIENT_PROPERTIES, NERVE_KAFKA_*), then
    -F's file, bootstrap servers (-b, $NERVE_BOOTSTRAP_SERVERS), quiet logs, then -X."""
    from nerve.security import client_settings

    try:
        settings = client_settings.from_environment()
        for path in (
            getattr(args, "client_properties", None),
            getattr(args, "command_client_properties", None),
        ):
            if path:
                settings.update(client_settings.read_properties(path))
    except client_settings.ClientSettingsError as exc:
        raise CommandError(str(exc)) from None
    servers = (
        getattr(args, "bootstrap_servers", None)
        or os.environ.get("NERVE_BOOTSTRAP_SERVERS")
        or settings.pop("bootstrap.servers", None)
        or DEFAULT_BOOTSTRAP
    )
    settings.pop("bootstrap.servers", None)
    config: dict[str, Any] = {"bootstrap.servers": servers, "log_level": 0, **settings, **extra}
    pairs = [*getattr(args, "client_config", []), *getattr(args, "command_client_config", [])]
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise CommandError(f"-X wants NAME=VALUE, got {pair!r}")
        config[name.strip()] = value.strip()
    return config


def admin(args: argparse.Namespace) -> Any:
    """An AdminClient that has reached the cluster (else CommandError within seconds)."""
    from confluent_kafka.admin import AdminClient

    from nerve.security.client_settings import RefusalTrap

    config = client_config(args)
    trap = RefusalTrap()
    settings: dict[str, Any] = {"error_cb": trap, **config}
    client = AdminClient(settings)
    try:
        client.list_topics(timeout=5)
    except Exception as exc:
        why = trap.why(client, reason(exc))
        where = config["bootstrap.servers"]
        raise CommandError(f"cannot reach a broker at {where}: {why}") from None
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
