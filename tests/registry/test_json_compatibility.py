"""JSON Schema parsing, canonical/normalized text, validation and reader/writer compatibility.

The compatibility table follows Confluent's JSON Schema checker (``json/diff``, strict mode):
each row is (reader = the new schema, writer = the old one, None when the reader can read all the
writer's data, else a rule the checker must report). Content models decide property changes:

    model of the schema          | property added          | property removed
    open (no additionalProps)    | incompatible (*)        | compatible
    closed (additionalProps no)  | compatible if optional  | incompatible
    partially open (a schema)    | compatible if the       | compatible if the
                                 | schema covers it        | schema covers it

(*) old data may hold any value under the new name; Confluent names this
``OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL`` (``PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL``
before May 2026), or ``REQUIRED_...`` when the new property is also required.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from nerve.registry.schema_types import Incompatibility, InvalidSchema, ParsedSchema
from nerve.registry.schema_types.json_schema import JsonSchema, parse

OK = None  # expected result: compatible


def obj(closed: bool | None = None, required: list[str] | None = None, **props: Any) -> dict:
    """An object schema; ``closed`` sets additionalProperties (None leaves it out: open)."""
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    if closed is not None:
        schema["additionalProperties"] = not closed
    return schema


S = {"type": "string"}
N = {"type": "number"}
I = {"type": "integer"}  # noqa: E741


def rules(reader: Any, writer: Any) -> list[str]:
    return [i.rule for i in parse(json.dumps(reader)).incompatibilities(parse(json.dumps(writer)))]


CASES: list[tuple[str, Any, Any, str | None]] = [
    # -- types
    ("same", S, S, OK),
    ("type changed", N, S, "TYPE_CHANGED"),
    ("integer to number extends", N, I, OK),
    ("number to integer narrows", I, N, "TYPE_NARROWED"),
    ("string to empty schema", {}, S, OK),
    ("empty schema to string", S, {}, "TYPE_CHANGED"),
    ("type list extended", {"type": ["string", "null"]}, S, OK),
    ("type list narrowed", S, {"type": ["string", "null"]}, "TYPE_CHANGED"),
    # -- boolean schemas
    ("true reads anything", True, S, OK),
    ("false writer wrote nothing", S, False, OK),
    ("false reader reads nothing", False, S, "TYPE_CHANGED"),
    ("true to false", False, True, "TYPE_CHANGED"),
    # -- open content model
    (
        "open: property added",
        obj(b=S, a=S),
        obj(a=S),
        "OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
    ),
    (
        "open: required property added",
        obj(required=["b"], a=S, b=S),
        obj(a=S),
        "REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
    ),
    ("open: property removed", obj(a=S), obj(a=S, b=S), OK),
    ("open: empty-schema property added", obj(a=S, b={}), obj(a=S), OK),
    # -- closed content model
    ("closed: optional property added", obj(True, a=S, b=S), obj(True, a=S), OK),
    (
        "closed: required property added",
        obj(True, ["b"], a=S, b=S),
        obj(True, a=S),
        "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
    ),
    (
        "closed: required property with default added",
        obj(True, ["b"], a=S, b={"type": "string", "default": "x"}),
        obj(True, a=S),
        OK,
    ),
    (
        "closed: property removed",
        obj(True, a=S),
        obj(True, a=S, b=S),
        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
    ),
    ("closed: false property removed", obj(True, a=S), obj(True, a=S, b=False), OK),
    # -- partially open content model (additionalProperties / patternProperties schemas)
    (
        "partial: added property covered",
        {**obj(a=S, b=S), "additionalProperties": S},
        {**obj(a=S), "additionalProperties": S},
        OK,
    ),
    (
        "partial: added property not covered",
        {**obj(a=S, b=N), "additionalProperties": S},
        {**obj(a=S), "additionalProperties": S},
        "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
    ),
    (
        "partial: removed property covered",
        {**obj(a=S), "additionalProperties": {"type": ["string", "number"]}},
        {**obj(a=S, b=N), "additionalProperties": S},
        OK,  # "b" (a number) still fits the widened additionalProperties
    ),
    (
        "partial: removed property not covered",
        {**obj(a=S), "additionalProperties": S},
        {**obj(a=S, b=N), "additionalProperties": S},
        "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
    ),
    (
        "partial: pattern property covers added one",
        {**obj(a=S, i_1=N), "patternProperties": {"^i_": N}},
        {**obj(a=S), "patternProperties": {"^i_": N}},
        OK,
    ),
    (
        "partial: pattern property does not cover added one",
        {**obj(a=S, i_1=I), "patternProperties": {"^i_": N}},
        {**obj(a=S), "patternProperties": {"^i_": N}},
        "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
    ),
    # -- required
    ("required added", obj(required=["a"], a=S), obj(a=S), "REQUIRED_ATTRIBUTE_ADDED"),
    ("required removed", obj(a=S), obj(required=["a"], a=S), OK),
    (
        "required added with default",
        obj(required=["a"], a={"type": "string", "default": ""}),
        obj(a={"type": "string", "default": ""}),
        OK,
    ),
    # -- additionalProperties
    ("additionalProperties false to true", obj(False, a=S), obj(True, a=S), OK),
    (
        "additionalProperties true to false",
        obj(True, a=S),
        obj(False, a=S),
        "ADDITIONAL_PROPERTIES_REMOVED",
    ),
    (
        "additionalProperties narrowed to a schema",
        {**obj(a=S), "additionalProperties": S},
        obj(a=S),
        "ADDITIONAL_PROPERTIES_NARROWED",
    ),
    ("additionalProperties extended", obj(a=S), {**obj(a=S), "additionalProperties": S}, OK),
    (
        "additionalProperties schema changed",
        {**obj(a=S), "additionalProperties": N},
        {**obj(a=S), "additionalProperties": S},
        "TYPE_CHANGED",
    ),
    # -- enum and const
    ("enum extended", {"enum": ["a", "b"]}, {"enum": ["a"]}, OK),
    ("enum narrowed", {"enum": ["a"]}, {"enum": ["a", "b"]}, "ENUM_ARRAY_NARROWED"),
    ("enum changed", {"enum": ["a", "c"]}, {"enum": ["a", "b"]}, "ENUM_ARRAY_CHANGED"),
    (
        "typed enum narrowed",
        {"type": "string", "enum": ["a"]},
        {"type": "string", "enum": ["a", "b"]},
        "ENUM_ARRAY_NARROWED",
    ),
    (
        "typed enum extended",
        {"type": "string", "enum": ["a", "b"]},
        {"type": "string", "enum": ["a"]},
        OK,
    ),
    ("enum dropped", S, {"type": "string", "enum": ["a"]}, OK),
    ("enum added", {"type": "string", "enum": ["a"]}, S, "TYPE_CHANGED"),
    ("const changed", {"const": 1}, {"const": 2}, "ENUM_ARRAY_CHANGED"),
    # -- numbers
    ("maximum added", {"type": "number", "maximum": 5}, N, "MAXIMUM_ADDED"),
    ("maximum removed", N, {"type": "number", "maximum": 5}, OK),
    (
        "maximum decreased",
        {"type": "number", "maximum": 4},
        {"type": "number", "maximum": 5},
        "MAXIMUM_DECREASED",
    ),
    ("maximum increased", {"type": "number", "maximum": 6}, {"type": "number", "maximum": 5}, OK),
    ("minimum added", {"type": "number", "minimum": 0}, N, "MINIMUM_ADDED"),
    (
        "minimum increased",
        {"type": "number", "minimum": 1},
        {"type": "number", "minimum": 0},
        "MINIMUM_INCREASED",
    ),
    ("minimum decreased", {"type": "number", "minimum": -1}, {"type": "number", "minimum": 0}, OK),
    (
        "exclusiveMaximum decreased",
        {"type": "number", "exclusiveMaximum": 4},
        {"type": "number", "exclusiveMaximum": 5},
        "EXCLUSIVE_MAXIMUM_DECREASED",
    ),
    (
        "exclusiveMinimum added",
        {"type": "number", "exclusiveMinimum": 0},
        N,
        "EXCLUSIVE_MINIMUM_ADDED",
    ),
    (
        "multipleOf reduced",
        {"type": "number", "multipleOf": 2},
        {"type": "number", "multipleOf": 4},
        OK,
    ),
    (
        "multipleOf expanded",
        {"type": "number", "multipleOf": 4},
        {"type": "number", "multipleOf": 2},
        "MULTIPLE_OF_EXPANDED",
    ),
    (
        "multipleOf changed",
        {"type": "number", "multipleOf": 3},
        {"type": "number", "multipleOf": 2},
        "MULTIPLE_OF_CHANGED",
    ),
    # -- strings
    ("maxLength added", {"type": "string", "maxLength": 5}, S, "MAX_LENGTH_ADDED"),
    (
        "maxLength decreased",
        {"type": "string", "maxLength": 4},
        {"type": "string", "maxLength": 5},
        "MAX_LENGTH_DECREASED",
    ),
    (
        "maxLength increased",
        {"type": "string", "maxLength": 6},
        {"type": "string", "maxLength": 5},
        OK,
    ),
    ("minLength added", {"type": "string", "minLength": 1}, S, "MIN_LENGTH_ADDED"),
    (
        "minLength increased",
        {"type": "string", "minLength": 2},
        {"type": "string", "minLength": 1},
        "MIN_LENGTH_INCREASED",
    ),
    ("minLength removed", S, {"type": "string", "minLength": 1}, OK),
    ("pattern added", {"type": "string", "pattern": "^a"}, S, "PATTERN_ADDED"),
    (
        "pattern changed",
        {"type": "string", "pattern": "^b"},
        {"type": "string", "pattern": "^a"},
        "PATTERN_CHANGED",
    ),
    ("pattern removed", S, {"type": "string", "pattern": "^a"}, OK),
    # -- objects: property counts and dependencies
    ("maxProperties added", {**obj(a=S), "maxProperties": 3}, obj(a=S), "MAX_PROPERTIES_ADDED"),
    (
        "maxProperties decreased",
        {**obj(a=S), "maxProperties": 2},
        {**obj(a=S), "maxProperties": 3},
        "MAX_PROPERTIES_DECREASED",
    ),
    (
        "maxProperties increased",
        {**obj(a=S), "maxProperties": 4},
        {**obj(a=S), "maxProperties": 3},
        OK,
    ),
    ("minProperties added", {**obj(a=S), "minProperties": 1}, obj(a=S), "MIN_PROPERTIES_ADDED"),
    (
        "minProperties increased",
        {**obj(a=S), "minProperties": 2},
        {**obj(a=S), "minProperties": 1},
        "MIN_PROPERTIES_INCREASED",
    ),
    ("minProperties removed", obj(a=S), {**obj(a=S), "minProperties": 1}, OK),
    (
        "dependency added",
        {**obj(a=S, b=S), "dependencies": {"a": ["b"]}},
        obj(a=S, b=S),
        "DEPENDENCY_ARRAY_ADDED",
    ),
    ("dependency removed", obj(a=S, b=S), {**obj(a=S, b=S), "dependencies": {"a": ["b"]}}, OK),
    # -- arrays
    (
        "items type changed",
        {"type": "array", "items": N},
        {"type": "array", "items": S},
        "TYPE_CHANGED",
    ),
    ("items extended", {"type": "array", "items": N}, {"type": "array", "items": I}, OK),
    ("items schema added", {"type": "array", "items": S}, {"type": "array"}, "SCHEMA_ADDED"),
    ("items schema removed", {"type": "array"}, {"type": "array", "items": S}, OK),
    (
        "items recurse into objects",
        {"type": "array", "items": obj(True, ["b"], a=S, b=S)},
        {"type": "array", "items": obj(True, a=S)},
        "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
    ),
    ("maxItems added", {"type": "array", "maxItems": 3}, {"type": "array"}, "MAX_ITEMS_ADDED"),
    (
        "maxItems decreased",
        {"type": "array", "maxItems": 2},
        {"type": "array", "maxItems": 3},
        "MAX_ITEMS_DECREASED",
    ),
    ("minItems added", {"type": "array", "minItems": 1}, {"type": "array"}, "MIN_ITEMS_ADDED"),
    (
        "minItems increased",
        {"type": "array", "minItems": 2},
        {"type": "array", "minItems": 1},
        "MIN_ITEMS_INCREASED",
    ),
    ("minItems decreased", {"type": "array", "minItems": 1}, {"type": "array", "minItems": 2}, OK),
    (
        "uniqueItems added",
        {"type": "array", "uniqueItems": True},
        {"type": "array"},
        "UNIQUE_ITEMS_ADDED",
    ),
    ("uniqueItems removed", {"type": "array"}, {"type": "array", "uniqueItems": True}, OK),
    (
        "tuple item added to open",
        {"type": "array", "items": [S, N]},
        {"type": "array", "items": [S]},
        "ITEM_ADDED_TO_OPEN_CONTENT_MODEL",
    ),
    (
        "tuple item removed from open",
        {"type": "array", "items": [S]},
        {"type": "array", "items": [S, N]},
        OK,
    ),
    (
        "tuple item added to closed",
        {"type": "array", "items": [S, N], "additionalItems": False},
        {"type": "array", "items": [S], "additionalItems": False},
        OK,
    ),
    (
        "tuple item removed from closed",
        {"type": "array", "items": [S], "additionalItems": False},
        {"type": "array", "items": [S, N], "additionalItems": False},
        "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL",
    ),
    (
        "2020-12 prefixItems item added to open",
        {"$schema": "https://json-schema.org/draft/2020-12/schema", "prefixItems": [S, N]},
        {"$schema": "https://json-schema.org/draft/2020-12/schema", "prefixItems": [S]},
        "ITEM_ADDED_TO_OPEN_CONTENT_MODEL",
    ),
    # -- combined schemas
    ("oneOf extended", {"oneOf": [S, N]}, {"oneOf": [S]}, OK),
    ("oneOf narrowed", {"oneOf": [S]}, {"oneOf": [S, N]}, "SUM_TYPE_NARROWED"),
    (
        "anyOf narrowed",
        {"anyOf": [S, {"type": "boolean"}]},
        {"anyOf": [S, N, {"type": "boolean"}]},
        "SUM_TYPE_NARROWED",
    ),
    ("anyOf reordered", {"anyOf": [N, S]}, {"anyOf": [S, N]}, OK),
    ("allOf extended", {"allOf": [S, {"maxLength": 5}]}, {"allOf": [S]}, "PRODUCT_TYPE_EXTENDED"),
    ("allOf narrowed", {"allOf": [S]}, {"allOf": [S, {"maxLength": 5}]}, OK),
    ("oneOf to allOf", {"allOf": [S, N]}, {"oneOf": [S, N]}, "COMBINED_TYPE_CHANGED"),
    ("oneOf to anyOf", {"anyOf": [S, N]}, {"oneOf": [S, N]}, OK),
    (
        "oneOf branches changed",
        {"oneOf": [S, {"type": "boolean"}]},
        {"oneOf": [S, N]},
        "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
    ),
    ("plain to oneOf containing it", {"oneOf": [S, N]}, S, OK),
    ("oneOf to one of its branches", S, {"oneOf": [S, N]}, "TYPE_CHANGED"),
    ("singleton oneOf unwrapped", S, {"oneOf": [S]}, OK),
    ("allOf to one of its parts", S, {"allOf": [S, {"maxLength": 3}]}, OK),
    ("not narrowed", {"not": S}, {"not": {"type": ["string", "number"]}}, OK),
    ("not extended", {"not": {"type": ["string", "number"]}}, {"not": S}, "NOT_TYPE_EXTENDED"),
    # -- $ref through local definitions
    (
        "definitions ref changed",
        {"definitions": {"m": N}, **obj(a={"$ref": "#/definitions/m"})},
        {"definitions": {"m": S}, **obj(a={"$ref": "#/definitions/m"})},
        "TYPE_CHANGED",
    ),
    (
        "$defs ref unchanged, inlined",
        obj(a=S),
        {"$defs": {"m": S}, **obj(a={"$ref": "#/$defs/m"})},
        OK,
    ),
    (
        "recursive ref compatible",
        {
            "definitions": {"n": obj(v=N, next={"$ref": "#/definitions/n"})},
            "$ref": "#/definitions/n",
        },
        {
            "definitions": {"n": obj(v=I, next={"$ref": "#/definitions/n"})},
            "$ref": "#/definitions/n",
        },
        OK,
    ),
    (
        "recursive ref incompatible deep down",
        {
            "definitions": {"n": obj(v=I, next={"$ref": "#/definitions/n"})},
            "$ref": "#/definitions/n",
        },
        {
            "definitions": {"n": obj(v=N, next={"$ref": "#/definitions/n"})},
            "$ref": "#/definitions/n",
        },
        "TYPE_NARROWED",
    ),
    # -- nested properties
    ("nested type change", obj(o=obj(x=N)), obj(o=obj(x=S)), "TYPE_CHANGED"),
    ("nested narrowing", obj(o=obj(x=I)), obj(o=obj(x=N)), "TYPE_NARROWED"),
    # -- draft 4's boolean exclusiveMaximum
    (
        "draft 4 exclusive maximum decreased",
        {
            "$schema": "http://json-schema.org/draft-04/schema#",
            "type": "number",
            "maximum": 4,
            "exclusiveMaximum": True,
        },
        {
            "$schema": "http://json-schema.org/draft-04/schema#",
            "type": "number",
            "maximum": 5,
            "exclusiveMaximum": True,
        },
        "EXCLUSIVE_MAXIMUM_DECREASED",
    ),
]


@pytest.mark.parametrize(
    ("reader", "writer", "expected"),
    [pytest.param(r, w, e, id=name) for name, r, w, e in CASES],
)
def test_compatibility(reader: Any, writer: Any, expected: str | None) -> None:
    found = rules(reader, writer)
    if expected is None:
        assert found == []
    else:
        assert expected in found


def test_open_and_closed_models_are_mirror_images() -> None:
    """The same edit flips verdicts between open and closed models (Confluent's semantics)."""
    small_open, big_open = obj(a=S), obj(a=S, b=S)
    small_closed, big_closed = obj(True, a=S), obj(True, a=S, b=S)
    assert rules(big_open, small_open) == ["OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"]
    assert rules(small_open, big_open) == []
    assert rules(big_closed, small_closed) == []
    assert rules(small_closed, big_closed) == ["PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"]


def test_incompatibility_names_path_and_property() -> None:
    reader = obj(amount=S, id=I)
    writer = obj(amount=N, id=I)
    [inc] = parse(json.dumps(reader)).incompatibilities(parse(json.dumps(writer)))
    assert isinstance(inc, Incompatibility)
    assert inc.path == "#/properties/amount"
    assert inc.rule == "TYPE_CHANGED"
    assert "amount" in inc.message
    assert "'number'" in inc.message and "'string'" in inc.message


def test_nested_path_is_a_json_pointer() -> None:
    reader = obj(**{"a/b": obj(x={"type": "string", "maxLength": 3})})
    writer = obj(**{"a/b": obj(x=S)})
    [inc] = parse(json.dumps(reader)).incompatibilities(parse(json.dumps(writer)))
    assert inc.path == "#/properties/a~1b/properties/x/maxLength"
    assert inc.rule == "MAX_LENGTH_ADDED"
    assert "a/b.x" in inc.message


def test_other_schema_type_is_incompatible() -> None:
    class Other(ParsedSchema):
        schema_type = "AVRO"

        def canonical(self) -> str:
            return '"string"'

        def incompatibilities(self, writer: ParsedSchema) -> list[Incompatibility]:
            return []

    assert parse("{}").incompatibilities(Other())


# -- references


CUSTOMER = json.dumps(obj(True, ["name"], name=S))
CUSTOMER_V2 = json.dumps(obj(True, ["name", "email"], name=S, email=S))
ORDER = json.dumps(obj(customer={"$ref": "customer.json"}, total=N))


def test_reference_resolves_for_validation() -> None:
    order = parse(ORDER, {"customer.json": CUSTOMER})
    assert order.validate({"customer": {"name": "ada"}, "total": 3}) == []
    errors = order.validate({"customer": {"nom": "ada"}, "total": 3})
    assert any(e.startswith("$.customer") for e in errors)


def test_reference_resolves_for_compatibility() -> None:
    old = parse(ORDER, {"customer.json": CUSTOMER})
    new = parse(ORDER, {"customer.json": CUSTOMER_V2})
    found = new.incompatibilities(old)
    assert [(i.path, i.rule) for i in found] == [
        (
            "#/properties/customer/properties/email",
            "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
        )
    ]
    # the old schema, closed, cannot read new data holding "email"
    assert [(i.path, i.rule) for i in old.incompatibilities(new)] == [
        ("#/properties/customer/properties/email", "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL")
    ]


def test_reference_with_base_id() -> None:
    schema = json.dumps(
        {"$id": "https://example.com/schemas/order.json", **obj(c={"$ref": "customer.json"})}
    )
    parsed = parse(schema, {"customer.json": CUSTOMER})
    assert parsed.validate({"c": {"name": 1}}) == ["$.c.name: 1 is not of type 'string'"]


def test_unresolvable_reference_is_invalid() -> None:
    with pytest.raises(InvalidSchema, match=r"#/properties/customer/\$ref.*customer\.json"):
        parse(ORDER)


def test_unresolvable_local_ref_is_invalid() -> None:
    with pytest.raises(InvalidSchema, match="#/definitions/nope"):
        parse(json.dumps(obj(a={"$ref": "#/definitions/nope"})))


def test_invalid_reference_text() -> None:
    with pytest.raises(InvalidSchema, match=r"customer\.json"):
        parse(ORDER, {"customer.json": "{not json"})


# -- parsing


@pytest.mark.parametrize(
    "text",
    ["", "{", "[1,", "{'a': 1}", '{"type": NaN}'],
)
def test_rejects_invalid_json(text: str) -> None:
    with pytest.raises(InvalidSchema, match="JSON"):
        parse(text)


@pytest.mark.parametrize("text", ["[]", '"string"', "5", "null"])
def test_rejects_non_schema_json(text: str) -> None:
    with pytest.raises(InvalidSchema, match="object or boolean"):
        parse(text)


def test_rejects_meta_schema_violation_with_pointer() -> None:
    with pytest.raises(InvalidSchema, match="#/type") as exc:
        parse('{"type": 5}')
    assert "5" in str(exc.value)


def test_rejects_nested_meta_schema_violation_with_pointer() -> None:
    with pytest.raises(InvalidSchema, match="#/properties/a/minLength"):
        parse(json.dumps(obj(a={"type": "string", "minLength": -1})))


def test_rejects_bad_regex() -> None:
    with pytest.raises(InvalidSchema, match="#/properties/a/pattern"):
        parse(json.dumps(obj(a={"type": "string", "pattern": "["})))


@pytest.mark.parametrize(
    "uri",
    ["http://example.com/my-schema#", "http://json-schema.org/draft-03/schema#", 5],
)
def test_rejects_unknown_meta_schema(uri: Any) -> None:
    with pytest.raises(InvalidSchema, match=r"\$schema"):
        parse(json.dumps({"$schema": uri, "type": "string"}))


@pytest.mark.parametrize(
    "uri",
    [
        "http://json-schema.org/draft-04/schema#",
        "http://json-schema.org/draft-06/schema#",
        "http://json-schema.org/draft-07/schema#",
        "http://json-schema.org/draft-07/schema",
        "https://json-schema.org/draft/2019-09/schema",
        "https://json-schema.org/draft/2020-12/schema",
    ],
)
def test_accepts_each_draft(uri: str) -> None:
    parsed = parse(json.dumps({"$schema": uri, **obj(a=S)}))
    assert parsed.validate({"a": 1}) == ["$.a: 1 is not of type 'string'"]


def test_draft_is_checked_by_its_own_meta_schema() -> None:
    # exclusiveMaximum is a boolean in draft 4 and a number from draft 6 on
    draft4 = "http://json-schema.org/draft-04/schema#"
    parse(json.dumps({"$schema": draft4, "maximum": 5, "exclusiveMaximum": True}))
    with pytest.raises(InvalidSchema, match="#/exclusiveMaximum"):
        parse(json.dumps({"maximum": 5, "exclusiveMaximum": True}))


@pytest.mark.parametrize("text", ["true", "false"])
def test_boolean_schemas(text: str) -> None:
    parsed = parse(text)
    assert parsed.canonical() == text
    assert (parsed.validate(42) == []) is (text == "true")


def test_ref_siblings_apply_from_2019_09() -> None:
    def schema(draft: str, max_length: int) -> str:
        return json.dumps(
            {
                "$schema": draft,
                "$defs": {"s": S},
                **obj(a={"$ref": "#/$defs/s", "maxLength": max_length}),
            }
        )

    modern = "https://json-schema.org/draft/2020-12/schema"
    found = parse(schema(modern, 3)).incompatibilities(parse(schema(modern, 5)))
    assert [(i.path, i.rule) for i in found] == [
        ("#/properties/a/maxLength", "MAX_LENGTH_DECREASED")
    ]


# -- canonical / normalized text, identity


def test_canonical_is_compact_and_keeps_key_order() -> None:
    text = '{\n  "type": "object",\n  "properties": {"b": {"type": "string"}, "a": {}}\n}'
    parsed = parse(text)
    assert parsed.canonical() == '{"type":"object","properties":{"b":{"type":"string"},"a":{}}}'
    assert parsed.schema_type == "JSON"


def test_canonical_keeps_unicode() -> None:
    assert parse('{"description": "café"}').canonical() == '{"description":"café"}'


def test_normalized_sorts_keys_recursively() -> None:
    one = parse('{"type": "object", "properties": {"b": {"type": "string"}, "a": {}}}')
    two = parse('{"properties": {"a": {}, "b": {"type": "string"}}, "type": "object"}')
    assert one.canonical() != two.canonical()
    assert one.normalized() == two.normalized()
    assert one.normalized() == '{"properties":{"a":{},"b":{"type":"string"}},"type":"object"}'


def test_equality_follows_canonical_text() -> None:
    assert parse('{"type": "string"}') == parse('{ "type" : "string" }')
    assert hash(parse('{"type": "string"}')) == hash(parse('{"type":"string"}'))
    assert parse('{"type": "string"}') != parse('{"type": "number"}')


def test_parsed_schema_is_immutable() -> None:
    parsed = parse('{"type": "string"}')
    with pytest.raises(AttributeError):
        parsed._schema = {}  # type: ignore[misc]
    copy = parsed.schema
    copy["type"] = "number"
    assert parsed.canonical() == '{"type":"string"}'
    assert isinstance(parsed, JsonSchema)


# -- validation


def test_validate_names_the_field() -> None:
    parsed = parse(
        json.dumps(obj(required=["amount"], amount=N, tags={"type": "array", "items": S}))
    )
    assert parsed.validate({"amount": 1.5, "tags": ["x"]}) == []
    assert parsed.validate({"amount": "abc"}) == ["$.amount: 'abc' is not of type 'number'"]
    assert parsed.validate({"amount": 1, "tags": ["x", 2]}) == [
        "$.tags[1]: 2 is not of type 'string'"
    ]
    assert parsed.validate({}) == ["$: 'amount' is a required property"]


def test_validate_reports_every_error() -> None:
    parsed = parse(json.dumps(obj(True, a=S, b=N)))
    errors = parsed.validate({"a": 1, "b": "x", "c": True})
    assert len(errors) == 3
    assert errors[0].startswith("$:")  # the unexpected property "c", reported on the object
    assert any(e.startswith("$.a:") for e in errors)
    assert any(e.startswith("$.b:") for e in errors)
