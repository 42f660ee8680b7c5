"""Avro parsing, canonical/normalized text and reader/writer compatibility (schema resolution)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nerve.registry.schema_types import Incompatibility, InvalidSchema, ParsedSchema
from nerve.registry.schema_types.avro import AvroSchema, parse

OK = None  # expected result: compatible


def record(name: str, *fields: dict[str, Any], **extra: Any) -> str:
    return json.dumps({"type": "record", "name": name, "fields": list(fields), **extra})


def f(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def enum(symbols: list[str], **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "Suit", "symbols": symbols, **extra}


def fixed(size: int, name: str = "Hash") -> dict[str, Any]:
    return {"type": "fixed", "name": name, "size": size}


def rules(reader: str, writer: str) -> list[str]:
    return [i.rule for i in parse(reader).incompatibilities(parse(writer))]


LIST_V1 = record("Node", f("value", "int"), f("next", ["null", "Node"]))
LIST_V2 = record("Node", f("value", "long"), f("next", ["null", "Node"]))
LIST_BAD = record("Node", f("value", "string"), f("next", ["null", "Node"]))

# (reader, writer, None if compatible else the one rule expected)
CASES: list[tuple[str, str, str, str | None]] = [
    # identical and primitive promotions
    ("same int", '"int"', '"int"', OK),
    ("int -> long", '"long"', '"int"', OK),
    ("int -> float", '"float"', '"int"', OK),
    ("int -> double", '"double"', '"int"', OK),
    ("long -> float", '"float"', '"long"', OK),
    ("long -> double", '"double"', '"long"', OK),
    ("float -> double", '"double"', '"float"', OK),
    ("string -> bytes", '"bytes"', '"string"', OK),
    ("bytes -> string", '"string"', '"bytes"', OK),
    ("long -/-> int", '"int"', '"long"', "TYPE_MISMATCH"),
    ("double -/-> float", '"float"', '"double"', "TYPE_MISMATCH"),
    ("float -/-> long", '"long"', '"float"', "TYPE_MISMATCH"),
    ("int -/-> string", '"string"', '"int"', "TYPE_MISMATCH"),
    ("null -/-> boolean", '"boolean"', '"null"', "TYPE_MISMATCH"),
    ("object spelling", '{"type":"long"}', '"int"', OK),
    ("logical type ignored", '{"type":"long","logicalType":"timestamp-millis"}', '"long"', OK),
    # records
    (
        "writer-only field is skipped",
        record("P", f("a", "int")),
        record("P", f("a", "int"), f("b", "string")),
        OK,
    ),
    (
        "reader field with default",
        record("P", f("a", "int"), f("b", "string", default="x")),
        record("P", f("a", "int")),
        OK,
    ),
    (
        "reader field with null default",
        record("P", f("a", "int"), f("b", ["null", "string"], default=None)),
        record("P", f("a", "int")),
        OK,
    ),
    (
        "reader field without default",
        record("P", f("a", "int"), f("b", "string")),
        record("P", f("a", "int")),
        "READER_FIELD_MISSING_DEFAULT_VALUE",
    ),
    (
        "field type promoted",
        record("P", f("a", "long")),
        record("P", f("a", "int")),
        OK,
    ),
    (
        "field type narrowed",
        record("P", f("a", "int")),
        record("P", f("a", "long")),
        "TYPE_MISMATCH",
    ),
    (
        "record name differs",
        record("P", f("a", "int")),
        record("Q", f("a", "int")),
        "NAME_MISMATCH",
    ),
    (
        "namespaces differ, names equal (unqualified match, as Java Avro)",
        record("a.P", f("a", "int")),
        record("b.P", f("a", "int")),
        OK,
    ),
    (
        "record alias",
        record("New", f("a", "int"), aliases=["Old"]),
        record("Old", f("a", "int")),
        OK,
    ),
    (
        "record alias resolved in namespace",
        record("New", f("a", "int"), namespace="x", aliases=["Old"]),
        record("x.Old", f("a", "int")),
        OK,
    ),
    (
        "field alias",
        record("P", f("amount", "long", aliases=["amt"])),
        record("P", f("amt", "int")),
        OK,
    ),
    (
        "field alias with wrong type",
        record("P", f("amount", "int", aliases=["amt"])),
        record("P", f("amt", "string")),
        "TYPE_MISMATCH",
    ),
    ("record vs primitive", record("P", f("a", "int")), '"int"', "TYPE_MISMATCH"),
    (
        "nested record, inner field narrowed",
        record("Order", f("payment", json.loads(record("Payment", f("amount", "int"))))),
        record("Order", f("payment", json.loads(record("Payment", f("amount", "double"))))),
        "TYPE_MISMATCH",
    ),
    (
        "nested record, inner field added without default",
        record(
            "Order",
            f("payment", json.loads(record("Payment", f("amount", "int"), f("cur", "string")))),
        ),
        record("Order", f("payment", json.loads(record("Payment", f("amount", "int"))))),
        "READER_FIELD_MISSING_DEFAULT_VALUE",
    ),
    # recursive records
    ("recursive, same", LIST_V1, LIST_V1, OK),
    ("recursive, promoted", LIST_V2, LIST_V1, OK),
    ("recursive, incompatible", LIST_BAD, LIST_V1, "TYPE_MISMATCH"),
    # enums
    ("enum same", json.dumps(enum(["A", "B"])), json.dumps(enum(["A", "B"])), OK),
    ("enum reader has more", json.dumps(enum(["A", "B", "C"])), json.dumps(enum(["A", "B"])), OK),
    (
        "enum writer has more, no default",
        json.dumps(enum(["A", "B"])),
        json.dumps(enum(["A", "B", "C"])),
        "MISSING_ENUM_SYMBOLS",
    ),
    (
        "enum writer has more, reader default",
        json.dumps(enum(["A", "B", "UNKNOWN"], default="UNKNOWN")),
        json.dumps(enum(["A", "B", "C"])),
        OK,
    ),
    (
        "enum name differs",
        json.dumps(enum(["A"])),
        json.dumps({**enum(["A"]), "name": "Colour"}),
        "NAME_MISMATCH",
    ),
    ("enum vs string", json.dumps(enum(["A"])), '"string"', "TYPE_MISMATCH"),
    # fixed
    ("fixed same", json.dumps(fixed(16)), json.dumps(fixed(16)), OK),
    ("fixed size differs", json.dumps(fixed(16)), json.dumps(fixed(8)), "FIXED_SIZE_MISMATCH"),
    ("fixed name differs", json.dumps(fixed(16)), json.dumps(fixed(16, "Other")), "NAME_MISMATCH"),
    ("fixed vs bytes", json.dumps(fixed(16)), '"bytes"', "TYPE_MISMATCH"),
    # arrays and maps
    (
        "array items promoted",
        '{"type":"array","items":"long"}',
        '{"type":"array","items":"int"}',
        OK,
    ),
    (
        "array items narrowed",
        '{"type":"array","items":"int"}',
        '{"type":"array","items":"long"}',
        "TYPE_MISMATCH",
    ),
    (
        "map values promoted",
        '{"type":"map","values":"double"}',
        '{"type":"map","values":"int"}',
        OK,
    ),
    (
        "map values narrowed",
        '{"type":"map","values":"int"}',
        '{"type":"map","values":"string"}',
        "TYPE_MISMATCH",
    ),
    (
        "array vs map",
        '{"type":"array","items":"int"}',
        '{"type":"map","values":"int"}',
        "TYPE_MISMATCH",
    ),
    # unions
    ("reader union has writer type", '["null","string"]', '"string"', OK),
    ("reader union promotes writer type", '["null","long"]', '"int"', OK),
    ("reader union lacks writer type", '["null","string"]', '"int"', "MISSING_UNION_BRANCH"),
    ("writer union, all branches readable", '"double"', '["int","long","float"]', OK),
    ("writer union, one branch unreadable", '"string"', '["null","string"]', "TYPE_MISMATCH"),
    ("union to wider union", '["null","string","int"]', '["null","string"]', OK),
    (
        "union to narrower union",
        '["null","string"]',
        '["null","string","int"]',
        "MISSING_UNION_BRANCH",
    ),
    ("union branch order irrelevant", '["string","null"]', '["null","string"]', OK),
    (
        "optional field made required",
        record("P", f("a", "string")),
        record("P", f("a", ["null", "string"])),
        "TYPE_MISMATCH",
    ),
    (
        "required field made optional",
        record("P", f("a", ["null", "string"])),
        record("P", f("a", "string")),
        OK,
    ),
]


@pytest.mark.parametrize(
    ("reader", "writer", "expected"),
    [pytest.param(r, w, e, id=name) for name, r, w, e in CASES],
)
def test_compatibility_table(reader: str, writer: str, expected: str | None) -> None:
    found = rules(reader, writer)
    if expected is None:
        assert found == []
    else:
        assert found, "expected an incompatibility"
        assert set(found) == {expected}


def test_every_rule_is_covered() -> None:
    covered = {expected for *_, expected in CASES if expected}
    assert covered == {
        "TYPE_MISMATCH",
        "NAME_MISMATCH",
        "FIXED_SIZE_MISMATCH",
        "MISSING_ENUM_SYMBOLS",
        "READER_FIELD_MISSING_DEFAULT_VALUE",
        "MISSING_UNION_BRANCH",
    }


def test_message_and_path_name_the_field() -> None:
    reader = parse(record("Payment", f("amount", "int"), f("currency", "string")))
    writer = parse(record("Payment", f("amount", "long")))
    problems = reader.incompatibilities(writer)
    by_rule = {p.rule: p for p in problems}
    assert set(by_rule) == {"TYPE_MISMATCH", "READER_FIELD_MISSING_DEFAULT_VALUE"}

    mismatch = by_rule["TYPE_MISMATCH"]
    assert mismatch.path == "/fields/amount/type"
    assert "Payment.amount" in mismatch.message
    assert "int" in mismatch.message and "long" in mismatch.message

    missing = by_rule["READER_FIELD_MISSING_DEFAULT_VALUE"]
    assert missing.path == "/fields/currency"
    assert "'Payment.currency'" in missing.message
    assert "no default" in missing.message
    assert str(missing).startswith("/fields/currency: ")


def test_nested_path() -> None:
    reader = parse(
        record(
            "Order",
            f("lines", {"type": "array", "items": json.loads(record("Line", f("qty", "int")))}),
        )
    )
    writer = parse(
        record(
            "Order",
            f("lines", {"type": "array", "items": json.loads(record("Line", f("qty", "long")))}),
        )
    )
    [problem] = reader.incompatibilities(writer)
    assert problem == Incompatibility(
        "/fields/lines/type/items/fields/qty/type",
        "TYPE_MISMATCH",
        problem.message,
    )
    assert "Order.lines.items.qty" in problem.message


def test_enum_message_lists_missing_symbols() -> None:
    [problem] = parse(json.dumps(enum(["A"]))).incompatibilities(
        parse(json.dumps(enum(["A", "Z"])))
    )
    assert problem.rule == "MISSING_ENUM_SYMBOLS"
    assert problem.path == "/symbols"
    assert "Z" in problem.message


def test_union_branch_message() -> None:
    [problem] = parse('["null","string"]').incompatibilities(parse('"int"'))
    assert problem.rule == "MISSING_UNION_BRANCH"
    assert problem.path == "/"
    assert "int" in problem.message


def test_recursive_against_itself_terminates_and_reports_once() -> None:
    tree = record(
        "Tree",
        f("label", "string"),
        f("children", {"type": "array", "items": "Tree"}),
    )
    tree_int = record(
        "Tree",
        f("label", "int"),
        f("children", {"type": "array", "items": "Tree"}),
    )
    assert parse(tree).incompatibilities(parse(tree)) == []
    problems = parse(tree_int).incompatibilities(parse(tree))
    assert [p.path for p in problems] == ["/fields/label/type"]


def test_non_avro_writer_is_a_type_mismatch() -> None:
    class JsonLike(ParsedSchema):
        schema_type = "JSON"

        def canonical(self) -> str:
            return "{}"

        def incompatibilities(self, writer: ParsedSchema) -> list[Incompatibility]:
            return []

    [problem] = parse('"int"').incompatibilities(JsonLike())
    assert problem.rule == "TYPE_MISMATCH"


# --- parse ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param("{not json", "not valid JSON", id="bad-json"),
        pytest.param("", "not valid JSON", id="empty"),
        pytest.param('"foo"', "unknown type 'foo'", id="unknown-name"),
        pytest.param('{"type":"foo"}', "unknown type 'foo'", id="unknown-type"),
        pytest.param("42", "not a type", id="number"),
        pytest.param('{"name":"x"}', "has no 'type'", id="no-type"),
        pytest.param('{"type":"record","name":"A"}', "no 'fields'", id="record-without-fields"),
        pytest.param(
            record("Payment", {"name": "amount"}),
            "field 'amount' of record 'Payment' has no type",
            id="field-without-type",
        ),
        pytest.param(
            record("A", f("x", "int"), f("x", "long")), "more than one field 'x'", id="dup-field"
        ),
        pytest.param('{"type":"record","fields":[]}', "has no name", id="record-without-name"),
        pytest.param(record("1A"), "not a valid record name", id="bad-record-name"),
        pytest.param(record("A", f("a-b", "int")), "invalid name", id="bad-field-name"),
        pytest.param('{"type":"enum","name":"E","symbols":["A","A"]}', "unique", id="dup-symbol"),
        pytest.param('{"type":"enum","name":"E"}', "symbols", id="enum-without-symbols"),
        pytest.param(
            '{"type":"enum","name":"E","symbols":["A"],"default":"B"}',
            "Default value for enum",
            id="enum-default-not-a-symbol",
        ),
        pytest.param('{"type":"fixed","name":"F"}', "size", id="fixed-without-size"),
        pytest.param('{"type":"array"}', "no 'items'", id="array-without-items"),
        pytest.param('{"type":"map"}', "no 'values'", id="map-without-values"),
        pytest.param('["int","int"]', "more than one branch", id="dup-union-branch"),
        pytest.param('["null",["int"]]', "another union", id="nested-union"),
        pytest.param(record("A", f("x", "int", default="nope")), "Default value", id="bad-default"),
        pytest.param(
            record("A", f("x", json.loads(record("A")))), "defined more than once", id="redefined"
        ),
        pytest.param('{"type":"record","name":"int","fields":[]}', "primitive", id="named-int"),
    ],
)
def test_parse_rejects(text: str, fragment: str) -> None:
    with pytest.raises(InvalidSchema) as info:
        parse(text)
    assert str(info.value).startswith("Invalid schema: ")
    assert fragment in str(info.value)


def test_parse_accepts_self_reference_and_returns_avro_schema() -> None:
    schema = parse(LIST_V1)
    assert isinstance(schema, AvroSchema)
    assert schema.schema_type == "AVRO"


# --- references -----------------------------------------------------------------------------

MONEY = json.dumps(
    {
        "type": "record",
        "name": "Money",
        "namespace": "com.acme",
        "fields": [{"name": "cents", "type": "long"}],
    }
)
PAYMENT = json.dumps(
    {
        "type": "record",
        "name": "Payment",
        "namespace": "com.acme",
        "fields": [{"name": "amount", "type": "Money"}],
    }
)


def test_reference_defines_a_type() -> None:
    schema = parse(PAYMENT, {"com.acme.Money": MONEY})
    assert schema.canonical() == PAYMENT.replace(" ", "")
    assert schema.normalized() == (
        '{"type":"record","name":"com.acme.Payment","fields":[{"name":"amount","type":"com.acme.Money"}]}'
    )


def test_reference_chain_in_order() -> None:
    wallet = record("com.acme.Wallet", f("balance", "com.acme.Money"))
    owner = record("com.acme.Owner", f("wallet", "com.acme.Wallet"))
    parse(owner, {"com.acme.Money": MONEY, "com.acme.Wallet": wallet})


def test_missing_reference_is_invalid() -> None:
    with pytest.raises(InvalidSchema, match="unknown type 'Money'"):
        parse(PAYMENT)


def test_invalid_reference_is_reported_by_name() -> None:
    with pytest.raises(InvalidSchema, match=r"com\.acme\.Money"):
        parse(PAYMENT, {"com.acme.Money": '{"type":"record","name":"Money"}'})


def test_compatibility_through_references() -> None:
    money_int = MONEY.replace('"long"', '"int"')
    reader = parse(PAYMENT, {"com.acme.Money": MONEY})
    writer = parse(PAYMENT, {"com.acme.Money": money_int})
    assert reader.incompatibilities(writer) == []
    [problem] = writer.incompatibilities(reader)
    assert problem.path == "/fields/amount/type/fields/cents/type"


# --- canonical and normalized ----------------------------------------------------------------


def test_canonical_is_the_text_java_avro_writes() -> None:
    """What Confluent stores is Java Avro's Schema.toString(): fixed key order, primitives
    without properties as bare names, so spelling the same schema differently is the same text."""
    text = """{
        "name": "P",  "type": "record",
        "fields": [ {"type": {"type": "string"}, "name": "s", "doc": "héllo"} ]
    }"""
    assert parse(text).canonical() == (
        '{"type":"record","name":"P","fields":[{"name":"s","type":"string","doc":"héllo"}]}'
    )
    assert parse('"string"').canonical() == '"string"'
    assert parse(' { "type" : "string" } ').canonical() == '"string"'


@pytest.mark.parametrize(
    ("given", "java"),
    [
        pytest.param(
            '{"doc":"d","type":"string"}', '"string"', id="primitive-doc-is-reserved-and-dropped"
        ),
        pytest.param(
            '{"logicalType":"timestamp-millis","type":"long"}',
            '{"type":"long","logicalType":"timestamp-millis"}',
            id="primitive-properties-kept-after-type",
        ),
        pytest.param(
            '{"fields":[],"x-b":1,"aliases":["Old","Old","o.Other"],"doc":"d","x-a":2,'
            '"namespace":"n","name":"R","type":"record"}',
            '{"type":"record","name":"R","namespace":"n","doc":"d","fields":[],"x-b":1,"x-a":2,'
            '"aliases":["Old","o.Other"]}',
            id="record-keys-properties-in-order-aliases-last-once-each",
        ),
        pytest.param(
            '{"type":"record","name":"a.b.R","fields":['
            '{"name":"x","type":{"type":"record","name":"In","fields":[]}},'
            '{"name":"y","type":"a.b.In"},'
            '{"name":"z","type":{"type":"fixed","name":"o.F","size":2}},'
            '{"name":"w","type":{"type":"array","items":"o.F"}},'
            '{"name":"v","type":{"type":"enum","name":"E","namespace":"c","symbols":["A"]}},'
            '{"name":"u","type":["null","c.E"]},'
            '{"name":"t","type":{"type":"record","name":"Top","namespace":"","fields":[]}}]}',
            '{"type":"record","name":"R","namespace":"a.b","fields":['
            '{"name":"x","type":{"type":"record","name":"In","fields":[]}},'
            '{"name":"y","type":"In"},'
            '{"name":"z","type":{"type":"fixed","name":"F","namespace":"o","size":2}},'
            '{"name":"w","type":{"type":"array","items":"o.F"}},'
            '{"name":"v","type":{"type":"enum","name":"E","namespace":"c","symbols":["A"]}},'
            '{"name":"u","type":["null","c.E"]},'
            '{"name":"t","type":{"type":"record","name":"Top","namespace":"","fields":[]}}]}',
            id="names-short-in-their-namespace-namespace-only-where-it-changes",
        ),
        pytest.param(
            '{"type":"record","name":"R","fields":[{"x-p":true,"aliases":["a","a"],'
            '"order":"descending","default":"A","doc":"d","type":{"type":"enum","name":"E",'
            '"symbols":["A","B"],"default":"B"},"name":"f"}]}',
            '{"type":"record","name":"R","fields":[{"name":"f","type":{"type":"enum","name":"E",'
            '"symbols":["A","B"],"default":"B"},"doc":"d","default":"A","order":"descending",'
            '"aliases":["a"],"x-p":true}]}',
            id="field-keys-in-javas-order",
        ),
        pytest.param(
            '{"type":"record","name":"R","fields":[{"name":"a","type":"double","default":"1e10"},'
            '{"name":"b","type":"float","default":0.0001},{"name":"c","type":"double",'
            '"default":12.5}]}',
            '{"type":"record","name":"R","fields":[{"name":"a","type":"double","default":1.0E10},'
            '{"name":"b","type":"float","default":1.0E-4},{"name":"c","type":"double",'
            '"default":12.5}]}',
            id="doubles-as-java-writes-them",
        ),
        pytest.param(
            '{"type":"error","name":"Oops","fields":[],"doc":"tab\\u001f"}',
            '{"type":"error","name":"Oops","doc":"tab\\u001F","fields":[]}',
            id="error-type-and-jacksons-escapes",
        ),
    ],
)
def test_the_java_form_follows_java_avro(given: str, java: str) -> None:
    assert parse(given).canonical() == java
    assert parse(java).canonical() == java  # and it is a fixed point


def test_nan_is_not_json_for_avro_either() -> None:
    with pytest.raises(InvalidSchema, match="NaN is not valid JSON"):
        parse('{"type":"record","name":"R","fields":[{"name":"a","type":"double","default":NaN}]}')


def test_equality_follows_canonical() -> None:
    assert parse('"int"') == parse(' "int" ')
    assert parse('"int"') == parse('{"type":"int"}')
    assert parse('"int"') != parse('"long"')
    assert hash(parse('"int"')) == hash(parse('{"type":"int"}'))


def test_lookup_equivalence_ignores_the_order_of_custom_properties() -> None:
    a = parse('{"type":"record","name":"R","fields":[],"x-a":1,"x-b":2}')
    b = parse('{"type":"record","name":"R","fields":[],"x-b":2,"x-a":1}')
    assert a.canonical() != b.canonical()  # Java keeps their order
    assert a.equivalent(b)  # and Schema.equals compares them as a map
    assert not a.equivalent(parse('{"type":"record","name":"R","fields":[],"x-a":1}'))


def test_normalized_ignores_spelling() -> None:
    a = parse(
        '{"type":"record","name":"P","namespace":"x","fields":'
        '[{"name":"a","type":{"type":"int"},"order":"ascending"},'
        '{"name":"b","type":{"type":"enum","name":"E","symbols":["A"]}},'
        '{"name":"c","type":"E","default":"A"}]}'
    )
    b = parse(
        '{"fields":[{"type":"int","name":"a"},'
        '{"type":{"symbols":["A"],"name":"x.E","type":"enum"},"name":"b"},'
        '{"default":"A","name":"c","type":"x.E"}],'
        '"name":"x.P","type":"record"}'
    )
    assert a.canonical() == b.canonical()  # Java writes both alike
    assert a.normalized() == b.normalized()
    assert a.normalized() == (
        '{"type":"record","name":"x.P","fields":[{"name":"a","type":"int"},'
        '{"name":"b","type":{"type":"enum","name":"x.E","symbols":["A"]}},'
        '{"name":"c","type":"x.E","default":"A"}]}'
    )


@pytest.mark.parametrize(
    ("left", "right"),
    [
        pytest.param(
            record("P", f("a", "int", default=1)), record("P", f("a", "int")), id="default"
        ),
        pytest.param(
            record("P", f("a", "int", default=1)), record("P", f("a", "int", default=2)), id="value"
        ),
        pytest.param(
            record("P", f("a", "int", aliases=["b"])), record("P", f("a", "int")), id="alias"
        ),
        pytest.param(
            record("P", f("a", "int"), f("b", "int")),
            record("P", f("b", "int"), f("a", "int")),
            id="field-order",
        ),
        pytest.param(json.dumps(enum(["A", "B"])), json.dumps(enum(["B", "A"])), id="symbol-order"),
        pytest.param(
            json.dumps(enum(["A"], default="A")), json.dumps(enum(["A"])), id="enum-default"
        ),
        pytest.param(
            '{"type":"long","logicalType":"timestamp-millis"}', '"long"', id="logical-type"
        ),
        pytest.param(record("a.P"), record("b.P"), id="namespace"),
    ],
)
def test_normalized_keeps_meaning(left: str, right: str) -> None:
    assert parse(left).normalized() != parse(right).normalized()


def test_normalized_sorts_aliases_and_default_objects() -> None:
    inner = {"type": "record", "name": "I", "fields": [f("x", "int"), f("y", "int")]}
    a = parse(record("P", f("i", inner, default={"y": 2, "x": 1}), aliases=["Z", "Y"]))
    b = parse(record("P", f("i", inner, default={"x": 1, "y": 2}), aliases=["Y", "Z"]))
    assert a.normalized() == b.normalized()
    assert '"aliases":["Y","Z"]' in a.normalized()


def test_normalized_is_parseable_and_equivalent() -> None:
    schema = parse(LIST_V1)
    again = parse(schema.normalized())
    assert again.normalized() == schema.normalized()
    assert again.incompatibilities(schema) == []


def test_shared_type_reported_at_each_use() -> None:
    money = {"type": "record", "name": "Money", "fields": [f("cents", "int")]}
    money_long = {"type": "record", "name": "Money", "fields": [f("cents", "long")]}
    reader = parse(record("Order", f("price", money), f("tax", "Money")))
    writer = parse(record("Order", f("price", money_long), f("tax", "Money")))
    problems = reader.incompatibilities(writer)
    assert [p.path for p in problems] == [
        "/fields/price/type/fields/cents/type",
        "/fields/tax/type/fields/cents/type",
    ]
    assert "Order.tax.cents" in problems[1].message
