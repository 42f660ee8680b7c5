"""The Confluent REST API of a ``nerve registry`` subprocess, over HTTP, with Confluent's status
codes and error codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.registry.conftest import Api


def avro(*fields: tuple[str, Any] | tuple[str, Any, Any], name: str = "Payment") -> str:
    """An Avro record schema; a field is (name, type) or (name, type, default)."""
    out = []
    for field in fields:
        item: dict[str, Any] = {"name": field[0], "type": field[1]}
        if len(field) == 3:
            item["default"] = field[2]
        out.append(item)
    return json.dumps({"type": "record", "name": name, "fields": out})


V1 = avro(("id", "string"), ("amount", "int"))
V2 = avro(("id", "string"), ("amount", "long"), ("currency", "string", "EUR"))


def register(api: Api, subject: str, schema: str, **extra: Any) -> tuple[int, Any]:
    return api.post(f"/subjects/{subject}/versions", {"schema": schema, **extra})


def test_register_gives_ids_by_content_and_versions_by_subject(
    api: Api, subject_name: Callable[[str], str]
) -> None:
    first, second = subject_name("a"), subject_name("b")
    status, body = register(api, first, V1)
    assert status == 200, body
    schema_id = body["id"]
    assert register(api, first, V1) == (200, {"id": schema_id})  # no new version
    assert register(api, second, V1) == (200, {"id": schema_id})  # same content, same id
    status, body = register(api, first, V2)
    # Ids are unique and increasing, not consecutive: the session's registry is shared, and
    # an import with an explicit id (test_rest_contract.py) moves the next id past it.
    assert status == 200 and body["id"] > schema_id, body
    second_id = body["id"]
    assert api.get(f"/subjects/{first}/versions") == (200, [1, 2])
    assert api.get(f"/subjects/{second}/versions") == (200, [1])
    status, body = api.get(f"/subjects/{first}/versions/latest")
    assert (status, body["version"], body["id"]) == (200, 2, second_id)
    assert json.loads(body["schema"]) == json.loads(V2)
    assert "schemaType" not in body  # Confluent leaves AVRO implicit
    assert api.get(f"/subjects/{first}/versions/-1")[1]["version"] == 2
    assert api.get(f"/subjects/{first}/versions/1")[1]["id"] == schema_id


def test_schema_by_id_and_where_it_is_used(api: Api, subject_name: Callable[[str], str]) -> None:
    first, second = subject_name("a"), subject_name("b")
    # A schema no other test registers: ids are shared by every subject holding the content.
    schema = avro(("id", "string"), name="P" + first.replace("-", "_")[-12:])
    schema_id = register(api, first, schema)[1]["id"]
    register(api, second, schema)
    status, body = api.get(f"/schemas/ids/{schema_id}")
    assert status == 200 and json.loads(body["schema"]) == json.loads(schema)
    assert api.get(f"/schemas/ids/{schema_id}/subjects")[1] == sorted([first, second])
    assert sorted(
        (v["subject"], v["version"]) for v in api.get(f"/schemas/ids/{schema_id}/versions")[1]
    ) == sorted([(first, 1), (second, 1)])
    status, raw = api.get(f"/schemas/ids/{schema_id}/schema")
    assert status == 200 and raw == json.loads(schema)
    assert api.get("/schemas/ids/987654321") == (
        404,
        {"error_code": 40403, "message": "Schema 987654321 not found"},
    )
    assert api.get("/schemas/types") == (200, ["AVRO", "JSON", "PROTOBUF"])


def test_lookup_finds_the_version_holding_a_schema(
    api: Api, subject_name: Callable[[str], str]
) -> None:
    subject = subject_name("value")
    schema_id = register(api, subject, V1)[1]["id"]
    status, body = api.post(f"/subjects/{subject}", {"schema": V1})
    assert status == 200
    assert (body["subject"], body["version"], body["id"]) == (subject, 1, schema_id)
    # The same schema laid out differently is the same schema.
    spaced = json.dumps(json.loads(V1), indent=4)
    assert api.post(f"/subjects/{subject}", {"schema": spaced})[1]["id"] == schema_id
    assert api.post(f"/subjects/{subject}", {"schema": V2})[1]["error_code"] == 40403
    assert api.post(f"/subjects/{subject_name('none')}", {"schema": V1})[1]["error_code"] == 40401


def test_incompatible_schema_is_refused_naming_the_field(
    api: Api, subject_name: Callable[[str], str]
) -> None:
    subject = subject_name("value")
    register(api, subject, V1)
    breaking = avro(("id", "string"), ("amount", "int"), ("note", "string"))
    status, body = register(api, subject, breaking)
    assert status == 409 and body["error_code"] == 409
    assert "note" in body["message"] and "READER_FIELD_MISSING_DEFAULT_VALUE" in body["message"]
    assert api.get(f"/subjects/{subject}/versions") == (200, [1])  # nothing was written

    path = f"/compatibility/subjects/{subject}/versions/latest"
    assert api.post(path, {"schema": breaking}) == (200, {"is_compatible": False})
    status, body = api.post(path, {"schema": breaking}, verbose=True)
    assert status == 200 and body["is_compatible"] is False
    assert any("note" in m for m in body["messages"])
    assert api.post(path, {"schema": V2}, verbose="True") == (
        200,
        {"is_compatible": True, "messages": []},
    )
    status, body = api.post(f"/compatibility/subjects/{subject}/versions/7", {"schema": V2})
    assert (status, body["error_code"]) == (404, 40402)


def test_compatibility_levels_per_subject_and_global(
    api: Api, subject_name: Callable[[str], str]
) -> None:
    subject = subject_name("value")
    register(api, subject, V1)
    assert api.get("/config")[1]["compatibilityLevel"] == "BACKWARD"
    status, body = api.get(f"/config/{subject}")
    assert (status, body["error_code"]) == (404, 40408)
    assert api.get(f"/config/{subject}", defaultToGlobal=True) == (
        200,
        {"compatibilityLevel": "BACKWARD"},
    )
    # FORWARD: the old schema must read the new one's data. Dropping a field without a
    # default in the old schema breaks that.
    assert api.put(f"/config/{subject}", {"compatibility": "FORWARD"}) == (
        200,
        {"compatibility": "FORWARD"},
    )
    dropped = avro(("id", "string"))
    status, body = register(api, subject, dropped)
    assert status == 409 and "amount" in body["message"]
    assert api.put(f"/config/{subject}", {"compatibility": "none"})[0] == 200
    assert register(api, subject, dropped)[0] == 200
    assert api.delete(f"/config/{subject}") == (200, {"compatibilityLevel": "NONE"})
    assert api.get(f"/config/{subject}")[1]["error_code"] == 40408
    status, body = api.put(f"/config/{subject}", {"compatibility": "SIDEWAYS"})
    assert (status, body["error_code"]) == (422, 42203)


def test_transitive_level_checks_every_version(
    api: Api, subject_name: Callable[[str], str]
) -> None:
    subject = subject_name("value")
    api.put(f"/config/{subject}", {"compatibility": "NONE"})
    register(api, subject, avro(("id", "string")))
    register(api, subject, avro(("id", "string"), ("n", "int", 0)))
    register(api, subject, avro(("id", "string"), ("n", "string", "x")))
    # Against the latest alone an int "n" reader cannot read string data; against the first
    # version only it could. The transitive level sees the middle one.
    candidate = avro(("id", "string"), ("n", "long", 0))
    api.put(f"/config/{subject}", {"compatibility": "BACKWARD"})
    assert register(api, subject, candidate)[0] == 409
    first = f"/compatibility/subjects/{subject}/versions/1"
    assert api.post(first, {"schema": candidate})[1] == {"is_compatible": True}
    api.put(f"/config/{subject}", {"compatibility": "BACKWARD_TRANSITIVE"})
    status, body = register(api, subject, avro(("id", "string"), ("n", "string", "y")))
    assert status == 409 and "version 2" in body["message"]


def test_soft_and_hard_deletes(api: Api, subject_name: Callable[[str], str]) -> None:
    subject = subject_name("value")
    register(api, subject, V1)
    register(api, subject, V2)
    status, body = api.delete(f"/subjects/{subject}/versions/1", permanent=True)
    assert (status, body["error_code"]) == (404, 40407)  # soft-delete first
    assert api.delete(f"/subjects/{subject}/versions/1") == (200, 1)
    assert api.get(f"/subjects/{subject}/versions") == (200, [2])
    assert api.get(f"/subjects/{subject}/versions", deleted=True) == (200, [1, 2])
    assert api.get(f"/subjects/{subject}/versions/1")[1]["error_code"] == 40402
    status, body = api.get(f"/subjects/{subject}/versions/1", deleted=True)
    assert status == 200 and body["deleted"] is True
    assert api.delete(f"/subjects/{subject}/versions/1")[1]["error_code"] == 40406
    assert api.delete(f"/subjects/{subject}/versions/1", permanent=True) == (200, 1)
    assert api.get(f"/subjects/{subject}/versions", deleted=True) == (200, [2])

    assert api.delete(f"/subjects/{subject}", permanent=True)[1]["error_code"] == 40405
    assert api.delete(f"/subjects/{subject}") == (200, [2])
    assert subject not in api.get("/subjects")[1]
    assert subject in api.get("/subjects", deleted=True)[1]
    assert api.delete(f"/subjects/{subject}")[1]["error_code"] == 40404
    # A new registration continues the version numbers of the soft-deleted subject.
    status, _ = register(api, subject, V1)
    assert api.get(f"/subjects/{subject}/versions") == (200, [3])
    api.delete(f"/subjects/{subject}")
    assert api.delete(f"/subjects/{subject}", permanent=True) == (200, [2, 3])
    assert api.get(f"/subjects/{subject}/versions", deleted=True)[1]["error_code"] == 40401


def test_references_between_subjects(api: Api, subject_name: Callable[[str], str]) -> None:
    money, payment = subject_name("money"), subject_name("payment")
    money_schema = json.dumps(
        {
            "type": "record",
            "name": "Money",
            "namespace": "finance",
            "fields": [{"name": "cents", "type": "long"}, {"name": "currency", "type": "string"}],
        }
    )
    money_id = register(api, money, money_schema)[1]["id"]
    payment_schema = json.dumps(
        {
            "type": "record",
            "name": "Payment",
            "namespace": "finance",
            "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "Money"}],
        }
    )
    reference = {"name": "finance.Money", "subject": money, "version": 1}
    status, body = register(api, payment, payment_schema, references=[reference])
    assert status == 200, body
    payment_id = body["id"]
    status, body = api.get(f"/schemas/ids/{payment_id}")
    assert body["references"] == [reference]
    assert api.get(f"/subjects/{money}/versions/1/referencedby") == (200, [payment_id])
    status, body = api.delete(f"/subjects/{money}/versions/1")
    assert (status, body["error_code"]) == (422, 42206)
    assert api.get(f"/schemas/ids/{money_id}")[0] == 200
    # Without the reference the type is unknown: an invalid schema, not a crash.
    status, body = register(api, subject_name("orphan"), payment_schema)
    assert (status, body["error_code"]) == (422, 42201)
    missing = {"name": "finance.Money", "subject": money, "version": 9}
    status, body = register(api, subject_name("x"), payment_schema, references=[missing])
    assert (status, body["error_code"]) == (422, 42201)


def test_modes(api: Api, subject_name: Callable[[str], str]) -> None:
    frozen, imported = subject_name("frozen"), subject_name("imported")
    register(api, frozen, V1)
    assert api.put(f"/mode/{frozen}", {"mode": "READONLY"}) == (200, {"mode": "READONLY"})
    status, body = register(api, frozen, V2)
    assert (status, body["error_code"]) == (422, 42205)
    assert api.delete(f"/subjects/{frozen}")[1]["error_code"] == 42205
    assert api.get(f"/mode/{frozen}") == (200, {"mode": "READONLY"})
    assert api.delete(f"/mode/{frozen}") == (200, {"mode": "READONLY"})
    assert register(api, frozen, V2)[0] == 200
    assert api.get("/mode") == (200, {"mode": "READWRITE"})
    assert api.put(f"/mode/{frozen}", {"mode": "SIDEWAYS"})[1]["error_code"] == 42204

    # IMPORT keeps the ids and versions of another registry.
    status, body = register(api, imported, V1, id=900001, version=5)
    assert (status, body["error_code"]) == (422, 42205)  # not in import mode
    assert api.put(f"/mode/{imported}", {"mode": "IMPORT"}) == (200, {"mode": "IMPORT"})
    assert register(api, imported, V1, id=900001, version=5) == (200, {"id": 900001})
    assert api.get(f"/subjects/{imported}/versions/5")[1]["id"] == 900001
    status, body = register(api, imported, V2, id=900001, version=6)
    assert (status, body["error_code"]) == (422, 42205)  # the id holds another schema


def test_normalize_makes_layout_and_key_order_irrelevant(
    api: Api, subject_name: Callable[[str], str]
) -> None:
    subject = subject_name("value")
    plain = {"type": "record", "name": "N", "fields": [{"name": "a", "type": {"type": "int"}}]}
    reordered = {"fields": [{"type": "int", "name": "a"}], "name": "N", "type": "record"}
    first = register(api, subject, json.dumps(plain), **{})[1]["id"]
    status, body = api.post(
        f"/subjects/{subject}/versions", {"schema": json.dumps(reordered)}, normalize=True
    )
    assert status == 200
    status, looked_up = api.post(
        f"/subjects/{subject}", {"schema": json.dumps(reordered)}, normalize="True"
    )
    assert status == 200 and looked_up["id"] in (first, body["id"])


def test_bad_input_gets_confluent_errors(api: Api, subject_name: Callable[[str], str]) -> None:
    subject = subject_name("value")
    raw = api.client.post(f"/subjects/{subject}/versions", content=b"{not json")
    assert raw.status_code == 400 and raw.json()["error_code"] == 400
    for schema in ("{not json", '{"type": "record", "name": "R"}', '{"type": "nonsense"}'):
        status, body = register(api, subject, schema)
        assert (status, body["error_code"]) == (422, 42201), schema
        assert body["message"].startswith("Invalid schema")
    status, body = api.post(f"/subjects/{subject}/versions", {"schema": ""})
    assert (status, body["error_code"]) == (422, 42201)
    status, body = api.post(f"/subjects/{subject}/versions", {"schema": V1, "schemaType": "XML"})
    assert (status, body["error_code"]) == (422, 42201)
    status, body = api.post(f"/subjects/{subject}/versions", ["not", "an", "object"])
    assert status == 422
    assert api.get(f"/subjects/{subject}/versions")[1]["error_code"] == 40401
    register(api, subject, V1)
    for version in ("abc", "0", "-2", "99999999999"):
        status, body = api.get(f"/subjects/{subject}/versions/{version}")
        assert (status, body["error_code"]) == (422, 42202), version
    assert api.get(f"/subjects/{subject}/versions/2")[1]["error_code"] == 40402
    status, body = api.get("/no/such/path")
    assert (status, body["error_code"]) == (404, 404)
    assert api.get("/schemas/ids/abc")[0] == 404
    assert api.get("/")[0] == 200  # and the registry still serves


def test_schemas_listing(api: Api, subject_name: Callable[[str], str]) -> None:
    subject = subject_name("value")
    register(api, subject, V1)
    register(api, subject, V2)
    prefix = subject[:-6]
    _, body = api.get("/schemas", subjectPrefix=prefix)
    assert [(s["subject"], s["version"]) for s in body] == [(subject, 1), (subject, 2)]
    _, body = api.get("/schemas", subjectPrefix=prefix, latestOnly=True)
    assert [(s["subject"], s["version"]) for s in body] == [(subject, 2)]
    assert api.get("/subjects", subjectPrefix=prefix) == (200, [subject])
