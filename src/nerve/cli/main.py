"""The ``nerve`` command: ``nerve broker`` runs the broker, ``nerve up`` the whole platform.

Start-up is kept short (under 0.3 s for ``nerve --help``, measured in docs/performance.md):
the command modules import their heavy dependencies (confluent-kafka, pydantic, asyncio, the
broker) inside the functions that use them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nerve import __version__
from nerve.cli import (
    acl,
    catalog,
    cdc,
    client,
    completion,
    connect,
    console,
    consume,
    demo,
    dlq,
    groups,
    produce,
    projection,
    run,
    schemas,
    topics,
)

if TYPE_CHECKING:
    import asyncio

    from nerve.broker.config import BrokerConfig

DESCRIPTION = (
    "nerve: an event-driven platform. `nerve up` runs a Kafka-compatible broker and a schema "
    "registry; the other commands work with any Kafka cluster (-b HOST:PORT or "
    "$NERVE_BOOTSTRAP_SERVERS) and any Confluent-compatible registry (-r URL)."
)


class StartError(Exception):
    """A server cannot start (its port is taken, ...): one line, exit 1."""


def _add_broker_options(parser: argparse.ArgumentParser, data_dir: str, listen: str) -> None:
    parser.add_argument("--data-dir", type=Path, default=Path(data_dir), help="where logs live")
    parser.add_argument(
        "--listen",
        type=client.address,
        default=client.address(listen),
        metavar="HOST:PORT",
        help=f"address to accept Kafka clients on; port 0 picks a free port (default {listen})",
    )
    parser.add_argument(
        "--advertised",
        type=client.address,
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


def _add_metrics_option(parser: argparse.ArgumentParser, default: str | None) -> None:
    where = f" (default {default})" if default else ""
    parser.add_argument(
        "--metrics-port",
        type=client.local_address,
        default=client.local_address(default) if default else None,
        metavar="[HOST:]PORT",
        help="serve Prometheus metrics at http://127.0.0.1:PORT/metrics, or on HOST "
        f"(0.0.0.0:PORT: every interface); port 0 picks a free one{where}",
    )


# Where `nerve up` serves the broker's and the registry's metrics unless told otherwise: the
# port the Prometheus JMX exporter is commonly given beside a Kafka broker.
UP_METRICS = "127.0.0.1:9404"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nerve", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"nerve {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    client.add_connection_options(parser, top=True)
    client.add_registry_option(parser, top=True)
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="event loop implementation (uvloop must be installed)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    broker = commands.add_parser("broker", help="run the Kafka-compatible broker")
    _add_broker_options(broker, ".nerve", "127.0.0.1:9092")
    _add_metrics_option(broker, None)
    up = commands.add_parser(
        "up",
        help="run the platform locally (broker on :9092, schema registry on :8081, data in .nerve)",
    )
    _add_broker_options(up, ".nerve", "127.0.0.1:9092")
    up.add_argument(
        "--registry-listen",
        type=client.address,
        default=client.address("127.0.0.1:8081"),
        metavar="HOST:PORT",
        help="address of the schema registry's HTTP API (default 127.0.0.1:8081)",
    )
    up.add_argument("--no-registry", action="store_true", help="run the broker only")
    _add_metrics_option(up, UP_METRICS)
    up.add_argument("--no-metrics", action="store_true", help="serve no Prometheus metrics")
    up.add_argument(
        "--console-listen",
        type=client.address,
        default=client.address("127.0.0.1:8080"),
        metavar="HOST:PORT",
        help="address of the web console (default 127.0.0.1:8080)",
    )
    up.add_argument("--no-console", action="store_true", help="run without the web console")
    up.add_argument(
        "--secure",
        action="store_true",
        help="SASL_SSL on --listen with a local CA and certificate, ACLs on, an admin super user "
        "(made once in DATA_DIR/security; the password is printed the first time)",
    )
    registry = commands.add_parser(
        "registry", help="run the schema registry (Confluent REST API) against a Kafka cluster"
    )
    client.add_connection_options(registry)
    registry.add_argument(
        "--listen",
        type=client.address,
        default=client.address("127.0.0.1:8081"),
        metavar="HOST:PORT",
        help="address of the HTTP API; port 0 picks a free port (default 127.0.0.1:8081)",
    )
    registry.add_argument(
        "--topic", default="_schemas", help="the compacted topic holding the schemas"
    )
    registry.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a registry setting, e.g. max.request.bytes=1048576 (repeatable)",
    )
    _add_metrics_option(registry, None)
    topics.add_parser(commands)
    produce.add_parser(commands)
    consume.add_parser(commands)
    groups.add_parser(commands)
    schemas.add_parser(commands)
    connect.add_parser(commands)
    cdc.add_parser(commands)
    run.add_parser(commands)
    dlq.add_parser(commands)
    projection.add_parser(commands)
    catalog.add_parser(commands)
    console.add_parser(commands)
    demo.add_parser(commands)
    completion.add_parser(commands)
    acl.add_parser(commands)
    return parser


def broker_config(args: argparse.Namespace, security: Any = None) -> BrokerConfig:
    """The broker's settings from the command line; with ``security`` (``--secure``), its
    listener and authorizer first, so that ``--config`` may still change them."""
    from nerve.broker.config import BrokerConfig, parse_settings

    config = BrokerConfig(data_dir=args.data_dir, host=args.listen[0], port=args.listen[1])
    if args.advertised:
        config.advertised_host, config.advertised_port = args.advertised
    if security is not None:
        config.apply(security.broker_settings(*args.listen))
    config.apply(parse_settings(args.config))
    return config


def _stop_event() -> asyncio.Event:
    import asyncio
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def _serve_metrics(collectors: list[Any], listen: tuple[str, int], hint: str = "") -> Any:
    """Prometheus metrics of ``collectors`` and of the process, on the running loop."""
    from prometheus_client import (
        CollectorRegistry,
        GCCollector,
        PlatformCollector,
        ProcessCollector,
    )

    from nerve.metrics_http import MetricsServer

    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    server = MetricsServer(registry, *listen)
    try:
        host, port = await server.start()
    except OSError as exc:
        where = "{}:{}".format(*listen)
        raise StartError(f"cannot serve metrics on {where}: {exc.strerror or exc}{hint}") from None
    print(f"metrics on http://{host}:{port}/metrics", flush=True)
    return server


async def run_broker(
    config: BrokerConfig,
    registry_listen: tuple[str, int] | None = None,
    metrics_listen: tuple[str, int] | None = None,
    console_listen: tuple[str, int] | None = None,
    security: Any = None,
) -> None:
    """The broker, and with ``registry_listen`` the schema registry beside it (``nerve up``);
    with ``metrics_listen``, the metrics of both on that one port; with ``console_listen``,
    the web console; with ``security`` (nerve.broker.security.local, ``--secure``), the
    registry and the console connect as its admin."""
    import logging

    from nerve.broker.security.state import SecurityError
    from nerve.broker.server import Broker
    from nerve.broker.topic_store import MetadataError

    try:
        broker = Broker(config)
    except SecurityError as exc:
        raise StartError(f"cannot start the broker: {exc}") from None
    try:
        host, port = await broker.start()
    except MetadataError as exc:
        raise StartError(f"cannot start the broker: {exc}") from None
    except OSError as exc:
        where = f"{config.host}:{config.port}"
        raise StartError(f"cannot start the broker on {where}: {exc.strerror or exc}") from None
    stop = _stop_event()
    client_config: dict[str, Any] = {}
    if security is not None:
        client_config = security.admin_settings()
        advertised = f"{config.advertised_host or host}:{config.advertised_port or port}"
        security.write_admin_properties(advertised)
        _print_secure(security)
    if len(broker.security.listeners) > 1 or broker.security.enabled:
        # One line per listener before the "listening on" line that tools wait for.
        for listener in broker.security.listeners:
            print(f"listener {listener.name} ({listener.protocol}) on "
                  f"{listener.host or host}:{listener.port}", flush=True)  # fmt: skip
    print(f"listening on {host}:{port}", flush=True)
    logging.getLogger("nerve.broker").info(
        "broker %d serving %s with data in %s", config.node_id, f"{host}:{port}", config.data_dir
    )
    registry = metrics_server = console = None
    collectors: list[Any] = [broker.metrics]
    try:
        if registry_listen is not None:
            from nerve.registry.config import RegistryConfig
            from nerve.registry.metrics import RegistryMetrics
            from nerve.registry.server import RegistryServer

            advertised = f"{config.advertised_host or host}:{config.advertised_port or port}"
            registry_metrics = RegistryMetrics() if metrics_listen is not None else None
            if registry_metrics is not None:
                collectors.append(registry_metrics)
            registry_config = RegistryConfig()
            if security is not None:
                registry_config.apply(security.http_settings())
            registry = RegistryServer(
                advertised,
                *registry_listen,
                client_config=client_config,
                config=registry_config,
                metrics=registry_metrics,
            )
            try:
                r_host, r_port = await registry.start()
            except OSError as exc:
                where = "{}:{}".format(*registry_listen)
                raise StartError(
                    f"cannot start the schema registry on {where}: {exc.strerror or exc} "
                    "(--registry-listen HOST:PORT picks another, --no-registry runs without)"
                ) from None
            print(f"schema registry listening on http://{r_host}:{r_port}", flush=True)
        if metrics_listen is not None:
            hint = " (--metrics-port [HOST:]PORT picks another, --no-metrics serves none)"
            metrics_server = await _serve_metrics(
                collectors, metrics_listen, hint if registry_listen is not None else ""
            )
        if console_listen is not None:
            console = await _start_console(
                f"{config.advertised_host or host}:{config.advertised_port or port}",
                f"http://{r_host}:{r_port}" if registry is not None else None,
                console_listen,
                _metrics_url(metrics_server),
                client_config,
                security,
            )
        await stop.wait()
    finally:
        logging.getLogger("nerve.broker").info("shutting down")
        if console is not None:
            await console.stop()
        if metrics_server is not None:
            await metrics_server.stop()
        if registry is not None:
            await registry.stop()
        await broker.stop()


def _print_secure(security: Any) -> None:
    """What a user of ``nerve up --secure`` needs, the admin's password only when it is new."""
    properties = security.admin_properties
    print(
        f"secure: SASL_SSL, ACLs on (StandardAuthorizer), super user User:admin; CA {security.ca}",
        flush=True,
    )
    if security.created:
        print(
            f"admin password: {security.admin_password}  (shown once; kept in {properties}, "
            "mode 0600)",
            flush=True,
        )
    print(
        f"admin client settings: {properties} (nerve -F {properties} ..., or "
        f"export NERVE_CLIENT_PROPERTIES={properties})",
        flush=True,
    )
    print(
        "registry and console: HTTP Basic login, user admin with the admin password "
        f"(users in {security.http_users}; registry clients: basic.auth.user.info=admin:PASSWORD "
        "or http://admin:PASSWORD@HOST:PORT)",
        flush=True,
    )


def _metrics_url(server: Any) -> str | None:
    if server is None:
        return None
    host = "127.0.0.1" if server.host in ("", "0.0.0.0") else server.host
    return f"http://{host}:{server.port}/metrics"


async def _start_console(
    bootstrap: str,
    registry_url: str | None,
    listen: tuple[str, int],
    broker_metrics_url: str | None = None,
    client_config: dict[str, Any] | None = None,
    security: Any = None,
) -> Any:
    """The console of ``nerve up``; with ``security`` (``--secure``) it asks users to log in
    with the registry's users and reaches Kafka and the registry as each of them."""
    from nerve.console.config import ConsoleConfig
    from nerve.console.server import ConsoleServer

    config = ConsoleConfig(
        bootstrap_servers=bootstrap,
        registry_url=registry_url,
        broker_metrics_url=broker_metrics_url,
        client_config=dict(client_config or {}),
        host=listen[0],
        port=listen[1],
    )
    if security is not None:
        config.apply(security.http_settings())
        from nerve.broker.security.local import ADMIN

        config.registry_auth = (ADMIN, security.admin_password)
    console = ConsoleServer(config)
    try:
        c_host, c_port = await console.start()
    except OSError as exc:
        where = "{}:{}".format(*listen)
        raise StartError(
            f"cannot start the console on {where}: {exc.strerror or exc} "
            "(--console-listen HOST:PORT picks another, --no-console runs without)"
        ) from None
    print(f"console on http://{c_host}:{c_port}", flush=True)
    return console


async def run_registry(args: argparse.Namespace) -> None:
    import logging

    from nerve.registry.config import RegistryConfig, RegistryConfigError
    from nerve.registry.server import RegistryServer

    config = client.client_config(args)
    bootstrap = config.pop("bootstrap.servers")
    config.pop("log_level", None)
    host, port = args.listen
    settings = RegistryConfig()
    try:
        settings.apply_pairs(args.config)
    except RegistryConfigError as exc:
        raise client.CommandError(str(exc)) from None
    metrics = None
    if args.metrics_port is not None:
        from nerve.registry.metrics import RegistryMetrics

        metrics = RegistryMetrics()
    try:
        server = RegistryServer(
            bootstrap,
            host,
            port,
            topic=args.topic,
            client_config=config,
            config=settings,
            metrics=metrics,
        )
    except RegistryConfigError as exc:
        raise client.CommandError(str(exc)) from None
    host, port = await server.start()
    stop = _stop_event()
    print(f"listening on {host}:{port}", flush=True)
    metrics_server = None
    if metrics is not None:
        try:
            metrics_server = await _serve_metrics([metrics], args.metrics_port)
        except StartError:
            await server.stop()
            raise
    logging.getLogger("nerve.registry").info(
        "schema registry on http://%s:%d, schemas in topic %s at %s",
        host,
        port,
        args.topic,
        bootstrap,
    )
    await stop.wait()
    if metrics_server is not None:
        await metrics_server.stop()
    await server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:  # a shell asking for completions (nerve completion)
        import argcomplete

        argcomplete.autocomplete(parser)
    args = parser.parse_args(argv)
    client_commands = {
        "topics": topics.run,
        "produce": produce.run,
        "consume": consume.run,
        "groups": groups.run,
        "schemas": schemas.run,
        "connect": connect.run,
        "cdc": cdc.run,
        "run": run.run,
        "dlq": dlq.run,
        "projection": projection.run,
        "catalog": catalog.run,
        "console": console.run,
        "demo": demo.run,
        "completion": completion.run,
        "acl": acl.run,
    }
    if args.command in client_commands:
        return client_commands[args.command](args)
    import asyncio
    import logging

    from nerve.broker.config import ConfigError

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "registry":
        return _run_registry_command(args)
    security = None
    if args.command == "up" and args.secure:
        from nerve.broker.security import local

        hosts = [args.listen[0], *([args.advertised[0]] if args.advertised else [])]
        try:
            security = local.prepare(args.data_dir, hosts)
        except OSError as exc:
            print(f"nerve up: cannot prepare {args.data_dir}/security: {exc}", file=sys.stderr)
            return 1
    try:
        config = broker_config(args, security)
    except ConfigError as exc:
        print(f"nerve: {exc}", file=sys.stderr)
        return 2
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()
    registry_listen = None
    if args.command == "up" and not args.no_registry:
        registry_listen = args.registry_listen
    metrics_listen = args.metrics_port
    if args.command == "up" and args.no_metrics:
        metrics_listen = None
    console_listen = None
    if args.command == "up" and not args.no_console:
        console_listen = args.console_listen
    try:
        asyncio.run(run_broker(config, registry_listen, metrics_listen, console_listen, security))
    except StartError as exc:
        print(f"nerve {args.command}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"nerve {args.command}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def _run_registry_command(args: argparse.Namespace) -> int:
    import asyncio

    from nerve.registry.errors import RegistryError

    try:
        asyncio.run(run_registry(args))
    except client.CommandError as exc:
        print(f"nerve registry: {exc}", file=sys.stderr)
        return 2
    except StartError as exc:
        print(f"nerve registry: {exc}", file=sys.stderr)
        return 1
    except RegistryError as exc:
        print(f"nerve registry: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"nerve registry: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0
