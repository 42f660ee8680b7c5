"""``nerve catalog``: the services and events of the system, from ``_nerve_catalog``."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(commands: Any) -> None:
    commands.add_parser("catalog", help="list services and events; asyncapi writes AsyncAPI 3.0")


def run(args: argparse.Namespace) -> int:
    print("nerve catalog: not built yet", file=sys.stderr)
    return 2
