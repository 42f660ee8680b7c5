"""``nerve projection list|rebuild FILE``: the projections (read models) that a services file
defines, where their views are, and rebuilding one from the start of its topics.

A rebuild runs in this process with the file's code: it folds every event again into a new
generation of the view beside the live one and switches readers to it in one transaction once it
has caught up; services running the projection follow the switch (:mod:`nerve.es.projection`).
"""

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
    registry_url,
    table,
)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "projection", help="list projections (read models) and rebuild them from the start"
    )
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser(
        "list", help="the projections of the files: database, live generation, failures"
    )
    listing.add_argument("files", nargs="+", type=Path, help="Python files defining services")
    rebuild = actions.add_parser(
        "rebuild",
        help="fold every event again into a new generation of a view beside the live one, "
        "then switch to it",
    )
    rebuild.add_argument("file", type=Path, help="the Python file defining the service")
    rebuild.add_argument("name", help="the projection's name (SERVICE.NAME if it is ambiguous)")
    add_connection_options(rebuild)
    add_registry_option(rebuild)


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "list":
            return _list(args)
        if args.action == "rebuild":
            return _rebuild(args)
    except CommandError as exc:
        print(f"nerve projection: {exc}", file=sys.stderr)
        return 1
    raise AssertionError(args.action)


def _projections(paths: list[Path]) -> list[Any]:
    from nerve.service.host import load_services

    found = []
    for path in paths:
        if not path.is_file():
            raise CommandError(f"no such file {path}")
        try:
            services = load_services(path)
        except Exception as exc:  # the user's module failed to import: say so, briefly
            raise CommandError(f"cannot load {path}: {type(exc).__name__}: {exc}") from exc
        found += [p for service in services for p in service.projections]
    return found


def _list(args: argparse.Namespace) -> int:
    rows = []
    for projection in _projections(args.files):
        try:
            live = projection.views.live()
            build = projection.views.building()
            failures = len(projection.views.failures())
        except Exception as exc:
            raise CommandError(
                f"projection {projection.name}: {projection.views.describe()}: {exc}"
            ) from exc
        rows.append(
            (
                projection.service,
                projection.name,
                projection.version,
                f"{live.number} (version {live.version})" if live else None,
                f"{build.number} (version {build.version})" if build else None,
                failures,
                projection.views.describe(),
            )
        )
    header = ("SERVICE", "PROJECTION", "CODE", "LIVE", "BUILDING", "FAILURES", "DATABASE")
    print(table(rows, header))
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    import logging

    from nerve.es.views import ViewError
    from nerve.service.content import EventReader

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    matches = [
        p for p in _projections([args.file]) if args.name in (p.name, f"{p.service}.{p.name}")
    ]
    if not matches:
        raise CommandError(f"{args.file} defines no projection {args.name}")
    if len(matches) > 1:
        names = ", ".join(f"{p.service}.{p.name}" for p in matches)
        raise CommandError(f"{args.name} is ambiguous: {names}")
    (projection,) = matches
    kafka = {k: v for k, v in client_config(args).items() if k != "log_level"}
    try:
        projection.rebuild(
            kafka,
            reader=EventReader(registry_url(args)),
            progress=lambda line: print(line, flush=True),
        )
    except ViewError as exc:
        raise CommandError(str(exc)) from exc
    return 0
