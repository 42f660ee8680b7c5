"""Schemas, through the registry's REST API: subjects, versions side by side with a diff,
the compatibility level, and "would this schema be accepted?" (the registry's own check,
verbose, so its reasons are shown)."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from nerve.console.cluster import Cluster, ConsoleError


@dataclass
class SubjectRow:
    name: str
    versions: int
    latest: int
    type: str
    id: int


@dataclass
class Version:
    subject: str
    version: int
    id: int
    type: str
    text: str  # the schema, indented when it is JSON (Avro, JSON Schema)
    references: list[dict[str, Any]]


def _path(subject: str) -> str:
    return quote(subject, safe="")


def pretty(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2)
    except ValueError:
        return text  # Protobuf


def subjects(cluster: Cluster) -> list[SubjectRow]:
    """The subjects the registry lists, each with its versions; a subject the registry
    refuses to show (403: the logged-in user lacks its SUBJECT_READ) is left out."""
    rows = []
    for name in sorted(cluster.registry_get("/subjects")):
        try:
            versions = cluster.registry_get(f"/subjects/{_path(name)}/versions")
            latest = cluster.registry_get(f"/subjects/{_path(name)}/versions/latest")
        except ConsoleError as exc:
            if exc.status == 403:
                continue
            raise
        rows.append(
            SubjectRow(
                name,
                len(versions),
                latest["version"],
                latest.get("schemaType", "AVRO"),
                latest["id"],
            )
        )
    return rows


def versions(cluster: Cluster, subject: str) -> list[int]:
    return list(cluster.registry_get(f"/subjects/{_path(subject)}/versions"))


def version(cluster: Cluster, subject: str, number: int | str) -> Version:
    found = cluster.registry_get(f"/subjects/{_path(subject)}/versions/{number}")
    return Version(
        subject,
        found["version"],
        found["id"],
        found.get("schemaType", "AVRO"),
        pretty(found["schema"]),
        found.get("references") or [],
    )


def compatibility(cluster: Cluster, subject: str) -> str:
    try:
        found = cluster.registry_get(f"/config/{_path(subject)}", defaultToGlobal="true")
    except ConsoleError as exc:
        if exc.status != 404:
            raise
        found = cluster.registry_get("/config")
    return str(found.get("compatibilityLevel") or found.get("compatibility") or "BACKWARD")


def diff(old: Version, new: Version) -> list[tuple[str, str]]:
    """Lines of a unified diff as (kind, text): kind is ``add``, ``del``, ``hunk`` or ``same``."""
    lines = difflib.unified_diff(
        old.text.splitlines(),
        new.text.splitlines(),
        f"version {old.version}",
        f"version {new.version}",
        lineterm="",
        n=3,
    )
    out = []
    for line in lines:
        if line.startswith(("---", "+++")):
            continue
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "same")
        out.append((kind, line))
    return out


@dataclass
class Check:
    compatible: bool
    messages: list[str]
    level: str


def check(cluster: Cluster, subject: str, text: str, schema_type: str) -> Check:
    """Would the registry accept ``text`` as the next version of ``subject``?"""
    if not text.strip():
        raise ConsoleError("paste a schema to check")
    body: dict[str, Any] = {"schema": text}
    if schema_type and schema_type != "AVRO":
        body["schemaType"] = schema_type
    answer = cluster.registry_send(
        "POST", f"/compatibility/subjects/{_path(subject)}/versions/latest?verbose=true", body
    )
    return Check(
        bool(answer.get("is_compatible")),
        list(answer.get("messages") or []),
        compatibility(cluster, subject),
    )
