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

from nerve.registry import errors, records, schema_types
from nerve.registry.config import RegistryConfig
from nerve.registry.parse_cache import ParseCache
from nerve.registry.records import Reference
from nerve.registry.schema_types import Budget, InvalidSchema, ParsedSchema, TooComplex
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
G = TypeVar("G")
# Plans a registration may make before the subject stops changing under it.
WRITE_ATTEMPTS = 5


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


def _schema_json(content: SchemaContent, text: str) -> dict[str, Any]:
    """A schema as Confluent's answers carry it: the type unless AVRO, references, text."""
    body: dict[str, Any] = {}
    if content.schema_type != "AVRO":
        body["schemaType"] = content.schema_type
    if content.references:
        body["references"] = [r.to_json() for r in content.references]
    body["schema"] = text
    return body


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


class _Stale(Exception):
    """The state a registration was planned on changed before it could be written."""


@dataclass(frozen=True, slots=True)
class _Source:
    """What parsing one schema needs, copied out of the state under the lock so that parsing
    and comparing run without it: the content and its references' texts, resolved."""

    content: SchemaContent
    references: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class _Version:
    """A subject version as it was when copied out of the state, with its schema's source."""

    version: int
    schema_id: int
    deleted: bool
    source: _Source

    @property
    def key(self) -> tuple[int, int, bool]:
        return (self.version, self.schema_id, self.deleted)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """A subject as a registration, lookup or check sees it."""

    subject: str
    versions: tuple[_Version, ...]  # newest first
    level: str
    mode: str
    next_version: int

    def live(self) -> list[_Version]:
        return [v for v in self.versions if not v.deleted]

    def key(self) -> tuple[Any, ...]:
        return (tuple(v.key for v in self.versions), self.level, self.mode, self.next_version)


@dataclass(frozen=True, slots=True)
class _Plan:
    """A registration decided without the lock, to be written if nothing changed meanwhile."""

    request: SchemaRequest
    snapshot: _Snapshot
    source: _Source
    content: SchemaContent  # what is stored: the canonical (or normalized) text
    existing: _Version | None  # the version already holding the schema, if any


class Registry:
    """Confluent's operations over one instance's view of ``_schemas``.

    The state lock (``topic.lock``) is held only to copy what an operation needs out of the
    state; parsing and compatibility checks, which may take seconds for a huge schema, run
    without it, so other requests and the reader keep going meanwhile. A registration decides
    under the writer's lock after checking that the subject is as it was when planned.
    """

    def __init__(self, topic: SchemasTopic, config: RegistryConfig | None = None) -> None:
        self.topic = topic
        self.config = config or RegistryConfig()
        self._cache: ParseCache[ParsedSchema] = ParseCache()
        schema_types.configure(
            schema_types.Limits(self.config.max_schema_depth, self.config.max_check_steps)
        )

    @property
    def state(self) -> RegistryState:
        return self.topic.state

    def _read(
        self,
        gather: Callable[[RegistryState], G],
        answer: Callable[[G], T] | None = None,
    ) -> T:
        """``answer(gather(state))``, ``gather`` under the lock and ``answer`` without it; if
        either says 'not found', catch up with the topic and ask again (a schema registered
        through another instance is found as soon as it is committed)."""
        finish: Callable[[G], T] = answer if answer is not None else (lambda g: g)  # type: ignore[assignment,return-value]
        for attempt in (1, 2):
            try:
                with self.topic.lock:
                    gathered = gather(self.state)
                return finish(gathered)
            except errors.RegistryError as exc:
                if exc.status != 404 or attempt == 2:
                    raise
            self.topic.catch_up()
        raise AssertionError("unreachable")

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
        """The referenced schemas' texts by reference name, dependencies first. Each subject
        version is visited once, so a diamond of references costs its size, not 2^depth."""
        resolved: dict[str, str] = {}
        visited: set[tuple[str, int]] = set()

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
                if (entry.subject, entry.version) not in visited:
                    visited.add((entry.subject, entry.version))
                    visit(content.references, depth + 1)
                resolved.setdefault(ref.name, content.schema)

        visit(references, 0)
        return tuple(resolved.items())

    def _source(self, state: RegistryState, content: SchemaContent) -> _Source:
        if not content.references:
            return _Source(content, ())
        return _Source(content, self._resolve(state, content.references))

    def parse(self, source: _Source) -> ParsedSchema:
        """The parsed schema (cached); never called with the state lock held."""
        content = source.content
        key = (content.schema_type, content.schema, source.references)
        try:
            return self._cache.get(
                key, lambda: _parser(content.schema_type)(content.schema, dict(source.references))
            )
        except InvalidSchema as exc:
            raise errors.invalid_schema(str(exc)) from None

    # -- settings ----------------------------------------------------------------------------

    def level(self, state: RegistryState, subject: str | None) -> str:
        if subject is not None and subject in state.compatibility:
            return state.compatibility[subject]
        return state.global_compatibility or DEFAULT_LEVEL

    def mode(self, state: RegistryState, subject: str | None) -> str:
        if subject is not None and subject in state.modes:
            return state.modes[subject]
        return state.global_mode or DEFAULT_MODE

    def _snapshot(self, state: RegistryState, subject: str, deleted: bool) -> _Snapshot:
        every = state.versions(subject, deleted=True)
        versions = tuple(
            _Version(
                v.version, v.schema_id, v.deleted, self._source(state, state.schemas[v.schema_id])
            )
            for v in reversed(every)
            if deleted or not v.deleted
        )
        return _Snapshot(
            subject,
            versions,
            self.level(state, subject),
            self.mode(state, subject),
            every[-1].version + 1 if every else 1,
        )

    # -- compatibility -----------------------------------------------------------------------

    def incompatibilities(
        self, new: ParsedSchema, against: list[_Version], level: str
    ) -> list[str]:
        """Why ``new`` breaks the level against the given versions (newest first)."""
        if level == "NONE":
            return []
        if not level.endswith("_TRANSITIVE"):
            against = against[:1]
        messages: list[str] = []
        budget = Budget()  # one for the whole request, however many versions it checks
        try:
            for entry in against:
                old = self.parse(entry.source)
                if old.schema_type != new.schema_type:
                    messages.append(
                        f"version {entry.version}: schema type changed from {old.schema_type} "
                        f"to {new.schema_type} (TYPE_MISMATCH)"
                    )
                    continue
                found = []
                if level.startswith(("BACKWARD", "FULL")):
                    found += [
                        f"{i} [new schema cannot read version data]"
                        for i in new.incompatibilities(old, budget)
                    ]
                if level.startswith(("FORWARD", "FULL")):
                    found += [
                        f"{i} [version cannot read new schema's data]"
                        for i in old.incompatibilities(new, budget)
                    ]
                messages += [f"version {entry.version}: {m}" for m in found]
        except TooComplex as exc:
            raise errors.invalid_schema(str(exc)) from None
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

        def gather(state: RegistryState) -> tuple[_Source, list[_Version], str]:
            snapshot = self._snapshot(state, subject, deleted=False)
            if number is None:
                # Without a version: the versions the subject's level names, as at register.
                against = list(snapshot.versions)
                level = snapshot.level
            else:
                found = [v for v in snapshot.versions if number in (LATEST, v.version)][:1]
                if not found and number != LATEST:
                    raise errors.version_not_found(number)
                against = found
                level = snapshot.level.removesuffix("_TRANSITIVE")
            return self._source(state, self._content(request)), against, level

        def answer(gathered: tuple[_Source, list[_Version], str]) -> dict[str, Any]:
            source, against, level = gathered
            try:
                new = self.parse(source)
            except errors.RegistryError as exc:
                if verbose and exc.error_code == 42201:
                    return {"is_compatible": False, "messages": [exc.message]}
                raise
            messages = self.incompatibilities(new, against, level)
            result: dict[str, Any] = {"is_compatible": not messages}
            if verbose:
                result["messages"] = messages
            return result

        return self._read(gather, answer)

    # -- registering -------------------------------------------------------------------------

    @staticmethod
    def _content(request: SchemaRequest) -> SchemaContent:
        return SchemaContent(request.schema_type, request.schema, request.references)

    def _stored(self, source: _Source, normalize: bool) -> tuple[ParsedSchema, SchemaContent]:
        """The parsed schema and the content stored for it (its canonical or normalized text)."""
        parsed = self.parse(source)
        text = parsed.normalized() if normalize else parsed.canonical()
        content = source.content
        return parsed, SchemaContent(content.schema_type, text, content.references)

    def _existing(
        self, versions: tuple[_Version, ...], parsed: ParsedSchema, content: SchemaContent
    ) -> _Version | None:
        """The version holding this schema (same text, or same meaning), newest first."""
        for entry in versions:
            stored = entry.source.content
            if stored == content:
                return entry
            if stored.schema_type == content.schema_type and stored.references == (
                content.references
            ):
                try:
                    if self.parse(entry.source).equivalent(parsed):
                        return entry
                except errors.RegistryError:
                    continue
        return None

    def _check_register_mode(self, mode: str, subject: str, importing: bool) -> None:
        """Confluent's checkRegisterMode: a read-only subject takes nothing, an id may be given
        only in IMPORT mode, and without one the subject must be READWRITE."""
        if mode == "READONLY":
            raise errors.read_only(subject)
        if importing and mode != "IMPORT":
            raise errors.not_in_import_mode(subject)
        if not importing and mode != "READWRITE":
            raise errors.not_in_read_write_mode(subject)

    def register(self, subject: str, request: SchemaRequest, normalize: bool) -> dict[str, Any]:
        """Plan without the state lock (parse, find the version holding it, check
        compatibility), then write if the subject is still as planned; else plan again."""
        validate_subject(subject)
        for _ in range(WRITE_ATTEMPTS):
            plan = self._plan(subject, request, normalize)
            try:
                answer: dict[str, Any] = self.topic.write(functools.partial(self._commit, plan))
                return answer
            except _Stale:
                continue
        raise errors.store_error(
            f"subject {subject} changed {WRITE_ATTEMPTS} times while a schema was registered"
        )

    def _plan(self, subject: str, request: SchemaRequest, normalize: bool) -> _Plan:
        """Everything a registration decides that needs parsing, in Confluent's order of
        refusals: the mode, the schema itself, the version given, then compatibility."""
        importing = request.schema_id is not None
        with self.topic.lock:
            snapshot = self._snapshot(self.state, subject, deleted=False)
            self._check_register_mode(snapshot.mode, subject, importing)
            source = self._source(self.state, self._content(request))
        parsed, content = self._stored(source, normalize)
        if (
            request.version is not None
            and snapshot.mode != "IMPORT"
            and request.version != snapshot.next_version
        ):
            raise errors.invalid_schema("Version is not one more than previous version")
        existing = None
        if request.version is None and not importing:
            existing = self._existing(snapshot.versions, parsed, content)
        if existing is None and snapshot.mode != "IMPORT":
            messages = self.incompatibilities(parsed, snapshot.live(), snapshot.level)
            if messages:
                raise errors.incompatible(subject, messages)
        return _Plan(request, snapshot, source, content, existing)

    def _commit(
        self, plan: _Plan, state: RegistryState
    ) -> tuple[list[tuple[bytes, bytes | None]], Any]:
        """Under the writer's lock: the records a planned registration appends, unless the
        subject, its settings or the references changed since it was planned (``_Stale``)."""
        subject, request, content = plan.snapshot.subject, plan.request, plan.content
        if self._snapshot(state, subject, deleted=False).key() != plan.snapshot.key():
            raise _Stale
        if self._source(state, self._content(request)) != plan.source:
            raise _Stale
        if plan.existing is not None:
            return [], {"id": plan.existing.schema_id}
        if request.schema_id is not None:
            schema_id = request.schema_id
            holder = state.schemas.get(schema_id)
            if holder is not None and holder != content:
                raise errors.operation_not_permitted(
                    f"Overwrite new schema with id {schema_id} in context "
                    f"{errors.DEFAULT_CONTEXT} is not permitted."
                )
        else:
            schema_id = state.find_id(content) or state.max_id + 1
        version = request.version or plan.snapshot.next_version
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

    def lookup(
        self, subject: str, request: SchemaRequest, normalize: bool, deleted: bool
    ) -> dict[str, Any]:
        def gather(state: RegistryState) -> tuple[_Snapshot, _Source]:
            return self._snapshot(state, subject, deleted), self._source(
                state, self._content(request)
            )

        def answer(gathered: tuple[_Snapshot, _Source]) -> dict[str, Any]:
            snapshot, source = gathered
            parsed, content = self._stored(source, normalize)
            entry = self._existing(snapshot.versions, parsed, content)
            if entry is None:
                if not snapshot.versions:
                    raise errors.subject_not_found(subject)
                raise errors.schema_not_found()
            stored = entry.source.content
            body: dict[str, Any] = {
                "subject": subject,
                "version": entry.version,
                "id": entry.schema_id,
            }
            body.update(_schema_json(stored, stored.schema))
            if entry.deleted:
                body["deleted"] = True
            return body

        return self._read(gather, answer)

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

    def _formatted(self, source: _Source, fmt: str | None) -> dict[str, Any]:
        """A schema's JSON body, in ``fmt`` if given (which needs a parse: call it unlocked)."""
        text = source.content.schema
        if fmt:
            text = self.parse(source).formatted(fmt)
        return _schema_json(source.content, text)

    def _version_json(self, state: RegistryState, entry: SubjectVersion) -> dict[str, Any]:
        content = state.schemas[entry.schema_id]
        body: dict[str, Any] = {
            "subject": entry.subject,
            "version": entry.version,
            "id": entry.schema_id,
        }
        body.update(_schema_json(content, content.schema))
        if entry.deleted:
            body["deleted"] = True
        return body

    def schema_by_id(self, schema_id: int, fmt: str | None) -> dict[str, Any]:
        def gather(state: RegistryState) -> _Source:
            content = state.schemas.get(schema_id)
            if content is None:
                raise errors.schema_not_found(schema_id)
            return self._source(state, content)

        return self._read(gather, lambda source: self._formatted(source, fmt))

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
                    found.append(self._version_json(state, entry))
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

        def gather(state: RegistryState) -> tuple[dict[str, Any], _Source | None]:
            entry = self._version_entry(state, subject, number, deleted=deleted)
            if entry is None:
                if not state.versions(subject, deleted=deleted):
                    raise errors.subject_not_found(subject)
                raise errors.version_not_found(number)
            body = self._version_json(state, entry)
            source = self._source(state, state.schemas[entry.schema_id]) if fmt else None
            return body, source

        def answer(gathered: tuple[dict[str, Any], _Source | None]) -> dict[str, Any]:
            body, source = gathered
            if source is not None:
                body["schema"] = self._formatted(source, fmt)["schema"]
            return body

        return self._read(gather, answer)

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
