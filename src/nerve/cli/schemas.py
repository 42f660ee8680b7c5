"""``nerve schemas list|show|register|check``: the registry from the command line, so that a
contract change can be checked in CI before it ships (``check`` exits 1 when incompatible)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from nerve.cli.client import (
    CommandError,
    add_connection_options,
    add_registry_option,
    client_config,
    registry_url,
    table,
)

TYPES_BY_SUFFIX = {".avsc": "AVRO", ".avro": "AVRO", ".json": "JSON", ".proto": "PROTOBUF"}
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("schemas", help="list, show, register and check schemas")
    add_registry_option(parser)
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="subjects with their latest version")
    listing.add_argument("--prefix", default="", help="only subjects starting with this")
    listing.add_argument("--deleted", action="store_true", help="include soft-deleted ones")
    show = actions.add_parser("show", help="print a subject's schema")
    show.add_argument("subject", help="the subject, e.g. orders-value")
    show.add_argument("--version", default="latest", help="a version number or latest")
    for name, text in (
        ("register", "register a schema file under a subject"),
        ("check", "check a schema file against a subject (exit 1 if incompatible)"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("subject", help="the subject, e.g. orders-value")
        action.add_argument("file", type=Path, help=".avsc, .json or .proto (or give --type)")
        action.add_argument(
            "--type",
            choices=("AVRO", "JSON", "PROTOBUF"),
            dest="schema_type",
            help="the schema's type (default: from the file's suffix)",
        )
        action.add_argument(
            "--reference",
            action="append",
            default=[],
            metavar="NAME=SUBJECT:VERSION",
            help="a schema reference (repeatable)",
        )
        action.add_argument(
            "--normalize", action="store_true", help="normalize the schema first (as Confluent's)"
        )
    actions.choices["check"].add_argument(
        "--version",
        default=None,
        help="check against this version only (default: as the subject's compatibility level says)",
    )
    for action in actions.choices.values():
        add_registry_option(action)
    _add_acl_parser(actions)


def _add_acl_parser(actions: Any) -> None:
    """``nerve schemas acl add|remove|list``: per-subject rights (nerve.registry.acls),
    written to the registry's ACL topic in Kafka, as Confluent's sr-acl-cli does."""
    from nerve.registry.acls import OPERATIONS

    acl = actions.add_parser(
        "acl", help="grant, revoke and list per-subject rights (the registry's ACL topic)"
    )
    verbs = acl.add_subparsers(dest="acl_action", required=True)
    for verb, text in (("add", "grant (or --deny) an operation"), ("remove", "take an ACL away")):
        parser = verbs.add_parser(verb, help=text)
        parser.add_argument("--principal", "-p", required=True, help="a user name, or *")
        parser.add_argument(
            "--operation",
            "-o",
            action="append",
            required=True,
            choices=(*OPERATIONS, "*"),
            help="repeatable",
        )
        parser.add_argument(
            "--subject", "-s", default="", help="a subject, * or prefix* (subject operations)"
        )
        parser.add_argument("--deny", action="store_true", help="a DENY ACL (beats any ALLOW)")
    verbs.add_parser("list", help="every ACL of the topic")
    for parser in verbs.choices.values():
        parser.add_argument(
            "--topic",
            default="_schemas_acl",
            help="the ACL topic (Confluent's confluent.schema.registry.acl.topic; default "
            "_schemas_acl, after kafkastore.topic _schemas)",
        )
        add_connection_options(parser)


def _url(args: argparse.Namespace) -> str:
    return registry_url(args)


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    import httpx

    try:
        response = httpx.request(
            method,
            _url(args) + path,
            json=body,
            headers={"Accept": CONTENT_TYPE, "Content-Type": CONTENT_TYPE},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        raise CommandError(f"cannot reach the registry at {_url(args)}: {exc}") from None
    if response.status_code >= 400:
        try:
            error = response.json()
            message = f"{error.get('message')} (error {error.get('error_code')})"
        except ValueError:
            message = response.text.strip()
        raise _HttpError(response.status_code, message)
    return response.json()


class _HttpError(CommandError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _request_body(args: argparse.Namespace) -> dict[str, Any]:
    try:
        text = args.file.read_text()
    except OSError as exc:
        raise CommandError(f"cannot read {args.file}: {exc.strerror}") from None
    schema_type = args.schema_type or TYPES_BY_SUFFIX.get(args.file.suffix.lower())
    if schema_type is None:
        raise CommandError(f"cannot tell the schema type of {args.file}; give --type")
    body: dict[str, Any] = {"schema": text, "schemaType": schema_type}
    references = []
    for item in args.reference:
        name, _, rest = item.partition("=")
        subject, _, version = rest.rpartition(":")
        if not name or not subject or not version.lstrip("-").isdigit():
            raise CommandError(f"--reference wants NAME=SUBJECT:VERSION, got {item!r}")
        references.append({"name": name, "subject": subject, "version": int(version)})
    if references:
        body["references"] = references
    return body


def _subject(subject: str) -> str:
    return quote(subject, safe="")


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except CommandError as exc:
        print(f"nerve schemas {args.action}: {exc}", file=sys.stderr)
        return 2 if not isinstance(exc, _HttpError) else 1


def _acl(args: argparse.Namespace) -> int:
    from nerve.registry import acls

    config = client_config(args)
    if args.acl_action == "list":
        topic = acls.AclTopic(config, args.topic)
        try:
            topic.start()
            found = topic.store.all()
        finally:
            topic.close()
        rows = [(a.principal, a.operation, a.subject or "-", a.permission) for a in found]
        print(table(rows, ("PRINCIPAL", "OPERATION", "SUBJECT", "PERMISSION")))
        return 0
    try:
        wanted = [
            acls.Acl(args.principal, operation, args.subject, "DENY" if args.deny else "ALLOW")
            for operation in args.operation
        ]
    except acls.AclError as exc:
        raise CommandError(str(exc)) from None
    acls.write(config, args.topic, wanted, remove=args.acl_action == "remove")
    for acl in wanted:
        done = "removed" if args.acl_action == "remove" else "added"
        on = f" on {acl.subject}" if acl.subject else ""
        print(f"{done}: {acl.permission} {acl.principal} {acl.operation}{on}")
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.action == "acl":
        return _acl(args)
    deleted = "true" if getattr(args, "deleted", False) else "false"
    normalize = "true" if getattr(args, "normalize", False) else "false"
    if args.action == "list":
        found = _call(args, "GET", f"/schemas?latestOnly=true&deleted={deleted}")
        rows = [
            (s["subject"], s["version"], s["id"], s.get("schemaType", "AVRO"))
            for s in found
            if s["subject"].startswith(args.prefix)
        ]
        print(table(rows, ("SUBJECT", "VERSION", "ID", "TYPE")))
        return 0
    if args.action == "show":
        found = _call(args, "GET", f"/subjects/{_subject(args.subject)}/versions/{args.version}")
        schema_type = found.get("schemaType", "AVRO")
        print(
            f"# subject {found['subject']} version {found['version']} id {found['id']} "
            f"type {schema_type}"
        )
        for ref in found.get("references", []):
            print(f"# reference {ref['name']} = {ref['subject']}:{ref['version']}")
        text = found["schema"]
        if schema_type in ("AVRO", "JSON"):
            text = json.dumps(json.loads(text), indent=2)
        print(text)
        return 0
    body = _request_body(args)
    subject = _subject(args.subject)
    if args.action == "register":
        answer = _call(args, "POST", f"/subjects/{subject}/versions?normalize={normalize}", body)
        print(f"registered {args.subject}: id {answer['id']}")
        return 0
    try:
        _call(args, "GET", f"/subjects/{subject}/versions")
    except _HttpError as exc:
        if exc.status != 404:
            raise
        _call(args, "POST", f"/compatibility/subjects/{subject}/versions", body)  # valid?
        print(f"{args.subject}: no versions yet, so any valid schema is compatible")
        return 0
    path = f"/compatibility/subjects/{subject}/versions"
    if args.version is not None:
        path += f"/{args.version}"
    answer = _call(args, "POST", f"{path}?verbose=true&normalize={normalize}", body)
    if answer["is_compatible"]:
        print(f"{args.subject}: compatible")
        return 0
    print(f"{args.subject}: INCOMPATIBLE")
    for message in answer.get("messages", []):
        print(f"  {message}")
    return 1
