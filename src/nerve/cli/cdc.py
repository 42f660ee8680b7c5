"""``nerve cdc doctor DSN``: checks a PostgreSQL database's settings for change data capture
and says what to change (exit 1 while something must be fixed)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("cdc", help="change data capture from PostgreSQL")
    actions = parser.add_subparsers(dest="action", required=True)
    doctor = actions.add_parser(
        "doctor", help="check a database's settings for CDC and say what to change"
    )
    doctor.add_argument(
        "dsn", help="the database, e.g. 'host=127.0.0.1 dbname=shop user=app' or postgresql://..."
    )


def run(args: argparse.Namespace) -> int:
    try:
        import psycopg
    except ImportError:
        print(
            "nerve cdc: needs psycopg; pip install 'nerve[cdc]' (or psycopg[binary])",
            file=sys.stderr,
        )
        return 2
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
