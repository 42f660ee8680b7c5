"""``nerve connect list|plugins|create|status|pause|resume|stop|restart|delete|catalog``:
connectors on any Kafka Connect cluster through its REST API (``--connect`` or
``NERVE_CONNECT_URL``); ``catalog`` announces them in nerve's catalog."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from nerve.cli.client import CommandError, add_connection_options, client_config, table

DEFAULT_URL = "http://127.0.0.1:8083"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("connect", help="operate Kafka Connect connectors")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="connectors with their state and tasks")
    actions.add_parser("plugins", help="the connector classes the workers have")
    announce = actions.add_parser(
        "catalog", help="announce the connectors in nerve's catalog (lineage: database -> topic)"
    )
    announce.add_argument(
        "--every",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep announcing every SECONDS (until Ctrl-C), so connectors created or deleted "
        "later appear and go without running this again",
    )
    add_connection_options(announce)
    create = actions.add_parser("create", help="create a connector (or replace its config)")
    create.add_argument("name", help="the connector's name")
    create.add_argument(
        "config",
        nargs="*",
        metavar="NAME=VALUE",
        help="its settings, e.g. connector.class=io.debezium.connector.jdbc.JdbcSinkConnector",
    )
    create.add_argument(
        "--file", type=Path, help="settings as a JSON object (or {name, config}, Connect's form)"
    )
    for name, text in (
        ("status", "a connector's state, its tasks and their errors"),
        ("pause", "pause a connector and its tasks"),
        ("resume", "resume a paused or stopped connector"),
        ("stop", "stop a connector, keeping its configuration and offsets"),
        ("restart", "restart a connector and its tasks"),
        ("delete", "delete a connector"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("name", help="the connector's name")
    actions.choices["restart"].add_argument(
        "--failed", action="store_true", help="only the failed connector or tasks"
    )
    for action in actions.choices.values():
        action.add_argument(
            "--connect",
            default=os.environ.get("NERVE_CONNECT_URL", DEFAULT_URL),
            help=f"Kafka Connect's REST API (default: $NERVE_CONNECT_URL or {DEFAULT_URL})",
        )


def run(args: argparse.Namespace) -> int:
    from nerve.connect.rest import ConnectRestError

    try:
        return _run(args)
    except ConnectRestError as exc:
        print(f"nerve connect {args.action}: {exc}", file=sys.stderr)
        return 1
    except CommandError as exc:
        print(f"nerve connect {args.action}: {exc}", file=sys.stderr)
        return 2


def _settings(args: argparse.Namespace) -> dict[str, str]:
    config: dict[str, str] = {}
    if args.file is not None:
        try:
            loaded = json.loads(args.file.read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {args.file}: {exc}") from None
        if isinstance(loaded, dict) and isinstance(loaded.get("config"), dict):
            loaded = loaded["config"]
        if not isinstance(loaded, dict):
            raise CommandError(f"{args.file} holds no JSON object of settings")
        config.update({str(k): str(v) for k, v in loaded.items()})
    for item in args.config:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"settings are NAME=VALUE, got {item!r}")
        config[key] = value
    if "connector.class" not in config:
        raise CommandError("a connector needs connector.class (NAME=VALUE or --file)")
    return config


def _tasks(status: dict[str, Any]) -> str:
    tasks = status.get("tasks", [])
    if not tasks:
        return "-"
    return ",".join(f"{t['id']}:{t['state']}" for t in tasks)


def _run(args: argparse.Namespace) -> int:
    from nerve.connect.rest import ConnectClient

    client = ConnectClient(args.connect)
    if args.action == "list":
        found = client.connectors()
        rows: list[tuple[str, ...]] = []
        for name in sorted(found):
            status, info = found[name].get("status", {}), found[name].get("info", {})
            config = info.get("config", {})
            rows.append(
                (
                    name,
                    info.get("type", status.get("type", "?")),
                    status.get("connector", {}).get("state", "?"),
                    _tasks(status),
                    config.get("connector.class", "?").rsplit(".", 1)[-1],
                )
            )
        print(table(rows, ("CONNECTOR", "TYPE", "STATE", "TASKS", "CLASS")))
        return 0
    if args.action == "plugins":
        plugins = [(p["class"], p["type"], p.get("version", "")) for p in client.plugins()]
        print(table(plugins, ("CLASS", "TYPE", "VERSION")))
        return 0
    if args.action == "catalog":
        import time

        from nerve.connect.catalog import announce

        shown: list[str] | None = None
        while True:
            names = announce(client, client_config(args))
            if names != shown:  # with --every, a line only when the set changed
                print(f"announced {len(names)} connector(s): {', '.join(names) or '-'}", flush=True)
                shown = names
            if args.every <= 0:
                return 0
            try:
                time.sleep(args.every)
            except KeyboardInterrupt:
                return 0
    if args.action == "create":
        answer = client.create(args.name, _settings(args))
        print(f"connector {answer['name']}: {answer['config']['connector.class']}")
        return 0
    if args.action == "status":
        status = client.status(args.name)
        connector = status["connector"]
        print(f"connector {status['name']}: {connector['state']} on {connector['worker_id']}")
        failed = connector["state"] == "FAILED"
        if connector.get("trace"):
            print(f"  {connector['trace'].splitlines()[0]}")
        for task in status.get("tasks", []):
            print(f"task {task['id']}: {task['state']} on {task['worker_id']}")
            if task.get("trace"):
                print(f"  {task['trace'].splitlines()[0]}")
            failed = failed or task["state"] == "FAILED"
        return 1 if failed else 0
    if args.action == "restart":
        client.restart(args.name, only_failed=args.failed)
    else:
        getattr(client, args.action)(args.name)
    print(f"connector {args.name}: {args.action} requested")
    return 0
