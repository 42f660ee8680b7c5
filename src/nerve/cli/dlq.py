"""``nerve dlq list|replay TOPIC``: look at dead letters and send them back after a fix."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("dlq", help="list and replay dead-lettered events")
    parser.add_argument("action", choices=("list", "replay"))
    parser.add_argument("topic", help="the original topic (its dead letters are in TOPIC.dlq)")


def run(args: argparse.Namespace) -> int:
    print("nerve dlq: not built yet", file=sys.stderr)
    return 2
