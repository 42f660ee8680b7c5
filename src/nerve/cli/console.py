"""``nerve console``: the web console, pointed at any Kafka cluster (-b) and any
Confluent-compatible registry (-r); on 127.0.0.1:8080 unless told otherwise."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from nerve.cli.client import (
    CommandError,
    add_connection_options,
    add_registry_option,
    client_config,
    port,
    registry_url,
)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "console", help="the web console: topics, messages, groups, schemas, catalog, trace"
    )
    add_connection_options(parser)
    add_registry_option(parser)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to serve on (default 127.0.0.1; 0.0.0.0 serves every interface)",
    )
    parser.add_argument(
        "--port", type=port, default=8080, help="port to serve on; 0 picks a free one (8080)"
    )
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="refuse every write: produce, topic changes, offset resets, replays",
    )
    parser.add_argument("--no-registry", action="store_true", help="run without a registry")
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a console setting (repeatable): authentication.method=BASIC with "
        "authentication.users.file or authentication.jaas.file (the registry's), "
        "authentication.realm, authentication.roles, kafka.principal=user|console, "
        "user.sasl.mechanism",
    )
    parser.add_argument(
        "--broker-metrics",
        metavar="URL",
        help="the broker's Prometheus metrics (e.g. http://127.0.0.1:9404/metrics): topic "
        "sizes and traffic on the health and topics pages",
    )


def config_from(args: argparse.Namespace) -> Any:
    from nerve.console.config import ConsoleConfig, ConsoleConfigError

    kafka = client_config(args)
    bootstrap = kafka.pop("bootstrap.servers")
    kafka.pop("log_level", None)
    config = ConsoleConfig(
        bootstrap_servers=bootstrap,
        registry_url=None if getattr(args, "no_registry", False) else registry_url(args),
        client_config=kafka,
        broker_metrics_url=args.broker_metrics,
        host=args.host,
        port=args.port,
        read_only=args.read_only,
    )
    settings: dict[str, str] = {}
    for pair in getattr(args, "config", None) or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise CommandError(f"--config: expected NAME=VALUE, got {pair!r}")
        settings[name.strip()] = value
    try:
        config.apply(settings)
    except ConsoleConfigError as exc:
        raise CommandError(str(exc)) from None
    return config


async def serve(config: Any) -> None:
    import asyncio
    import signal

    from nerve.console.server import ConsoleServer

    try:
        server = ConsoleServer(config)
    except ValueError as exc:  # login settings or a users file that cannot be used
        raise CommandError(str(exc)) from None
    host, bound = await server.start()
    print(f"listening on {host}:{bound}", flush=True)
    print(f"console on http://{_url_host(host)}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per registry call otherwise
    try:
        config = config_from(args)
        asyncio.run(serve(config))
    except CommandError as exc:
        print(f"nerve console: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"nerve console: cannot serve on {args.host}:{args.port}: {exc.strerror or exc} "
            "(--port picks another)",
            file=sys.stderr,
        )
        return 1
    return 0
