"""``nerve cdc doctor DSN``: checks a PostgreSQL database's settings for change data capture
and says what to change (exit 1 while something must be fixed). ``nerve cdc postgres DSN``:
streams its changes into Kafka without a JVM (nerve.connect.cdc)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from nerve.cli import client


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("cdc", help="change data capture from PostgreSQL")
    actions = parser.add_subparsers(dest="action", required=True)
    doctor = actions.add_parser(
        "doctor", help="check a database's settings for CDC and say what to change"
    )
    doctor.add_argument(
        "dsn", help="the database, e.g. 'host=127.0.0.1 dbname=shop user=app' or postgresql://..."
    )
    add_postgres(actions)


def run(args: argparse.Namespace) -> int:
    try:
        import psycopg
    except ImportError:
        print(
            "nerve cdc: needs psycopg; pip install 'nerve[cdc]' (or psycopg[binary])",
            file=sys.stderr,
        )
        return 2
    if args.action == "postgres":
        return run_postgres(args)
    from nerve.connect.doctor import FIX, examine

    try:
        with psycopg.connect(args.dsn, autocommit=True, connect_timeout=10) as conn:
            findings = examine(conn)
    except psycopg.Error as exc:
        print(f"nerve cdc {args.action}: cannot check the database: {exc}".strip(), file=sys.stderr)
        return 2
    for finding in findings:
        print(finding.line())
    to_fix = sum(f.level == FIX for f in findings)
    print(f"{to_fix} to fix" if to_fix else "ready for change data capture")
    return 1 if to_fix else 0


def add_postgres(actions: Any) -> None:
    capture = actions.add_parser(
        "postgres", help="stream a PostgreSQL database's changes into Kafka (no JVM)"
    )
    capture.add_argument("dsn", help="the database (its user needs REPLICATION)")
    capture.add_argument(
        "--prefix", required=True, help="topics are PREFIX.SCHEMA.TABLE (Debezium's topic.prefix)"
    )
    capture.add_argument(
        "--table", action="append", required=True, metavar="SCHEMA.TABLE", help="repeatable"
    )
    capture.add_argument("--slot", default="", help="the replication slot (default from --prefix)")
    capture.add_argument(
        "--batch-changes",
        type=int,
        default=10_000,
        metavar="N",
        help="commit a Kafka transaction once it holds N changes (whole database transactions;"
        " 0: one Kafka transaction per database transaction)",
    )
    capture.add_argument(
        "--batch-ms",
        type=float,
        default=100.0,
        metavar="MS",
        help="... or once it is MS old (default 100)",
    )
    client.add_connection_options(capture)


def run_postgres(args: argparse.Namespace) -> int:
    import signal

    from nerve.connect.cdc import CaptureConfig, PostgresCapture

    try:
        kafka = client.client_config(args)
    except client.CommandError as exc:
        print(f"nerve cdc postgres: {exc}", file=sys.stderr)
        return 2
    kafka.pop("log_level", None)
    capture = PostgresCapture(
        CaptureConfig(
            dsn=args.dsn,
            bootstrap_servers=kafka.pop("bootstrap.servers"),
            prefix=args.prefix,
            tables=args.table,
            slot=args.slot,
            batch_changes=args.batch_changes,
            batch_ms=args.batch_ms,
            kafka=kafka,
        )
    )
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: capture.stop())
    print(f"capturing {', '.join(args.table)} into {args.prefix}.*", flush=True)
    capture.run()
    print(f"stopped after {capture.published} changes", flush=True)
    return 0
