"""No schema, however large, deep or devious, takes the registry down or stops it answering
(issue 11, item 13): parsing is linear and runs outside the registry's lock, request bodies,
nesting depth and the work of one check are bounded, and each refusal says which limit."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from nerve.registry.config import RegistryConfig, RegistryConfigError
from nerve.registry.schema_types import InvalidSchema, avro, json_schema
from tests._broker import BrokerProcess
from tests._registry import RegistryProcess
from tests.registry.conftest import Api
from tests.registry.test_api import register


def wide_record(fields: int, name: str = "Wide") -> str:
    return json.dumps(
        {
            "type": "record",
            "name": name,
            "fields": [{"name": f"f{i}", "type": "int"} for i in range(fields)],
        }
    )


def nested_records(levels: int) -> str:
    text = '"int"'
    for i in range(levels):
        text = f'{{"type":"record","name":"R{i}","fields":[{{"name":"f","type":{text}}}]}}'
    return text


def nested_arrays(levels: int) -> str:
    return '{"type":"array","items":' * levels + '"int"' + "}" * levels


def nested_json_schema(levels: int) -> str:
    return '{"type":"array","items":' * levels + '{"type":"string"}' + "}" * levels


@pytest.fixture(scope="module")
def small_registry(
    shared_broker: BrokerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryProcess]:
    root: Path = tmp_path_factory.mktemp("limited-registry")
    proc = RegistryProcess(
        root,
        shared_broker.bootstrap,
        topic="_schemas-limits",
        settings={"max.request.bytes": "100000", "max.check.steps": "50000"},
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.close()


# -- size and time -------------------------------------------------------------------------


def test_the_instance_answers_while_a_100000_field_schema_is_registered(
    api: Api, shared_registry: RegistryProcess, subject_name: Callable[[str], str]
) -> None:
    """A 3 MB schema takes a worker for a while, but not the registry: reads that need the
    registry's state are answered meanwhile. (The schema is then too large for the _schemas
    topic's 1 MB records, which Confluent answers 42209.)"""
    schema = wide_record(100_000)
    outcome: dict[str, object] = {}

    def registration() -> None:
        with httpx.Client(base_url=shared_registry.url, timeout=300) as client:
            response = client.post(
                f"/subjects/{subject_name('wide')}/versions", json={"schema": schema}
            )
            outcome["status"], outcome["body"] = response.status_code, response.json()
        outcome["done"] = time.monotonic()

    worker = threading.Thread(target=registration)
    worker.start()
    answered_meanwhile = 0
    while worker.is_alive():
        status, _ = api.get("/subjects")  # takes the registry's state lock
        if status == 200 and worker.is_alive():
            answered_meanwhile += 1
    worker.join()
    assert outcome["status"] == 422, outcome
    assert outcome["body"] == {
        "error_code": 42209,
        "message": "Register operation failed because schema is too large",
    }
    assert answered_meanwhile > 0


def test_a_wide_schema_is_parsed_and_checked_in_one_pass() -> None:
    """Parsing used to compare every field with every other (16,000 fields: 8 s of CPU, 100,000
    fields: minutes); now a 100,000-field record parses and is compared with itself."""
    wide = avro.parse(wide_record(100_000))
    assert wide.incompatibilities(avro.parse(wide_record(100_000, name="Wide"))) == []
    with pytest.raises(InvalidSchema, match="more than one field 'f7'"):
        avro.parse(wide_record(10).replace('"f8"', '"f7"'))


def test_a_request_body_over_max_request_bytes_is_refused_unread(
    small_registry: RegistryProcess,
) -> None:
    with httpx.Client(base_url=small_registry.url, timeout=30) as client:
        body = json.dumps({"schema": wide_record(5_000)}).encode()
        assert len(body) > 100_000
        response = client.post(
            "/subjects/big-value/versions",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert response.json() == {
            "error_code": 413,
            "message": f"The request body of {len(body)} bytes exceeds the limit of 100000 "
            "bytes (max.request.bytes)",
        }

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            for start in range(0, len(body), 16_384):
                yield body[start : start + 16_384]

        response = client.post(
            "/subjects/big-value/versions",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert "exceeds the limit of 100000 bytes" in response.json()["message"]
        assert client.get("/subjects/big-value/versions").status_code == 404
        small = json.dumps({"schema": wide_record(10)})
        ok = client.post("/subjects/small-value/versions", content=small)
        assert ok.status_code == 200, ok.text


def test_registry_settings_are_checked() -> None:
    config = RegistryConfig()
    config.apply({"max.request.bytes": "2048", "max.schema.depth": "64"})
    assert (config.max_request_bytes, config.max_schema_depth) == (2048, 64)
    with pytest.raises(RegistryConfigError, match=r"unknown registry setting 'max\.bytes'"):
        config.apply({"max.bytes": "1"})
    with pytest.raises(RegistryConfigError, match="must be an integer"):
        config.apply({"max.check.steps": "lots"})


# -- depth ---------------------------------------------------------------------------------


def test_deep_schemas_up_to_jacksons_limit_register_and_deeper_ones_are_refused_saying_so(
    api: Api, subject_name: Callable[[str], str]
) -> None:
    # 300 nested records are 901 JSON levels: within the 1000 Confluent's Jackson reads.
    for schema, schema_type in (
        (nested_records(300), "AVRO"),
        (nested_arrays(999), "AVRO"),
        (nested_json_schema(999), "JSON"),
    ):
        status, body = register(api, subject_name("deep"), schema, schemaType=schema_type)
        assert status == 200, (schema_type, body)
    for schema, schema_type, levels in (
        (nested_records(334), "AVRO", 1002),
        (nested_arrays(1001), "AVRO", 1001),
        (nested_json_schema(1000), "JSON", 1001),
    ):
        status, body = register(api, subject_name("deeper"), schema, schemaType=schema_type)
        assert (status, body["error_code"]) == (422, 42201), schema_type
        assert (
            f"nests {levels} levels deep; the limit is 1000 (max.schema.depth)" in (body["message"])
        ), body
        assert "not valid JSON" not in body["message"]


# -- work ----------------------------------------------------------------------------------


def _union(branches: int) -> str:
    records = [
        {"type": "record", "name": f"B{i}", "fields": [{"name": "v", "type": "int"}]}
        for i in range(branches)
    ]
    return json.dumps({"type": "record", "name": "U", "fields": [{"name": "u", "type": records}]})


def test_a_check_that_would_take_too_many_steps_is_refused(
    small_registry: RegistryProcess,
) -> None:
    """Two unions of n records are compared branch by branch, n²/2 comparisons; past
    max.check.steps (here 50,000) the registration is refused instead of computed."""
    with httpx.Client(base_url=small_registry.url, timeout=60) as client:
        first = client.post("/subjects/unions-value/versions", json={"schema": _union(400)})
        assert first.status_code == 200, first.text
        widened = _union(401)
        response = client.post("/subjects/unions-value/versions", json={"schema": widened})
        assert response.status_code == 422
        assert response.json() == {
            "error_code": 42201,
            "message": "Invalid schema: the compatibility check needs more than 50000 steps "
            "(max.check.steps)",
        }
        check = client.post(
            "/compatibility/subjects/unions-value/versions/latest", json={"schema": widened}
        )
        assert check.json()["error_code"] == 42201


def test_references_shaped_like_a_diamond_are_resolved_once_each(
    api: Api, subject_name: Callable[[str], str]
) -> None:
    """Level k refers to level k-1 twice: walking the references naively visits 2^k schemas
    (2^24 for the last one here); each subject version is now visited once."""
    base = subject_name("diamond")
    register(api, f"{base}-0", '{"type": "string"}', schemaType="JSON")
    for level in range(1, 25):
        schema = json.dumps(
            {"properties": {"a": {"$ref": "a.json"}, "b": {"$ref": "b.json"}}, "title": str(level)}
        )
        refs = [
            {"name": name, "subject": f"{base}-{level - 1}", "version": 1}
            for name in ("a.json", "b.json")
        ]
        status, body = register(api, f"{base}-{level}", schema, schemaType="JSON", references=refs)
        assert status == 200, (level, body)


# -- circular references -------------------------------------------------------------------


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#"},
        {"allOf": [{"$ref": "#"}]},
        {
            "definitions": {
                "a": {"$ref": "#/definitions/b"},
                "b": {"anyOf": [{"$ref": "#/definitions/a"}, {"type": "null"}]},
            },
            "type": "object",
            "properties": {"x": {"$ref": "#/definitions/a"}},
        },
    ],
)
def test_a_circular_ref_that_never_reads_the_value_is_refused(
    api: Api, subject_name: Callable[[str], str], schema: dict[str, object]
) -> None:
    status, body = register(api, subject_name("circular"), json.dumps(schema), schemaType="JSON")
    assert (status, body["error_code"]) == (422, 42201)
    assert "a circular $ref" in body["message"]


def test_a_recursive_schema_through_properties_is_fine() -> None:
    tree = {
        "type": "object",
        "properties": {"children": {"type": "array", "items": {"$ref": "#"}}},
    }
    parsed = json_schema.parse(json.dumps(tree))
    assert parsed.incompatibilities(parsed) == []
    assert parsed.validate({"children": [{"children": []}, {"children": [{}]}]}) == []
    assert parsed.validate({"children": [{"children": 3}]})
