"""``nerve demo finance|shop|cdc [--check]``: an example system, live or as a self-check."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("demo", help="run an example system on a local platform")
    parser.add_argument(
        "system", choices=("finance", "shop", "cdc"), help="the example system to run"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="run a fixed workload, kill and restart a service mid-stream, exit 0 only if "
        "the system ends as the workload's oracle says (finance: every balance and email; "
        "shop: every outcome, order, payment, shipment, SKU, delivery, reorder and read model "
        "(shop also kills its capture); cdc: every "
        "database change once and in order, and the warehouse's events; cdc kills the capture)",
    )
    parser.add_argument(
        "--data-dir", type=Path, help="default: .nerve/demo (a temp dir with --check)"
    )
    parser.add_argument("--users", type=int, default=8, help="how many users (default 8)")
    parser.add_argument(
        "--transactions", type=int, default=600, help="the --check workload (finance, cdc)"
    )
    parser.add_argument("--orders", type=int, default=60, help="shop: the --check workload")
    parser.add_argument(
        "--rate", type=float, default=20.0, help="live transactions (shop: commands) per second"
    )


def run(args: argparse.Namespace) -> int:
    import sys

    try:
        if args.system == "cdc":
            from nerve.demo.cdc import demo as cdc

            return cdc.run(args.check, args.data_dir, args.transactions, args.rate)
        if args.system == "shop":
            from nerve.demo.shop import demo as shop

            return shop.run(args.check, args.data_dir, args.orders, args.rate)
        from nerve.demo.finance import demo

        return demo.run(args.check, args.data_dir, args.users, args.transactions, args.rate)
    except OSError as exc:
        print(
            f"nerve demo: cannot start the platform: {exc}. The live demo listens on :9092 "
            "and :8081; stop whatever holds them (a `nerve up`?), or run with --check, which "
            "picks free ports.",
            file=sys.stderr,
        )
        return 1
