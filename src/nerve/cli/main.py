"""The ``nerve`` command: ``nerve broker`` runs the broker, ``nerve up`` the whole platform."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from nerve.broker.config import BrokerConfig, ConfigError, parse_settings
from nerve.cli import (
    catalog,
    client,
    consume,
    demo,
    dlq,
    groups,
    produce,
    run,
    schemas,
    topics,
)


def _address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _add_broker_options(parser: argparse.ArgumentParser, data_dir: str, listen: str) -> None:
    parser.add_argument("--data-dir", type=Path, default=Path(data_dir), help="where logs live")
    parser.add_argument(
        "--listen",
        type=_address,
        default=_address(listen),
        metavar="HOST:PORT",
        help=f"address to accept Kafka clients on; port 0 picks a free port (default {listen})",
    )
    parser.add_argument(
        "--advertised",
        type=_address,
        metavar="HOST:PORT",
        help="address clients are told to connect to (default: the bound address)",
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a broker setting by its Kafka name, e.g. num.partitions=3 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nerve", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="event loop implementation (uvloop must be installed)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    broker = commands.add_parser("broker", help="run the Kafka-compatible broker")
    _add_broker_options(broker, ".nerve", "127.0.0.1:9092")
    up = commands.add_parser(
        "up",
        help="run the platform locally (broker on :9092, schema registry on :8081, data in .nerve)",
    )
    _add_broker_options(up, ".nerve", "127.0.0.1:9092")
    up.add_argument(
        "--registry-listen",
        type=_address,
        default=_address("127.0.0.1:8081"),
        metavar="HOST:PORT",
        help="address of the schema registry's HTTP API (default 127.0.0.1:8081)",
    )
    up.add_argument("--no-registry", action="store_true", help="run the broker only")
    registry = commands.add_parser(
        "registry", help="run the schema registry (Confluent REST API) against a Kafka cluster"
    )
    client.add_connection_options(registry)
    registry.add_argument(
        "--listen",
        type=_address,
        default=_address("127.0.0.1:8081"),
        metavar="HOST:PORT",
        help="address of the HTTP API; port 0 picks a free port (default 127.0.0.1:8081)",
    )
    registry.add_argument(
        "--topic", default="_schemas", help="the compacted topic holding the schemas"
    )
    topics.add_parser(commands)
    produce.add_parser(commands)
    consume.add_parser(commands)
    groups.add_parser(commands)
    schemas.add_parser(commands)
    run.add_parser(commands)
    dlq.add_parser(commands)
    catalog.add_parser(commands)
    demo.add_parser(commands)
    return parser


def broker_config(args: argparse.Namespace) -> BrokerConfig:
    config = BrokerConfig(data_dir=args.data_dir, host=args.listen[0], port=args.listen[1])
    if args.advertised:
        config.advertised_host, config.advertised_port = args.advertised
    config.apply(parse_settings(args.config))
    return config


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def run_broker(config: BrokerConfig, registry_listen: tuple[str, int] | None = None) -> None:
    """The broker, and with ``registry_listen`` the schema registry beside it (``nerve up``)."""
    from nerve.broker.server import Broker

    broker = Broker(config)
    host, port = await broker.start()
    stop = _stop_event()
    print(f"listening on {host}:{port}", flush=True)
    logging.getLogger("nerve.broker").info(
        "broker %d serving %s with data in %s", config.node_id, f"{host}:{port}", config.data_dir
    )
    registry = None
    try:
        if registry_listen is not None:
            from nerve.registry.server import RegistryServer

            advertised = f"{config.advertised_host or host}:{config.advertised_port or port}"
            registry = RegistryServer(advertised, *registry_listen)
            r_host, r_port = await registry.start()
            print(f"schema registry listening on http://{r_host}:{r_port}", flush=True)
        await stop.wait()
    finally:
        logging.getLogger("nerve.broker").info("shutting down")
        if registry is not None:
            await registry.stop()
        await broker.stop()


async def run_registry(args: argparse.Namespace) -> None:
    from nerve.registry.server import RegistryServer

    config = client.client_config(args)
    bootstrap = config.pop("bootstrap.servers")
    config.pop("log_level", None)
    host, port = args.listen
    server = RegistryServer(bootstrap, host, port, topic=args.topic, client_config=config)
    host, port = await server.start()
    stop = _stop_event()
    print(f"listening on {host}:{port}", flush=True)
    logging.getLogger("nerve.registry").info(
        "schema registry on http://%s:%d, schemas in topic %s at %s",
        host,
        port,
        args.topic,
        bootstrap,
    )
    await stop.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    client_commands = {
        "topics": topics.run,
        "produce": produce.run,
        "consume": consume.run,
        "groups": groups.run,
        "schemas": schemas.run,
        "run": run.run,
        "dlq": dlq.run,
        "catalog": catalog.run,
        "demo": demo.run,
    }
    if args.command in client_commands:
        return client_commands[args.command](args)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "registry":
        return _run_registry_command(args)
    try:
        config = broker_config(args)
    except ConfigError as exc:
        print(f"nerve: {exc}", file=sys.stderr)
        return 2
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()
    registry_listen = None
    if args.command == "up" and not args.no_registry:
        registry_listen = args.registry_listen
    try:
        asyncio.run(run_broker(config, registry_listen))
    except OSError as exc:
        print(f"nerve: cannot start the broker: {exc}", file=sys.stderr)
        return 1
    return 0


def _run_registry_command(args: argparse.Namespace) -> int:
    from nerve.registry.errors import RegistryError

    try:
        asyncio.run(run_registry(args))
    except client.CommandError as exc:
        print(f"nerve registry: {exc}", file=sys.stderr)
        return 2
    except RegistryError as exc:
        print(f"nerve registry: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"nerve registry: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0
