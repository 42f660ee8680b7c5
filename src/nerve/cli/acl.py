"""``nerve acl plan FILE...``: the least-privilege ACLs of the services Python files define
(nerve.security.acl_plan), or with ``--sender`` of a process sending commands to their
aggregates, as kafka-acls lists them or as JSON; with ``--apply``, created on the cluster
(nerve.security.acl_apply), only those it lacks."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from nerve.cli.client import CommandError, add_connection_options


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("acl", help="the ACLs services need")
    actions = parser.add_subparsers(dest="action", required=True)
    planning = actions.add_parser(
        "plan", help="print the least-privilege ACLs of the services Python files define"
    )
    planning.add_argument("files", nargs="+", type=Path, help="Python files defining Services")
    planning.add_argument(
        "--service", action="append", default=[], metavar="NAME", help="only this one (repeatable)"
    )
    planning.add_argument(
        "--principal",
        default=None,
        metavar="User:NAME",
        help="who the ACLs are for (default: User:<service name>)",
    )
    planning.add_argument("--json", action="store_true", help="one JSON list of entries")
    planning.add_argument(
        "--http",
        action="store_true",
        help="the services run with --http-port (their streams' tables served over HTTP)",
    )
    planning.add_argument(
        "--rebuild",
        action="store_true",
        help="the principal also runs `nerve projection rebuild` of the services' projections",
    )
    planning.add_argument(
        "--sender",
        action="store_true",
        help="plan for a process sending commands to the services' aggregates instead "
        "(CommandClient; default principal User:<service>-sender)",
    )
    planning.add_argument(
        "--apply",
        action="store_true",
        help="create the planned ACLs the cluster lacks (connect with -b, -X, -F as a "
        "principal allowed to alter ACLs); the principal's other ACLs are listed, not deleted",
    )
    add_connection_options(planning)


def run(args: argparse.Namespace) -> int:
    from nerve.security.acl_plan import plan, sender_plan
    from nerve.service.host import load_services

    services = []
    for path in args.files:
        if not path.is_file():
            print(f"nerve acl: no such file {path}", file=sys.stderr)
            return 2
        try:
            services += load_services(path)
        except Exception as exc:  # the user's module failed to import
            print(f"nerve acl: cannot load {path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
    if args.service:
        unknown = sorted(set(args.service) - {s.name for s in services})
        if unknown:
            print(f"nerve acl: no service {', '.join(unknown)} in the files", file=sys.stderr)
            return 2
        services = [s for s in services if s.name in args.service]
    if not services:
        print("nerve acl: the files define no Service", file=sys.stderr)
        return 2
    entries: list[dict[str, Any]] = []
    for service in services:
        if args.sender:
            planned = sender_plan(service)
            principal = args.principal or f"User:{service.name}-sender"
            if not planned.reasons:
                print(f"nerve acl: {service.name} has no aggregates to send commands to",
                      file=sys.stderr)  # fmt: skip
                continue
        else:
            planned = plan(service, http=args.http, rebuild=args.rebuild)
            principal = args.principal or f"User:{service.name}"
        if planned.unplanned:
            print(
                f"nerve acl: {service.name}: not planned: {'; '.join(planned.unplanned)}; "
                "add their ACLs by hand",
                file=sys.stderr,
            )
        entries += [{"service": service.name, **e} for e in planned.entries(principal)]
        if args.json:
            continue
        print(f"# {service.name} as {principal}")
        for acl, why in planned.reasons.items():
            print(f"{acl.line(principal)}  # {'; '.join(why)}")
    if args.apply:
        return _apply(args, entries)
    if args.json:
        print(json.dumps(entries, indent=2))
    return 0


def _apply(args: argparse.Namespace, entries: list[dict[str, Any]]) -> int:
    """Create what the cluster lacks and say what was done: in text after the plan, with
    ``--json`` as each entry's ``applied`` (created or present) and the summary on stderr."""
    from nerve.cli import client
    from nerve.security.acl_apply import ApplyError, apply, key, line

    out = sys.stderr if args.json else sys.stdout
    try:
        done = apply(client.admin(args), entries)
    except CommandError as exc:
        print(f"nerve acl: {exc}", file=sys.stderr)
        return 1
    except ApplyError as exc:
        for k in exc.created:
            print(f"created {line(k)}", file=out)
        print(f"nerve acl: {exc}", file=sys.stderr)
        return 1
    if args.json:
        created = set(done.created)
        for entry in entries:
            entry["applied"] = "created" if key(entry) in created else "present"
        print(json.dumps(entries, indent=2))
    else:
        print()
        for k in done.created:
            print(f"created {line(k)}")
    for k in done.extra:
        print(f"not in the plan, left alone: {line(k)}", file=out)
    if done.created:
        print(f"created {len(done.created)} ACLs, {len(done.present)} already there", file=out)
    else:
        print(f"nothing to create: the {len(done.present)} planned ACLs are there", file=out)
    return 0
