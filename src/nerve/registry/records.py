"""The `_schemas` topic's records, in the JSON layout Confluent Schema Registry and Karapace use.

Keys are JSON objects with a fixed key order (``keytype``, ``subject``, ``version``, ``magic``)
so that compaction sees equal bytes for equal keys; matching the layout lets nerve read a topic
written by Confluent or Karapace, and them read nerve's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SCHEMA = "SCHEMA"
CONFIG = "CONFIG"
MODE = "MODE"
DELETE_SUBJECT = "DELETE_SUBJECT"
CLEAR_SUBJECT = "CLEAR_SUBJECT"
NOOP = "NOOP"


@dataclass(frozen=True, slots=True)
class Reference:
    """A schema's reference to a version of another subject, under the name it uses."""

    name: str
    subject: str
    version: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "subject": self.subject, "version": self.version}


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def schema_key(subject: str, version: int) -> bytes:
    return _dumps({"keytype": SCHEMA, "subject": subject, "version": version, "magic": 1})


def schema_value(
    subject: str,
    version: int,
    schema_id: int,
    schema_type: str,
    schema: str,
    references: tuple[Reference, ...],
    deleted: bool,
) -> bytes:
    value: dict[str, Any] = {"subject": subject, "version": version, "id": schema_id}
    if schema_type != "AVRO":  # Confluent leaves the type out for Avro, its default
        value["schemaType"] = schema_type
    if references:
        value["references"] = [r.to_json() for r in references]
    value["schema"] = schema
    value["deleted"] = deleted
    return _dumps(value)


def config_key(subject: str | None) -> bytes:
    return _dumps({"keytype": CONFIG, "subject": subject, "magic": 0})


def config_value(level: str) -> bytes:
    return _dumps({"compatibilityLevel": level})


def mode_key(subject: str | None) -> bytes:
    return _dumps({"keytype": MODE, "subject": subject, "magic": 0})


def mode_value(mode: str) -> bytes:
    return _dumps({"mode": mode})


def delete_subject_key(subject: str) -> bytes:
    return _dumps({"keytype": DELETE_SUBJECT, "subject": subject, "magic": 0})


def delete_subject_value(subject: str, version: int) -> bytes:
    return _dumps({"subject": subject, "version": version})


def decode(data: bytes | None) -> dict[str, Any] | None:
    """A key or value as a dict; None for a tombstone. Raises ValueError on bytes that are not
    a JSON object, so the reader can skip a record it does not understand."""
    if data is None:
        return None
    obj = json.loads(data)
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    return obj


def references_from_json(items: Any) -> tuple[Reference, ...]:
    return tuple(
        Reference(str(r["name"]), str(r["subject"]), int(r["version"])) for r in items or ()
    )
