"""Avro schemas: parsing (via fastavro), canonical and normalized text, and compatibility.

Compatibility follows the schema-resolution rules of the Avro 1.11 specification the way Apache
Avro's Java ``SchemaCompatibility`` (which Confluent's registry calls) applies them: the reader's
schema is ``self``, the writer's is the argument, and every reason the reader cannot decode the
writer's data is reported with Confluent's rule name.

Paths are JSON-pointer-like locations in the *reader* schema, naming fields by name rather than
by index: ``/fields/amount/type``, ``/fields/lines/type/items``, ``/fields/currency`` (a missing
field), ``/`` for the root. Messages name the field in dotted form (``Payment.amount``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from fastavro.schema import parse_schema as _fastavro_parse

from nerve.registry.schema_types import (
    Budget,
    Incompatibility,
    InvalidSchema,
    ParsedSchema,
    References,
    jackson_text,
    load_json,
)

__all__ = ["AvroSchema", "parse"]

Json = Any  # a decoded JSON value; Avro schemas are arbitrary JSON below the top level

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_FIELD_ORDERS = frozenset({"ascending", "descending", "ignore"})

# Writer types each reader type also accepts, beyond its own (Avro spec, "Schema Resolution").
_PROMOTIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "long": frozenset({"int"}),
        "float": frozenset({"int", "long"}),
        "double": frozenset({"int", "long", "float"}),
        "string": frozenset({"bytes"}),
        "bytes": frozenset({"string"}),
    }
)

# Attributes each kind of schema object understands; anything else is a custom property, kept
# (sorted) in the normalized form because it may matter to code generators or serializers.
_KNOWN_KEYS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "record": frozenset({"type", "name", "namespace", "aliases", "doc", "fields"}),
        "enum": frozenset({"type", "name", "namespace", "aliases", "doc", "symbols", "default"}),
        "fixed": frozenset({"type", "name", "namespace", "aliases", "doc", "size"}),
        "array": frozenset({"type", "items"}),
        "map": frozenset({"type", "values"}),
        "field": frozenset({"name", "type", "default", "aliases", "doc", "order"}),
    }
)

_NO_REFERENCES: References = MappingProxyType({})


@dataclass(eq=False)
class _Field:
    """A record field as compatibility sees it: name, type, whether it has a default, aliases."""

    name: str
    type: _Node
    has_default: bool
    aliases: tuple[str, ...]


@dataclass(eq=False)
class _Node:
    """One resolved Avro type. Named types are shared objects, so recursion is a cycle."""

    kind: str  # a primitive name, or record / enum / fixed / array / map / union
    fullname: str = ""
    aliases: frozenset[str] = frozenset()
    fields: list[_Field] = field(default_factory=list)
    symbols: tuple[str, ...] = ()
    has_enum_default: bool = False
    size: int = 0
    element: _Node | None = None  # array items or map values
    branches: tuple[_Node, ...] = ()

    @property
    def short_name(self) -> str:
        """The unqualified name, which Avro's resolution compares (spec 1.11, Java 1.10+)."""
        return self.fullname.rpartition(".")[2]

    def describe(self) -> str:
        """A short human description for messages: ``int``, ``record 'x.Payment'``, ``union``."""
        if self.fullname:
            return f"{self.kind} '{self.fullname}'"
        if self.kind == "union":
            return "union [" + ", ".join(b.describe() for b in self.branches) + "]"
        return self.kind


def _invalid(message: str) -> InvalidSchema:
    return InvalidSchema(f"Invalid schema: {message}")


def _qualify(name: str, namespace: str) -> str:
    """Avro's full-name rule: a dotted name is already full; otherwise prefix the namespace."""
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _sorted_json(value: Json) -> Json:
    """A JSON value with object keys sorted at every depth (for defaults and custom properties,
    whose key order carries no meaning)."""
    if isinstance(value, dict):
        return {k: _sorted_json(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_json(v) for v in value]
    return value


def _extras(obj: Mapping[str, Json], kind: str) -> dict[str, Json]:
    """Custom properties of a schema object, sorted, for the normalized form."""
    known = _KNOWN_KEYS.get(kind, frozenset({"type"}))
    if obj.keys() <= known:  # the common case, without sorting anything
        return {}
    return {k: _sorted_json(obj[k]) for k in sorted(obj) if k not in known}


# The Java form: what Confluent stores for an Avro schema, AvroSchema.canonicalString(), which is
# Java Avro's Schema.toString(referencedSchemas, false) (Avro 1.12). Its rules, read from
# org.apache.avro.Schema: keys in a fixed order per kind (type, name, namespace, doc, then the
# kind's own keys, then custom properties in the order given, aliases last for named types);
# primitives without properties as bare names; names short when in the enclosing namespace;
# attributes Java's parser reserves (doc of a primitive, say) dropped.
_SCHEMA_RESERVED = frozenset(
    {"doc", "fields", "items", "name", "namespace", "size", "symbols", "values", "type", "aliases"}
)
_ENUM_RESERVED = _SCHEMA_RESERVED | {"default"}
_FIELD_RESERVED = frozenset({"default", "doc", "name", "order", "type", "aliases"})
# Names Java writes in full even in their own namespace, since they read as types.
_TYPE_NAMES = frozenset({"record", "enum", "array", "map", "union", "fixed"} | _PRIMITIVES)


def _java_props(obj: Mapping[str, Json], reserved: frozenset[str]) -> dict[str, Json]:
    if obj.keys() <= reserved:
        return {}
    return {k: v for k, v in obj.items() if k not in reserved}


def _java_name_ref(fullname: str, namespace: str) -> str:
    """How Java writes a reference to a named type from inside ``namespace``."""
    space, _, short = fullname.rpartition(".")
    if space and space == namespace and short not in _TYPE_NAMES:
        return short
    return fullname


class _Built(NamedTuple):
    """One walk's results for a type: its node, its normalized JSON, its Java form."""

    node: _Node
    norm: Json
    java: Json


class _Builder:
    """Resolves schema JSON into ``_Node`` trees and, in the same walk, the normalized JSON and
    the Java form (see ``_java_props``).

    Named types are registered before their bodies are walked so a record can refer to itself;
    one builder is shared by the references and the main schema so names resolve across them.
    fastavro is lenient about several things Java Avro (and so Confluent) rejects, such as a
    record without ``fields``, duplicate field names or duplicate union branches; this walk
    rejects those with messages that say where the problem is.
    """

    def __init__(self) -> None:
        self.named: dict[str, _Node] = {}
        self.made_floats = False  # a default turned into a float, as Java turns it

    def build(self, obj: Json, namespace: str) -> _Built:
        if isinstance(obj, str):
            return self._reference(obj, namespace)
        if isinstance(obj, list):
            return self._union(obj, namespace)
        if isinstance(obj, dict):
            return self._object(obj, namespace)
        raise _invalid(f"{json.dumps(obj)} is not a type (expected a name, an object or a list)")

    def _reference(self, name: str, namespace: str) -> _Built:
        if name in _PRIMITIVES:
            return _Built(_Node(kind=name), name, name)
        for candidate in (_qualify(name, namespace), name):
            node = self.named.get(candidate)
            if node is not None:
                return _Built(node, node.fullname, _java_name_ref(node.fullname, namespace))
        raise _invalid(f"unknown type '{name}'")

    def _union(self, branches: list[Json], namespace: str) -> _Built:
        nodes: list[_Node] = []
        normalized: list[Json] = []
        java: list[Json] = []
        seen: set[str] = set()
        for branch in branches:
            built = self.build(branch, namespace)
            node = built.node
            if node.kind == "union":
                raise _invalid("a union may not directly contain another union")
            key = node.fullname or node.kind
            if key in seen:
                raise _invalid(f"union has more than one branch of type '{key}'")
            seen.add(key)
            nodes.append(node)
            normalized.append(built.norm)
            java.append(built.java)
        return _Built(_Node(kind="union", branches=tuple(nodes)), normalized, java)

    def _object(self, obj: dict[str, Json], namespace: str) -> _Built:
        if "type" not in obj:
            raise _invalid(f"schema object {_brief(obj)} has no 'type'")
        kind = obj["type"]
        if isinstance(kind, (dict, list)):
            return self.build(kind, namespace)  # {"type": {...}}: a wrapped type, as Java reads it
        if not isinstance(kind, str):
            raise _invalid(f"'type' must be a string, got {json.dumps(kind)}")
        if kind in _PRIMITIVES:
            extras = _extras(obj, kind)
            props = _java_props(obj, _SCHEMA_RESERVED)
            return _Built(
                _Node(kind=kind),
                {"type": kind, **extras} if extras else kind,
                {"type": kind, **props} if props else kind,
            )
        if kind in ("record", "error"):
            return self._record(obj, namespace)
        if kind == "enum":
            return self._enum(obj, namespace)
        if kind == "fixed":
            return self._fixed(obj, namespace)
        if kind in ("array", "map"):
            part = "items" if kind == "array" else "values"
            if part not in obj:
                raise _invalid(f"{kind} has no '{part}'")
            inner = self.build(obj[part], namespace)
            norm = {"type": kind, part: inner.norm, **_extras(obj, kind)}
            java = {"type": kind, part: inner.java, **_java_props(obj, _SCHEMA_RESERVED)}
            return _Built(_Node(kind=kind, element=inner.node), norm, java)
        return self._reference(kind, namespace)  # {"type": "com.example.Named"}

    def _define(self, obj: dict[str, Json], namespace: str, kind: str) -> tuple[_Node, str]:
        """Register a named type; returns it and the namespace its nested names resolve in."""
        name = obj.get("name")
        if not isinstance(name, str) or not name:
            raise _invalid(f"{kind} {_brief(obj)} has no name")
        if "." in name:
            fullname = name
        else:
            space = obj.get("namespace", namespace)
            if space is None:
                space = ""
            if not isinstance(space, str):
                raise _invalid(f"namespace of {kind} '{name}' must be a string")
            fullname = _qualify(name, space)
        space = fullname.rpartition(".")[0]
        for part in fullname.split("."):
            if not _NAME.match(part):
                raise _invalid(f"'{fullname}' is not a valid {kind} name")
        if fullname.rpartition(".")[2] in _PRIMITIVES:
            raise _invalid(f"a {kind} may not be named after the primitive type '{name}'")
        if fullname in self.named:
            raise _invalid(f"type '{fullname}' is defined more than once")
        aliases = obj.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise _invalid(f"aliases of {kind} '{fullname}' must be a list of names")
        node = _Node(
            kind=kind, fullname=fullname, aliases=frozenset(_qualify(a, space) for a in aliases)
        )
        self.named[fullname] = node
        return node, space

    @staticmethod
    def _named_head(obj: dict[str, Json], node: _Node) -> dict[str, Json]:
        """The leading keys of a named type's normalized form: type, full name, aliases, doc."""
        head: dict[str, Json] = {"type": obj["type"], "name": node.fullname}
        if node.aliases:
            head["aliases"] = sorted(node.aliases)
        if "doc" in obj:
            head["doc"] = obj["doc"]
        return head

    @staticmethod
    def _java_head(obj: dict[str, Json], node: _Node, namespace: str) -> dict[str, Json]:
        """The leading keys of a named type's Java form: type, short name, the namespace when
        it is not the enclosing one (``""`` to leave one), doc."""
        space, _, short = node.fullname.rpartition(".")
        head: dict[str, Json] = {"type": obj["type"], "name": short}
        if space != namespace:
            head["namespace"] = space
        if isinstance(obj.get("doc"), str):
            head["doc"] = obj["doc"]
        return head

    @staticmethod
    def _java_aliases(obj: dict[str, Json], space: str) -> dict[str, Json]:
        """Java's aliases of a named type: once each, short when in the type's namespace."""
        aliases = obj.get("aliases")
        if not aliases:
            return {}
        written = [_java_name_ref(_qualify(a, space), space) for a in aliases]
        return {"aliases": list(dict.fromkeys(written))}

    def _record(self, obj: dict[str, Json], namespace: str) -> _Built:
        node, space = self._define(obj, namespace, "record")
        fields = obj.get("fields")
        if not isinstance(fields, list):
            raise _invalid(f"record '{node.fullname}' has no 'fields' list")
        norm_fields: list[Json] = []
        java_fields: list[Json] = []
        seen: set[str] = set()
        for raw in fields:
            if not isinstance(raw, dict):
                raise _invalid(f"a field of record '{node.fullname}' is not an object")
            fname = raw.get("name")
            if not isinstance(fname, str) or not _NAME.match(fname):
                raise _invalid(f"record '{node.fullname}' has a field with an invalid name")
            if fname in seen:
                raise _invalid(f"record '{node.fullname}' has more than one field '{fname}'")
            seen.add(fname)
            if "type" not in raw:
                raise _invalid(f"field '{fname}' of record '{node.fullname}' has no type")
            ftype = self.build(raw["type"], space)
            aliases = raw.get("aliases", [])
            if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                raise _invalid(f"aliases of field '{fname}' must be a list of names")
            order = raw.get("order", "ascending")
            if order not in _FIELD_ORDERS:
                raise _invalid(f"field '{fname}' has an invalid order {json.dumps(order)}")
            node.fields.append(_Field(fname, ftype.node, "default" in raw, tuple(aliases)))
            norm: dict[str, Json] = {"name": fname, "type": ftype.norm}
            java: dict[str, Json] = {"name": fname, "type": ftype.java}
            if "default" in raw:
                norm["default"] = _sorted_json(raw["default"])
            if aliases:
                norm["aliases"] = sorted(aliases)
            if "doc" in raw:
                norm["doc"] = raw["doc"]
                if isinstance(raw["doc"], str):
                    java["doc"] = raw["doc"]
            if "default" in raw:
                java["default"] = self._java_default(raw["default"], ftype.node.kind)
            if order != "ascending":
                norm["order"] = order
                java["order"] = order
            if aliases:
                java["aliases"] = list(dict.fromkeys(aliases))
            norm.update(_extras(raw, "field"))
            java.update(_java_props(raw, _FIELD_RESERVED))
            norm_fields.append(norm)
            java_fields.append(java)
        return _Built(
            node,
            {**self._named_head(obj, node), "fields": norm_fields, **_extras(obj, "record")},
            {
                **self._java_head(obj, node, namespace),
                "fields": java_fields,
                **_java_props(obj, _SCHEMA_RESERVED),
                **self._java_aliases(obj, space),
            },
        )

    def _enum(self, obj: dict[str, Json], namespace: str) -> _Built:
        node, space = self._define(obj, namespace, "enum")
        symbols = obj.get("symbols")
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise _invalid(f"enum '{node.fullname}' has no 'symbols' list of strings")
        node.symbols = tuple(symbols)
        node.has_enum_default = "default" in obj
        norm = {**self._named_head(obj, node), "symbols": list(symbols)}
        java = {**self._java_head(obj, node, namespace), "symbols": list(symbols)}
        if "default" in obj:
            norm["default"] = obj["default"]
            if isinstance(obj["default"], str):
                java["default"] = obj["default"]
        java.update(_java_props(obj, _ENUM_RESERVED))
        java.update(self._java_aliases(obj, space))
        return _Built(node, {**norm, **_extras(obj, "enum")}, java)

    def _fixed(self, obj: dict[str, Json], namespace: str) -> _Built:
        node, space = self._define(obj, namespace, "fixed")
        size = obj.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _invalid(f"fixed '{node.fullname}' needs a non-negative integer 'size'")
        node.size = size
        return _Built(
            node,
            {**self._named_head(obj, node), "size": size, **_extras(obj, "fixed")},
            {
                **self._java_head(obj, node, namespace),
                "size": size,
                **_java_props(obj, _SCHEMA_RESERVED),
                **self._java_aliases(obj, space),
            },
        )

    def _java_default(self, value: Json, kind: str) -> Json:
        """A field default as Java keeps it: a float or double field's default written as a
        string is read as the number it spells (Schema.parseField)."""
        if kind in ("float", "double") and isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                return value
            self.made_floats = True
            return number
        return value


def _brief(obj: Json) -> str:
    """A schema fragment shortened for an error message."""
    text = json.dumps(obj, separators=(",", ":"))
    return text if len(text) <= 60 else text[:57] + "..."


def _no_constants(name: str) -> Json:
    raise ValueError(f"{name} is not valid JSON")  # Jackson refuses NaN and Infinity too


def _load(text: str, what: str, floats: list[str] | None = None) -> Json:
    """Schema JSON; the text of each float literal is noted in ``floats`` if given."""

    def note(literal: str) -> float:
        assert floats is not None
        floats.append(literal)
        return float(literal)

    try:
        return load_json(text, what, _no_constants, note if floats is not None else None)
    except InvalidSchema as e:
        raise _invalid(str(e)) from None


def _compact(obj: Json) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class AvroSchema(ParsedSchema):
    """A parsed Avro schema. Build one with :func:`parse`; instances are treated as immutable."""

    schema_type: ClassVar[str] = "AVRO"

    def __init__(
        self,
        java_text: str,
        root: _Node,
        normalized_json: Json,
        fastavro_schema: Json,
        references: References,
    ) -> None:
        self._canonical = java_text
        self._normalized = _compact(normalized_json)
        self._root = root
        self._fastavro_schema = fastavro_schema
        self._references: References = MappingProxyType(dict(references))

    @property
    def fastavro_schema(self) -> Json:
        """fastavro's parsed form (references expanded by name), for serializers; do not mutate."""
        return self._fastavro_schema

    @property
    def references(self) -> References:
        """The reference texts this schema was parsed with, by full type name."""
        return self._references

    def canonical(self) -> str:
        """What Confluent stores: Java Avro's ``Schema.toString()`` of the schema (the Java
        form, built with the normalized one), so that the same schema written with keys in
        another order, or ``{"type": "string"}`` for ``"string"``, is the same text and the
        same id, as in Confluent."""
        return self._canonical

    def equivalent(self, other: ParsedSchema) -> bool:
        """Confluent's lookup equality (Java's Schema.equals plus docs and aliases): what the
        normalized form keeps, so custom properties in another order still match."""
        return isinstance(other, AvroSchema) and self._normalized == other._normalized

    def normalized(self) -> str:
        """Compact JSON equal for schemas that differ only in spelling, not in meaning.

        Names are fully qualified and ``namespace`` attributes dropped; primitives without
        properties become bare names (``{"type":"int"}`` -> ``"int"``); keys follow a fixed order
        (type, name, aliases, doc, then the kind's own keys, then custom properties sorted);
        aliases are sorted and qualified; ``"order":"ascending"`` (the default) is dropped; object
        keys inside defaults and custom properties are sorted. Everything that can change how data
        is read or described is kept: field order, symbol order, defaults, aliases, doc, logical
        types and other properties.
        """
        return self._normalized

    def incompatibilities(
        self, writer: ParsedSchema, budget: Budget | None = None
    ) -> list[Incompatibility]:
        """Why this schema, as reader, cannot decode data written with ``writer``."""
        if not isinstance(writer, AvroSchema):
            return [
                Incompatibility(
                    "/",
                    "TYPE_MISMATCH",
                    f"the writer is a {writer.schema_type} schema, not Avro",
                )
            ]
        return _Checker(budget or Budget()).report(self._root, writer._root)

    def __repr__(self) -> str:
        return f"AvroSchema({self._canonical!r})"


@dataclass(frozen=True, slots=True)
class _Issue:
    """An incompatibility relative to the reader/writer pair it was found in, so a memoized
    result can be re-anchored wherever the same pair occurs again."""

    path: str  # JSON-pointer suffix below the pair, "" for the pair itself
    rule: str
    where: str  # dotted field suffix below the pair, e.g. ".payment.amount"
    sentence: str
    about_field: bool = False  # the sentence names the field itself instead of following it

    def under(self, path: str, where: str) -> _Issue:
        return _Issue(
            path + self.path, self.rule, where + self.where, self.sentence, self.about_field
        )

    def resolve(self, root: str) -> Incompatibility:
        where = root + self.where
        if self.about_field:
            message = self.sentence.format(field=where)
        else:
            message = f"{where}: {self.sentence}"
        return Incompatibility(self.path or "/", self.rule, message)


class _Checker:
    """One compatibility check: reader/writer pairs are memoized by identity, and a pair met
    again while still being checked counts as compatible, which ends recursion through
    self-referencing records exactly as Java Avro does."""

    def __init__(self, budget: Budget) -> None:
        self._done: dict[tuple[int, int], list[_Issue]] = {}
        self._in_progress: set[tuple[int, int]] = set()
        self._budget = budget

    def report(self, reader: _Node, writer: _Node) -> list[Incompatibility]:
        root = reader.short_name or reader.kind
        return [issue.resolve(root) for issue in self.check(reader, writer)]

    def check(self, reader: _Node, writer: _Node) -> list[_Issue]:
        self._budget.spend()  # unions compare branch by branch: pairs can be many
        key = (id(reader), id(writer))
        if key in self._done:
            return self._done[key]
        if key in self._in_progress:
            return []
        self._in_progress.add(key)
        try:
            result = self._compare(reader, writer)
        finally:
            self._in_progress.discard(key)
        self._done[key] = result
        return result

    def _below(self, reader: _Node, writer: _Node, path: str, where: str) -> list[_Issue]:
        return [issue.under(path, where) for issue in self.check(reader, writer)]

    def _compare(self, reader: _Node, writer: _Node) -> list[_Issue]:
        if reader.kind == writer.kind:
            if reader.kind in _PRIMITIVES:
                return []
            if reader.kind in ("array", "map"):
                assert reader.element is not None and writer.element is not None
                part = "items" if reader.kind == "array" else "values"
                return self._below(reader.element, writer.element, f"/{part}", f".{part}")
            if reader.kind == "union":
                return [issue for branch in writer.branches for issue in self.check(reader, branch)]
            problems = self._names(reader, writer)
            if reader.kind == "fixed" and reader.size != writer.size:
                problems.append(
                    _Issue(
                        "/size",
                        "FIXED_SIZE_MISMATCH",
                        "",
                        f"reader fixed '{reader.fullname}' has size {reader.size} "
                        f"but the writer's has size {writer.size}",
                    )
                )
            elif reader.kind == "enum":
                problems += self._symbols(reader, writer)
            elif reader.kind == "record":
                problems += self._fields(reader, writer)
            return problems

        if writer.kind == "union":
            return [issue for branch in writer.branches for issue in self.check(reader, branch)]
        if reader.kind == "union":
            if any(not self.check(branch, writer) for branch in reader.branches):
                return []
            return [
                _Issue(
                    "",
                    "MISSING_UNION_BRANCH",
                    "",
                    f"no branch of the reader's {reader.describe()} can read "
                    f"the writer's {writer.describe()}",
                )
            ]
        if writer.kind in _PROMOTIONS.get(reader.kind, frozenset()):
            return []
        return [
            _Issue(
                "",
                "TYPE_MISMATCH",
                "",
                f"reader type {reader.describe()} cannot read writer type {writer.describe()}",
            )
        ]

    @staticmethod
    def _names(reader: _Node, writer: _Node) -> list[_Issue]:
        """Named types match on the unqualified name, or a reader alias naming the writer."""
        if reader.short_name == writer.short_name or writer.fullname in reader.aliases:
            return []
        return [
            _Issue(
                "/name",
                "NAME_MISMATCH",
                "",
                f"reader {reader.kind} '{reader.fullname}' does not match the writer's "
                f"'{writer.fullname}' by name or alias",
            )
        ]

    @staticmethod
    def _symbols(reader: _Node, writer: _Node) -> list[_Issue]:
        """Writer symbols the reader lacks are fatal unless the reader has a default symbol."""
        missing = [s for s in writer.symbols if s not in reader.symbols]
        if not missing or reader.has_enum_default:
            return []
        return [
            _Issue(
                "/symbols",
                "MISSING_ENUM_SYMBOLS",
                "",
                f"reader enum '{reader.fullname}' lacks the writer's symbols "
                f"{', '.join(missing)} and has no default",
            )
        ]

    def _fields(self, reader: _Node, writer: _Node) -> list[_Issue]:
        """Each reader field is read from the writer field of its name (or an alias), or else
        filled from its default; writer-only fields are skipped, so they never matter."""
        by_name = {f.name: f for f in writer.fields}
        problems: list[_Issue] = []
        for rf in reader.fields:
            wf = by_name.get(rf.name)
            if wf is None:
                wf = next((by_name[a] for a in rf.aliases if a in by_name), None)
            if wf is not None:
                problems += self._below(rf.type, wf.type, f"/fields/{rf.name}/type", f".{rf.name}")
            elif not rf.has_default:
                problems.append(
                    _Issue(
                        f"/fields/{rf.name}",
                        "READER_FIELD_MISSING_DEFAULT_VALUE",
                        f".{rf.name}",
                        "reader field '{field}' has no default and the writer has no such field",
                        about_field=True,
                    )
                )
        return problems


def parse(text: str, references: References = _NO_REFERENCES) -> AvroSchema:
    """Parse Avro schema text, resolving named types from ``references`` (full type name ->
    schema text, dependencies first); raises :class:`InvalidSchema` saying what is wrong."""
    builder = _Builder()
    named: dict[str, Json] = {}
    try:
        for name, ref_text in references.items():
            ref_obj = _load(ref_text, f"reference '{name}'")
            try:
                builder.build(ref_obj, "")
                # fastavro gets its own copy: a second json.loads is far cheaper than deepcopy.
                _fastavro_parse(json.loads(ref_text), named_schemas=named)
            except InvalidSchema as e:
                raise InvalidSchema(f"{e} (in reference '{name}')") from None
            except Exception as e:
                raise _invalid(f"{e} (in reference '{name}')") from None
        floats: list[str] = []
        raw = _load(text, "schema", floats)
        built = builder.build(raw, "")
        try:
            fastavro_schema = _fastavro_parse(json.loads(text), named_schemas=named)
        except Exception as e:
            raise _invalid(str(e) or type(e).__name__) from None
    except RecursionError:
        raise _invalid("schema is nested too deeply") from None
    java_text = jackson_text(built.java, floats=bool(floats) or builder.made_floats)
    return AvroSchema(java_text, built.node, built.norm, fastavro_schema, references)
