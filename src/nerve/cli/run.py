"""``nerve run FILE...``: run the services that Python files define, as one process; start it
twice and the replicas share the partitions (the consumer group is the service's name)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from nerve.cli.client import (
    CommandError,
    add_connection_options,
    add_registry_option,
    client_config,
    local_address,
    registry_url,
)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("run", help="run event-driven services defined in Python files")
    parser.add_argument("files", nargs="+", type=Path, help="Python files defining Service objects")
    add_connection_options(parser)
    add_registry_option(parser)
    parser.add_argument("--no-registry", action="store_true", help="do not register event schemas")
    parser.add_argument(
        "--service",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this service of the files (repeatable)",
    )
    parser.add_argument(
        "--metrics-port",
        type=local_address,
        default=None,
        metavar="[HOST:]PORT",
        help="serve Prometheus metrics at http://127.0.0.1:PORT/metrics, or on HOST "
        "(0.0.0.0:PORT: every interface); port 0 picks a free one",
    )
    parser.add_argument(
        "--http-port",
        type=local_address,
        default=None,
        metavar="[HOST:]PORT",
        help="serve the streams' tables at http://127.0.0.1:PORT/tables/<name>/<key>, or on "
        "HOST; port 0 picks a free one",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where streams keep their local state (default: .nerve/state, or $NERVE_STATE_DIR)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="json: one object per line, with the event's correlation id inside handlers",
    )


def run(args: argparse.Namespace) -> int:
    from nerve.service import logs, observability
    from nerve.service.config import RunConfig
    from nerve.service.host import load_services, run_forever
    from nerve.service.runtime import ServiceError

    logs.configure(args.log_level, args.log_format)
    services = []
    for path in args.files:
        if not path.is_file():
            print(f"nerve run: no such file {path}", file=sys.stderr)
            return 2
        try:
            services += load_services(path)
        except Exception as exc:  # the user's module failed to import: say where, briefly
            import traceback

            where = traceback.extract_tb(exc.__traceback__)[-1]
            print(
                f"nerve run: cannot load {path}: {type(exc).__name__}: {exc} "
                f"({where.filename}:{where.lineno})",
                file=sys.stderr,
            )
            return 2
    if args.service:
        services = [s for s in services if s.name in args.service]
    if not services:
        print("nerve run: the files define no Service to run", file=sys.stderr)
        return 2
    try:
        kafka = client_config(args)
    except CommandError as exc:
        print(f"nerve run: {exc}", file=sys.stderr)
        return 2
    registry = None if args.no_registry else registry_url(args)
    observers: list[observability.Observer] = []
    metrics_url = None
    if args.log_format == "json":
        observers.append(observability.LogContextObserver())
    if args.metrics_port is not None:
        metrics = observability.MetricsObserver()
        host, number = args.metrics_port
        try:
            bound = observability.start_metrics_server(metrics, number, host)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            print(f"nerve run: cannot serve metrics on port {number}: {reason}", file=sys.stderr)
            return 1
        print(f"metrics on port {bound}", flush=True)
        print(f"serving metrics at http://{host}:{bound}/metrics", file=sys.stderr, flush=True)
        observers.append(metrics)
        metrics_url = f"http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{bound}/metrics"
    config = RunConfig(
        bootstrap_servers=kafka.pop("bootstrap.servers"),
        registry_url=registry,
        client_config={k: v for k, v in kafka.items() if k != "log_level"},
        metrics_url=metrics_url,
    )
    if args.state_dir is not None:
        config.state_dir = str(args.state_dir)
    if args.http_port is not None:
        config.http_host, config.http_port = args.http_port
    if observability.tracing_configured():  # by the services' files or opentelemetry-instrument
        observers.append(observability.TracingObserver())
    for service in services:
        print(f"running {service.name}", flush=True)
    try:
        run_forever(services, config, observability.combine(observers))
    except ServiceError as exc:
        print(f"nerve run: {exc}", file=sys.stderr)
        return 1
    return 0
