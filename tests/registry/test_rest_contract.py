"""The REST API as Confluent Schema Registry 8.x answers it, where clients and tools can tell:
status and error codes, message texts, content negotiation, listing filters and pages, the
probes tools send. Each expectation is read from Confluent's resources (``rest/resources``),
``rest/exceptions/Errors.java`` and rest-utils' exception mappers."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import httpx
import pytest
from google.protobuf import descriptor_pb2

from tests._registry import RegistryProcess
from tests.registry.conftest import Api
from tests.registry.test_api import V1, V2, avro, register

V1_JSON = "application/vnd.schemaregistry.v1+json"


@pytest.fixture
def http(shared_registry: RegistryProcess) -> httpx.Client:
    return httpx.Client(base_url=shared_registry.url, timeout=30)


# -- status codes and texts ----------------------------------------------------------------


def test_versions_of_a_subject_whose_versions_are_all_soft_deleted_are_40401(
    api: Api, subject_name: Callable[[str], str]
) -> None:
    subject = subject_name()
    register(api, subject, V1)
    api.delete(f"/subjects/{subject}")
    for path in ("versions/1", "versions/latest", "versions/1/schema"):
        assert api.get(f"/subjects/{subject}/{path}") == (
            404,
            {"error_code": 40401, "message": f"Subject '{subject}' not found."},
        ), path
    assert api.get(f"/subjects/{subject}/versions/1", deleted=True)[0] == 200
    status, body = api.post(f"/subjects/{subject}", {"schema": V1})
    assert (status, body["error_code"]) == (404, 40401)
    assert api.post(f"/subjects/{subject}", {"schema": V1}, deleted=True)[0] == 200


def test_messages_are_worded_as_confluent_words_them(
    api: Api, subject_name: Callable[[str], str]
) -> None:
    subject = subject_name()
    register(api, subject, V1)
    assert api.get("/schemas/ids/987654321") == (
        404,
        {"error_code": 40403, "message": "Schema 987654321 not found"},
    )
    assert api.get("/schemas/ids/987654321/versions") == (
        404,
        {"error_code": 40403, "message": "Schema not found"},
    )
    assert api.get(f"/subjects/{subject}/versions/9") == (
        404,
        {"error_code": 40402, "message": "Version 9 not found."},
    )
    assert api.post(f"/subjects/{subject}", {"schema": V2}) == (
        404,
        {"error_code": 40403, "message": "Schema not found"},
    )
    api.delete(f"/subjects/{subject}/versions/1")
    assert api.delete(f"/subjects/{subject}/versions/1") == (
        404,
        {
            "error_code": 40406,
            "message": f"Subject '{subject}' Version 1 was soft deleted.Set permanent=true to "
            "delete permanently",
        },
    )
    status, body = api.put(f"/config/{subject}", {"compatibility": "SIDEWAYS"})
    assert (status, body["error_code"]) == (422, 42203)
    assert body["message"].startswith("Invalid compatibility level. Valid values are none,")


def test_a_schema_id_that_is_not_a_32_bit_number_is_the_bare_404_jersey_gives(api: Api) -> None:
    bare = (404, {"error_code": 404, "message": "HTTP 404 Not Found"})
    for raw in ("abc", "1.5", "99999999999", "%20"):
        assert api.get(f"/schemas/ids/{raw}") == bare, raw
        assert api.get(f"/schemas/ids/{raw}/subjects") == bare, raw
    assert api.get("/no/such/route") == bare
    assert api.get("/schemas/ids/-1")[1] == {"error_code": 40403, "message": "Schema -1 not found"}
    assert api.call("PATCH", "/subjects") == (
        405,
        {"error_code": 405, "message": "HTTP 405 Method Not Allowed"},
    )


def test_compatibility_against_a_version_of_an_unknown_subject(
    api: Api, subject_name: Callable[[str], str]
) -> None:
    unknown = subject_name("unknown")
    assert api.post(f"/compatibility/subjects/{unknown}/versions/3", {"schema": V1}) == (
        404,
        {"error_code": 40402, "message": "Version 3 not found."},
    )
    # Nothing registered under "latest" means nothing to break.
    latest = f"/compatibility/subjects/{unknown}/versions/latest"
    assert api.post(latest, {"schema": V1}) == (200, {"is_compatible": True})
    assert api.post(latest, {"schema": V1}, verbose=True) == (
        200,
        {"is_compatible": True, "messages": []},
    )
    # Verbose, a schema that does not parse is the answer, not an error.
    status, body = api.post(latest, {"schema": '{"type": "nope"}'}, verbose=True)
    assert status == 200 and body["is_compatible"] is False and len(body["messages"]) == 1
    status, body = api.post(latest, {"schema": '{"type": "nope"}'})
    assert (status, body["error_code"]) == (422, 42201)
    # A subject whose only version is soft-deleted is checked against nothing as well.
    subject = subject_name("deleted")
    register(api, subject, V1)
    api.delete(f"/subjects/{subject}/versions/1")
    breaking = avro(("other", "string"))
    path = f"/compatibility/subjects/{subject}/versions/latest"
    assert api.post(path, {"schema": breaking}) == (200, {"is_compatible": True})
    status, body = api.post(f"/compatibility/subjects/{subject}/versions/1", {"schema": V1})
    assert (status, body["error_code"]) == (404, 40402)


def test_modes_refuse_registration_as_confluent_does(
    api: Api, subject_name: Callable[[str], str]
) -> None:
    imported = subject_name("imported")
    api.put(f"/mode/{imported}", {"mode": "IMPORT"})
    assert register(api, imported, V1) == (
        422,
        {
            "error_code": 42205,
            "message": f"Subject {imported} in context . is not in read-write mode",
        },
    )
    assert register(api, imported, V1, id=910001)[0] == 200
    # Even the schema already registered is refused without an id.
    assert register(api, imported, V1)[1]["error_code"] == 42205
    api.delete(f"/mode/{imported}")
    assert register(api, imported, V2, id=910002)[1] == {
        "error_code": 42205,
        "message": f"Subject {imported} in context . is not in import mode",
    }
    frozen = subject_name("frozen")
    api.put(f"/mode/{frozen}", {"mode": "READONLY"})
    assert register(api, frozen, V1)[1] == {
        "error_code": 42205,
        "message": f"Subject {frozen} in context . is in read-only mode",
    }
    # No subject-level mode or level to delete: Confluent answers "subject not found".
    plain = subject_name("plain")
    register(api, plain, V1)
    assert api.delete(f"/mode/{plain}")[1]["error_code"] == 40401
    assert api.delete(f"/config/{plain}")[1]["error_code"] == 40401
    # A version given outside IMPORT mode must be the next one.
    status, body = register(api, plain, V2, version=7)
    assert (status, body["error_code"]) == (422, 42201)
    assert register(api, plain, V2, version=2)[0] == 200


@pytest.mark.parametrize("reserved", ["__GLOBAL", "__EMPTY"])
def test_reserved_subject_names_are_refused(api: Api, reserved: str) -> None:
    invalid = {
        "error_code": 42208,
        "message": f"The specified subject '{reserved}' is not a valid.",
    }
    assert register(api, reserved, V1) == (422, invalid)
    assert api.put(f"/config/{reserved}", {"compatibility": "NONE"}) == (422, invalid)
    assert api.put(f"/mode/{reserved}", {"mode": "READONLY"}) == (422, invalid)
    assert api.get(f"/subjects/{reserved}/versions")[1]["error_code"] == 40401


# -- content negotiation -------------------------------------------------------------------


def test_the_answer_is_in_the_media_type_asked_for(http: httpx.Client) -> None:
    cases = {
        None: V1_JSON,
        "*/*": V1_JSON,
        "application/json": "application/json",
        "application/json; charset=utf-8": "application/json",
        "application/vnd.schemaregistry+json": "application/vnd.schemaregistry+json",
        "application/json, application/vnd.schemaregistry.v1+json": V1_JSON,
        "application/json, */*;q=0.8": "application/json",
        "application/*": V1_JSON,
    }
    for accept, expected in cases.items():
        headers = {} if accept is None else {"Accept": accept}
        response = http.get("/schemas/types", headers=headers)
        assert response.status_code == 200, accept
        assert response.headers["content-type"].split(";")[0] == expected, accept
        # Errors come in the negotiated type too.
        missing = http.get("/subjects/no-such-subject-at-all/versions", headers=headers)
        assert missing.headers["content-type"].split(";")[0] == expected, accept


def test_an_unacceptable_answer_type_is_406(http: httpx.Client) -> None:
    for accept in ("text/html", "application/xml", "application/json;q=0"):
        response = http.get("/subjects", headers={"Accept": accept})
        assert response.status_code == 406, accept
        assert response.json() == {"error_code": 406, "message": "HTTP 406 Not Acceptable"}


def test_a_request_body_of_an_unsupported_type_is_415(
    http: httpx.Client, subject_name: Callable[[str], str]
) -> None:
    subject = subject_name()
    body = json.dumps({"schema": V1}).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        response = http.post(
            f"/subjects/{subject}/versions", content=body, headers={"Content-Type": content_type}
        )
        assert response.status_code == 415, content_type
        assert response.json() == {"error_code": 415, "message": "HTTP 415 Unsupported Media Type"}
    assert http.get(f"/subjects/{subject}/versions").status_code == 404  # nothing registered
    for content_type in (None, "application/octet-stream", "application/json", V1_JSON):
        headers = {} if content_type is None else {"Content-Type": content_type}
        response = http.post(f"/subjects/{subject}/versions", content=body, headers=headers)
        assert response.status_code == 200, (content_type, response.text)


# -- listing -------------------------------------------------------------------------------


def test_deleted_only_lists_what_is_soft_deleted(
    api: Api, subject_name: Callable[[str], str]
) -> None:
    prefix = subject_name("listing")
    live, gone = f"{prefix}-live", f"{prefix}-gone"
    register(api, live, V1)
    register(api, live, V2)
    register(api, gone, V1)
    api.delete(f"/subjects/{live}/versions/1")
    api.delete(f"/subjects/{gone}")
    assert api.get("/subjects", subjectPrefix=prefix) == (200, [live])
    assert api.get("/subjects", subjectPrefix=prefix, deleted=True) == (200, sorted([live, gone]))
    # deletedOnly wins over deleted; a subject counts as deleted when all its versions are.
    assert api.get("/subjects", subjectPrefix=prefix, deletedOnly=True) == (200, [gone])
    assert api.get("/subjects", subjectPrefix=prefix, deletedOnly=True, deleted=True) == (
        200,
        [gone],
    )
    assert api.get(f"/subjects/{live}/versions", deletedOnly=True) == (200, [1])
    assert api.get(f"/subjects/{live}/versions", deletedAsNegative=True) == (200, [-1, 2])
    assert api.get(f"/subjects/{gone}/versions", deletedOnly=True) == (200, [1])
    assert api.get(f"/subjects/{gone}/versions")[1]["error_code"] == 40401


def test_offset_and_limit_page_through_listings(
    api: Api, subject_name: Callable[[str], str]
) -> None:
    base = subject_name("page")
    subjects = [f"{base}-{i}" for i in range(4)]
    schema = avro(("id", "string"), name="Paged" + base.replace("-", "_")[-10:])
    for subject in subjects:
        register(api, subject, schema)
    api.put(f"/config/{subjects[0]}", {"compatibility": "NONE"})
    for n in range(2, 5):
        register(api, subjects[0], avro(("id", "string"), ("n", "int", n), name=f"P{n}"))
    assert api.get("/subjects", subjectPrefix=base, offset=1, limit=2) == (200, subjects[1:3])
    assert api.get("/subjects", subjectPrefix=base, offset=3) == (200, subjects[3:])
    # A limit of 0 or below is "no limit" (Confluent falls back to the default).
    assert api.get("/subjects", subjectPrefix=base, limit=0) == (200, subjects)
    assert api.get(f"/subjects/{subjects[0]}/versions", offset=1, limit=2) == (200, [2, 3])
    _, listed = api.get("/schemas", subjectPrefix=base, offset=2, limit=3)
    assert [(s["subject"], s["version"]) for s in listed] == [
        (subjects[0], 3),
        (subjects[0], 4),
        (subjects[1], 1),
    ]
    schema_id = api.get(f"/subjects/{subjects[1]}/versions/1")[1]["id"]
    assert api.get(f"/schemas/ids/{schema_id}/subjects", offset=1, limit=2) == (
        200,
        subjects[1:3],
    )
    _, versions = api.get(f"/schemas/ids/{schema_id}/versions", limit=1)
    assert versions == [{"subject": subjects[0], "version": 1}]
    assert api.get("/subjects", offset="many")[1] == {
        "error_code": 404,
        "message": "HTTP 404 Not Found",
    }


# -- probes --------------------------------------------------------------------------------


def test_root_metadata_and_health_probes(http: httpx.Client) -> None:
    assert http.get("/").json() == {}
    assert http.post("/", json={}).json() == {}
    metadata = http.get("/v1/metadata/id").json()
    assert metadata["id"] == ""
    assert metadata["scope"]["path"] == []
    clusters = metadata["scope"]["clusters"]
    assert clusters["kafka-cluster"]  # the Kafka cluster id the broker reports
    assert clusters["schema-registry-cluster"] == "nerve-registry-_schemas"
    assert set(http.get("/v1/metadata/version").json()) == {"version", "commitId"}
    health = http.get("/_health")
    assert health.status_code == 200 and health.json()["healthy"] is True
    assert health.json()["status"]["ready"] is True
    assert http.get("/master_available").json() == {"master_available": True}


# -- Avro's canonical form -----------------------------------------------------------------


def test_the_same_avro_schema_spelled_differently_keeps_its_id_and_version(
    api: Api, subject_name: Callable[[str], str]
) -> None:
    """Confluent stores Java Avro's Schema.toString() of a schema, so key order and
    ``{"type": "string"}`` for ``"string"`` are the same schema: same id, no new version."""
    subject, other = subject_name("a"), subject_name("b")
    name = "Spelled" + subject.replace("-", "_")[-10:]
    first = {
        "type": "record",
        "name": name,
        "namespace": "shop",
        "fields": [{"name": "id", "type": "string"}, {"name": "n", "type": "int", "default": 0}],
    }
    respelled = {
        "fields": [
            {"type": {"type": "string"}, "name": "id"},
            {"default": 0, "name": "n", "type": {"type": "int"}},
        ],
        "namespace": "shop",
        "name": f"shop.{name}",
        "type": "record",
    }
    status, body = register(api, subject, json.dumps(first))
    assert status == 200, body
    schema_id = body["id"]
    assert register(api, subject, json.dumps(respelled)) == (200, {"id": schema_id})
    assert api.get(f"/subjects/{subject}/versions") == (200, [1])
    assert register(api, other, json.dumps(respelled)) == (200, {"id": schema_id})
    status, found = api.post(f"/subjects/{subject}", {"schema": json.dumps(respelled)})
    assert (status, found["version"], found["id"]) == (200, 1, schema_id)
    stored = api.get(f"/schemas/ids/{schema_id}")[1]["schema"]
    assert stored == (
        f'{{"type":"record","name":"{name}","namespace":"shop","fields":'
        '[{"name":"id","type":"string"},{"name":"n","type":"int","default":0}]}'
    )


def test_a_json_schema_with_keys_in_another_order_is_the_same_version(
    api: Api, subject_name: Callable[[str], str]
) -> None:
    """Confluent compares JSON Schemas as Jackson trees, whose objects ignore key order."""
    subject = subject_name()
    schema = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 3}}}
    reordered = {"properties": {"a": {"maxLength": 3, "type": "string"}}, "type": "object"}
    status, body = register(api, subject, json.dumps(schema), schemaType="JSON")
    assert status == 200, body
    again = register(api, subject, json.dumps(reordered), schemaType="JSON")
    assert again == (200, {"id": body["id"]})
    assert api.get(f"/subjects/{subject}/versions") == (200, [1])


# -- Protobuf custom options ---------------------------------------------------------------


def test_a_protobuf_schema_using_options_it_does_not_define_registers(
    api: Api, subject_name: Callable[[str], str]
) -> None:
    """As with Confluent: the options stay in the schema text, not in its descriptor."""
    subject = subject_name()
    text = (
        'syntax = "proto3";\npackage audit;\n'
        "message Login { option (acme.retention_days) = 30;\n"
        "  string user = 1 [(acme.pii) = true]; }\n"
    )
    status, body = register(api, subject, text, schemaType="PROTOBUF")
    assert status == 200, body
    schema_id = body["id"]
    stored = api.get(f"/schemas/ids/{schema_id}")[1]["schema"]
    assert "option (acme.retention_days) = 30;" in stored
    assert "string user = 1 [(acme.pii) = true];" in stored
    assert register(api, subject, stored, schemaType="PROTOBUF") == (200, {"id": schema_id})
    serialized = api.get(f"/schemas/ids/{schema_id}", format="serialized")[1]["schema"]
    descriptor = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(serialized))
    assert descriptor.message_type[0].options.ByteSize() == 0
