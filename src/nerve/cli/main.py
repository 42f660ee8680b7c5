"""The ``nerve`` command: ``nerve broker`` runs the broker, ``nerve up`` the whole platform."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from nerve.broker.config import BrokerConfig, ConfigError, parse_settings
from nerve.cli import consume, groups, produce, topics


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
        "up", help="run the platform locally (broker on :9092, data in .nerve)"
    )
    _add_broker_options(up, ".nerve", "127.0.0.1:9092")
    topics.add_parser(commands)
    produce.add_parser(commands)
    consume.add_parser(commands)
    groups.add_parser(commands)
    return parser


def broker_config(args: argparse.Namespace) -> BrokerConfig:
    config = BrokerConfig(data_dir=args.data_dir, host=args.listen[0], port=args.listen[1])
    if args.advertised:
        config.advertised_host, config.advertised_port = args.advertised
    config.apply(parse_settings(args.config))
    return config


async def run_broker(config: BrokerConfig) -> None:
    from nerve.broker.server import Broker

    broker = Broker(config)
    host, port = await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"listening on {host}:{port}", flush=True)
    logging.getLogger("nerve.broker").info(
        "broker %d serving %s with data in %s", config.node_id, f"{host}:{port}", config.data_dir
    )
    await stop.wait()
    logging.getLogger("nerve.broker").info("shutting down")
    await broker.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    client_commands = {
        "topics": topics.run,
        "produce": produce.run,
        "consume": consume.run,
        "groups": groups.run,
    }
    if args.command in client_commands:
        return client_commands[args.command](args)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = broker_config(args)
    except ConfigError as exc:
        print(f"nerve: {exc}", file=sys.stderr)
        return 2
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()
    try:
        asyncio.run(run_broker(config))
    except OSError as exc:
        print(f"nerve: cannot start the broker: {exc}", file=sys.stderr)
        return 1
    return 0
