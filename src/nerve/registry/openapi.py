"""The registry's OpenAPI 3.1 document, served at ``/openapi.json`` (and fuzzed by the tests).

Written as a table of operations rather than by hand per path, so that a new route is one line.
"""

from __future__ import annotations

import functools
from typing import Any

_CT = "application/vnd.schemaregistry.v1+json"

_BOOL = {"type": "string", "enum": ["true", "false", "True", "False"]}
_QUERY: dict[str, dict[str, Any]] = {
    "deleted": _BOOL,
    "permanent": _BOOL,
    "normalize": _BOOL,
    "verbose": _BOOL,
    "force": _BOOL,
    "defaultToGlobal": _BOOL,
    "latestOnly": _BOOL,
    "deletedOnly": _BOOL,
    "deletedAsNegative": _BOOL,
    "offset": {"type": "integer", "minimum": 0, "maximum": 2147483647},
    "limit": {"type": "integer", "minimum": -1, "maximum": 2147483647},
    "subjectPrefix": {"type": "string"},
    "subject": {"type": "string"},
    "format": {"type": "string", "enum": ["serialized", "resolved"]},
}
_PATH: dict[str, dict[str, Any]] = {
    # "/" included: Protobuf imports are registered under their paths, sent as %2F.
    "subject": {"type": "string", "minLength": 1, "pattern": "^[A-Za-z0-9._/-]+$"},
    "version": {
        "oneOf": [
            {"type": "string", "enum": ["latest"]},
            {"type": "integer", "minimum": -1, "maximum": 2147483647},
        ]
    },
    "id": {"type": "integer", "minimum": 0, "maximum": 2147483647},
}

_REFERENCE = {
    "type": "object",
    "required": ["name", "subject", "version"],
    "properties": {
        "name": {"type": "string"},
        "subject": {"type": "string"},
        "version": {"type": "integer"},
    },
}
_SCHEMA_REQUEST = {
    "type": "object",
    "required": ["schema"],
    "properties": {
        "schema": {"type": "string"},
        "schemaType": {"type": "string", "enum": ["AVRO", "JSON", "PROTOBUF"]},
        "references": {"type": "array", "items": _REFERENCE},
        "id": {"type": "integer", "minimum": 1},
        "version": {"type": "integer", "minimum": 1},
    },
}
_SCHEMA = {
    "type": "object",
    "required": ["schema"],
    "properties": {
        "schema": {"type": "string"},
        "schemaType": {"type": "string"},
        "references": {"type": "array", "items": _REFERENCE},
    },
}
_VERSION = {
    "type": "object",
    "required": ["subject", "version", "id", "schema"],
    "properties": {
        "subject": {"type": "string"},
        "version": {"type": "integer"},
        "id": {"type": "integer"},
        **_SCHEMA["properties"],  # type: ignore[dict-item]
        "deleted": {"type": "boolean"},
    },
}
_ERROR = {
    "type": "object",
    "required": ["error_code", "message"],
    "properties": {"error_code": {"type": "integer"}, "message": {"type": "string"}},
}
_INTS = {"type": "array", "items": {"type": "integer"}}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_COMPAT = {"type": "object", "properties": {"compatibilityLevel": {"type": "string"}}}
_LEVEL_BODY = {
    "type": "object",
    "properties": {
        "compatibility": {
            "type": "string",
            "enum": [
                "NONE",
                "BACKWARD",
                "BACKWARD_TRANSITIVE",
                "FORWARD",
                "FORWARD_TRANSITIVE",
                "FULL",
                "FULL_TRANSITIVE",
            ],
        }
    },
}
_MODE = {
    "type": "object",
    "properties": {"mode": {"type": "string", "enum": ["READWRITE", "READONLY", "IMPORT"]}},
}

# (method, path, summary, query flags, request body schema, 200 response schema)
_OPERATIONS: list[tuple[str, str, str, tuple[str, ...], Any, Any]] = [
    ("get", "/", "Liveness (Confluent's root resource)", (), None, {"type": "object"}),
    ("post", "/", "Liveness with a body", (), {"type": "object"}, {"type": "object"}),
    ("get", "/v1/metadata/id", "The Kafka and registry cluster ids", (), None, {"type": "object"}),
    ("get", "/v1/metadata/version", "The server's version", (), None, {"type": "object"}),
    (
        "get",
        "/_health",
        "Health, as Karapace answers it (a courtesy)",
        (),
        None,
        {"type": "object"},
    ),
    (
        "get",
        "/master_available",
        "Whether writes are served, as Karapace answers it (a courtesy)",
        (),
        None,
        {"type": "object"},
    ),
    ("get", "/schemas/types", "Supported schema types", (), None, _STRINGS),
    ("get", "/contexts", "Contexts (only the default)", (), None, _STRINGS),
    (
        "get",
        "/schemas",
        "Schemas of every subject",
        ("subjectPrefix", "deleted", "latestOnly", "offset", "limit"),
        None,
        {"type": "array", "items": _VERSION},
    ),
    ("get", "/schemas/ids/{id}", "A schema by id", ("subject", "format"), None, _SCHEMA),
    ("get", "/schemas/ids/{id}/schema", "A schema's text by id", ("format",), None, None),
    (
        "get",
        "/schemas/ids/{id}/subjects",
        "Subjects using an id",
        ("deleted", "offset", "limit"),
        None,
        _STRINGS,
    ),
    (
        "get",
        "/schemas/ids/{id}/versions",
        "Subject versions using an id",
        ("deleted", "offset", "limit"),
        None,
        {"type": "array", "items": {"type": "object"}},
    ),
    (
        "get",
        "/subjects",
        "Subjects",
        ("subjectPrefix", "deleted", "deletedOnly", "offset", "limit"),
        None,
        _STRINGS,
    ),
    (
        "post",
        "/subjects/{subject}",
        "Look up a schema under a subject",
        ("normalize", "deleted"),
        _SCHEMA_REQUEST,
        _VERSION,
    ),
    ("delete", "/subjects/{subject}", "Delete a subject", ("permanent",), None, _INTS),
    (
        "get",
        "/subjects/{subject}/versions",
        "A subject's versions",
        ("deleted", "deletedOnly", "deletedAsNegative", "offset", "limit"),
        None,
        _INTS,
    ),
    (
        "post",
        "/subjects/{subject}/versions",
        "Register a schema",
        ("normalize",),
        _SCHEMA_REQUEST,
        {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}},
    ),
    (
        "get",
        "/subjects/{subject}/versions/{version}",
        "A subject version",
        ("deleted", "format"),
        None,
        _VERSION,
    ),
    (
        "delete",
        "/subjects/{subject}/versions/{version}",
        "Delete a version",
        ("permanent",),
        None,
        {"type": "integer"},
    ),
    (
        "get",
        "/subjects/{subject}/versions/{version}/schema",
        "A version's schema text",
        ("deleted", "format"),
        None,
        None,
    ),
    (
        "get",
        "/subjects/{subject}/versions/{version}/referencedby",
        "Ids of schemas referring to a version",
        ("offset", "limit"),
        None,
        _INTS,
    ),
    (
        "post",
        "/compatibility/subjects/{subject}/versions",
        "Check a schema against the subject's versions",
        ("verbose", "normalize"),
        _SCHEMA_REQUEST,
        {"type": "object", "required": ["is_compatible"]},
    ),
    (
        "post",
        "/compatibility/subjects/{subject}/versions/{version}",
        "Check a schema against one version",
        ("verbose", "normalize"),
        _SCHEMA_REQUEST,
        {"type": "object", "required": ["is_compatible"]},
    ),
    ("get", "/config", "Global compatibility level", (), None, _COMPAT),
    ("put", "/config", "Set the global compatibility level", (), _LEVEL_BODY, {"type": "object"}),
    ("delete", "/config", "Reset the global compatibility level", (), None, _COMPAT),
    ("get", "/config/{subject}", "A subject's level", ("defaultToGlobal",), None, _COMPAT),
    ("put", "/config/{subject}", "Set a subject's level", (), _LEVEL_BODY, {"type": "object"}),
    ("delete", "/config/{subject}", "Remove a subject's level", (), None, _COMPAT),
    ("get", "/mode", "Global mode", (), None, _MODE),
    ("put", "/mode", "Set the global mode", ("force",), _MODE, _MODE),
    ("get", "/mode/{subject}", "A subject's mode", ("defaultToGlobal",), None, _MODE),
    ("put", "/mode/{subject}", "Set a subject's mode", ("force",), _MODE, _MODE),
    ("delete", "/mode/{subject}", "Remove a subject's mode", (), None, _MODE),
]


def _json(schema: Any) -> dict[str, Any]:
    return {_CT: {"schema": schema}, "application/json": {"schema": schema}}


@functools.cache
def openapi_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, flags, body, answer in _OPERATIONS:
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": _PATH[name]}
            for name in _PATH
            if "{" + name + "}" in path
        ] + [{"name": name, "in": "query", "schema": _QUERY[name]} for name in flags]
        ok: dict[str, Any] = {"description": "OK"}
        ok["content"] = _json(answer) if answer is not None else {_CT: {"schema": {}}}
        operation: dict[str, Any] = {
            "summary": summary,
            "operationId": f"{method}_{path}",
            "parameters": parameters,
            "responses": {
                "200": ok,
                "default": {"description": "An error", "content": _json(_ERROR)},
            },
        }
        if body is not None:
            operation["requestBody"] = {"required": True, "content": _json(body)}
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "nerve schema registry",
            "version": "1",
            "description": "The Confluent Schema Registry REST API, served by nerve.",
        },
        "paths": paths,
    }
