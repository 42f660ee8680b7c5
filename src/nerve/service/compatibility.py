"""Can a consumer's model read what producers write? Checked at start against the latest
schema of the subject (``<topic>-value``), so that "events are contracts" protects readers as
well as writers.

The rules are those of a reader that keeps unknown fields instead of refusing them (see
``Event``): a field the writer adds is harmless; a field the reader requires must be one the
writer always writes, and with a type the reader accepts. These are not JSON Schema's own
compatibility rules (a closed model, ``additionalProperties: false``, would make every added
field incompatible), which is why the registry's check is not used for this direction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

# A writer writing the first may be read by a reader expecting the second.
_WIDENS = {("integer", "number")}
_MISSING = "the model requires it and the latest schema has no such field"


@dataclass(frozen=True)
class Problem:
    """One field the model may fail to read: ``fatal`` when no event of the writer's schema
    can be read (the service refuses to start), else a warning."""

    field: str
    message: str
    fatal: bool


def json_problems(model: type[BaseModel], writer: dict[str, Any]) -> list[Problem]:
    """What stops ``model`` from reading data written with the JSON Schema ``writer``."""
    reader = model.model_json_schema()
    return _object_problems(reader, reader, writer, writer, "", depth=0)


def avro_problems(reader: dict[str, Any], writer: Any) -> list[Problem]:
    """What stops the Avro record ``reader`` from reading data written with ``writer``: a
    reader field without a default that the writer lacks (types are resolved by Avro)."""
    if not isinstance(writer, dict) or writer.get("type") != "record":
        return [Problem("", "the latest schema is not an Avro record", fatal=True)]
    written = {f["name"] for f in writer.get("fields", [])}
    return [
        Problem(f["name"], _MISSING, True)
        for f in reader.get("fields", [])
        if f["name"] not in written and "default" not in f
    ]


def avro_writer_problems(model: type[BaseModel], writer: Any) -> list[Problem]:
    """What stops a model that is not Avro's own from reading data written with the Avro
    ``writer``: a field the model requires that the writer's record lacks (values are then
    validated by the model, as JSON's are)."""
    if not isinstance(writer, dict) or writer.get("type") != "record":
        return [Problem("", "the latest schema is not an Avro record", fatal=True)]
    written = {f["name"] for f in writer.get("fields", [])}
    return [
        Problem(name, _MISSING, True)
        for name, info in model.model_fields.items()
        if info.is_required() and name not in written
    ]


def writer_schema(schema_type: str | None, text: str) -> Any:
    """The registry's schema text as a document (JSON Schema and Avro are JSON)."""
    if (schema_type or "AVRO") not in ("AVRO", "JSON"):
        return None
    return json.loads(text)


def _resolve(schema: Any, document: dict[str, Any]) -> Any:
    """Follow a local ``$ref`` (``#/$defs/Name``, ``#/definitions/Name``)."""
    seen = 0
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and seen < 32:
        ref: str = schema["$ref"]
        if not ref.startswith("#/"):
            return {}
        target: Any = document
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        schema, seen = target, seen + 1
    return schema


def _branches(schema: Any, document: dict[str, Any]) -> list[Any]:
    schema = _resolve(schema, document)
    if not isinstance(schema, dict):
        return []
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return [b for s in schema[key] for b in _branches(s, document)]
    return [schema]


def _types(schema: Any, document: dict[str, Any]) -> set[str] | None:
    """The JSON types a schema allows; None when it does not say (anything goes)."""
    found: set[str] = set()
    for branch in _branches(schema, document):
        kind = branch.get("type")
        if kind is None:
            if "enum" in branch or "const" in branch:
                values = branch.get("enum", [branch.get("const")])
                found |= {_json_type(v) for v in values}
                continue
            if "properties" in branch:
                found.add("object")
                continue
            return None
        found |= set(kind) if isinstance(kind, list) else {kind}
    return found or None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _object_problems(
    reader: Any,
    reader_doc: dict[str, Any],
    writer: Any,
    writer_doc: dict[str, Any],
    prefix: str,
    depth: int,
) -> list[Problem]:
    reader, writer = _resolve(reader, reader_doc), _resolve(writer, writer_doc)
    if depth > 16 or not isinstance(reader, dict) or not isinstance(writer, dict):
        return []
    written: dict[str, Any] = writer.get("properties") or {}
    always = set(writer.get("required") or [])
    problems: list[Problem] = []
    for name, wanted in (reader.get("properties") or {}).items():
        path = prefix + name
        required = name in (reader.get("required") or [])
        if name not in written:
            if required and writer.get("additionalProperties") is not True:
                problems.append(Problem(path, _MISSING, True))
            continue
        if required and name not in always:
            problems.append(
                Problem(
                    path,
                    "the model requires it but the latest schema makes it optional: events "
                    "without it would be dead-lettered",
                    False,
                )
            )
        reads, writes = _types(wanted, reader_doc), _types(written[name], writer_doc)
        if reads is not None and writes is not None:
            readable = {w for w in writes if w in reads or any((w, r) in _WIDENS for r in reads)}
            if not readable:
                problems.append(
                    Problem(
                        path,
                        f"the latest schema writes {'/'.join(sorted(writes))}, the model reads "
                        f"{'/'.join(sorted(reads))}",
                        True,
                    )
                )
                continue
            if writes - readable - {"null"}:
                problems.append(
                    Problem(
                        path,
                        f"the latest schema may write {'/'.join(sorted(writes - readable))}, "
                        f"which the model does not read",
                        False,
                    )
                )
        if "object" in (reads or set()):
            nested_reader = [b for b in _branches(wanted, reader_doc) if b.get("properties")]
            nested_writer = [b for b in _branches(written[name], writer_doc) if b.get("properties")]
            if nested_reader and nested_writer:
                problems += _object_problems(
                    nested_reader[0],
                    reader_doc,
                    nested_writer[0],
                    writer_doc,
                    f"{path}.",
                    depth + 1,
                )
    return problems
