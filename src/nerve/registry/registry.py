"""The registry's operations with Confluent's semantics, independent of HTTP.

Reads answer from the state the reader has applied; a read that finds nothing first catches up
with the topic, so a schema registered through another instance is found as soon as it is
committed. Writes go through ``SchemasTopic.write``, which makes them exclusive.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from nerve.registry import errors, records
from nerve.registry.config import RegistryConfig
from nerve.registry.records import Reference
from nerve.registry.schema_types import InvalidSchema, ParsedSchema
from nerve.registry.schemas_topic import SchemasTopic
from nerve.registry.state import RegistryState, SchemaContent, SubjectVersion

SCHEMA_TYPES = ("AVRO", "JSON", "PROTOBUF")
LEVELS = (
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
)
MODES = ("READWRITE", "READONLY", "IMPORT")
DEFAULT_LEVEL = "BACKWARD"
DEFAULT_MODE = "READWRITE"
LATEST = -1

T = TypeVar("T")


def _parser(schema_type: str) -> Callable[[str, Mapping[str, str]], ParsedSchema]:
    # Imported on first use: protoc and the Protobuf runtime cost a noticeable start-up time.
    if schema_type == "AVRO":
        from nerve.registry.schema_types import avro

        return avro.parse
    if schema_type == "JSON":
        from nerve.registry.schema_types import json_schema

        return json_schema.parse
    try:
        import grpc_tools  # noqa: F401  (protoc, compiling every Protobuf schema)

        from nerve.registry.schema_types import protobuf
    except ImportError:
        raise errors.RegistryError(500, 500, PROTOBUF_MISSING) from None
    return protobuf.parse


# Protobuf support is an extra: protoc (grpcio-tools) is 27 MB that most installs never use.
PROTOBUF_MISSING = (
    "Protobuf schemas need the protobuf extra of nerve, which this registry lacks: "
    "pip install 'nerve[protobuf]' (grpcio-tools and protobuf)"
)


@functools.lru_cache(maxsize=4096)
def _parse_cached(schema_type: str, text: str, references: tuple[tuple[str, str], ...]) -> Any:
    return _parser(schema_type)(text, dict(references))


@dataclass(frozen=True, slots=True)
class SchemaRequest:
    """What a client sends to register, look up or check a schema."""

    schema: str
    schema_type: str = "AVRO"
    references: tuple[Reference, ...] = ()
    schema_id: int | None = None  # only in IMPORT mode
    version: int | None = None  # only in IMPORT mode

    @classmethod
    def from_json(cls, body: Any) -> SchemaRequest:
        if not isinstance(body, dict):
            raise errors.unprocessable("The request body must be a JSON object")
        schema = body.get("schema")
        if not isinstance(schema, str) or not schema.strip():
            raise errors.invalid_schema("Empty schema")
        schema_type = body.get("schemaType") or "AVRO"
        if schema_type not in SCHEMA_TYPES:
            raise errors.RegistryError(
                422, 42201, f"Invalid schema type {schema_type!r}; one of {list(SCHEMA_TYPES)}"
            )
        try:
            references = records.references_from_json(body.get("references"))
        except (KeyError, TypeError, ValueError) as exc:
            raise errors.invalid_schema(
                f"a reference needs name, subject and version ({exc})"
            ) from None
        schema_id = body.get("id")
        version = body.get("version")
        for name, number in (("id", schema_id), ("version", version)):
            if number is not None and (not isinstance(number, int) or number < 1):
                raise errors.unprocessable(f"{name} must be a positive integer")
        return cls(schema, schema_type, references, schema_id, version)


class Registry:
    def __init__(self, topic: SchemasTopic, config: RegistryConfig | None = None) -> None:
        self.topic = topic
        self.config = config or RegistryConfig()

    @property
    def state(self) -> RegistryState:
        return self.topic.state

    def _read(self, query: Callable[[RegistryState], T]) -> T:
        """Answer from local state; if the answer is 'not found', catch up and ask again."""
        with self.topic.lock:
            try:
                return query(self.state)
            except errors.RegistryError as exc:
                if exc.status != 404:
                    raise
        self.topic.catch_up()
        with self.topic.lock:
            return query(self.state)

    # -- about this instance -----------------------------------------------------------------

    def cluster_id(self) -> dict[str, Any]:
        """Confluent's ``/v1/metadata/id``: the Kafka cluster and this registry cluster (named
        after the transactional id its instances share, as Confluent names it by group id)."""
        return {
            "id": "",
            "scope": {
                "path": [],
                "clusters": {
                    "kafka-cluster": self.topic.cluster_id or "",
                    "schema-registry-cluster": f"nerve-registry-{self.topic.topic}",
                },
            },
        }

    @staticmethod
    def server_version() -> dict[str, Any]:
        """Confluent's ``/v1/metadata/version``, with nerve's version."""
        try:
            version = importlib.metadata.version("nerve")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return {"version": version, "commitId": ""}

    def health(self) -> dict[str, Any]:
        """Karapace's ``/_health`` shape (``status`` and ``healthy``), from nerve's state."""
        status = self.topic.health()
        healthy = bool(status["ready"]) and status["reader_error"] is None
        if not healthy:
            raise errors.RegistryError(503, 503, "The registry is not reading _schemas")
        return {"status": status, "healthy": True}

    # -- parsing -----------------------------------------------------------------------------

    def _resolve(
        self, state: RegistryState, references: tuple[Reference, ...]
    ) -> tuple[tuple[str, str], ...]:
        """The referenced schemas' texts by reference name, dependencies first."""
        resolved: dict[str, str] = {}

        def visit(refs: tuple[Reference, ...], depth: int) -> None:
            if depth > 32:
                raise errors.invalid_schema("schema references nest too deep (a cycle?)")
            for ref in refs:
                entry = self._version_entry(state, ref.subject, ref.version, deleted=False)
                if entry is None:
                    raise errors.invalid_schema(
                        f"reference '{ref.name}' points to subject '{ref.subject}' version "
                        f"{ref.version}, which does not exist"
                    )
                content = state.schemas[entry.schema_id]
                visit(content.references, depth + 1)
                resolved.setdefault(ref.name, content.schema)

        visit(references, 0)
        return tuple(resolved.items())

    def parse(self, state: RegistryState, content: SchemaContent) -> ParsedSchema:
        refs = self._resolve(state, content.references)
        try:
            parsed: ParsedSchema = _parse_cached(content.schema_type, content.schema, refs)
        except InvalidSchema as exc:
            raise errors.invalid_schema(str(exc)) from None
        return parsed

    # -- settings ----------------------------------------------------------------------------

    def level(self, state: RegistryState, subject: str | None) -> str:
        if subject is not None and subject in state.compatibility:
            return state.compatibility[subject]
        return state.global_compatibility or DEFAULT_LEVEL

    def mode(self, state: RegistryState, subject: str | None) -> str:
        if subject is not None and subject in state.modes:
            return state.modes[subject]
        return state.global_mode or DEFAULT_MODE

    # -- compatibility -----------------------------------------------------------------------

    def incompatibilities(
        self,
        state: RegistryState,
        subject: str,
        new: ParsedSchema,
        against: list[SubjectVersion],
        level: str,
    ) -> list[str]:
        """Why ``new`` breaks the level against the given versions (newest first)."""
        if level == "NONE":
            return []
        if not level.endswith("_TRANSITIVE"):
            against = against[:1]
        messages: list[str] = []
        for entry in against:
            old = self.parse(state, state.schemas[entry.schema_id])
            if old.schema_type != new.schema_type:
                messages.append(
                    f"version {entry.version}: schema type changed from {old.schema_type} "
                    f"to {new.schema_type} (TYPE_MISMATCH)"
                )
                continue
            found = []
            if level.startswith(("BACKWARD", "FULL")):
                found += [
                    f"{i} [new schema cannot read version data]" for i in new.incompatibilities(old)
                ]
            if level.startswith(("FORWARD", "FULL")):
                found += [
                    f"{i} [version cannot read new schema's data]"
                    for i in old.incompatibilities(new)
                ]
            messages += [f"version {entry.version}: {m}" for m in found]
        return messages

    def check(
        self,
        subject: str,
        version: str | None,
        request: SchemaRequest,
        normalize: bool,
        verbose: bool = False,
    ) -> dict[str, Any]:
        """Confluent's compatibility check. Against one version: an unknown version is 40402,
        but ``latest`` of a subject with no live version is compatible (there is nothing to
        break). With ``verbose`` a schema that does not parse is an answer, not an error."""
        number = None if version is None else parse_version(version)

        def query(state: RegistryState) -> dict[str, Any]:
            if number is None:
                # Without a version: the versions the subject's level names, as at register.
                against = list(reversed(state.versions(subject)))
                level = self.level(state, subject)
            else:
                entry = self._version_entry(state, subject, number)
                if entry is None and number != LATEST:
                    raise errors.version_not_found(number)
                against = [entry] if entry is not None else []
                level = self.level(state, subject).removesuffix("_TRANSITIVE")
            try:
                new = self.parse(state, self._content(request))
            except errors.RegistryError as exc:
                if verbose and exc.error_code == 42201:
                    return {"is_compatible": False, "messages": [exc.message]}
                raise
            messages = self.incompatibilities(state, subject, new, against, level)
            answer: dict[str, Any] = {"is_compatible": not messages}
            if verbose:
                answer["messages"] = messages
            return answer

        return self._read(query)

    # -- registering -------------------------------------------------------------------------

    @staticmethod
    def _content(request: SchemaRequest) -> SchemaContent:
        return SchemaContent(request.schema_type, request.schema, request.references)

    def _stored(
        self, state: RegistryState, request: SchemaRequest, normalize: bool
    ) -> tuple[ParsedSchema, SchemaContent]:
        parsed = self.parse(state, self._content(request))
        text = parsed.normalized() if normalize else parsed.canonical()
        return parsed, SchemaContent(request.schema_type, text, request.references)

    def _existing(
        self,
        state: RegistryState,
        subject: str,
        parsed: ParsedSchema,
        content: SchemaContent,
        deleted: bool,
    ) -> SubjectVersion | None:
        """The subject's version holding this schema (same text, or same meaning)."""
        for entry in reversed(state.versions(subject, deleted=deleted)):
            stored = state.schemas[entry.schema_id]
            if stored == content:
                return entry
            if stored.schema_type == content.schema_type and stored.references == (
                content.references
            ):
                try:
                    if self.parse(state, stored) == parsed:
                        return entry
                except errors.RegistryError:
                    continue
        return None

    def _check_register_mode(self, state: RegistryState, subject: str, importing: bool) -> None:
        """Confluent's checkRegisterMode: a read-only subject takes nothing, an id may be given
        only in IMPORT mode, and without one the subject must be READWRITE."""
        mode = self.mode(state, subject)
        if mode == "READONLY":
            raise errors.read_only(subject)
        if importing and mode != "IMPORT":
            raise errors.not_in_import_mode(subject)
        if not importing and mode != "READWRITE":
            raise errors.not_in_read_write_mode(subject)

    def register(self, subject: str, request: SchemaRequest, normalize: bool) -> dict[str, Any]:
        validate_subject(subject)
        importing = request.schema_id is not None
        with self.topic.lock:  # fail before taking the writer's role, in Confluent's order
            self._check_register_mode(self.state, subject, importing)
            self._stored(self.state, request, normalize)

        def decide(state: RegistryState) -> tuple[list[tuple[bytes, bytes | None]], Any]:
            self._check_register_mode(state, subject, importing)
            mode = self.mode(state, subject)
            parsed, content = self._stored(state, request, normalize)
            all_versions = state.versions(subject, deleted=True)
            next_version = all_versions[-1].version + 1 if all_versions else 1
            if request.version is not None and mode != "IMPORT":
                if request.version != next_version:
                    raise errors.invalid_schema("Version is not one more than previous version")
            elif not importing:
                existing = self._existing(state, subject, parsed, content, deleted=False)
                if existing is not None:
                    return [], {"id": existing.schema_id}
            live = list(reversed(state.versions(subject)))
            if mode != "IMPORT":
                messages = self.incompatibilities(
                    state, subject, parsed, live, self.level(state, subject)
                )
                if messages:
                    raise errors.incompatible(subject, messages)
            if importing:
                assert request.schema_id is not None
                schema_id = request.schema_id
                holder = state.schemas.get(schema_id)
                if holder is not None and holder != content:
                    raise errors.operation_not_permitted(
                        f"Overwrite new schema with id {schema_id} in context "
                        f"{errors.DEFAULT_CONTEXT} is not permitted."
                    )
            else:
                schema_id = state.find_id(content) or state.max_id + 1
            version = request.version or next_version
            key = records.schema_key(subject, version)
            value = records.schema_value(
                subject,
                version,
                schema_id,
                content.schema_type,
                content.schema,
                content.references,
                deleted=False,
            )
            return [(key, value)], {"id": schema_id}

        return self.topic.write(decide)

    def lookup(
        self, subject: str, request: SchemaRequest, normalize: bool, deleted: bool
    ) -> dict[str, Any]:
        def query(state: RegistryState) -> dict[str, Any]:
            parsed, content = self._stored(state, request, normalize)
            entry = self._existing(state, subject, parsed, content, deleted=deleted)
            if entry is None:
                if not state.versions(subject, deleted=deleted):
                    raise errors.subject_not_found(subject)
                raise errors.schema_not_found()
            return self._version_json(state, entry, None)

        return self._read(query)

    # -- reading -----------------------------------------------------------------------------

    @staticmethod
    def _version_entry(
        state: RegistryState, subject: str, version: int, deleted: bool = False
    ) -> SubjectVersion | None:
        versions = state.versions(subject, deleted=deleted)
        if not versions:
            return None
        if version == LATEST:
            return versions[-1]
        return next((v for v in versions if v.version == version), None)

    def _schema_json(
        self, state: RegistryState, content: SchemaContent, fmt: str | None
    ) -> dict[str, Any]:
        text = content.schema
        if fmt:
            text = self.parse(state, content).formatted(fmt)
        body: dict[str, Any] = {}
        if content.schema_type != "AVRO":
            body["schemaType"] = content.schema_type
        if content.references:
            body["references"] = [r.to_json() for r in content.references]
        body["schema"] = text
        return body

    def _version_json(
        self, state: RegistryState, entry: SubjectVersion, fmt: str | None
    ) -> dict[str, Any]:
        content = state.schemas[entry.schema_id]
        body: dict[str, Any] = {
            "subject": entry.subject,
            "version": entry.version,
            "id": entry.schema_id,
        }
        body.update(self._schema_json(state, content, fmt))
        if entry.deleted:
            body["deleted"] = True
        return body

    def schema_by_id(self, schema_id: int, fmt: str | None) -> dict[str, Any]:
        def query(state: RegistryState) -> dict[str, Any]:
            content = state.schemas.get(schema_id)
            if content is None:
                raise errors.schema_not_found(schema_id)
            return self._schema_json(state, content, fmt)

        return self._read(query)

    def id_uses(self, schema_id: int, deleted: bool) -> list[SubjectVersion]:
        def query(state: RegistryState) -> list[SubjectVersion]:
            if schema_id not in state.schemas:
                raise errors.schema_not_found()
            return state.uses_of(schema_id, deleted=deleted)

        return self._read(query)

    def schemas(self, prefix: str, deleted: bool, latest_only: bool) -> list[dict[str, Any]]:
        with self.topic.lock:
            state = self.state
            found = []
            for subject in state.subject_names(deleted=deleted):
                if not subject.startswith(prefix):
                    continue
                versions = state.versions(subject, deleted=deleted)
                for entry in versions[-1:] if latest_only else versions:
                    found.append(self._version_json(state, entry, None))
            return found

    def subjects(self, prefix: str, deleted: bool, deleted_only: bool = False) -> list[str]:
        """Subject names, sorted; ``deleted_only``: those whose every version is soft-deleted
        (Confluent's DELETED_ONLY, which wins over ``deleted``)."""
        with self.topic.lock:
            state = self.state
            if deleted_only:
                live = set(state.subject_names())
                names = [s for s in state.subject_names(deleted=True) if s not in live]
            else:
                names = state.subject_names(deleted=deleted)
            return [s for s in names if s.startswith(prefix)]

    def versions(
        self,
        subject: str,
        deleted: bool,
        deleted_only: bool = False,
        deleted_as_negative: bool = False,
    ) -> list[int]:
        """A subject's version numbers with Confluent's filters: soft-deleted ones only with
        ``deleted``, only them with ``deleted_only``, all with the deleted ones negated with
        ``deleted_as_negative``."""

        def query(state: RegistryState) -> list[int]:
            if not state.versions(subject, deleted=deleted or deleted_only):
                raise errors.subject_not_found(subject)
            every = state.versions(subject, deleted=True)
            if deleted_as_negative:
                return [-v.version if v.deleted else v.version for v in every]
            if deleted_only:
                return [v.version for v in every if v.deleted]
            return [v.version for v in every if deleted or not v.deleted]

        return self._read(query)

    def version(self, subject: str, version: str, deleted: bool, fmt: str | None) -> dict[str, Any]:
        number = parse_version(version)

        def query(state: RegistryState) -> dict[str, Any]:
            entry = self._version_entry(state, subject, number, deleted=deleted)
            if entry is None:
                if not state.versions(subject, deleted=deleted):
                    raise errors.subject_not_found(subject)
                raise errors.version_not_found(number)
            return self._version_json(state, entry, fmt)

        return self._read(query)

    def referenced_by(self, subject: str, version: str) -> list[int]:
        number = parse_version(version)

        def query(state: RegistryState) -> list[int]:
            if not state.versions(subject, deleted=True):
                raise errors.subject_not_found(subject)
            entry = self._version_entry(state, subject, number, deleted=True)
            if entry is None:
                raise errors.version_not_found(number)
            return state.referenced_by(subject, entry.version)

        return self._read(query)

    # -- deleting ----------------------------------------------------------------------------

    def _writable(self, state: RegistryState, subject: str) -> None:
        if self.mode(state, subject) == "READONLY":
            raise errors.read_only(subject)

    def delete_subject(self, subject: str, permanent: bool) -> list[int]:
        def decide(state: RegistryState) -> tuple[list[tuple[bytes, bytes | None]], list[int]]:
            self._writable(state, subject)
            every = state.versions(subject, deleted=True)
            if not every:
                raise errors.subject_not_found(subject)
            live = [v for v in every if not v.deleted]
            for entry in live:
                if state.referenced_by(subject, entry.version):
                    raise errors.reference_exists(subject, entry.version)
            if not permanent:
                if not live:
                    raise errors.subject_soft_deleted(subject)
                item = (
                    records.delete_subject_key(subject),
                    records.delete_subject_value(subject, live[-1].version),
                )
                return [item], [v.version for v in live]
            if live:
                raise errors.subject_not_soft_deleted(subject)
            items: list[tuple[bytes, bytes | None]] = [
                (records.schema_key(subject, v.version), None) for v in every
            ]
            items.append((records.config_key(subject), None))
            items.append((records.mode_key(subject), None))
            return items, [v.version for v in every]

        return self.topic.write(decide)

    def delete_version(self, subject: str, version: str, permanent: bool) -> int:
        number = parse_version(version)

        def decide(state: RegistryState) -> tuple[list[tuple[bytes, bytes | None]], int]:
            self._writable(state, subject)
            if not state.versions(subject, deleted=True):
                raise errors.subject_not_found(subject)
            entry = self._version_entry(state, subject, number, deleted=permanent)
            if entry is None:
                if not permanent and self._version_entry(state, subject, number, deleted=True):
                    raise errors.version_soft_deleted(subject, number)
                raise errors.version_not_found(number)
            if state.referenced_by(subject, entry.version):
                raise errors.reference_exists(subject, entry.version)
            key = records.schema_key(subject, entry.version)
            if permanent:
                if not entry.deleted:
                    raise errors.version_not_soft_deleted(subject, entry.version)
                return [(key, None)], entry.version
            content = state.schemas[entry.schema_id]
            value = records.schema_value(
                subject,
                entry.version,
                entry.schema_id,
                content.schema_type,
                content.schema,
                content.references,
                deleted=True,
            )
            return [(key, value)], entry.version

        return self.topic.write(decide)

    # -- config and mode ---------------------------------------------------------------------

    def get_config(self, subject: str | None, default_to_global: bool) -> dict[str, Any]:
        with self.topic.lock:
            state = self.state
            if subject is not None and subject not in state.compatibility and not default_to_global:
                raise errors.subject_level_compatibility_not_configured(subject)
            return {"compatibilityLevel": self.level(state, subject)}

    def set_config(self, subject: str | None, level: Any) -> dict[str, Any]:
        if not isinstance(level, str) or level.upper() not in LEVELS:
            raise errors.invalid_compatibility_level()
        level = level.upper()
        if subject is not None:
            validate_subject(subject)

        def decide(state: RegistryState) -> tuple[list[tuple[bytes, bytes | None]], Any]:
            if subject is not None:
                self._writable(state, subject)
            item = (records.config_key(subject), records.config_value(level))
            return [item], {"compatibility": level}

        return self.topic.write(decide)

    def delete_config(self, subject: str | None) -> dict[str, Any]:
        def decide(state: RegistryState) -> tuple[list[tuple[bytes, bytes | None]], Any]:
            if subject is not None and subject not in state.compatibility:
                raise errors.subject_not_found(subject)  # Confluent: 40401, not 40408
            previous = self.level(state, subject)
            return [(records.config_key(subject), None)], {"compatibilityLevel": previous}

        return self.topic.write(decide)

    def get_mode(self, subject: str | None, default_to_global: bool) -> dict[str, Any]:
        with self.topic.lock:
            state = self.state
            if subject is not None and subject not in state.modes and not default_to_global:
                raise errors.subject_level_mode_not_configured(subject)
            return {"mode": self.mode(state, subject)}

    def set_mode(self, subject: str | None, mode: Any, force: bool) -> dict[str, Any]:
        if subject is not None:
            validate_subject(subject)
        if not isinstance(mode, str) or mode.upper() not in MODES:
            raise errors.invalid_mode()
        mode = mode.upper()

        def decide(state: RegistryState) -> tuple[list[tuple[bytes, bytes | None]], Any]:
            if mode == "IMPORT" and not force:
                taken = state.subject_names() if subject is None else state.versions(subject)
                if taken:
                    raise errors.operation_not_permitted(
                        "Cannot import since found existing subjects"
                    )
            return [(records.mode_key(subject), records.mode_value(mode))], {"mode": mode}

        return self.topic.write(decide)

    def delete_mode(self, subject: str) -> dict[str, Any]:
        def decide(state: RegistryState) -> tuple[list[tuple[bytes, bytes | None]], Any]:
            if subject not in state.modes:
                raise errors.subject_not_found(subject)  # Confluent: 40401, not 40409
            previous = self.mode(state, subject)
            return [(records.mode_key(subject), None)], {"mode": previous}

        return self.topic.write(decide)


def parse_version(version: str | int) -> int:
    """``latest``, ``-1`` or a number from 1 to 2^31-1, else 42202."""
    if isinstance(version, str) and version.lower() == "latest":
        return LATEST
    try:
        number = int(version)
    except (TypeError, ValueError):
        raise errors.invalid_version(version) from None
    if number == LATEST or 1 <= number <= 2**31 - 1:
        return number
    raise errors.invalid_version(version)


# Names Confluent reserves: ``__GLOBAL`` holds global permissions, ``__EMPTY`` stands for the
# empty subject (QualifiedSubject.isValidSubject).
RESERVED_SUBJECTS = frozenset({"__GLOBAL", "__EMPTY"})


def validate_subject(subject: str) -> None:
    """Confluent's subject rule: no ISO control characters, not a reserved name (42208)."""
    if (
        not subject
        or subject in RESERVED_SUBJECTS
        or any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in subject)
    ):
        raise errors.invalid_subject(subject)
