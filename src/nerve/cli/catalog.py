"""``nerve catalog``: the services and events of the system, from ``_nerve_catalog``;
``nerve catalog asyncapi`` writes them as an AsyncAPI 3.0 document."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from nerve.cli import client
from nerve.cli.client import CommandError, table


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "catalog",
        help="list services and events; asyncapi writes AsyncAPI 3.0",
        description="The services announced to _nerve_catalog and the events between them.",
    )
    _add_options(parser)
    parser.add_argument("--json", action="store_true", help="the services' descriptions as JSON")
    actions = parser.add_subparsers(dest="action")
    document = actions.add_parser(
        "asyncapi", help="write an AsyncAPI 3.0 document (JSON) of the whole system"
    )
    _add_options(document)
    for action in document._actions:
        # Given before ``asyncapi`` or after it: the subcommand's absent options must not
        # overwrite the parent's with their defaults.
        if action.dest in ("bootstrap_servers", "client_config", "timeout"):
            action.default = argparse.SUPPRESS
    document.add_argument(
        "-o", "--output", type=Path, help="file to write (default: standard output)"
    )


def _add_options(parser: argparse.ArgumentParser) -> None:
    client.add_connection_options(parser)
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for the broker and the catalog (default 10)",
    )


def run(args: argparse.Namespace) -> int:
    from nerve.service import catalog

    try:
        config = client.client_config(args)
        _reach(config, args.timeout)
        try:
            services = catalog.read(config, timeout_s=args.timeout)
        except catalog.CatalogError as exc:
            raise CommandError(str(exc)) from None
        if getattr(args, "action", None) == "asyncapi":
            return _asyncapi(args, services, config["bootstrap.servers"])
        if args.json:
            print(json.dumps(list(services.values()), indent=2))
            return 0
        _print(services, catalog.events(services))
        return 0
    except CommandError as exc:
        print(f"nerve catalog: {exc}", file=sys.stderr)
        return 1


def _reach(config: dict[str, Any], timeout_s: float) -> None:
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient(config).list_topics(timeout=timeout_s)
    except Exception as exc:
        raise CommandError(
            f"cannot reach a broker at {config['bootstrap.servers']}: {client.reason(exc)}"
        ) from None


def _print(services: dict[str, dict[str, Any]], events: list[dict[str, Any]]) -> None:
    if not services:
        print("no service has announced itself yet (nothing in _nerve_catalog)")
        return
    rows = [
        (
            name,
            service.get("owner"),
            ", ".join(
                [c["type"] or c["topic"] for c in service.get("consumes", [])]
                + [f"{t.get('type') or t['topic']} (table)" for t in service.get("tables", [])]
            )
            or None,
            ", ".join(e["type"] for e in service.get("emits", [])) or None,
        )
        for name, service in services.items()
    ]
    print(table(rows, ["SERVICE", "OWNER", "CONSUMES", "EMITS"]))
    print()
    print(
        table(
            [
                (
                    e["topic"],
                    e["type"],
                    ", ".join(e["emitted_by"]) or None,
                    ", ".join(e["consumed_by"]) or None,
                )
                for e in events
            ],
            ["TOPIC", "EVENT-TYPE", "EMITTED-BY", "CONSUMED-BY"],
        )
    )


def _asyncapi(args: argparse.Namespace, services: dict[str, Any], servers: str) -> int:
    from nerve.service import catalog

    text = json.dumps(catalog.asyncapi(services, servers), indent=2) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        args.output.write_text(text)
    except OSError as exc:
        raise CommandError(f"cannot write {args.output}: {exc.strerror}") from None
    print(
        f"wrote AsyncAPI 3.0.0 document of {len(services)} service(s) to {args.output}",
        file=sys.stderr,
    )
    return 0
