"""The registry's state as materialised from `_schemas`: pure data, no I/O.

Every instance folds the same records in the same order into this, so every instance answers
alike. Records this version does not understand are skipped (and logged), not fatal: the topic
may be shared with a newer Confluent or Karapace.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from nerve.registry import records
from nerve.registry.records import Reference

log = logging.getLogger("nerve.registry")


@dataclass(frozen=True, slots=True)
class SchemaContent:
    """What an id stands for: the same content under any subject gets the same id."""

    schema_type: str
    schema: str
    references: tuple[Reference, ...]


@dataclass(slots=True)
class SubjectVersion:
    subject: str
    version: int
    schema_id: int
    deleted: bool


@dataclass
class RegistryState:
    schemas: dict[int, SchemaContent] = field(default_factory=dict)
    subjects: dict[str, dict[int, SubjectVersion]] = field(default_factory=dict)
    global_compatibility: str | None = None
    compatibility: dict[str, str] = field(default_factory=dict)
    global_mode: str | None = None
    modes: dict[str, str] = field(default_factory=dict)
    max_id: int = 0
    # Indexes kept in step with the above, so that neither a registration (finding the id of
    # some content) nor the reader (dropping an id no version uses) scans every schema.
    _ids_by_content: dict[SchemaContent, set[int]] = field(default_factory=dict)
    _uses: dict[int, int] = field(default_factory=dict)  # versions holding each id

    def apply(self, key_bytes: bytes | None, value_bytes: bytes | None) -> None:
        """Fold one `_schemas` record into the state."""
        try:
            key = records.decode(key_bytes)
            value = records.decode(value_bytes)
            if key is None:
                return
            keytype = key.get("keytype")
            if keytype == records.SCHEMA:
                self._apply_schema(key, value)
            elif keytype == records.CONFIG:
                self._apply_setting(key, value, "compatibilityLevel")
            elif keytype == records.MODE:
                self._apply_setting(key, value, "mode")
            elif keytype == records.DELETE_SUBJECT:
                self._apply_delete_subject(value)
            elif keytype not in (records.NOOP, records.CLEAR_SUBJECT):
                log.warning("skipping a _schemas record of unknown keytype %r", keytype)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("skipping a _schemas record that does not parse: %s", exc)

    def _apply_schema(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        subject, version = str(key["subject"]), int(key["version"])
        if value is None:  # a tombstone: the version is deleted for good
            versions = self.subjects.get(subject, {})
            gone = versions.pop(version, None)
            if not versions:
                self.subjects.pop(subject, None)
            if gone is not None:
                self._release(gone.schema_id)
            return
        schema_id = int(value["id"])
        content = SchemaContent(
            schema_type=str(value.get("schemaType") or "AVRO"),
            schema=str(value["schema"]),
            references=records.references_from_json(value.get("references")),
        )
        previous = self.schemas.get(schema_id)
        if previous is not None and previous != content:
            self._unindex(previous, schema_id)
        self.schemas[schema_id] = content
        self._ids_by_content.setdefault(content, set()).add(schema_id)
        versions = self.subjects.setdefault(subject, {})
        replaced = versions.get(version)
        versions[version] = SubjectVersion(
            subject, version, schema_id, bool(value.get("deleted", False))
        )
        self._uses[schema_id] = self._uses.get(schema_id, 0) + 1
        if replaced is not None:
            self._release(replaced.schema_id)
        self.max_id = max(self.max_id, schema_id)

    def _apply_setting(self, key: dict[str, Any], value: dict[str, Any] | None, name: str) -> None:
        subject = key.get("subject")
        table = self.compatibility if name == "compatibilityLevel" else self.modes
        setting = None if value is None else str(value[name])
        if subject is None:
            if name == "compatibilityLevel":
                self.global_compatibility = setting
            else:
                self.global_mode = setting
        elif setting is None:
            table.pop(str(subject), None)
        else:
            table[str(subject)] = setting

    def _apply_delete_subject(self, value: dict[str, Any] | None) -> None:
        if value is None:
            return
        subject, up_to = str(value["subject"]), int(value["version"])
        for entry in self.subjects.get(subject, {}).values():
            if entry.version <= up_to:
                entry.deleted = True

    def _release(self, schema_id: int) -> None:
        """One version fewer holds ``schema_id``; the last one takes the schema with it."""
        left = self._uses.get(schema_id, 0) - 1
        if left > 0:
            self._uses[schema_id] = left
            return
        self._uses.pop(schema_id, None)
        content = self.schemas.pop(schema_id, None)
        if content is not None:
            self._unindex(content, schema_id)

    def _unindex(self, content: SchemaContent, schema_id: int) -> None:
        ids = self._ids_by_content.get(content)
        if ids is not None:
            ids.discard(schema_id)
            if not ids:
                del self._ids_by_content[content]

    # -- queries -----------------------------------------------------------------------------

    def versions(self, subject: str, *, deleted: bool = False) -> list[SubjectVersion]:
        """A subject's versions, oldest first; soft-deleted ones only when asked for."""
        entries = self.subjects.get(subject, {})
        return [entries[v] for v in sorted(entries) if deleted or not entries[v].deleted]

    def subject_names(self, *, deleted: bool = False) -> list[str]:
        return sorted(s for s in self.subjects if self.versions(s, deleted=deleted))

    def find_id(self, content: SchemaContent) -> int | None:
        """The id already given to this content, if any (ids are per content, not per
        subject)."""
        ids = self._ids_by_content.get(content)
        return min(ids) if ids else None

    def uses_of(self, schema_id: int, *, deleted: bool = False) -> list[SubjectVersion]:
        return [
            entry
            for subject in sorted(self.subjects)
            for entry in self.versions(subject, deleted=deleted)
            if entry.schema_id == schema_id
        ]

    def referenced_by(self, subject: str, version: int) -> list[int]:
        """Ids of live schemas that refer to this subject version."""
        ids = {
            entry.schema_id
            for name in self.subjects
            for entry in self.versions(name)
            if any(
                r.subject == subject and r.version == version
                for r in self.schemas[entry.schema_id].references
            )
        }
        return sorted(ids)
