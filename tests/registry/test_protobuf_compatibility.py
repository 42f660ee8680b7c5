"""PROTOBUF schemas: both registration forms, canonical text, Confluent's compatibility rules."""

from __future__ import annotations

import base64

import pytest
from google.protobuf import descriptor_pb2, struct_pb2

from nerve.registry.schema_types import Incompatibility, InvalidSchema, ParsedSchema
from nerve.registry.schema_types.protobuf import ProtobufSchema, parse

RICH = """
syntax = "proto3";
package shop.v1;

import "google/protobuf/timestamp.proto";

option java_package = "com.example.shop";
option go_package = "example.com/shop/v1;shopv1";

// Comments vanish when compiling.
message Order {
  reserved 9, 12 to 15, 100 to max;
  reserved "old", "legacy";
  string id = 1;
  optional int64 amount = 2 [json_name = "amt"];
  repeated Item items = 3;
  map<string, Item> by_sku = 4;
  map<int32, Status> statuses = 5;
  oneof payment {
    string card = 6;
    bytes token = 7;
  }
  google.protobuf.Timestamp created = 8 [deprecated = true];
  repeated int32 codes = 10 [packed = false];

  message Item {
    string sku = 1;
    int32 qty = 2;
    Status status = 3;
    Order parent = 4;
    message Item { bool nested_same_name = 1; }
    Item inner = 5;
  }
  enum Status {
    option allow_alias = true;
    reserved 5 to 9, 20 to max;
    reserved "GONE";
    UNKNOWN = 0;
    OK = 1;
    FINE = 1;
  }
}

enum Color {
  COLOR_UNSPECIFIED = 0;
  RED = 1 [deprecated = true];
}

service Orders {
  rpc Get(Order) returns (Order.Item);
  rpc Watch(stream Order) returns (stream Order) {
    option deprecated = true;
  }
}
"""

PROTO2 = r"""
syntax = "proto2";
package legacy;

import "google/protobuf/descriptor.proto";

extend google.protobuf.FieldOptions {
  optional string sensitivity = 50001;
}

message Record {
  extensions 100 to 199, 500 to max;
  required string key = 1 [(sensitivity) = "low"];
  optional int32 count = 2 [default = 7];
  optional string label = 3 [default = "say \"hi\""];
  optional bytes blob = 4 [default = "\001\377"];
  repeated double points = 5 [packed = true];
  optional group Meta = 6 {
    optional string note = 1;
  }
  optional Kind kind = 7 [default = BIG];
  enum Kind {
    SMALL = 1;
    BIG = 2;
  }
}

extend Record {
  optional int64 extra = 100;
}
"""


def b64(fdp: descriptor_pb2.FileDescriptorProto) -> str:
    return base64.standard_b64encode(fdp.SerializeToString()).decode("ascii")


def without_name(schema: ProtobufSchema) -> descriptor_pb2.FileDescriptorProto:
    fdp = schema.file_descriptor
    fdp.ClearField("name")
    return fdp


# --- parsing ----------------------------------------------------------------------------------


def test_parses_proto3_text() -> None:
    schema = parse(RICH)
    fdp = schema.file_descriptor
    assert schema.schema_type == "PROTOBUF"
    assert fdp.syntax == "proto3"
    assert fdp.package == "shop.v1"
    assert [m.name for m in fdp.message_type] == ["Order"]
    fields = {f.name: f for f in fdp.message_type[0].field}
    assert fields["amount"].proto3_optional
    assert fields["items"].type_name == ".shop.v1.Order.Item"
    assert fields["created"].type_name == ".google.protobuf.Timestamp"


def test_parses_proto2_text() -> None:
    fdp = parse(PROTO2).file_descriptor
    assert fdp.syntax in ("", "proto2")
    record = fdp.message_type[0]
    key = next(f for f in record.field if f.name == "key")
    assert key.label == descriptor_pb2.FieldDescriptorProto.LABEL_REQUIRED
    assert {e.extendee for e in fdp.extension} == {
        ".legacy.Record",
        ".google.protobuf.FieldOptions",
    }


def test_parses_handmade_base64_descriptor() -> None:
    fdp = descriptor_pb2.FileDescriptorProto(name="user.proto", package="acct", syntax="proto3")
    user = fdp.message_type.add(name="User")
    user.field.add(name="name", number=1, type=9, label=1)
    user.field.add(name="age", number=2, type=5, label=1)
    schema = parse(b64(fdp))
    assert schema.file_descriptor.name == "user.proto"
    assert schema.canonical() == (
        'syntax = "proto3";\npackage acct;\n\nmessage User {\n'
        "  string name = 1;\n  int32 age = 2;\n}\n"
    )
    assert schema == parse(schema.canonical())


def test_parses_descriptor_of_a_generated_module() -> None:
    schema = parse(base64.b64encode(struct_pb2.DESCRIPTOR.serialized_pb).decode())
    assert "map<string, Value> fields = 1;" in schema.canonical()
    assert "oneof kind {" in schema.canonical()


def test_text_and_descriptor_forms_are_the_same_schema() -> None:
    text = parse(RICH)
    serialized = text.formatted("serialized")
    base64.b64decode(serialized, validate=True)
    again = parse(serialized)
    assert again == text
    assert without_name(again) == without_name(text)
    assert text.formatted("SERIALIZED") == serialized
    assert text.formatted(None) == text.canonical()
    assert text.formatted("ignored") == text.canonical()


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        (
            'syntax = "proto3";\nmessage A {\n  int32 x = 1\n}\n',
            "schema.proto:4:1:",
            'Expected ";"',
        ),
        ('syntax = "proto3";\nmessage A {\n  Missing m = 1;\n}\n', "schema.proto:3:3:", "Missing"),
        ('syntax = "proto3";\nmessage A { int32 x = 1; int32 y = 1; }', "schema.proto:2:", "1"),
        ('syntax = "proto4";', "schema.proto:1:10:", "proto4"),
    ],
)
def test_invalid_text_reports_protoc_position(text: str, where: str, words: str) -> None:
    with pytest.raises(InvalidSchema) as err:
        parse(text)
    assert where in str(err.value)
    assert words in str(err.value)


def test_invalid_base64_descriptor_reports_unresolved_types() -> None:
    fdp = descriptor_pb2.FileDescriptorProto(name="a.proto", syntax="proto3")
    msg = fdp.message_type.add(name="A")
    msg.field.add(name="b", number=1, type=11, label=1, type_name=".nowhere.B")
    with pytest.raises(InvalidSchema, match=r"a\.proto.*nowhere\.B"):
        parse(b64(fdp))


def test_missing_import_is_invalid() -> None:
    with pytest.raises(InvalidSchema, match=r"other\.proto"):
        parse('syntax = "proto3"; import "other.proto"; message A {}')


def test_reference_name_must_be_a_relative_path() -> None:
    with pytest.raises(InvalidSchema, match="reference name"):
        parse('syntax = "proto3";', {"../escape.proto": 'syntax = "proto3";'})


def test_imports_resolve_through_references_in_either_form() -> None:
    common = 'syntax = "proto3";\npackage common;\nmessage Money { int64 units = 1; }\n'
    money_b64 = parse(common).formatted("serialized")
    ids = (
        'syntax = "proto3";\npackage ids;\nimport "common/money.proto";\n'
        "message Id { string v = 1; }"
    )
    main = """
        syntax = "proto3";
        package billing;
        import "common/money.proto";
        import "ids/id.proto";
        message Invoice { common.Money total = 1; ids.Id id = 2; }
    """
    refs = {"common/money.proto": money_b64, "ids/id.proto": ids}
    schema = parse(main, refs)
    assert "common.Money total = 1;" in schema.canonical()
    assert {d.name for d in schema.dependencies} == {"common/money.proto", "ids/id.proto"}
    # The same references serve a main file registered as a descriptor.
    assert parse(schema.formatted("serialized"), refs) == schema
    # A text reference works as well as a descriptor one.
    assert parse(main, {"common/money.proto": common, "ids/id.proto": ids}) == schema


def test_well_known_and_builtin_imports_need_no_reference() -> None:
    schema = parse(
        """
        syntax = "proto3";
        import "google/protobuf/timestamp.proto";
        import "google/protobuf/wrappers.proto";
        import "google/type/money.proto";
        import "confluent/meta.proto";
        message Payment {
          google.protobuf.Timestamp at = 1;
          google.protobuf.StringValue memo = 2;
          google.type.Money amount = 3 [(confluent.field_meta).tags = "PII"];
        }
        """
    )
    text = schema.canonical()
    assert 'google.type.Money amount = 3 [(confluent.field_meta).tags = "PII"];' in text
    assert parse(text) == schema
    assert without_name(parse(text)) == without_name(schema)


def test_parse_results_are_cached() -> None:
    text = 'syntax = "proto3"; message Cached { int32 x = 1; }'
    assert parse(text) is parse(text)


# --- canonical text ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", [RICH, PROTO2], ids=["proto3", "proto2"])
def test_canonical_round_trip(text: str) -> None:
    schema = parse(text)
    canonical = schema.canonical()
    again = parse(canonical)
    assert without_name(again) == without_name(schema)
    assert again.canonical() == canonical
    assert "//" not in canonical


def test_canonical_round_trip_editions() -> None:
    text = """
        edition = "2023";
        package ed;
        option features.field_presence = IMPLICIT;
        message A {
          int32 x = 1 [features.field_presence = EXPLICIT];
          repeated int32 y = 2;
          reserved foo;
        }
    """
    schema = parse(text)
    assert schema.canonical().startswith('edition = "2023";\n')
    assert without_name(parse(schema.canonical())) == without_name(schema)


def test_canonical_hides_map_entries_and_prints_oneofs_and_optional() -> None:
    text = parse(RICH).canonical()
    assert "map<string, Item> by_sku = 4;" in text
    assert "map<int32, Status> statuses = 5;" in text
    assert "Entry" not in text
    assert "oneof payment {\n    string card = 6;\n    bytes token = 7;\n  }" in text
    assert 'optional int64 amount = 2 [json_name = "amt"];' in text
    assert "reserved 9, 12 to 15, 100 to max;" in text
    assert 'reserved "old", "legacy";' in text
    assert "rpc Watch(stream Order) returns (stream Order) {" in text
    assert 'option java_package = "com.example.shop";' in text


def test_canonical_qualifies_names_that_would_resolve_elsewhere() -> None:
    # Inside Order.Item, "Item" means Order.Item.Item, so the outer one needs qualifying.
    text = parse(
        """
        syntax = "proto3";
        package p;
        message Item { int32 a = 1; }
        message Order {
          message Item { Item inner = 1; .p.Item outer = 2; }
        }
        """
    ).canonical()
    assert "Item inner = 1;" in text
    assert "p.Item outer = 2;" in text


def test_canonical_is_the_same_for_formatting_differences() -> None:
    a = parse('syntax="proto3";message A{int32 x=1;/* c */string y=2;}')
    b = parse('syntax = "proto3";\n\nmessage A {\n  int32 x = 1;\n  string y = 2; // c\n}\n')
    assert a == b
    assert a.canonical() == b.canonical()


def test_normalized_orders_fields_by_number_but_keeps_message_order() -> None:
    a = parse('syntax = "proto3"; message B {} message A { int32 y = 2; int32 x = 1; }')
    b = parse('syntax = "proto3"; message B {} message A { int32 x = 1; int32 y = 2; }')
    assert a.canonical() != b.canonical()
    assert a.normalized() == b.normalized()
    assert a.normalized().index("message B") < a.normalized().index("message A")
    assert without_name(parse(a.normalized())).message_type[1].field[0].name == "x"


# --- compatibility ----------------------------------------------------------------------------

BASE = """
message Order {
  string id = 1;
  int64 amount = 2;
  Item item = 3;
  Status status = 4;
  message Item { string sku = 1; }
  enum Status { NEW = 0; PAID = 1; }
}
"""


def p3(body: str, package: str = "shop") -> str:
    return f'syntax = "proto3";\npackage {package};\n{body}'


def p2(body: str) -> str:
    return f'syntax = "proto2";\npackage shop;\n{body}'


def field_type_change(writer_type: str, reader_type: str) -> tuple[str, str]:
    other = "message Other { int32 o = 1; } enum E { E0 = 0; }"
    return (
        p3(f"message Order {{ {reader_type} value = 1; }} {other}"),
        p3(f"message Order {{ {writer_type} value = 1; }} {other}"),
    )


# (name, reader, writer, the incompatible rule or None, its path)
CASES: list[tuple[str, str, str, str | None, str | None]] = [
    ("identical", p3(BASE), p3(BASE), None, None),
    (
        "field added",
        p3(BASE.replace("Status status = 4;", "Status status = 4; string note = 5;")),
        p3(BASE),
        None,
        None,
    ),
    ("field removed", p3(BASE.replace("int64 amount = 2;", "")), p3(BASE), None, None),
    (
        "field removed and reserved",
        p3(BASE.replace("int64 amount = 2;", 'reserved 2; reserved "amount";')),
        p3(BASE),
        None,
        None,
    ),
    ("field renamed", p3(BASE.replace("amount = 2", "total = 2")), p3(BASE), None, None),
    (
        "enum const added",
        p3(BASE.replace("PAID = 1;", "PAID = 1; SENT = 2;")),
        p3(BASE),
        None,
        None,
    ),
    ("enum const removed", p3(BASE.replace(" PAID = 1;", "")), p3(BASE), None, None),
    ("message added", p3(BASE + "message Extra { int32 x = 1; }"), p3(BASE), None, None),
    ("message reordered", p3("message Z {}" + BASE), p3(BASE + "message Z {}"), None, None),
    ("message removed", p3(BASE), p3(BASE + "message Extra {}"), "MESSAGE_REMOVED", "Extra"),
    (
        "nested message removed",
        p3(BASE),
        p3(BASE.replace("message Item", "message Note {} message Item")),
        "MESSAGE_REMOVED",
        "Order.Note",
    ),
    ("enum added", p3(BASE + "enum Mood { M0 = 0; }"), p3(BASE), None, None),
    ("enum removed", p3(BASE), p3(BASE + "enum Mood { M0 = 0; }"), None, None),
    (
        "scalar to message",
        p3(BASE.replace("int64 amount", "Item amount")),
        p3(BASE),
        "FIELD_KIND_CHANGED",
        "Order.amount",
    ),
    (
        "message to enum",
        p3(BASE.replace("Item item", "Status item")),
        p3(BASE),
        "FIELD_KIND_CHANGED",
        "Order.item",
    ),
    (
        "scalar kind changed",
        p3(BASE.replace("int64 amount", "string amount")),
        p3(BASE),
        "FIELD_SCALAR_KIND_CHANGED",
        "Order.amount",
    ),
    (
        "renamed and scalar kind changed",
        p3(BASE.replace("int64 amount", "double total")),
        p3(BASE),
        "FIELD_SCALAR_KIND_CHANGED",
        "Order.total",
    ),
    (
        "named type changed",
        p3(BASE.replace("Item item", "Other item") + "message Other { string sku = 1; }"),
        p3(BASE + "message Other { string sku = 1; }"),
        "FIELD_NAMED_TYPE_CHANGED",
        "Order.item",
    ),
    (
        "map value scalar kind changed",
        p3("message M { map<string, int32> m = 1; }"),
        p3("message M { map<string, string> m = 1; }"),
        "FIELD_SCALAR_KIND_CHANGED",
        "M.m.value",
    ),
    (
        "map key changed within its group",
        p3("message M { map<int64, int32> m = 1; }"),
        p3("message M { map<int32, uint32> m = 1; }"),
        None,
        None,
    ),
    (
        "map to repeated message",
        p3("message M { repeated E m = 1; message E { string key = 1; int32 value = 2; } }"),
        p3("message M { map<string, int32> m = 1; }"),
        "FIELD_KIND_CHANGED",
        "M.m",
    ),
    (
        "proto2 optional field added",
        p2("message R { required string k = 1; optional int32 n = 2; }"),
        p2("message R { required string k = 1; }"),
        None,
        None,
    ),
    (
        "proto2 required field added",
        p2("message R { required string k = 1; required int32 n = 2; }"),
        p2("message R { required string k = 1; }"),
        "REQUIRED_FIELD_ADDED",
        "R.n",
    ),
    (
        "proto2 required field removed",
        p2("message R { required string k = 1; }"),
        p2("message R { required string k = 1; required int32 n = 2; }"),
        "REQUIRED_FIELD_REMOVED",
        "R.n",
    ),
    (
        "proto2 optional field removed",
        p2("message R { required string k = 1; }"),
        p2("message R { required string k = 1; optional int32 n = 2; }"),
        None,
        None,
    ),
    (
        "oneof field removed",
        p3("message P { oneof pay { string card = 1; } }"),
        p3("message P { oneof pay { string card = 1; bytes token = 2; } }"),
        "ONEOF_FIELD_REMOVED",
        "P.token",
    ),
    (
        "oneof field added",
        p3("message P { oneof pay { string card = 1; bytes token = 2; } }"),
        p3("message P { oneof pay { string card = 1; } }"),
        None,
        None,
    ),
    (
        "oneof removed entirely",
        p3("message P { int32 x = 3; }"),
        p3("message P { int32 x = 3; oneof pay { string card = 1; bytes token = 2; } }"),
        None,
        None,
    ),
    (
        "oneof added",
        p3("message P { int32 x = 3; oneof pay { string card = 1; } }"),
        p3("message P { int32 x = 3; }"),
        None,
        None,
    ),
    (
        "field moved out of a oneof",
        p3("message P { string card = 1; oneof pay { bytes token = 2; } }"),
        p3("message P { oneof pay { string card = 1; bytes token = 2; } }"),
        None,
        None,
    ),
    (
        "one field moved into a new oneof",
        p3("message P { oneof pay { string card = 1; } int32 n = 2; }"),
        p3("message P { string card = 1; int32 n = 2; }"),
        None,
        None,
    ),
    (
        "multiple fields moved to a oneof",
        p3("message P { oneof pay { string card = 1; bytes token = 2; } }"),
        p3("message P { string card = 1; bytes token = 2; }"),
        "MULTIPLE_FIELDS_MOVED_TO_ONEOF",
        "P.pay",
    ),
    (
        "field moved to an existing oneof",
        p3("message P { oneof pay { string card = 1; bytes token = 2; } }"),
        p3("message P { string card = 1; oneof pay { bytes token = 2; } }"),
        "FIELD_MOVED_TO_EXISTING_ONEOF",
        "P.pay",
    ),
    (
        "type change of a field moved into a oneof",
        p3("message P { oneof pay { double card = 1; } }"),
        p3("message P { string card = 1; }"),
        "FIELD_SCALAR_KIND_CHANGED",
        "P.card",
    ),
    (
        "proto3 optional is not a oneof",
        p3("message P { optional int32 a = 1; optional int32 b = 2; }"),
        p3("message P { int32 a = 1; int32 b = 2; }"),
        None,
        None,
    ),
    ("package changed", p3(BASE, package="store"), p3(BASE), "PACKAGE_CHANGED", "store"),
    (
        "syntax changed (no rule, as in Confluent)",
        p2("message R { optional string k = 1; }"),
        p3("message R { string k = 1; }", package="shop"),
        None,
        None,
    ),
    (
        "recursive types",
        p3("message Node { repeated Node kids = 1; string v = 2; }"),
        p3("message Node { repeated Node kids = 1; }"),
        None,
        None,
    ),
]

# Changes within a group that shares a wire encoding are compatible (Confluent's ScalarKind).
COMPATIBLE_SCALARS = [
    ("int32", "uint32"),
    ("int32", "int64"),
    ("uint64", "bool"),
    ("int64", "E"),  # enums are varints
    ("sint32", "sint64"),
    ("fixed32", "sfixed32"),
    ("fixed64", "sfixed64"),
    ("string", "bytes"),
]
INCOMPATIBLE_SCALARS = [
    ("int32", "sint32"),
    ("int64", "fixed64"),
    ("fixed32", "float"),
    ("fixed64", "double"),
    ("float", "double"),
    ("string", "int32"),
    ("bytes", "E"),
    ("sint64", "sfixed64"),
]


def rules(found: list[Incompatibility]) -> set[str]:
    return {i.rule for i in found}


@pytest.mark.parametrize(
    ("reader", "writer", "rule", "path"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_compatibility(reader: str, writer: str, rule: str | None, path: str | None) -> None:
    found = parse(reader).incompatibilities(parse(writer))
    if rule is None:
        assert found == []
    else:
        assert rule in rules(found), found
        assert path in {i.path for i in found}, found
        assert all(i.message for i in found)


@pytest.mark.parametrize(("a", "b"), COMPATIBLE_SCALARS)
def test_wire_compatible_scalars(a: str, b: str) -> None:
    for writer_type, reader_type in ((a, b), (b, a)):
        reader, writer = field_type_change(writer_type, reader_type)
        assert parse(reader).incompatibilities(parse(writer)) == []


@pytest.mark.parametrize(("a", "b"), INCOMPATIBLE_SCALARS)
def test_wire_incompatible_scalars(a: str, b: str) -> None:
    for writer_type, reader_type in ((a, b), (b, a)):
        reader, writer = field_type_change(writer_type, reader_type)
        found = parse(reader).incompatibilities(parse(writer))
        assert [(i.path, i.rule) for i in found] == [("Order.value", "FIELD_SCALAR_KIND_CHANGED")]


def test_message_removed_is_one_way() -> None:
    small, big = parse(p3(BASE)), parse(p3(BASE + "message Extra {}"))
    assert rules(small.incompatibilities(big)) == {"MESSAGE_REMOVED"}
    assert big.incompatibilities(small) == []


def test_incompatibility_reads_well() -> None:
    reader = parse(p3(BASE.replace("int64 amount", "string amount")))
    [found] = reader.incompatibilities(parse(p3(BASE)))
    assert found.path == "Order.amount"
    assert "int64" in found.message and "string" in found.message
    assert str(found).startswith("Order.amount: ")


def test_imported_message_changes_are_compared() -> None:
    main = p3('import "dep.proto";\nmessage Order { dep.Money total = 1; }')
    old = {"dep.proto": 'syntax = "proto3"; package dep; message Money { int64 units = 1; }'}
    new = {"dep.proto": 'syntax = "proto3"; package dep; message Money { string units = 1; }'}
    same = {"dep.proto": 'syntax = "proto3"; package dep; message Money { uint64 units = 1; }'}
    found = parse(main, new).incompatibilities(parse(main, old))
    assert rules(found) == {"FIELD_SCALAR_KIND_CHANGED", "FIELD_NAMED_TYPE_CHANGED"}
    assert "Order.total" in {i.path for i in found}
    assert parse(main, same).incompatibilities(parse(main, old)) == []


def test_other_schema_types_are_incompatible() -> None:
    class Other(ParsedSchema):
        schema_type = "AVRO"

        def canonical(self) -> str:
            return '"int"'

        def incompatibilities(self, writer: ParsedSchema) -> list[Incompatibility]:
            return []

    assert parse(p3(BASE)).incompatibilities(Other()) != []


# --- custom options the file does not define ---------------------------------------------------

UNDEFINED_OPTIONS = """
syntax = "proto3";
package shop;
option (acme.owner) = "payments";
message Order {
  option (acme.audited) = true;
  string id = 1 [(acme.pii) = true, deprecated = true];
  int32 qty = 2 [(acme.range) = { min: 1 max: 9 }];
  oneof pay {
    option (acme.oneof_rule) = 3;
    string card = 3;
  }
}
enum State { option (acme.legacy) = 1.5; OPEN = 0 [(acme.label) = OPEN_LABEL]; }
service Orders {
  option (acme.service_tier) = 2;
  rpc Place(Order) returns (Order) { option (acme.idempotent) = true; }
}
"""


def test_custom_options_the_file_does_not_define_are_kept_as_confluent_keeps_them() -> None:
    """Confluent's Wire parser does not resolve option names: the schema registers, its text
    keeps every option where it was, and the descriptor built from it has none of them."""
    schema = parse(UNDEFINED_OPTIONS)
    text = schema.canonical()
    for written in (
        'option (acme.owner) = "payments";',
        "  option (acme.audited) = true;",
        "  string id = 1 [deprecated = true, (acme.pii) = true];",
        "  int32 qty = 2 [(acme.range) = { min: 1 max: 9 }];",
        "    option (acme.oneof_rule) = 3;",
        "  option (acme.legacy) = 1.5;",
        "  OPEN = 0 [(acme.label) = OPEN_LABEL];",
        "  option (acme.service_tier) = 2;",
        "    option (acme.idempotent) = true;",
    ):
        assert written in text, written
    assert parse(text) == schema  # the stored text parses to the same schema
    order = schema.file_descriptor.message_type[0]
    assert order.options.ByteSize() == 0
    assert [f.options.deprecated for f in order.field] == [True, False, False]
    assert schema.incompatibilities(parse(text)) == []


def test_an_unknown_option_beside_a_real_error_still_fails_on_the_error() -> None:
    with pytest.raises(InvalidSchema, match="NoSuchType"):
        parse('syntax = "proto3";\nmessage A { option (x.y) = 1; NoSuchType t = 1; }')
