"""JSON Schema support for the registry: parsing, canonical forms, validation and compatibility.

Compatibility follows the rules of Confluent's JSON Schema checker (its ``json/diff`` package) so
that a subject accepted or refused by Confluent is accepted or refused here, with the same rule
names (``Difference.Type``). The checker walks the writer (old) and reader (new) schemas side by
side and records every difference; only those outside Confluent's (strict) set of compatible
changes are reported. Where Confluent's result hinges on how its Java loader happens to build
schema objects, this module compares what the keywords mean instead (see ``_Comparer``).

The central, easily misread rule: an object whose ``additionalProperties`` is absent or ``true``
has an *open* content model. Old data may hold anything under any name, so a reader that adds a
property with a schema may reject old data (``OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL``),
while dropping a property is harmless. With ``additionalProperties: false`` (closed) it is the
other way round: old data never held unknown names, so an optional property may be added, but
a removed one would now be refused.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple
from urllib.parse import urljoin

from jsonschema import (
    Draft4Validator,
    Draft6Validator,
    Draft7Validator,
    Draft201909Validator,
    Draft202012Validator,
)
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing import Registry, Resource, Specification
from referencing._core import Resolver
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT7, UnknownDialect, specification_with

from nerve.registry.schema_types import (
    Budget,
    Incompatibility,
    InvalidSchema,
    ParsedSchema,
    References,
    load_json,
)

__all__ = ["COMPATIBLE_CHANGES", "JsonSchema", "parse"]

_NO_REFERENCES: References = MappingProxyType({})

# The drafts Confluent accepts; a ``$schema`` naming anything else is refused rather than
# silently validated as draft 7 (which would accept keywords the author meant differently).
_DRAFTS: tuple[type[Validator], ...] = (
    Draft4Validator,
    Draft6Validator,
    Draft7Validator,
    Draft201909Validator,
    Draft202012Validator,
)
_DIALECTS: dict[str, type[Validator]] = {
    str(cls.META_SCHEMA.get("$id", cls.META_SCHEMA.get("id"))).rstrip("#"): cls for cls in _DRAFTS
}

# Differences that cannot make data written with the old schema unreadable: Confluent's
# COMPATIBLE_CHANGES_STRICT. Everything else is reported as an incompatibility.
COMPATIBLE_CHANGES: frozenset[str] = frozenset(
    {
        "ID_CHANGED",
        "DESCRIPTION_CHANGED",
        "TITLE_CHANGED",
        "DEFAULT_CHANGED",
        "SCHEMA_REMOVED",
        "TYPE_EXTENDED",
        "MAX_LENGTH_INCREASED",
        "MAX_LENGTH_REMOVED",
        "MIN_LENGTH_DECREASED",
        "MIN_LENGTH_REMOVED",
        "PATTERN_REMOVED",
        "MAXIMUM_INCREASED",
        "MAXIMUM_REMOVED",
        "MINIMUM_DECREASED",
        "MINIMUM_REMOVED",
        "EXCLUSIVE_MAXIMUM_INCREASED",
        "EXCLUSIVE_MAXIMUM_REMOVED",
        "EXCLUSIVE_MINIMUM_DECREASED",
        "EXCLUSIVE_MINIMUM_REMOVED",
        "MULTIPLE_OF_REDUCED",
        "MULTIPLE_OF_REMOVED",
        "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED",
        "REQUIRED_ATTRIBUTE_REMOVED",
        "DEPENDENCY_ARRAY_NARROWED",
        "DEPENDENCY_ARRAY_REMOVED",
        "DEPENDENCY_SCHEMA_REMOVED",
        "MAX_PROPERTIES_INCREASED",
        "MAX_PROPERTIES_REMOVED",
        "MIN_PROPERTIES_DECREASED",
        "MIN_PROPERTIES_REMOVED",
        "ADDITIONAL_PROPERTIES_ADDED",
        "ADDITIONAL_PROPERTIES_EXTENDED",
        "UNEVALUATED_PROPERTIES_ADDED",
        "UNEVALUATED_PROPERTIES_EXTENDED",
        "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
        "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL",
        "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
        "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL",
        "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "MAX_ITEMS_INCREASED",
        "MAX_ITEMS_REMOVED",
        "MIN_ITEMS_DECREASED",
        "MIN_ITEMS_REMOVED",
        "MAX_CONTAINS_INCREASED",
        "MAX_CONTAINS_REMOVED",
        "MIN_CONTAINS_DECREASED",
        "MIN_CONTAINS_REMOVED",
        "UNIQUE_ITEMS_REMOVED",
        "ADDITIONAL_ITEMS_ADDED",
        "ADDITIONAL_ITEMS_EXTENDED",
        "UNEVALUATED_ITEMS_ADDED",
        "UNEVALUATED_ITEMS_EXTENDED",
        "ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
        "ITEM_ADDED_TO_CLOSED_CONTENT_MODEL",
        "ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        "ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL",
        "ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "ENUM_ARRAY_EXTENDED",
        "COMBINED_TYPE_EXTENDED",
        "PRODUCT_TYPE_NARROWED",
        "SUM_TYPE_EXTENDED",
        "NOT_TYPE_NARROWED",
    }
)


# --------------------------------------------------------------------------------------------
# Parsing


def parse(text: str, references: References = _NO_REFERENCES) -> JsonSchema:
    """Parse and check a JSON Schema; ``references`` maps each ``$ref`` name to its schema text.

    Raises ``InvalidSchema`` when the text is not JSON, is neither an object nor a boolean, names
    a ``$schema`` other than drafts 4, 6, 7, 2019-09 and 2020-12, breaks its meta-schema, or holds
    a ``$ref`` that neither the schema itself nor a reference resolves.
    """
    schema = _load_json(text, "schema")
    validator_cls = _draft_of(schema, "schema")
    _check_meta_schema(validator_cls, schema, "schema")

    root = Resource.from_contents(schema, default_specification=_spec_of(schema, DRAFT7))
    root_id = root.id()
    registry: Registry[Any] = Registry()
    for name, ref_text in references.items():
        what = f"reference '{name}'"
        contents = _load_json(ref_text, what)
        _check_meta_schema(_draft_of(contents, what), contents, what)
        resource = Resource.from_contents(
            contents, default_specification=_spec_of(contents, DRAFT7)
        )
        uris = {name}
        if root_id:
            uris.add(urljoin(root_id, name))
        if resource.id():
            uris.add(str(resource.id()))
        for uri in uris:
            registry = registry.with_resource(uri, resource)
    registry = registry.crawl()

    resolver = registry.resolver_with_root(root)
    graph = _SameValueGraph()
    _check_refs(schema, _Ctx(resolver, _spec_of(schema, DRAFT7)), "#", graph)
    for name in references:
        resolved = resolver.lookup(name)
        spec = _spec_of(resolved.contents, DRAFT7)
        _check_refs(resolved.contents, _Ctx(resolved.resolver, spec), f"{name}#", graph)
    graph.refuse_cycles()
    return JsonSchema(schema, references, validator_cls, registry)


def _load_json(text: str, what: str) -> Any:
    """JSON text to a schema value (object or boolean); NaN and Infinity are not JSON."""

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    value = load_json(text, what, parse_constant=no_constants)
    if not isinstance(value, dict | bool):
        raise InvalidSchema(f"{what} must be a JSON object or boolean, not {type(value).__name__}")
    return value


def _draft_of(schema: Any, what: str) -> type[Validator]:
    """The validator class for the schema's ``$schema`` (draft 7 when absent, as Confluent)."""
    if isinstance(schema, dict) and "$schema" in schema:
        uri = schema["$schema"]
        if not isinstance(uri, str) or _DIALECTS.get(uri.rstrip("#")) is None:
            raise InvalidSchema(
                f"{what}: #/$schema: unsupported meta-schema {uri!r}; use draft 4, 6, 7, "
                "2019-09 or 2020-12"
            )
    cls: type[Validator] = validator_for(schema, default=Draft7Validator)
    return cls


def _check_meta_schema(cls: type[Validator], schema: Any, what: str) -> None:
    try:
        cls.check_schema(schema)
    except SchemaError as e:
        raise InvalidSchema(f"{what}: {_pointer(e.path)}: {e.message}") from None


def _pointer(parts: Iterable[Any]) -> str:
    return "#" + "".join("/" + _escape(str(p)) for p in parts)


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def _spec_of(contents: Any, default: Specification[Any]) -> Specification[Any]:
    """The referencing specification for a (sub)schema, from its own ``$schema`` if any."""
    if isinstance(contents, dict) and isinstance(contents.get("$schema"), str):
        try:
            return specification_with(contents["$schema"], default=default)
        except UnknownDialect:
            return default
    return default


# Keywords whose value is one subschema, a list of subschemas, or a map of them: the places a
# walker over a schema must visit (and no others: "enum" or "const" values are data).
_ONE = (
    "additionalProperties",
    "additionalItems",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
    "unevaluatedProperties",
    "unevaluatedItems",
    "contentSchema",
    "items",
)
_MANY = ("allOf", "anyOf", "oneOf", "prefixItems", "items")
_MAP = (
    "properties",
    "patternProperties",
    "definitions",
    "$defs",
    "dependentSchemas",
    "dependencies",
)


def _subschemas(schema: Any) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Each direct subschema with its pointer segments relative to ``schema``."""
    if not isinstance(schema, dict):
        return
    for kw in _ONE:
        value = schema.get(kw)
        if isinstance(value, dict | bool):
            yield (kw,), value
    for kw in _MANY:
        value = schema.get(kw)
        if isinstance(value, list):
            for i, sub in enumerate(value):
                yield (kw, str(i)), sub
    for kw in _MAP:
        value = schema.get(kw)
        if isinstance(value, dict):
            for name, sub in value.items():
                if isinstance(sub, dict | bool):
                    yield (kw, name), sub


# Keywords whose subschemas apply to the very value their schema applies to (not to a part of
# it): a cycle through these and $ref alone is evaluated forever by any validator.
_SAME_VALUE_ONE = ("not", "if", "then", "else")
_SAME_VALUE_MANY = ("allOf", "anyOf", "oneOf")
_SAME_VALUE_MAP = ("dependentSchemas", "dependencies")


class _SameValueGraph:
    """Subschemas (by identity) and the subschemas applying to the same value, to find a
    ``$ref`` cycle that never moves into the value: ``{"$ref": "#"}``, or definitions ``a``
    and ``b`` referring to each other. Such a schema means nothing (validating anything with
    it recurses without end, here and in every other validator), so it is refused; a
    recursive schema whose ``$ref`` sits under ``properties`` or ``items`` is fine."""

    def __init__(self) -> None:
        self.edges: dict[int, list[tuple[int, str]]] = {}  # node -> (node, $ref pointer)
        self.keep: dict[int, Any] = {}  # the nodes themselves, so their ids stay theirs

    def add(self, source: Any, target: Any, label: str) -> None:
        if isinstance(target, dict):
            self.keep[id(source)], self.keep[id(target)] = source, target
            self.edges.setdefault(id(source), []).append((id(target), label))

    def refuse_cycles(self) -> None:
        done: set[int] = set()
        for start in list(self.edges):
            if start in done:
                continue
            # Iterative depth-first search: the graph may be as deep as the schema.
            on_path: dict[int, int] = {start: 0}
            path: list[tuple[int, str]] = [(start, "")]
            stack = [iter(self.edges.get(start, ()))]
            while stack:
                step = next(stack[-1], None)
                if step is None:
                    stack.pop()
                    node, _ = path.pop()
                    del on_path[node]
                    done.add(node)
                    continue
                target, label = step
                if target in on_path:
                    refs = [lab for _, lab in path[on_path[target] + 1 :] if lab] + [label]
                    raise InvalidSchema(
                        f"{refs[0]}: a circular $ref: {' -> '.join(refs)} comes back to the "
                        "same schema without reading any part of the value"
                    )
                if target in done:
                    continue
                on_path[target] = len(path)
                path.append((target, label))
                stack.append(iter(self.edges.get(target, ())))


def _check_refs(schema: Any, ctx: _Ctx, where: str, graph: _SameValueGraph) -> None:
    """Refuse a schema whose ``$ref`` resolves nowhere, naming the pointer of that ``$ref``;
    record in ``graph`` what applies to the same value as each subschema."""
    if not isinstance(schema, dict):
        return
    ctx = ctx.enter(schema)
    ref = schema.get("$ref")
    if isinstance(ref, str):
        try:
            resolved = ctx.resolver.lookup(ref)
        except Unresolvable:
            raise InvalidSchema(
                f"{where}/$ref: cannot resolve {ref!r}: no such definition or reference"
            ) from None
        graph.add(schema, resolved.contents, f"{where}/$ref ({ref!r})")
    for kw in _SAME_VALUE_ONE:
        graph.add(schema, schema.get(kw), "")
    for kw in _SAME_VALUE_MANY:
        for sub in _list(schema.get(kw)):
            graph.add(schema, sub, "")
    for kw in _SAME_VALUE_MAP:
        for sub in _dict(schema.get(kw)).values():
            graph.add(schema, sub, "")
    for segments, sub in _subschemas(schema):
        _check_refs(sub, ctx, where + "".join("/" + _escape(s) for s in segments), graph)


# --------------------------------------------------------------------------------------------
# The parsed schema


class JsonSchema(ParsedSchema):
    """A parsed, checked JSON Schema with its references resolved; immutable."""

    schema_type: ClassVar[str] = "JSON"

    _schema: Any
    _references: Mapping[str, str]
    _registry: Registry[Any]
    _canonical: str
    _validator: Validator
    _spec: Specification[Any]

    def __init__(
        self,
        schema: Any,
        references: References,
        validator_cls: type[Validator],
        registry: Registry[Any],
    ) -> None:
        sets = object.__setattr__
        sets(self, "_schema", schema)
        sets(self, "_references", MappingProxyType(dict(references)))
        sets(self, "_registry", registry)
        sets(self, "_canonical", json.dumps(schema, separators=(",", ":"), ensure_ascii=False))
        sets(
            self,
            "_validator",
            validator_cls(schema, registry=registry, format_checker=validator_cls.FORMAT_CHECKER),
        )
        sets(self, "_spec", _spec_of(schema, DRAFT7))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("JsonSchema is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("JsonSchema is immutable")

    @property
    def schema(self) -> Any:
        """A copy of the schema document (a copy, so the parsed schema stays immutable)."""
        return copy.deepcopy(self._schema)

    @property
    def references(self) -> Mapping[str, str]:
        return self._references

    @property
    def registry(self) -> Registry[Any]:
        """The ``referencing`` registry holding the references, for callers that validate."""
        return self._registry

    def canonical(self) -> str:
        """Compact JSON with keys in the order given, as Confluent's ``canonicalString``."""
        return str(self._canonical)

    def normalized(self) -> str:
        """Compact JSON with object keys sorted at every level.

        Key order never changes what a JSON Schema means, so sorting makes two spellings of the
        same schema register as one. Arrays keep their order: in ``items`` tuples and
        ``prefixItems`` order matters, and elsewhere reordering is not worth the risk.
        """
        return json.dumps(self._schema, separators=(",", ":"), ensure_ascii=False, sort_keys=True)

    def equivalent(self, other: ParsedSchema) -> bool:
        """Confluent compares JSON Schemas as Jackson trees, whose objects ignore key order."""
        return isinstance(other, JsonSchema) and self.normalized() == other.normalized()

    def validate(self, document: Any) -> list[str]:
        """Why ``document`` breaks this schema, one message per error, each naming its field.

        Messages start with the JSON path of the offending value (``$`` for the document
        itself), e.g. ``$.amount: 'abc' is not of type 'number'``; empty when it is valid.
        """
        try:
            errors = sorted(
                self._validator.iter_errors(document),
                key=lambda e: (e.json_path, e.message),
            )
        except RecursionError:  # circular $refs are refused at parse; this is a deep document
            return ["$: the document nests too deeply to be validated"]
        return [f"{e.json_path}: {e.message}" for e in errors]

    def incompatibilities(
        self, writer: ParsedSchema, budget: Budget | None = None
    ) -> list[Incompatibility]:
        """Why this schema, as reader, may reject data written with ``writer``."""
        if not isinstance(writer, JsonSchema):
            return [
                Incompatibility(
                    "#/",
                    "TYPE_CHANGED",
                    f"a {writer.schema_type} schema cannot be read as a JSON schema",
                )
            ]
        comparer = _Comparer(budget or Budget())
        diffs = comparer.compare(
            comparer.node(writer._schema, writer._root_ctx()),
            comparer.node(self._schema, self._root_ctx()),
        )
        result: list[Incompatibility] = []
        seen: set[tuple[str, str]] = set()
        for d in diffs:
            if d.rule in COMPATIBLE_CHANGES:
                continue
            path = "#/" + "/".join(_escape(s) for s in d.path)
            if (path, d.rule) in seen:
                continue
            seen.add((path, d.rule))
            result.append(Incompatibility(path, d.rule, f"{_subject(d.path)}: {d.detail}"))
        return result

    def _root_ctx(self) -> _Ctx:
        root = Resource.from_contents(self._schema, default_specification=self._spec)
        return _Ctx(self._registry.resolver_with_root(root), self._spec)


def _subject(path: tuple[str, ...]) -> str:
    """Name what a path points at in words: the property chain, or the schema itself."""
    names = [path[i + 1] for i, s in enumerate(path[:-1]) if s == "properties"]
    if names:
        return "Property '" + ".".join(names) + "'"
    return "Schema"


# --------------------------------------------------------------------------------------------
# Compatibility


@dataclass(frozen=True, slots=True)
class _Ctx:
    """Where a subschema sits: the resolver for its ``$ref``s and the draft it is read as."""

    resolver: Resolver[Any]
    spec: Specification[Any]

    def enter(self, raw: Any) -> _Ctx:
        """The context inside ``raw`` (an ``$id`` there changes the base URI of its refs)."""
        if not isinstance(raw, dict):
            return self
        spec = _spec_of(raw, self.spec)
        return _Ctx(self.resolver.in_subresource(spec.create_resource(raw)), spec)


class _Diff(NamedTuple):
    """A difference, its path relative to the pair of schemas being compared."""

    path: tuple[str, ...]
    rule: str
    detail: str


def _at(prefix: tuple[str, ...], diffs: list[_Diff]) -> list[_Diff]:
    return [_Diff(prefix + d.path, d.rule, d.detail) for d in diffs]


def _compatible(diffs: list[_Diff]) -> bool:
    return all(d.rule in COMPATIBLE_CHANGES for d in diffs)


# Node kinds. A schema holding keywords of several kinds (say "type" and "enum") is a FACETS
# node: every facet must hold, like Confluent's synthetic allOf.
EMPTY, FALSE, COMBINED, FACETS = "empty", "false", "combined", "facets"
STRING, NUMBER, BOOLEAN, NULL, OBJECT, ARRAY = (
    "string",
    "number",
    "boolean",
    "null",
    "object",
    "array",
)
ENUM, CONST, NOT = "enum", "const", "not"
_TYPES = {
    "string": STRING,
    "number": NUMBER,
    "integer": NUMBER,
    "boolean": BOOLEAN,
    "null": NULL,
    "object": OBJECT,
    "array": ARRAY,
}
# Keywords that, without "type", still imply one (as Confluent's loader infers the type).
_FAMILY_KEYWORDS = {
    OBJECT: (
        "properties",
        "required",
        "additionalProperties",
        "patternProperties",
        "minProperties",
        "maxProperties",
        "dependencies",
        "dependentRequired",
        "dependentSchemas",
        "propertyNames",
        "unevaluatedProperties",
    ),
    ARRAY: (
        "items",
        "prefixItems",
        "additionalItems",
        "minItems",
        "maxItems",
        "uniqueItems",
        "contains",
        "minContains",
        "maxContains",
        "unevaluatedItems",
    ),
    STRING: ("minLength", "maxLength", "pattern"),
    NUMBER: ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
}
_NOT_TYPE_KEYWORDS = ("enum", "const", "not", "allOf", "anyOf", "oneOf", "$ref", "$id", "id")
_COMBINERS = ("allOf", "anyOf", "oneOf")


@dataclass(eq=False, slots=True)
class _Node:
    """One schema seen by the checker: its kind and what is needed to walk into it."""

    kind: str
    raw: Any  # the object or boolean holding the keywords
    ctx: _Ctx  # the context inside raw
    keyword: str | None = None  # COMBINED: allOf/anyOf/oneOf; None for a list of types
    subs: tuple[Any, ...] = ()  # COMBINED: the raw subschemas
    facets: tuple[tuple[str, _Node], ...] = ()  # FACETS: (key, node) pairs
    integer: bool = False  # NUMBER: "integer" rather than "number"
    keep: list[Any] = field(default_factory=list)  # synthesized dicts kept alive (ids in memo)

    @property
    def key(self) -> str:
        """The facet this node is: "type" for anything typed, else its keyword."""
        if self.kind == COMBINED:
            return self.keyword or "type"
        if self.kind in (ENUM, CONST, NOT):
            return self.kind
        return "type"

    def describe(self) -> str:
        if self.kind == NUMBER:
            return "'integer'" if self.integer else "'number'"
        if self.kind == COMBINED:
            if self.keyword is None:
                return "a list of types"
            return f"'{self.keyword}'"
        if self.kind == FACETS:
            return "a combination of " + ", ".join(f"'{k}'" for k, _ in self.facets)
        if self.kind == EMPTY:
            return "any value (true)"
        if self.kind == FALSE:
            return "no value (false)"
        return f"'{self.kind}'"


class _Comparer:
    """Compares writer (old) and reader (new) schemas the way Confluent's ``SchemaDiff`` does.

    Deliberate differences from Confluent, none of which changes a verdict on ordinary
    schemas: a schema holding several kinds of keywords (``type`` with ``enum``, ...) is compared
    kind by kind rather than by Confluent's matching of synthetic ``allOf`` branches, so a
    narrowed enum is reported as ``ENUM_ARRAY_NARROWED`` at ``#/enum`` rather than
    ``COMBINED_TYPE_SUBSCHEMAS_CHANGED``; a boolean ``items`` counts as ``additionalItems``; and
    ``unevaluatedProperties: true`` counts as absent.
    """

    def __init__(self, budget: Budget) -> None:
        self._budget = budget
        self._nodes: dict[int, _Node] = {}
        self._memo: dict[tuple[Any, ...], list[_Diff]] = {}
        self._active: set[tuple[Any, ...]] = set()

    # -- building nodes

    def node(self, raw: Any, ctx: _Ctx, depth: int = 0) -> _Node:
        """The node for a raw subschema read in ``ctx`` (the context of its parent)."""
        cached = self._nodes.get(id(raw))
        if cached is not None and cached.raw is raw:
            return cached
        built = self._build(raw, ctx, depth)
        if isinstance(raw, dict):
            self._nodes[id(raw)] = built
        return built

    def _build(self, raw: Any, ctx: _Ctx, depth: int) -> _Node:
        if raw is True:
            return _Node(EMPTY, raw, ctx)
        if raw is False:
            return _Node(FALSE, raw, ctx)
        if not isinstance(raw, dict):
            return _Node(EMPTY, raw, ctx)
        inner = ctx.enter(raw)
        facets: list[tuple[str, _Node]] = []
        keep: list[Any] = []
        ref = raw.get("$ref")
        if isinstance(ref, str):
            target = self._resolve(ref, inner, depth)
            siblings = {k: v for k, v in raw.items() if k != "$ref"}
            # Before 2019-09 a $ref's siblings are ignored; since then they apply as well.
            modern = inner.spec.name in ("draft2019-09", "draft2020-12")
            if not modern or not _asserts_anything(siblings):
                return target
            facets.append(("$ref", target))
            keep.append(siblings)
            raw_rest: dict[str, Any] = siblings
        else:
            raw_rest = raw
        if "enum" in raw_rest and isinstance(raw_rest["enum"], list):
            facets.append((ENUM, _Node(ENUM, raw_rest, inner)))
        if "const" in raw_rest:
            facets.append((CONST, _Node(CONST, raw_rest, inner)))
        if "not" in raw_rest:
            facets.append((NOT, _Node(NOT, raw_rest, inner)))
        for kw in _COMBINERS:
            if isinstance(raw_rest.get(kw), list):
                subs = tuple(raw_rest[kw])
                facets.append((kw, _Node(COMBINED, raw_rest, inner, keyword=kw, subs=subs)))
        typed = self._typed(raw_rest, inner)
        if typed is not None:
            facets.append(("type", typed))
        if not facets:
            return _Node(EMPTY, raw, inner)
        if len(facets) == 1:
            only = facets[0][1]
            only.keep.extend(keep)
            return only
        return _Node(FACETS, raw, inner, facets=tuple(facets), keep=keep)

    def _typed(self, raw: dict[str, Any], inner: _Ctx) -> _Node | None:
        """The node for the type-specific keywords of ``raw``, or None when there are none."""
        types = raw.get("type")
        if isinstance(types, list) and len(types) == 1:
            types = types[0]
        if isinstance(types, str) and types in _TYPES:
            return _Node(_TYPES[types], raw, inner, integer=types == "integer")
        if isinstance(types, list) and types:
            # A list of types reads as anyOf one schema per type, the other keywords shared.
            base = {k: v for k, v in raw.items() if k not in _NOT_TYPE_KEYWORDS}
            copies = tuple({**base, "type": t} for t in types)
            return _Node(COMBINED, raw, inner, keyword=None, subs=copies, keep=list(copies))
        families = [fam for fam, kws in _FAMILY_KEYWORDS.items() if any(k in raw for k in kws)]
        if len(families) == 1:
            return _Node(families[0], raw, inner)
        if families:
            base = {k: v for k, v in raw.items() if k not in _NOT_TYPE_KEYWORDS}
            copies = tuple({**base, "type": fam} for fam in families)
            return _Node(COMBINED, raw, inner, keyword=None, subs=copies, keep=list(copies))
        return None

    def _resolve(self, ref: str, inner: _Ctx, depth: int) -> _Node:
        if depth > 64:  # a cycle of bare $refs constrains nothing
            return _Node(EMPTY, True, inner)
        try:
            resolved = inner.resolver.lookup(ref)
        except Unresolvable:
            return _Node(EMPTY, True, inner)
        target_ctx = _Ctx(resolved.resolver, _spec_of(resolved.contents, inner.spec))
        return self.node(resolved.contents, target_ctx, depth + 1)

    def child(self, parent: _Node, raw: Any) -> _Node | None:
        """The node for a subschema found inside ``parent`` (None when absent)."""
        if raw is None:
            return None
        return self.node(raw, parent.ctx)

    # -- comparing

    def compare(self, w: _Node | None, r: _Node | None) -> list[_Diff]:
        """Differences from writer ``w`` to reader ``r``, paths relative to this pair."""
        self._budget.spend()  # combined schemas compare every pair of subschemas
        if w is None and r is None:
            return []
        if w is None:
            return [_Diff((), "SCHEMA_ADDED", "a schema was added where any value was allowed")]
        if r is None:
            return [_Diff((), "SCHEMA_REMOVED", "the schema was removed")]
        key = (id(w.raw), w.kind, w.keyword, id(r.raw), r.kind, r.keyword)
        cached = self._memo.get(key)
        if cached is not None:
            return cached
        if key in self._active:  # a recursive schema met itself: assume it holds
            return []
        self._active.add(key)
        try:
            result = self._compare_types(w, r)
        finally:
            self._active.discard(key)
        self._memo[key] = result
        return result

    def _subnodes(self, n: _Node) -> list[_Node]:
        return [self.node(s, n.ctx) for s in n.subs]

    def _compare_types(self, w: _Node, r: _Node) -> list[_Diff]:
        if w.kind != r.kind and (w.kind == FALSE or r.kind == EMPTY):
            return []  # the writer wrote nothing, or the reader takes anything
        if w.kind == FACETS or r.kind == FACETS:
            return self._compare_facets(w, r)
        if w.kind != COMBINED and r.kind == COMBINED:
            subs = self._subnodes(r)
            if len(subs) == 1:
                d = self.compare(w, subs[0])
                if _compatible(d):
                    return d
            elif r.keyword != "allOf":
                for sub in subs:
                    d = self.compare(w, sub)
                    if _compatible(d):
                        return [*d, _Diff((), "SUM_TYPE_EXTENDED", "alternatives were added")]
        elif w.kind == COMBINED and r.kind != COMBINED:
            subs = self._subnodes(w)
            if len(subs) == 1:
                d = self.compare(subs[0], r)
                if _compatible(d):
                    return d
            elif w.keyword == "allOf":
                for sub in subs:
                    d = self.compare(sub, r)
                    if _compatible(d):
                        return [*d, _Diff((), "PRODUCT_TYPE_NARROWED", "allOf was dropped")]
        if w.kind != r.kind:
            return [
                _Diff(
                    (),
                    "TYPE_CHANGED",
                    f"type changed from {w.describe()} to {r.describe()}",
                )
            ]
        if w.kind == STRING:
            return _compare_string(w.raw, r.raw)
        if w.kind == NUMBER:
            return _compare_number(w, r)
        if w.kind == ENUM:
            return _compare_enum(w.raw["enum"], r.raw["enum"])
        if w.kind == CONST:
            if _canon(w.raw["const"]) != _canon(r.raw["const"]):
                detail = f"const changed from {w.raw['const']!r} to {r.raw['const']!r}"
                return [_Diff(("const",), "ENUM_ARRAY_CHANGED", detail)]
            return []
        if w.kind == NOT:
            # Reversed: the reader may forbid less than the writer did, never more.
            d = self.compare(self.node(r.raw["not"], r.ctx), self.node(w.raw["not"], w.ctx))
            if _compatible(d):
                return [_Diff(("not",), "NOT_TYPE_NARROWED", "'not' forbids less")]
            return [_Diff(("not",), "NOT_TYPE_EXTENDED", "'not' now forbids values it allowed")]
        if w.kind == COMBINED:
            return self._compare_combined(w, r)
        if w.kind == OBJECT:
            return self._compare_object(w, r)
        if w.kind == ARRAY:
            return self._compare_array(w, r)
        return []

    def _compare_facets(self, w: _Node, r: _Node) -> list[_Diff]:
        """Each constraint of the reader must be met by one of the writer's; extra writer
        constraints only narrow what was written (PRODUCT_TYPE_NARROWED)."""
        wf = dict(w.facets) if w.kind == FACETS else {w.key: w}
        rf = dict(r.facets) if r.kind == FACETS else {r.key: r}
        diffs: list[_Diff] = []
        for key, rnode in rf.items():
            same = wf.get(key)
            first = self.compare(same, rnode) if same is not None else None
            if first is not None and _compatible(first):
                diffs += first
                continue
            for other_key, wnode in wf.items():
                if other_key != key:
                    d = self.compare(wnode, rnode)
                    if _compatible(d):
                        diffs += d
                        break
            else:
                if first is not None:
                    diffs += first
                else:
                    detail = f"a '{key}' constraint was added that the old schema did not have"
                    diffs.append(_Diff((), "TYPE_CHANGED", detail))
        for key in wf:
            if key not in rf:
                diffs.append(_Diff((), "PRODUCT_TYPE_NARROWED", f"'{key}' was dropped"))
        return diffs

    def _compare_combined(self, w: _Node, r: _Node) -> list[_Diff]:
        w_kw, r_kw = w.keyword or "anyOf", r.keyword or "anyOf"
        w_subs, r_subs = _dedupe(self._subnodes(w)), _dedupe(self._subnodes(r))
        diffs: list[_Diff] = []
        if w_kw != r_kw:
            if (
                r_kw == "anyOf"
                or (len(w_subs) == 1 and len(r_subs) == 1)
                or (len(w_subs) == 1 and r_kw == "oneOf")
                or (len(r_subs) == 1 and w_kw == "allOf")
            ):
                diffs.append(_Diff((), "COMBINED_TYPE_EXTENDED", f"'{w_kw}' relaxed to '{r_kw}'"))
            else:
                detail = f"'{w_kw}' changed to '{r_kw}'"
                return [_Diff((), "COMBINED_TYPE_CHANGED", detail)]
        if len(w_subs) < len(r_subs):
            if r_kw == "allOf":
                diffs.append(_Diff((), "PRODUCT_TYPE_EXTENDED", "allOf gained schemas to match"))
            else:
                diffs.append(_Diff((), "SUM_TYPE_EXTENDED", f"{r_kw} gained alternatives"))
        elif len(w_subs) > len(r_subs):
            if w_kw in ("anyOf", "oneOf"):
                detail = f"{w_kw} lost alternatives that old data may match"
                diffs.append(_Diff((), "SUM_TYPE_NARROWED", detail))
            else:
                diffs.append(_Diff((), "PRODUCT_TYPE_NARROWED", "allOf lost schemas"))
        edges: dict[int, dict[int, list[_Diff]]] = {}
        for i, ws in enumerate(w_subs):
            prefix = (w.keyword, str(i)) if w.keyword else ()
            for j, rs in enumerate(r_subs):
                d = self.compare(ws, rs)
                if _compatible(d):
                    edges.setdefault(i, {})[j] = _at(prefix, d)
        matching = _max_matching(edges, len(w_subs), self._budget)
        for i, j in sorted(matching.items()):
            diffs += edges[i][j]
        if len(matching) < min(len(w_subs), len(r_subs)):
            detail = f"the schemas of '{w_kw}' changed so that old data may match none of them"
            diffs.append(_Diff((), "COMBINED_TYPE_SUBSCHEMAS_CHANGED", detail))
        return diffs

    def _compare_object(self, w: _Node, r: _Node) -> list[_Diff]:
        wr, rr = w.raw, r.raw
        w_props = _dict(wr.get("properties"))
        r_props = _dict(rr.get("properties"))
        w_req = set(_list(wr.get("required")))
        r_req = set(_list(rr.get("required")))
        diffs: list[_Diff] = []
        for name in w_props:
            if name not in r_props:
                continue
            if name in w_req and name not in r_req:
                diffs.append(
                    _Diff(("required", name), "REQUIRED_ATTRIBUTE_REMOVED", "no longer required")
                )
            elif name not in w_req and name in r_req:
                if self._has_default(r, r_props[name]):
                    rule, detail = "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED", "now required"
                else:
                    rule = "REQUIRED_ATTRIBUTE_ADDED"
                    detail = "now required, but old data may lack it"
                diffs.append(_Diff(("required", name), rule, detail))
        for name in [*w_props, *(n for n in r_props if n not in w_props)]:
            diffs += _at(("properties", name), self._compare_property(w, r, name))
        diffs += self._compare_dependencies(w, r)
        diffs += self._compare_additional(
            w, r, "additionalProperties", "ADDITIONAL_PROPERTIES", "properties"
        )
        diffs += self._compare_unevaluated(w, r, "unevaluatedProperties", "UNEVALUATED_PROPERTIES")
        diffs += _compare_bounds(wr, rr, "maxProperties", "MAX_PROPERTIES", upper=True)
        diffs += _compare_bounds(wr, rr, "minProperties", "MIN_PROPERTIES", upper=False)
        return diffs

    def _compare_property(self, w: _Node, r: _Node, name: str) -> list[_Diff]:
        w_raw = _dict(w.raw.get("properties")).get(name)
        r_raw = _dict(r.raw.get("properties")).get(name)
        if w_raw is not None and r_raw is not None:
            return self.compare(self.node(w_raw, w.ctx), self.node(r_raw, r.ctx))
        if r_raw is None:  # removed: only the reader's content model matters
            if _open_object(r.raw):
                return [
                    _Diff(
                        (),
                        "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL",
                        "removed; the open content model still accepts it",
                    )
                ]
            partial = self._partial_object(r, name)
            w_node = self.node(w_raw, w.ctx)
            if partial is not None:
                sub = self.compare(w_node, partial)
                if _compatible(sub):
                    rule = "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
                    return [*sub, _Diff((), rule, "removed but still matched by the content model")]
                rule = "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
                detail = "removed, and the partially open content model rejects its old values"
                return [*sub, _Diff((), rule, detail)]
            if w_node.kind == FALSE:
                rule = "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL"
                return [_Diff((), rule, "removed; it was forbidden anyway")]
            detail = "removed from a closed content model, so old data holding it is rejected"
            return [_Diff((), "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", detail)]
        # added: only the writer's content model matters
        r_node = self.node(r_raw, r.ctx)
        required = name in set(_list(r.raw.get("required")))
        default = self._has_default(r, r_raw)
        if _open_object(w.raw):
            if r_node.kind == EMPTY:
                rule = "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL"
                return [_Diff((), rule, "added with an empty schema")]
            if required:
                rule = (
                    "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_OPEN_CONTENT_MODEL"
                    if default
                    else "REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"
                )
                detail = (
                    "added as required to an open content model: old data may lack it or "
                    "hold any value under this name"
                )
                return [_Diff((), rule, detail)]
            detail = "added to an open content model: old data may hold any value under this name"
            return [_Diff((), "OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", detail)]
        diffs: list[_Diff] = []
        partial = self._partial_object(w, name)
        if partial is not None:
            sub = self.compare(partial, r_node)
            diffs += sub
            if _compatible(sub):
                rule = "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
                diffs.append(_Diff((), rule, "added; old values under this name fit it"))
            else:
                rule = "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
                detail = "added, but old data may hold values under this name that it rejects"
                diffs.append(_Diff((), rule, detail))
        if required:
            if default:
                rule = "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL"
                diffs.append(_Diff((), rule, "added as required, with a default"))
            else:
                rule = "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"
                detail = "added as required without a default, but old data lacks it"
                diffs.append(_Diff((), rule, detail))
        else:
            rule = "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"
            diffs.append(_Diff((), rule, "added as an optional property"))
        return diffs

    def _has_default(self, parent: _Node, raw: Any) -> bool:
        if isinstance(raw, dict) and "default" in raw:
            return True
        target = self.node(raw, parent.ctx).raw
        return isinstance(target, dict) and "default" in target

    def _partial_object(self, n: _Node, name: str) -> _Node | None:
        """The schema a property without its own schema must match, if the model says one."""
        for pattern, sub in _dict(n.raw.get("patternProperties")).items():
            try:
                if re.search(pattern, name):
                    return self.node(sub, n.ctx)
            except re.error:
                continue
        additional = n.raw.get("additionalProperties")
        if _is_schema(additional):
            return self.node(additional, n.ctx)
        if additional is None or _is_true(additional):
            uneval = n.raw.get("unevaluatedProperties")
            if _is_schema(uneval):
                return self.node(uneval, n.ctx)
        return None

    def _compare_dependencies(self, w: _Node, r: _Node) -> list[_Diff]:
        w_arrays, w_schemas = _dependencies(w.raw)
        r_arrays, r_schemas = _dependencies(r.raw)
        diffs: list[_Diff] = []
        for name in [*w_arrays, *(n for n in r_arrays if n not in w_arrays)]:
            kw = r_arrays[name][0] if name in r_arrays else w_arrays[name][0]
            path = (kw, name)
            if name not in r_arrays:
                diffs.append(_Diff(path, "DEPENDENCY_ARRAY_REMOVED", "dependency removed"))
            elif name not in w_arrays:
                detail = "dependency added, so old data may lack what it requires"
                diffs.append(_Diff(path, "DEPENDENCY_ARRAY_ADDED", detail))
            else:
                old, new = set(w_arrays[name][1]), set(r_arrays[name][1])
                if old == new:
                    continue
                if new >= old:
                    rule, detail = "DEPENDENCY_ARRAY_EXTENDED", "dependency requires more"
                elif old >= new:
                    rule, detail = "DEPENDENCY_ARRAY_NARROWED", "dependency requires less"
                else:
                    rule, detail = "DEPENDENCY_ARRAY_CHANGED", "dependency changed"
                diffs.append(_Diff(path, rule, detail))
        for name in [*w_schemas, *(n for n in r_schemas if n not in w_schemas)]:
            kw = r_schemas[name][0] if name in r_schemas else w_schemas[name][0]
            path = (kw, name)
            if name not in r_schemas:
                detail = "dependent schema removed"
                diffs.append(_Diff(path, "DEPENDENCY_SCHEMA_REMOVED", detail))
            elif name not in w_schemas:
                detail = "dependent schema added, so old data may break it"
                diffs.append(_Diff(path, "DEPENDENCY_SCHEMA_ADDED", detail))
            else:
                sub = self.compare(
                    self.node(w_schemas[name][1], w.ctx), self.node(r_schemas[name][1], r.ctx)
                )
                diffs += _at(path, sub)
        return diffs

    def _compare_additional(
        self, w: _Node, r: _Node, keyword: str, rule: str, what: str
    ) -> list[_Diff]:
        """additionalProperties / additionalItems: false, absent-or-true, or a schema."""
        w_val, r_val = _additional(w, keyword), _additional(r, keyword)
        path = (keyword,)
        w_permits, r_permits = w_val is not False, r_val is not False
        if w_permits != r_permits:
            if r_permits:
                return [_Diff(path, f"{rule}_ADDED", f"additional {what} are now allowed")]
            detail = f"additional {what} are no longer allowed, but old data may hold some"
            return [_Diff(path, f"{rule}_REMOVED", detail)]
        if not w_permits:
            return []
        if w_val is None and r_val is not None:
            detail = f"additional {what} must now match a schema; old ones may not"
            return [_Diff(path, f"{rule}_NARROWED", detail)]
        if r_val is None and w_val is not None:
            return [_Diff(path, f"{rule}_EXTENDED", f"additional {what} may now be anything")]
        if w_val is None or r_val is None:
            return []
        return _at(path, self.compare(self.node(w_val, w.ctx), self.node(r_val, r.ctx)))

    def _compare_unevaluated(self, w: _Node, r: _Node, keyword: str, rule: str) -> list[_Diff]:
        w_val, r_val = _additional(w, keyword), _additional(r, keyword)
        if w_val is None and r_val is None:
            return []
        path = (keyword,)
        if w_val is False and r_val is not False:
            return [_Diff(path, f"{rule}_ADDED", "unevaluated values are now allowed")]
        if w_val is not False and r_val is False:
            detail = "unevaluated values are no longer allowed, but old data may hold some"
            return [_Diff(path, f"{rule}_REMOVED", detail)]
        if w_val is None and r_val is not None:
            detail = "unevaluated values must now match a schema"
            return [_Diff(path, f"{rule}_NARROWED", detail)]
        if r_val is None and w_val is not None:
            return [_Diff(path, f"{rule}_EXTENDED", "unevaluated values may now be anything")]
        if w_val is False or w_val is None or r_val is None:
            return []
        return _at(path, self.compare(self.node(w_val, w.ctx), self.node(r_val, r.ctx)))

    def _compare_array(self, w: _Node, r: _Node) -> list[_Diff]:
        wr, rr = w.raw, r.raw
        diffs: list[_Diff] = []
        w_all, r_all = _all_items(wr), _all_items(rr)
        diffs += _at(("items",), self.compare(self.child(w, w_all), self.child(r, r_all)))
        diffs += self._compare_tuple(w, r)
        diffs += self._compare_additional(w, r, "additionalItems", "ADDITIONAL_ITEMS", "items")
        diffs += self._compare_unevaluated(w, r, "unevaluatedItems", "UNEVALUATED_ITEMS")
        diffs += _compare_bounds(wr, rr, "maxItems", "MAX_ITEMS", upper=True)
        diffs += _compare_bounds(wr, rr, "minItems", "MIN_ITEMS", upper=False)
        if bool(wr.get("uniqueItems")) != bool(rr.get("uniqueItems")):
            if wr.get("uniqueItems"):
                diffs.append(_Diff(("uniqueItems",), "UNIQUE_ITEMS_REMOVED", "may now repeat"))
            else:
                detail = "items must now be unique, but old data may repeat them"
                diffs.append(_Diff(("uniqueItems",), "UNIQUE_ITEMS_ADDED", detail))
        diffs += _compare_bounds(wr, rr, "maxContains", "MAX_CONTAINS", upper=True)
        diffs += _compare_bounds(wr, rr, "minContains", "MIN_CONTAINS", upper=False)
        return diffs

    def _compare_tuple(self, w: _Node, r: _Node) -> list[_Diff]:
        w_kw, w_items = _tuple_items(w.raw)
        r_kw, r_items = _tuple_items(r.raw)
        diffs: list[_Diff] = []
        for i in range(max(len(w_items), len(r_items))):
            kw = r_kw if i < len(r_items) else w_kw
            path = (kw, str(i))
            if i < len(w_items) and i < len(r_items):
                sub = self.compare(self.node(w_items[i], w.ctx), self.node(r_items[i], r.ctx))
                diffs += _at(path, sub)
            elif i < len(w_items):  # removed: the reader's model decides
                w_node = self.node(w_items[i], w.ctx)
                if _open_array(r):
                    rule = "ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL"
                    diffs.append(_Diff(path, rule, f"item {i} removed; any value is accepted"))
                    continue
                partial = self._partial_array(r)
                if partial is not None:
                    sub = self.compare(w_node, partial)
                    diffs += _at(path, sub)
                    if _compatible(sub):
                        rule = "ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
                        diffs.append(_Diff(path, rule, f"item {i} removed but still matched"))
                    else:
                        rule = "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
                        detail = f"item {i} removed and its old values are now rejected"
                        diffs.append(_Diff(path, rule, detail))
                elif w_node.kind == FALSE:
                    rule = "ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL"
                    diffs.append(_Diff(path, rule, f"item {i} removed; it was forbidden"))
                else:
                    rule = "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL"
                    detail = f"item {i} removed from a closed tuple, so old data is rejected"
                    diffs.append(_Diff(path, rule, detail))
            else:  # added: the writer's model decides
                r_node = self.node(r_items[i], r.ctx)
                if _open_array(w):
                    if r_node.kind == EMPTY:
                        rule = "ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL"
                        diffs.append(_Diff(path, rule, f"item {i} added with an empty schema"))
                    else:
                        rule = "ITEM_ADDED_TO_OPEN_CONTENT_MODEL"
                        detail = f"item {i} added, but old data may hold anything there"
                        diffs.append(_Diff(path, rule, detail))
                    continue
                partial = self._partial_array(w)
                if partial is not None:
                    sub = self.compare(partial, r_node)
                    diffs += _at(path, sub)
                    if _compatible(sub):
                        rule = "ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
                        diffs.append(_Diff(path, rule, f"item {i} added; old values fit it"))
                    else:
                        rule = "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
                        detail = f"item {i} added, but old values there may not fit it"
                        diffs.append(_Diff(path, rule, detail))
                else:
                    rule = "ITEM_ADDED_TO_CLOSED_CONTENT_MODEL"
                    diffs.append(_Diff(path, rule, f"item {i} added to a closed tuple"))
        return diffs

    def _partial_array(self, n: _Node) -> _Node | None:
        additional = _additional(n, "additionalItems")
        if additional is not None and additional is not False:
            return self.node(additional, n.ctx)
        if additional is None:
            uneval = n.raw.get("unevaluatedItems")
            if _is_schema(uneval):
                return self.node(uneval, n.ctx)
        return None


# -- keyword helpers (pure functions of raw schemas)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _is_true(value: Any) -> bool:
    return value is True or value == {}


def _is_schema(value: Any) -> bool:
    """A subschema that is neither ``true``/``{}`` nor ``false``: it constrains something."""
    return isinstance(value, dict) and value != {}


def _asserts_anything(schema: dict[str, Any]) -> bool:
    annotations = {
        "$schema",
        "$id",
        "id",
        "$comment",
        "$anchor",
        "$defs",
        "definitions",
        "title",
        "description",
        "default",
        "examples",
        "readOnly",
        "writeOnly",
        "deprecated",
    }
    return any(k not in annotations for k in schema)


def _additional(n: _Node, keyword: str) -> Any:
    """``additional*``/``unevaluated*`` as None (absent or true), False, or a schema.

    In 2020-12 an ``items`` schema next to ``prefixItems`` plays the part of
    ``additionalItems``.
    """
    raw = n.raw
    value = raw.get(keyword)
    if keyword == "additionalItems":
        items = raw.get("items")
        # A boolean items (no tuple) allows or forbids every item as additionalItems would;
        # Confluent reports its change as ADDITIONAL_ITEMS_*.
        if ("prefixItems" in raw and "items" in raw) or isinstance(items, bool):
            value = items
    if value is None or _is_true(value):
        return None
    if value is False:
        return False
    return value


def _open_object(raw: dict[str, Any]) -> bool:
    """Open content model: any name may hold any value (no pattern or additional schema)."""
    if raw.get("patternProperties"):
        return False
    additional = raw.get("additionalProperties")
    if additional is not None and not _is_true(additional):
        return False
    uneval = raw.get("unevaluatedProperties")
    return uneval is None or _is_true(uneval)


def _open_array(n: _Node) -> bool:
    if _additional(n, "additionalItems") is not None:
        return False
    uneval = n.raw.get("unevaluatedItems")
    return uneval is None or _is_true(uneval)


def _all_items(raw: dict[str, Any]) -> Any:
    """The schema every item must match, or None (a boolean is additionalItems' business)."""
    items = raw.get("items")
    if "prefixItems" in raw or isinstance(items, list | bool) or items is None:
        return None
    return items


def _tuple_items(raw: dict[str, Any]) -> tuple[str, list[Any]]:
    if isinstance(raw.get("prefixItems"), list):
        return "prefixItems", raw["prefixItems"]
    if isinstance(raw.get("items"), list):
        return "items", raw["items"]
    return "items", []


def _dependencies(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Property dependencies and schema dependencies, each name -> (keyword, value)."""
    arrays: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for name, value in _dict(raw.get("dependencies")).items():
        if isinstance(value, list):
            arrays[name] = ("dependencies", value)
        else:
            schemas[name] = ("dependencies", value)
    for name, value in _dict(raw.get("dependentRequired")).items():
        arrays[name] = ("dependentRequired", _list(value))
    for name, value in _dict(raw.get("dependentSchemas")).items():
        schemas[name] = ("dependentSchemas", value)
    return arrays, schemas


def _compare_bounds(
    w: dict[str, Any], r: dict[str, Any], keyword: str, rule: str, *, upper: bool
) -> list[_Diff]:
    """A limit: adding one, or tightening it (lower max, higher min), may reject old data."""
    old, new = w.get(keyword), r.get(keyword)
    if old == new or (old is None and new is None):
        return []
    path = (keyword,)
    if old is None:
        return [_Diff(path, f"{rule}_ADDED", f"{keyword} {new} added")]
    if new is None:
        return [_Diff(path, f"{rule}_REMOVED", f"{keyword} removed")]
    direction = "INCREASED" if new > old else "DECREASED"
    detail = f"{keyword} {'increased' if new > old else 'decreased'} from {old} to {new}"
    if (direction == "DECREASED") == upper:
        detail += ", so old data may be rejected"
    return [_Diff(path, f"{rule}_{direction}", detail)]


def _compare_string(w: dict[str, Any], r: dict[str, Any]) -> list[_Diff]:
    diffs = _compare_bounds(w, r, "maxLength", "MAX_LENGTH", upper=True)
    diffs += _compare_bounds(w, r, "minLength", "MIN_LENGTH", upper=False)
    old, new = w.get("pattern"), r.get("pattern")
    if old is None and new is not None:
        diffs.append(_Diff(("pattern",), "PATTERN_ADDED", f"pattern {new!r} added"))
    elif old is not None and new is None:
        diffs.append(_Diff(("pattern",), "PATTERN_REMOVED", "pattern removed"))
    elif old != new:
        detail = f"pattern changed from {old!r} to {new!r}"
        diffs.append(_Diff(("pattern",), "PATTERN_CHANGED", detail))
    return diffs


def _limits(raw: dict[str, Any]) -> dict[str, Any]:
    """Numeric limits, with draft 4's boolean ``exclusiveMaximum`` turned into a number."""
    limits = {k: raw.get(k) for k in ("maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum")}
    for bound, excl in (("maximum", "exclusiveMaximum"), ("minimum", "exclusiveMinimum")):
        if isinstance(limits[excl], bool):
            limits[excl] = limits[bound] if limits[excl] else None
            if limits[excl] is not None:
                limits[bound] = None
    return limits


def _compare_number(w: _Node, r: _Node) -> list[_Diff]:
    old, new = _limits(w.raw), _limits(r.raw)
    diffs = _compare_bounds(old, new, "maximum", "MAXIMUM", upper=True)
    diffs += _compare_bounds(old, new, "minimum", "MINIMUM", upper=False)
    diffs += _compare_bounds(old, new, "exclusiveMaximum", "EXCLUSIVE_MAXIMUM", upper=True)
    diffs += _compare_bounds(old, new, "exclusiveMinimum", "EXCLUSIVE_MINIMUM", upper=False)
    diffs += _compare_multiple_of(w.raw.get("multipleOf"), r.raw.get("multipleOf"))
    if w.integer != r.integer:
        if w.integer:
            diffs.append(_Diff((), "TYPE_EXTENDED", "type widened from 'integer' to 'number'"))
        else:
            detail = "type narrowed from 'number' to 'integer', so old fractions are rejected"
            diffs.append(_Diff((), "TYPE_NARROWED", detail))
    return diffs


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None


def _compare_multiple_of(old_raw: Any, new_raw: Any) -> list[_Diff]:
    old, new = _decimal(old_raw), _decimal(new_raw)
    path = ("multipleOf",)
    if old == new:
        return []
    if old is None:
        return [_Diff(path, "MULTIPLE_OF_ADDED", f"multipleOf {new_raw} added")]
    if new is None:
        return [_Diff(path, "MULTIPLE_OF_REMOVED", "multipleOf removed")]
    if old != 0 and new % old == 0:
        detail = f"multipleOf expanded from {old_raw} to {new_raw}, so old values may fail"
        return [_Diff(path, "MULTIPLE_OF_EXPANDED", detail)]
    if new != 0 and old % new == 0:
        return [_Diff(path, "MULTIPLE_OF_REDUCED", f"multipleOf reduced to {new_raw}")]
    detail = f"multipleOf changed from {old_raw} to {new_raw}"
    return [_Diff(path, "MULTIPLE_OF_CHANGED", detail)]


def _canon(value: Any) -> str:
    """A value's identity for enum/const comparison (1 and 1.0 are the same JSON number)."""

    def norm(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        if isinstance(v, list):
            return [norm(x) for x in v]
        return v

    return json.dumps(norm(value), sort_keys=True, separators=(",", ":"))


def _compare_enum(old: list[Any], new: list[Any]) -> list[_Diff]:
    old_set, new_set = {_canon(v) for v in old}, {_canon(v) for v in new}
    if old_set == new_set:
        return []
    path = ("enum",)
    if new_set >= old_set:
        return [_Diff(path, "ENUM_ARRAY_EXTENDED", "enum gained values")]
    lost = ", ".join(sorted(old_set - new_set))
    if old_set >= new_set:
        return [_Diff(path, "ENUM_ARRAY_NARROWED", f"enum lost values old data may hold: {lost}")]
    return [_Diff(path, "ENUM_ARRAY_CHANGED", f"enum changed; values no longer allowed: {lost}")]


def _dedupe(nodes: list[_Node]) -> list[_Node]:
    """Subschemas with repeats dropped (``anyOf: [A, A]`` is ``anyOf: [A]``)."""
    seen: set[str] = set()
    result = []
    for n in nodes:
        key = _canon(n.raw) + n.kind
        if key not in seen:
            seen.add(key)
            result.append(n)
    return result


def _max_matching(
    edges: dict[int, dict[int, list[_Diff]]], left: int, budget: Budget
) -> dict[int, int]:
    """Maximum bipartite matching (Kuhn's augmenting paths): writer index -> reader index."""
    match_right: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        budget.spend()
        for j in edges.get(i, {}):
            if j in seen:
                continue
            seen.add(j)
            if j not in match_right or augment(match_right[j], seen):
                match_right[j] = i
                return True
        return False

    for i in range(left):
        augment(i, set())
    return {i: j for j, i in match_right.items()}
