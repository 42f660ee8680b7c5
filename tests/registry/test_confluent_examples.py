"""Confluent's published compatibility examples, re-expressed as nerve's own test tables.

Confluent Schema Registry keeps example files for its checkers: ``diff-schema-examples.json``,
``diff-combined-schema-examples.json`` and their 2020-12 versions (json-schema-provider, 263
cases), ``diff-schema-examples.json`` and ``diff-schema-examples-with-meta.json``
(protobuf-provider, 55 cases, as of commit 3f5ff24 of June 2026), and for Avro the cases of
``AvroCompatibilityTest`` (core). They are under the Confluent Community License, so they are
not copied here: each scenario is written again with nerve's own schemas and names, in the same
order, with the verdict and the rules (Confluent's ``Difference.Type`` names) Confluent's
checker gives it. A row's comment names the scenario when the id alone does not.

Reader is the new schema ("update"), writer the old one ("original"), as in BACKWARD.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from nerve.registry.schema_types import json_schema, protobuf
from tests.registry.conftest import Api
from tests.registry.test_api import register

OK: frozenset[str] = frozenset()  # compatible: no incompatible rule


def rules(*names: str) -> frozenset[str]:
    return frozenset(names)


# -- JSON Schema ---------------------------------------------------------------------------

S = {"type": "string"}
N = {"type": "number"}
I = {"type": "integer"}  # noqa: E741
B = {"type": "boolean"}
Z = {"type": "null"}


def props(closed: Any = None, required: list[str] | None = None, **fields: Any) -> dict:
    """An object with ``properties``; ``closed`` is its additionalProperties (None: absent)."""
    schema: dict[str, Any] = {"properties": fields}
    if required is not None:
        schema["required"] = required
    if closed is not None:
        schema["additionalProperties"] = closed
    return schema


def tup(*items: Any, extra: Any = "absent") -> dict:
    """An array with a tuple of ``items``; ``extra`` is its additionalItems."""
    schema: dict[str, Any] = {"type": "array", "items": list(items)}
    if extra != "absent":
        schema["additionalItems"] = extra
    return schema


def nullable_string() -> dict:
    return {"oneOf": [Z, S]}


def in_prop(schema: Any) -> dict:
    return {"type": "object", "properties": {"label": schema}}


# (id, writer, reader, the incompatible rules Confluent reports; OK when compatible)
JSON_CASES: list[tuple[str, Any, Any, frozenset[str]]] = [
    ("anything-to-empty-schema", props(), {}, OK),
    ("id-changed", {"$id": "orders"}, {"$id": "orders-v2"}, OK),
    ("title-changed", {"title": "Order"}, {"title": "Purchase order"}, OK),
    ("description-changed", {"description": "old"}, {"description": "new"}, OK),
    ("type-changed", {"type": "array"}, {"type": "object"}, rules("TYPE_CHANGED")),
    ("min-length-up", {**S, "minLength": 2}, {**S, "minLength": 3}, rules("MIN_LENGTH_INCREASED")),
    ("min-length-down", {**S, "minLength": 3}, {**S, "minLength": 2}, OK),
    ("max-length-up", {**S, "maxLength": 8}, {**S, "maxLength": 9}, OK),
    (
        "max-length-down",
        {**S, "maxLength": 9},
        {**S, "maxLength": 8},
        rules("MAX_LENGTH_DECREASED"),
    ),
    ("pattern-removed", {**S, "pattern": "^[a-z]+$"}, S, OK),
    ("pattern-changed", {**S, "pattern": "^a"}, {**S, "pattern": "^b"}, rules("PATTERN_CHANGED")),
    ("pattern-same", {**S, "pattern": "^a"}, {**S, "pattern": "^a"}, OK),
    ("maximum-removed", {**N, "maximum": 5}, N, OK),
    ("maximum-up", {**N, "maximum": 5}, {**N, "maximum": 6}, OK),
    ("maximum-down", {**N, "maximum": 6}, {**N, "maximum": 5}, rules("MAXIMUM_DECREASED")),
    ("minimum-removed", {**N, "minimum": 5}, N, OK),
    ("minimum-up", {**N, "minimum": 5}, {**N, "minimum": 6}, rules("MINIMUM_INCREASED")),
    ("minimum-down", {**N, "minimum": 6}, {**N, "minimum": 5}, OK),
    ("multiple-of-removed", {**N, "multipleOf": 6}, N, OK),
    ("multiple-of-divides", {**N, "multipleOf": 6}, {**N, "multipleOf": 3}, OK),
    (
        "multiple-of-changed",
        {**N, "multipleOf": 6},
        {**N, "multipleOf": 7},
        rules("MULTIPLE_OF_CHANGED"),
    ),
    ("number-to-integer", N, I, rules("TYPE_NARROWED")),
    ("integer-to-number", I, N, OK),
    ("not-narrowed", {"not": N}, {"not": I}, OK),
    ("not-extended", {"not": I}, {"not": N}, rules("NOT_TYPE_EXTENDED")),
    ("enum-dropped", {**S, "enum": ["eu"]}, S, OK),
    (
        "const-changed",
        {"$schema": "http://json-schema.org/draft-07/schema#", **props(zone={"const": "eu"})},
        {"$schema": "http://json-schema.org/draft-07/schema#", **props(zone={"const": "us"})},
        rules("ENUM_ARRAY_CHANGED"),
    ),
    (
        "enum-in-all-of-changed",
        {"allOf": [S, {"enum": ["eu"]}]},
        {"allOf": [S, {"enum": ["us"]}]},
        rules("COMBINED_TYPE_SUBSCHEMAS_CHANGED"),
    ),
    (
        "enum-in-all-of-extended-and-reordered",
        {"allOf": [S, {"enum": ["eu"]}]},
        {"allOf": [{"enum": ["eu", "us"]}, S]},
        OK,
    ),
    ("type-list-extended", {"type": ["array"]}, {"type": ["array", "object"]}, OK),
    (
        "one-of-branch-changed",
        {"oneOf": [S]},
        {"oneOf": [N]},
        rules("COMBINED_TYPE_SUBSCHEMAS_CHANGED"),
    ),
    ("one-of-branch-added", {"oneOf": [S]}, {"oneOf": [N, S]}, OK),
    (
        "property-renamed-in-open-model",
        props(sku=S),
        props(code=S),
        rules("OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"),
    ),
    ("property-type-changed", props(sku=S), props(sku=N), rules("TYPE_CHANGED")),
    (
        "optional-property-added-to-closed-model",
        props(False, sku=S),
        props(False, sku=S, qty=N),
        OK,
    ),
    (
        # a new property matched by a pattern property that still covers it
        "property-added-covered-by-pattern",
        {**props(False, sku=S), "patternProperties": {"^n_": N, "^c_": I}},
        {**props(False, sku=S, c_count=N), "patternProperties": {"^n_": N, "^c_": I}},
        OK,
    ),
    ("property-added-covered-by-additional", props(S, sku=S), props(S, sku=S, qty=S), OK),
    (
        "property-added-not-covered-by-additional",
        props(S, sku=S),
        props(S, sku=S, qty=N),
        rules("TYPE_CHANGED", "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"),
    ),
    (
        "required-property-added-covered-by-additional",
        props(S, sku=S),
        props(S, ["qty"], sku=S, qty=S),
        rules("REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"),
    ),
    (
        "property-removed-covered-by-pattern",
        props(False, sku=S, c_count=I),
        {**props(False, sku=S), "patternProperties": {"^n_": S, "^c_": N}},
        OK,
    ),
    ("property-removed-covered-by-additional", props(False, sku=S, qty=S), props(S, sku=S), OK),
    (
        "property-removed-not-covered-by-additional",
        props(False, sku=S, qty=N),
        props(S, sku=S),
        rules("TYPE_CHANGED", "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"),
    ),
    (
        "nullable-property-removed-covered-by-nullable-additional",
        props(False, sku=S, note=nullable_string()),
        props(nullable_string(), sku=S),
        OK,
    ),
    (
        "property-removed-covered-by-wider-additional",
        props(False, sku=S, note=S),
        props(nullable_string(), sku=S),
        OK,
    ),
    (
        "property-added-to-open-model",
        props(sku=S),
        props(sku=S, qty=N),
        rules("OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"),
    ),
    (
        "one-of-object-property-changed",
        {"oneOf": [props(sku=S)]},
        {"oneOf": [props(sku=N)]},
        rules("COMBINED_TYPE_SUBSCHEMAS_CHANGED"),
    ),
    ("singleton-one-of-to-all-of", {"oneOf": [S]}, {"allOf": [S]}, OK),
    ("one-of-to-smaller-all-of", {"oneOf": [S, I]}, {"allOf": [S]}, rules("COMBINED_TYPE_CHANGED")),
    (
        "dependency-arrays-swapped",
        {**props(qty=N, sku=S), "dependencies": {"qty": ["sku"]}},
        {**props(qty=N, sku=S), "dependencies": {"sku": ["qty"]}},
        rules("DEPENDENCY_ARRAY_ADDED"),
    ),
    (
        "dependency-schema-removed",
        {"dependencies": {"qty": S, "sku": S}},
        {"dependencies": {"qty": S}},
        OK,
    ),
    ("last-dependency-schema-removed", {"dependencies": {"qty": S}}, {"dependencies": {}}, OK),
    (
        "dependency-schema-changed",
        {"dependencies": {"qty": S}},
        {"dependencies": {"qty": N}},
        rules("TYPE_CHANGED"),
    ),
    (
        "dependency-schema-moved",
        {"dependencies": {"qty": S}},
        {"dependencies": {"sku": S}},
        rules("DEPENDENCY_SCHEMA_ADDED"),
    ),
    ("required-dropped", props(None, ["sku"], sku=S), props(sku=S), OK),
    (
        "required-added",
        props(sku=S),
        props(None, ["sku"], sku=S),
        rules("REQUIRED_ATTRIBUTE_ADDED"),
    ),
    ("required-moved-to-unknown", props(None, ["sku"], sku=S), props(None, ["code"], sku=S), OK),
    ("max-properties-removed", {**props(), "maxProperties": 3}, props(), OK),
    ("max-properties-up", {"maxProperties": 3}, {"maxProperties": 4}, OK),
    (
        "max-properties-down",
        {"maxProperties": 4},
        {"maxProperties": 3},
        rules("MAX_PROPERTIES_DECREASED"),
    ),
    ("min-properties-removed", {**props(), "minProperties": 3}, props(), OK),
    (
        "min-properties-up",
        {"minProperties": 3},
        {"minProperties": 4},
        rules("MIN_PROPERTIES_INCREASED"),
    ),
    ("min-properties-down", {"minProperties": 4}, {"minProperties": 3}, OK),
    ("items-schema-added", {"type": "array"}, {"type": "array", "items": N}, rules("SCHEMA_ADDED")),
    ("items-schema-removed", {"type": "array", "items": N}, {"type": "array"}, OK),
    ("tuple-removed", tup(N, S), {"type": "array"}, OK),
    ("tuple-item-added-covered", tup(N, S, extra=N), tup(N, S, N, extra=N), OK),
    (
        "tuple-item-added-not-covered",
        tup(N, S, extra=N),
        tup(N, S, S, extra=N),
        rules("TYPE_CHANGED", "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"),
    ),
    ("tuple-item-removed-covered", tup(N, S, N, extra=N), tup(N, S, extra=N), OK),
    (
        "nullable-tuple-item-removed-covered",
        tup(N, S, nullable_string(), extra=nullable_string()),
        tup(N, S, extra=nullable_string()),
        OK,
    ),
    (
        "tuple-item-removed-not-covered",
        tup(N, S, S, extra=N),
        tup(N, S, extra=N),
        rules("TYPE_CHANGED", "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"),
    ),
    ("tuple-item-changed", tup(S), tup(B), rules("TYPE_CHANGED")),
    (
        "max-items-down",
        {"type": "array", "maxItems": 4},
        {"type": "array", "maxItems": 3},
        rules("MAX_ITEMS_DECREASED"),
    ),
    ("min-items-removed", {"type": "array", "minItems": 3}, {"type": "array"}, OK),
    (
        "min-items-up",
        {"type": "array", "minItems": 3},
        {"type": "array", "minItems": 4},
        rules("MIN_ITEMS_INCREASED"),
    ),
    ("min-items-down", {"type": "array", "minItems": 4}, {"type": "array", "minItems": 3}, OK),
    ("unique-items-dropped", {"type": "array", "uniqueItems": True}, {"type": "array"}, OK),
    (
        "referenced-definition-changed",
        {"type": "array", "items": {"$ref": "#/definitions/code"}, "definitions": {"code": S}},
        {"type": "array", "items": {"$ref": "#/definitions/code"}, "definitions": {"code": B}},
        rules("TYPE_CHANGED"),
    ),
    ("moved-into-a-definition", S, {"$ref": "#/definitions/code", "definitions": {"code": S}}, OK),
    (
        "moved-out-of-a-definition",
        {"$ref": "#/definitions/code", "definitions": {"code": S}},
        S,
        OK,
    ),
    ("closed-model-opened", props(False), props(), OK),
    (
        "open-model-closed",
        {"additionalProperties": True},
        {"additionalProperties": False},
        rules("ADDITIONAL_PROPERTIES_REMOVED"),
    ),
    (
        "open-model-given-a-schema",
        {"additionalProperties": True},
        {"additionalProperties": N},
        rules("ADDITIONAL_PROPERTIES_NARROWED"),
    ),
    (
        "empty-schema-added-to-open-model",
        {"additionalProperties": True},
        {"additionalProperties": True, "properties": {"sku": True}},
        OK,
    ),
    (
        "empty-schema-removed-from-open-model",
        {"additionalProperties": True, "properties": {"sku": True}},
        {"additionalProperties": True},
        OK,
    ),
    (
        "false-added-to-closed-model",
        {"additionalProperties": False},
        {"additionalProperties": False, "properties": {"sku": False}},
        OK,
    ),
    (
        "false-removed-from-closed-model",
        {"additionalProperties": False, "properties": {"sku": False}},
        {"additionalProperties": False},
        OK,
    ),
    (
        "additional-properties-schema-changed",
        {"additionalProperties": S},
        {"additionalProperties": B},
        rules("TYPE_CHANGED"),
    ),
    (
        "additional-items-forbidden",
        {"additionalItems": True},
        {"additionalItems": False},
        rules("ADDITIONAL_ITEMS_REMOVED"),
    ),
    (
        "additional-items-schema-changed",
        {"additionalItems": S},
        {"additionalItems": B},
        rules("TYPE_CHANGED"),
    ),
    ("empty-tuple-item-added-to-open-model", tup(N, extra=True), tup(N, True, extra=True), OK),
    ("empty-tuple-item-removed-from-open-model", tup(N, True, extra=True), tup(N, extra=True), OK),
    ("false-tuple-item-added-to-closed-model", tup(N, extra=False), tup(N, False, extra=False), OK),
    (
        "false-tuple-item-removed-from-closed-model",
        tup(N, False, extra=False),
        tup(N, extra=False),
        OK,
    ),
    ("tuple-item-added-and-opened", tup(S, N, extra=False), tup(S, N, B, extra=True), OK),
    ("tuple-item-removed-and-opened", tup(S, N, B, extra=False), tup(S, N, extra=True), OK),
    ("tuple-item-removed-from-open-model", tup(S, N, extra=True), tup(S, extra=True), OK),
    ("tuple-item-added-to-closed-model", tup(S, extra=False), tup(S, N, extra=False), OK),
    ("tuple-item-removed-covered-by-additional", tup(S, N, extra=False), tup(S, extra=N), OK),
    ("tuple-item-added-and-additional-widened", tup(S, extra=N), tup(S, N, extra=True), OK),
    ("string-to-one-of", S, {"oneOf": [N, S]}, OK),
    ("null-to-nullable-one-of", Z, {"oneOf": [N, Z]}, OK),
    ("one-of-gains-a-branch-in-front", {"oneOf": [N]}, {"oneOf": [S, N]}, OK),
    ("bounded-string-to-one-of", {**S, "maxLength": 4}, {"oneOf": [N, S]}, OK),
    (
        "optional-property-added-to-closed-model-2",
        props(False, sku=S),
        props(False, sku=S, ean=S),
        OK,
    ),
    # -- combined schemas (diff-combined-schema-examples)
    (
        "all-of-reordered",
        in_prop({"allOf": [{"enum": ["a", "b", "c"]}, S, {"maxLength": 4}]}),
        in_prop({"allOf": [{"maxLength": 4}, {"enum": ["a", "b", "c"]}, S]}),
        OK,
    ),
    (
        "all-of-member-changed",
        in_prop({"allOf": [{"enum": ["a", "b", "c"]}, S, {"maxLength": 4}]}),
        in_prop({"allOf": [{"maxLength": 4}, {"enum": ["a", "b", "c"]}, N]}),
        rules("COMBINED_TYPE_SUBSCHEMAS_CHANGED"),
    ),
    ("all-of-duplicate-dropped", in_prop({"allOf": [S, S]}), in_prop({"allOf": [S]}), OK),
    ("all-of-duplicate-added", in_prop({"allOf": [S]}), in_prop({"allOf": [S, S]}), OK),
    ("one-of-widened", in_prop({"oneOf": [S]}), in_prop({"oneOf": [N, S]}), OK),
    ("one-of-widened-by-two", in_prop({"oneOf": [S]}), in_prop({"oneOf": [B, N, S]}), OK),
    (
        "one-of-widened-and-member-relaxed",
        in_prop({"oneOf": [{**S, "maxLength": 4}]}),
        in_prop({"oneOf": [B, N, {"title": "code", **S, "maxLength": 6}]}),
        OK,
    ),
    (
        "one-of-narrowed",
        in_prop({"oneOf": [N, S]}),
        in_prop({"oneOf": [S]}),
        rules("SUM_TYPE_NARROWED"),
    ),
    (
        "all-of-loses-enum",
        in_prop({"allOf": [{"enum": ["a", "b"]}, S]}),
        in_prop({"allOf": [S]}),
        OK,
    ),
    (
        "all-of-gains-enum",
        in_prop({"allOf": [S]}),
        in_prop({"allOf": [{"enum": ["a", "b"]}, S]}),
        rules("PRODUCT_TYPE_EXTENDED"),
    ),
    ("one-of-to-any-of", in_prop({"oneOf": [S]}), in_prop({"anyOf": [S]}), OK),
    ("one-of-to-wider-any-of", in_prop({"oneOf": [S]}), in_prop({"anyOf": [N, S]}), OK),
    ("all-of-to-any-of", in_prop({"allOf": [S]}), in_prop({"anyOf": [S]}), OK),
    (
        "one-of-to-narrower-any-of",
        in_prop({"oneOf": [N, S]}),
        in_prop({"anyOf": [S]}),
        rules("SUM_TYPE_NARROWED"),
    ),
    ("all-of-to-wider-any-of", in_prop({"allOf": [S]}), in_prop({"anyOf": [N, S]}), OK),
    ("all-of-to-narrower-any-of", in_prop({"allOf": [N, S]}), in_prop({"anyOf": [S]}), OK),
    ("any-of-to-wider-one-of", in_prop({"anyOf": [S]}), in_prop({"oneOf": [N, S]}), OK),
    (
        "any-of-to-narrower-one-of",
        in_prop({"anyOf": [N, S]}),
        in_prop({"oneOf": [S]}),
        rules("COMBINED_TYPE_CHANGED"),
    ),
    ("all-of-to-wider-one-of", in_prop({"allOf": [N]}), in_prop({"oneOf": [N, S]}), OK),
    ("all-of-to-narrower-one-of", in_prop({"allOf": [N, S]}), in_prop({"oneOf": [S]}), OK),
    ("any-of-to-all-of", in_prop({"anyOf": [S]}), in_prop({"allOf": [S]}), OK),
    ("one-of-to-all-of", in_prop({"oneOf": [S]}), in_prop({"allOf": [S]}), OK),
    (
        "any-of-to-wider-all-of",
        in_prop({"anyOf": [S]}),
        in_prop({"allOf": [N, S]}),
        rules("COMBINED_TYPE_CHANGED"),
    ),
    (
        "one-of-to-wider-all-of",
        in_prop({"oneOf": [S]}),
        in_prop({"allOf": [N, S]}),
        rules("COMBINED_TYPE_CHANGED"),
    ),
    ("plain-to-any-of", in_prop(S), in_prop({"anyOf": [N, S]}), OK),
    ("plain-to-one-of", in_prop(S), in_prop({"oneOf": [N, S]}), OK),
    ("plain-to-all-of", in_prop(S), in_prop({"allOf": [S]}), OK),
    ("plain-to-wider-all-of", in_prop(S), in_prop({"allOf": [N, S]}), rules("TYPE_CHANGED")),
]

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

# Scenarios of the 2020-12 file that have no draft-07 counterpart.
JSON_2020_12_CASES: list[tuple[str, Any, Any, frozenset[str]]] = [
    (
        "optional-property-added-to-unevaluated-closed-model",
        {**props(sku=S), "unevaluatedProperties": False},
        {**props(sku=S, qty=N), "unevaluatedProperties": False},
        OK,
    ),
    (
        "property-added-covered-by-unevaluated",
        {**props(sku=S), "unevaluatedProperties": S},
        {**props(sku=S, qty=S), "unevaluatedProperties": S},
        OK,
    ),
    (
        "property-added-not-covered-by-unevaluated",
        {**props(sku=S), "unevaluatedProperties": S},
        {**props(sku=S, qty=N), "unevaluatedProperties": S},
        rules("TYPE_CHANGED", "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"),
    ),
    (
        "required-property-added-covered-by-unevaluated",
        {**props(sku=S), "unevaluatedProperties": S},
        {**props(None, ["qty"], sku=S, qty=S), "unevaluatedProperties": S},
        rules("REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"),
    ),
    (
        "prefix-item-added-covered-by-unevaluated",
        {"type": "array", "prefixItems": [N, S], "unevaluatedItems": N},
        {"type": "array", "prefixItems": [N, S, N], "unevaluatedItems": N},
        OK,
    ),
    (
        "prefix-item-added-not-covered-by-unevaluated",
        {"type": "array", "prefixItems": [N, S], "unevaluatedItems": N},
        {"type": "array", "prefixItems": [N, S, S], "unevaluatedItems": N},
        rules("TYPE_CHANGED", "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"),
    ),
    (
        "prefix-item-removed-covered-by-unevaluated",
        {"type": "array", "prefixItems": [N, S, N], "unevaluatedItems": N},
        {"type": "array", "prefixItems": [N, S], "unevaluatedItems": N},
        OK,
    ),
    (
        "nullable-prefix-item-removed-covered-by-unevaluated",
        {
            "type": "array",
            "prefixItems": [N, S, nullable_string()],
            "unevaluatedItems": nullable_string(),
        },
        {"type": "array", "prefixItems": [N, S], "unevaluatedItems": nullable_string()},
        OK,
    ),
    (
        "prefix-item-removed-not-covered-by-unevaluated",
        {"type": "array", "prefixItems": [N, S, S], "unevaluatedItems": N},
        {"type": "array", "prefixItems": [N, S], "unevaluatedItems": N},
        rules("TYPE_CHANGED", "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"),
    ),
    (
        "min-contains-removed",
        {"type": "array", "contains": S, "minContains": 2},
        {"type": "array", "contains": S},
        OK,
    ),
    (
        "min-contains-up",
        {"type": "array", "contains": S, "minContains": 2},
        {"type": "array", "contains": S, "minContains": 3},
        rules("MIN_CONTAINS_INCREASED"),
    ),
    (
        "min-contains-down",
        {"type": "array", "contains": S, "minContains": 3},
        {"type": "array", "contains": S, "minContains": 2},
        OK,
    ),
]


def to_2020_12(schema: Any) -> Any:
    """The same schema in 2020-12's words, as Confluent's 2020-12 file restates its cases:
    tuples in ``prefixItems`` (``additionalItems`` becomes ``items``), ``dependencies`` split
    into ``dependentRequired`` and ``dependentSchemas``, ``definitions`` into ``$defs``."""

    def convert(value: Any) -> Any:
        if isinstance(value, list):
            return [convert(v) for v in value]
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "items" and isinstance(item, list):
                out["prefixItems"] = convert(item)
            elif key == "additionalItems":
                out["items"] = convert(item)
            elif key == "dependencies":
                arrays = {k: v for k, v in item.items() if isinstance(v, list)}
                schemas = {k: convert(v) for k, v in item.items() if not isinstance(v, list)}
                if arrays:
                    out["dependentRequired"] = arrays
                if schemas or not arrays:
                    out["dependentSchemas"] = schemas
            elif key == "definitions":
                out["$defs"] = convert(item)
            elif key == "$ref" and isinstance(item, str):
                out["$ref"] = item.replace("#/definitions/", "#/$defs/")
            elif key == "$schema":
                continue
            else:
                out[key] = convert(item)
        return out

    converted = convert(schema)
    return {"$schema": DRAFT_2020_12, **converted} if isinstance(converted, dict) else converted


def json_rules(writer: Any, reader: Any) -> frozenset[str]:
    old = json_schema.parse(json.dumps(writer))
    new = json_schema.parse(json.dumps(reader))
    return frozenset(i.rule for i in new.incompatibilities(old))


@pytest.mark.parametrize(("case", "writer", "reader", "expected"), JSON_CASES)
def test_json_schema_examples(case: str, writer: Any, reader: Any, expected: frozenset) -> None:
    assert json_rules(writer, reader) == expected


@pytest.mark.parametrize(
    ("case", "writer", "reader", "expected"),
    JSON_CASES + JSON_2020_12_CASES,
)
def test_json_schema_examples_in_draft_2020_12(
    case: str, writer: Any, reader: Any, expected: frozenset
) -> None:
    assert json_rules(to_2020_12(writer), to_2020_12(reader)) == expected


# -- Protobuf ------------------------------------------------------------------------------


def p3(body: str, package: str = "", imports: tuple[str, ...] = ()) -> str:
    head = 'syntax = "proto3";\n'
    if package:
        head += f"package {package};\n"
    head += "".join(f'import "{name}";\n' for name in imports)
    return head + body


def p2(body: str) -> str:
    return 'syntax = "proto2";\n' + body


CART = "message Cart { string id = 1; %s }"
SHIPPING = 'syntax = "proto3";\npackage logistics.%s;\nmessage %s { %s bool express = 2; }'

# (id, writer, reader, the incompatible rules Confluent reports) and optional references
# (import path -> text) for the writer and the reader.
PROTOBUF_CASES: list[tuple[Any, ...]] = [
    (
        "field-added-next-to-a-qualified-nested-type",
        p3(
            (
                "message Cart { string id = 1; .shop.Cart.Line line = 2; message Line { string "
                "sku = 1; } }"
            ),
            "shop",
        ),
        p3(
            (
                "message Cart { string id = 1; .shop.Cart.Line line = 2; double total = 3; "
                "message Line { string sku = 1; } }"
            ),
            "shop",
        ),
        OK,
    ),
    (
        "package-changed",
        p3(
            (
                "message Cart { string id = 1; .shop.Cart.Line line = 2; message Line { string "
                "sku = 1; } }"
            ),
            "shop",
        ),
        p3(
            (
                "message Cart { string id = 1; .store.Cart.Line line = 2; message Line { string "
                "sku = 1; } }"
            ),
            "store",
        ),
        rules("PACKAGE_CHANGED"),
    ),
    (
        "type-name-qualified",
        p3("message Cart { Line line = 1; message Line { string sku = 1; } }"),
        p3("message Cart { .Cart.Line line = 1; message Line { string sku = 1; } }"),
        OK,
    ),
    (
        "type-name-qualified-with-package",
        p3("message Cart { Line line = 1; message Line { string sku = 1; } }", "shop"),
        p3("message Cart { .shop.Cart.Line line = 1; message Line { string sku = 1; } }", "shop"),
        OK,
    ),
    ("field-added", p3(CART % ""), p3(CART % "string owner = 2;"), OK),
    (
        "required-field-added",
        p2("message Cart { optional string id = 1; }"),
        p2("message Cart { optional string id = 1; required string owner = 2; }"),
        rules("REQUIRED_FIELD_ADDED"),
    ),
    (
        "field-added-to-a-nested-type",
        p3("message Outer { int32 n = 1; message Cart { string id = 1; } }"),
        p3("message Outer { int32 n = 1; message Cart { string id = 1; string owner = 2; } }"),
        OK,
    ),
    ("field-removed", p3(CART % "string owner = 2;"), p3(CART % ""), OK),
    (
        "required-field-removed",
        p2("message Cart { optional string id = 1; required string owner = 2; }"),
        p2("message Cart { optional string id = 1; }"),
        rules("REQUIRED_FIELD_REMOVED"),
    ),
    (
        "field-number-changed",
        p3("message Cart { string id = 1; }"),
        p3("message Cart { string id = 2; }"),
        OK,
    ),
    ("int32-to-int64", p3(CART % "int32 items = 2;"), p3(CART % "int64 items = 2;"), OK),
    ("string-to-bytes", p3(CART % "string note = 2;"), p3(CART % "bytes note = 2;"), OK),
    (
        "number-to-enum",
        p3(CART % "int32 state = 2;"),
        p3(CART % "State state = 2;" + " enum State { OPEN = 0; PAID = 1; }"),
        OK,
    ),
    (
        "enum-to-number",
        p3(CART % "State state = 2;" + " enum State { OPEN = 0; PAID = 1; }"),
        p3(CART % "int32 state = 2;"),
        OK,
    ),
    (
        "number-to-message-named-like-an-enum",
        p3(CART % "int32 state = 2;"),
        p3(
            "message Cart { string id = 1; .Cart.State state = 2; message State { string s = 1; } }"
            " enum State { OPEN = 0; PAID = 1; }"
        ),
        rules("FIELD_KIND_CHANGED"),
    ),
    (
        "message-named-like-an-enum-to-number",
        p3(
            "message Cart { string id = 1; .Cart.State state = 2; message State { string s = 1; } }"
            " enum State { OPEN = 0; PAID = 1; }"
        ),
        p3(CART % "int32 state = 2;"),
        rules("FIELD_KIND_CHANGED", "MESSAGE_REMOVED"),
    ),
    (
        "enum-constant-renamed",
        p3(CART % "State state = 2;" + " enum State { OPEN = 0; PAID = 1; }"),
        p3(CART % "State state = 2;" + " enum State { OPEN = 0; SETTLED = 1; }"),
        OK,
    ),
    (
        "field-into-a-new-oneof-with-a-new-member",
        p3("message Cart { string id = 1; string coupon = 2; }"),
        p3(
            "message Cart { string id = 1; oneof discount { string coupon = 2; int32 percent "
            "= 3; } }"
        ),
        OK,
    ),
    (
        "two-fields-into-a-new-oneof",
        p3("message Cart { string id = 1; string coupon = 2; }"),
        p3(
            "message Cart { oneof discount { string id = 1; string coupon = 2; int32 percent "
            "= 3; } }"
        ),
        rules("MULTIPLE_FIELDS_MOVED_TO_ONEOF"),
    ),
    (
        "member-added-to-a-oneof",
        p3("message Cart { oneof discount { string coupon = 1; string code = 2; } }"),
        p3(
            "message Cart { oneof discount { string coupon = 1; string code = 2; int32 "
            "percent = 3; } }"
        ),
        OK,
    ),
    (
        "member-removed-from-a-oneof",
        p3(
            "message Cart { oneof discount { string coupon = 1; string code = 2; int32 "
            "percent = 3; } }"
        ),
        p3("message Cart { oneof discount { string coupon = 1; string code = 2; } }"),
        rules("ONEOF_FIELD_REMOVED"),
    ),
    (
        "one-field-into-a-new-oneof",
        p3("message Cart { string id = 1; string coupon = 2; }"),
        p3("message Cart { string id = 1; oneof discount { string coupon = 2; } }"),
        OK,
    ),
    (
        "field-into-an-existing-oneof",
        p3(
            "message Cart { string id = 1; oneof discount { string coupon = 2; string code = 3; } }"
        ),
        p3(
            "message Cart { oneof discount { string id = 1; string coupon = 2; string code = 3; } }"
        ),
        rules("FIELD_MOVED_TO_EXISTING_ONEOF"),
    ),
    (
        "field-into-an-existing-oneof-that-is-renamed",
        p3(
            "message Cart { string id = 1; oneof discount { string coupon = 2; string code = 3; } }"
        ),
        p3("message Cart { oneof rebate { string id = 1; string coupon = 2; string code = 3; } }"),
        rules("FIELD_MOVED_TO_EXISTING_ONEOF"),
    ),
    (
        "number-to-message",
        p3(CART % "int32 owner = 2;"),
        p3(CART % "Owner owner = 2;" + " message Owner { string name = 1; }"),
        rules("FIELD_KIND_CHANGED"),
    ),
    (
        "number-to-string-renamed",
        p3(CART % "int32 items = 2;"),
        p3(CART % "string label = 2;"),
        rules("FIELD_SCALAR_KIND_CHANGED"),
    ),
    (
        "message-type-changed",
        p3(CART % "Owner owner = 2;" + " message Owner { string name = 1; }"),
        p3(CART % "Person owner = 2;" + " message Person { string name = 1; }"),
        rules("FIELD_NAMED_TYPE_CHANGED", "MESSAGE_REMOVED"),
    ),
    (
        "map-value-type-changed",
        p3(CART % "map<string, int32> counts = 2;"),
        p3(CART % "map<string, string> labels = 2;"),
        rules("FIELD_SCALAR_KIND_CHANGED"),
    ),
    (
        "map-value-name-qualified",
        p3("message Cart { map<string, Line> lines = 1; message Line { string sku = 1; } }"),
        p3("message Cart { map<string, Cart.Line> lines = 1; message Line { string sku = 1; } }"),
        OK,
    ),
    (
        "message-field-made-repeated",
        p3("message Cart { optional Line line = 1; message Line { string sku = 1; } }"),
        p3("message Cart { repeated Line line = 1; message Line { string sku = 1; } }"),
        OK,
    ),
    (
        "string-field-made-repeated",
        p3(CART % "optional string tag = 2;"),
        p3(CART % "repeated string tag = 2;"),
        OK,
    ),
    (
        "bytes-field-made-repeated",
        p3(CART % "optional bytes blob = 2;"),
        p3(CART % "repeated bytes blob = 2;"),
        OK,
    ),
    (
        "number-field-made-repeated",
        p3(CART % "optional int64 items = 2;"),
        p3(CART % "repeated int64 items = 2;"),
        rules("FIELD_NUMERIC_LABEL_CHANGED"),
    ),
    ("message-added", p3(CART % ""), p3(CART % "" + " message Coupon { string code = 1; }"), OK),
    (
        "message-added-in-front",
        p3(CART % ""),
        p3("message Coupon { string code = 1; } " + CART % ""),
        OK,
    ),
    (
        "messages-swapped",
        p3(CART % "" + " message Coupon { string code = 1; }"),
        p3("message Coupon { string code = 1; } " + CART % ""),
        OK,
    ),
    (
        "imported-type-changes-a-field-type",
        p3("message Order { .logistics.a.Parcel parcel = 1; }", imports=("parcel.proto",)),
        p3("message Order { .logistics.a.Parcel parcel = 1; }", imports=("parcel2.proto",)),
        rules("FIELD_SCALAR_KIND_CHANGED", "FIELD_NAMED_TYPE_CHANGED"),
        {"parcel.proto": SHIPPING % ("a", "Parcel", "int32 weight = 1;")},
        {"parcel2.proto": SHIPPING % ("a", "Parcel", "string weight = 1;")},
    ),
    (
        "local-type-moved-to-an-import",
        p3(
            "message Order { Parcel parcel = 1; } message Parcel { int32 weight = 1; bool "
            "express = 2; }"
        ),
        p3("message Order { .logistics.a.Parcel parcel = 1; }", imports=("parcel.proto",)),
        rules("MESSAGE_REMOVED"),
        {},
        {"parcel.proto": SHIPPING % ("a", "Parcel", "int32 weight = 1;")},
    ),
    (
        "imported-type-moved-into-the-schema",
        p3("message Order { .logistics.a.Parcel parcel = 1; }", imports=("parcel.proto",)),
        p3(
            "message Order { Parcel parcel = 1; } message Parcel { int32 weight = 1; bool "
            "express = 2; }"
        ),
        OK,
        {"parcel.proto": SHIPPING % ("a", "Parcel", "int32 weight = 1;")},
        {},
    ),
    (
        "import-with-another-package-and-the-same-shape",
        p3("message Order { .logistics.a.Parcel parcel = 1; }", imports=("parcel.proto",)),
        p3("message Order { .logistics.b.Parcel parcel = 1; }", imports=("parcel2.proto",)),
        OK,
        {"parcel.proto": SHIPPING % ("a", "Parcel", "int32 weight = 1;")},
        {"parcel2.proto": SHIPPING % ("b", "Parcel", "int32 weight = 1;")},
    ),
    (
        "nested-import-with-another-package-and-the-same-shape",
        p3("message Order { .logistics.a.Box.Parcel parcel = 1; }", imports=("parcel.proto",)),
        p3("message Order { .logistics.b.Box.Parcel parcel = 1; }", imports=("parcel2.proto",)),
        OK,
        {"parcel.proto": SHIPPING % ("a", "Box", "message Parcel { int32 weight = 1; }")},
        {"parcel2.proto": SHIPPING % ("b", "Box", "message Parcel { int32 weight = 1; }")},
    ),
    (
        "nested-import-with-another-package-and-a-changed-type",
        p3("message Order { .logistics.a.Box.Parcel parcel = 1; }", imports=("parcel.proto",)),
        p3("message Order { .logistics.b.Box.Parcel parcel = 1; }", imports=("parcel2.proto",)),
        rules("FIELD_SCALAR_KIND_CHANGED", "FIELD_NAMED_TYPE_CHANGED"),
        {"parcel.proto": SHIPPING % ("a", "Box", "message Parcel { int32 weight = 1; }")},
        {"parcel2.proto": SHIPPING % ("b", "Box", "message Parcel { string weight = 1; }")},
    ),
    (
        "same-import-path-another-version-with-a-changed-type",
        p3("message Order { .logistics.a.Box.Parcel parcel = 1; }", imports=("parcel.proto",)),
        p3("message Order { .logistics.b.Box.Parcel parcel = 1; }", imports=("parcel.proto",)),
        rules("FIELD_SCALAR_KIND_CHANGED", "FIELD_NAMED_TYPE_CHANGED"),
        {"parcel.proto": SHIPPING % ("a", "Box", "message Parcel { int32 weight = 1; }")},
        {"parcel.proto": SHIPPING % ("b", "Box", "message Parcel { string weight = 1; }")},
    ),
    # -- the oneof rules of DGS-24604: membership changes cannot hide a field's changes
    (
        "type-changed-while-its-oneof-is-renamed",
        p3("message Pay { oneof how { float cash = 1; int32 card = 2; } }"),
        p3("message Pay { oneof method { float cash = 1; string card = 2; } }"),
        rules("FIELD_SCALAR_KIND_CHANGED"),
    ),
    (
        "type-changed-while-its-oneof-is-dissolved",
        p3("message Pay { oneof how { float cash = 1; int32 card = 2; } }"),
        p3("message Pay { float cash = 1; sint64 card = 2; }"),
        rules("FIELD_SCALAR_KIND_CHANGED"),
    ),
    (
        "type-changed-while-moving-into-a-new-oneof",
        p3("message Pay { float cash = 1; int32 card = 2; }"),
        p3("message Pay { float cash = 1; oneof how { sint64 card = 2; } }"),
        rules("FIELD_SCALAR_KIND_CHANGED"),
    ),
    (
        "oneof-renamed-with-the-same-members",
        p3("message Pay { oneof how { float cash = 1; int32 card = 2; } }"),
        p3("message Pay { oneof method { float cash = 1; int32 card = 2; } }"),
        OK,
    ),
    (
        "member-moved-between-differently-named-oneofs",
        p3(
            "message Pay { oneof a { int32 cash = 1; int32 card = 2; } oneof b { int32 "
            "voucher = 3; } }"
        ),
        p3(
            "message Pay { oneof a { int32 cash = 1; } oneof b { int32 voucher = 3; int32 "
            "card = 2; } }"
        ),
        rules("FIELD_MOVED_TO_EXISTING_ONEOF"),
    ),
    (
        "member-of-a-removed-oneof-moved-into-an-existing-one",
        p3("message Pay { oneof a { int32 cash = 1; } oneof b { int32 voucher = 3; } }"),
        p3("message Pay { oneof b { int32 voucher = 3; int32 cash = 1; } }"),
        rules("FIELD_MOVED_TO_EXISTING_ONEOF"),
    ),
    (
        "two-oneofs-merged-into-a-new-one",
        p3("message Pay { oneof a { int32 cash = 1; } oneof b { int32 card = 2; } }"),
        p3("message Pay { oneof c { int32 cash = 1; int32 card = 2; } }"),
        rules("FIELD_MOVED_TO_EXISTING_ONEOF"),
    ),
    (
        "member-split-off-into-a-new-singleton-oneof",
        p3("message Pay { oneof a { int32 cash = 1; int32 card = 2; } }"),
        p3("message Pay { oneof a { int32 card = 2; } oneof b { int32 cash = 1; } }"),
        OK,
    ),
    (
        "member-dropped-while-the-oneof-is-renamed",
        p3("message Pay { oneof how { int32 cash = 1; int32 card = 2; } }"),
        p3("message Pay { oneof method { int32 cash = 1; } }"),
        rules("ONEOF_FIELD_REMOVED"),
    ),
    (
        "member-moved-out-to-the-top-level",
        p3("message Pay { oneof how { int32 cash = 1; int32 card = 2; } }"),
        p3("message Pay { oneof how { int32 cash = 1; } int32 card = 2; }"),
        OK,
    ),
    (
        "member-moved-out-with-a-changed-type",
        p3("message Pay { oneof how { int32 cash = 1; int32 card = 2; } }"),
        p3("message Pay { oneof how { int32 cash = 1; } string card = 2; }"),
        rules("FIELD_SCALAR_KIND_CHANGED"),
    ),
    # -- with-meta: options of Confluent's own imports, and an enum added
    (
        "confluent-imports-and-an-added-enum",
        p3(
            "message Amount { confluent.type.Decimal value = 1 [(confluent.field_meta).params ="
            ' {key: "precision", value: "8"}]; }',
            imports=("confluent/meta.proto", "confluent/type/decimal.proto"),
        ),
        p3(
            "message Amount { confluent.type.Decimal value = 1 [(confluent.field_meta).params ="
            ' {key: "precision", value: "8"}]; } enum Kind { PLAIN = 0; }',
            imports=("confluent/meta.proto", "confluent/type/decimal.proto"),
        ),
        OK,
    ),
    # -- labels as Confluent sees them (its parser gives proto3's plain fields no label)
    (
        "plain-proto3-number-made-repeated-has-no-label-to-compare",
        p3(CART % "int64 items = 2;"),
        p3(CART % "repeated int64 items = 2;"),
        OK,
    ),
    (
        "proto2-optional-number-made-repeated",
        p2("message Cart { optional int64 items = 1; }"),
        p2("message Cart { repeated int64 items = 1; }"),
        rules("FIELD_NUMERIC_LABEL_CHANGED"),
    ),
    (
        "proto2-required-number-made-optional",
        p2("message Cart { required int64 items = 1; }"),
        p2("message Cart { optional int64 items = 1; }"),
        rules("FIELD_NUMERIC_LABEL_CHANGED"),
    ),
    (
        "enum-field-made-repeated",
        p3(CART % "optional State state = 2;" + " enum State { OPEN = 0; }"),
        p3(CART % "repeated State state = 2;" + " enum State { OPEN = 0; }"),
        rules("FIELD_NUMERIC_LABEL_CHANGED"),
    ),
]


@pytest.mark.parametrize("case", PROTOBUF_CASES, ids=[c[0] for c in PROTOBUF_CASES])
def test_protobuf_examples(case: tuple[Any, ...]) -> None:
    _, writer, reader, expected, *refs = case
    writer_refs, reader_refs = refs or ({}, {})
    old = protobuf.parse(writer, writer_refs)
    new = protobuf.parse(reader, reader_refs)
    assert frozenset(i.rule for i in new.incompatibilities(old)) == expected


# -- Avro ----------------------------------------------------------------------------------


def record(*fields: dict[str, Any]) -> str:
    return json.dumps({"type": "record", "name": "Visit", "fields": list(fields)})


V1 = record({"name": "page", "type": "string"})
V2 = record({"name": "page", "type": "string"}, {"name": "ref", "type": "string", "default": "-"})
V3 = record({"name": "page", "type": "string"}, {"name": "ref", "type": "string"})
V4 = record({"name": "url", "type": "string", "aliases": ["page"]})
V6 = record({"name": "page", "type": ["null", "string"], "doc": "the page"})
V7 = record({"name": "page", "type": ["null", "string", "int"], "doc": "the page"})
V8 = record(
    {"name": "page", "type": "string"},
    {"name": "ref", "type": "string", "default": "-"},
    {"name": "agent", "type": "string", "default": "?"},
)

# (id, level, the versions registered before (oldest first), the new schema, compatible?)
AVRO_CASES: list[tuple[str, str, list[str], str, bool]] = [
    ("backward: field with a default added", "BACKWARD", [V1], V2, True),
    ("backward: field without a default added", "BACKWARD", [V1], V3, False),
    ("backward: field renamed with an alias", "BACKWARD", [V1], V4, True),
    ("backward: field made a union", "BACKWARD", [V1], V6, True),
    ("backward: union narrowed to its type", "BACKWARD", [V6], V1, False),
    ("backward: union gains a branch", "BACKWARD", [V6], V7, True),
    ("backward: union loses a branch", "BACKWARD", [V7], V6, False),
    ("backward: only the latest is checked", "BACKWARD", [V1, V2], V3, True),
    ("backward transitive: defaults added step by step", "BACKWARD_TRANSITIVE", [V1, V2], V8, True),
    ("backward transitive: one step", "BACKWARD_TRANSITIVE", [V1], V2, True),
    ("backward transitive: default dropped, one back", "BACKWARD_TRANSITIVE", [V2], V3, True),
    ("backward transitive: default dropped, all back", "BACKWARD_TRANSITIVE", [V1, V2], V3, False),
    ("forward: field with a default added", "FORWARD", [V1], V2, True),
    ("forward: field without a default added", "FORWARD", [V1], V3, True),
    ("forward: default dropped", "FORWARD", [V2], V3, True),
    ("forward: default added", "FORWARD", [V3], V2, True),
    ("forward: only the latest is checked", "FORWARD", [V3, V2], V1, True),
    ("forward transitive: fields removed step by step", "FORWARD_TRANSITIVE", [V8, V2], V1, True),
    ("forward transitive: default added", "FORWARD_TRANSITIVE", [V3], V2, True),
    ("forward transitive: field with a default removed", "FORWARD_TRANSITIVE", [V2], V1, True),
    ("forward transitive: removal all back", "FORWARD_TRANSITIVE", [V3, V2], V1, False),
    ("full: field with a default added", "FULL", [V1], V2, True),
    ("full: only the latest, adding", "FULL", [V1, V2], V3, True),
    ("full: only the latest, removing", "FULL", [V3, V2], V1, True),
    ("full transitive: adding step by step", "FULL_TRANSITIVE", [V1, V2], V8, True),
    ("full transitive: removing step by step", "FULL_TRANSITIVE", [V8, V2], V1, True),
    ("full transitive: default added", "FULL_TRANSITIVE", [V3], V2, True),
    ("full transitive: field with a default removed", "FULL_TRANSITIVE", [V2], V1, True),
    ("full transitive: field with a default added", "FULL_TRANSITIVE", [V1], V2, True),
    ("full transitive: default dropped", "FULL_TRANSITIVE", [V2], V3, True),
    ("full transitive: adding without default, all back", "FULL_TRANSITIVE", [V2, V1], V3, False),
    ("full transitive: removing without default, all back", "FULL_TRANSITIVE", [V2, V3], V1, False),
]


@pytest.mark.parametrize(
    ("case", "level", "before", "schema", "compatible"), AVRO_CASES, ids=[c[0] for c in AVRO_CASES]
)
def test_avro_examples_against_the_registry(
    api: Api,
    subject_name: Callable[[str], str],
    case: str,
    level: str,
    before: list[str],
    schema: str,
    compatible: bool,
) -> None:
    subject = subject_name()
    api.put(f"/config/{subject}", {"compatibility": "NONE"})
    for earlier in before:
        status, body = register(api, subject, earlier)
        assert status == 200, body
    api.put(f"/config/{subject}", {"compatibility": level})
    status, body = api.post(f"/compatibility/subjects/{subject}/versions", {"schema": schema})
    assert (status, body["is_compatible"]) == (200, compatible), body
