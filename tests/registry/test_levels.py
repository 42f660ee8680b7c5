"""Each compatibility level, for each schema type, through the REST API: a table of changes
(one that only new readers survive, one that only old readers survive, one that both survive)
and whether each level accepts it. The transitive levels are in test_api."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.registry.conftest import Api

# type -> (base, backward-only change, forward-only change, fully compatible change)
CHANGES: dict[str, tuple[str, str, str, str]] = {
    "AVRO": tuple(  # type: ignore[assignment]
        json.dumps({"type": "record", "name": "E", "fields": fields})
        for fields in (
            [{"name": "id", "type": "string"}, {"name": "n", "type": "int"}],
            [{"name": "id", "type": "string"}],  # drops n: old readers lack it
            [  # adds m without default: new readers cannot read old data
                {"name": "id", "type": "string"},
                {"name": "n", "type": "int"},
                {"name": "m", "type": "int"},
            ],
            [
                {"name": "id", "type": "string"},
                {"name": "n", "type": "int"},
                {"name": "m", "type": "int", "default": 0},
            ],
        )
    ),
    "JSON": tuple(  # type: ignore[assignment]
        json.dumps({"type": "object", "properties": props, **extra})
        for props, extra in (
            ({"id": {"type": "string"}, "n": {"type": "integer"}}, {}),
            ({"id": {"type": "string"}}, {}),  # an open model drops n: old data still fits
            (  # an open model gains m: old data may hold anything under m
                {"id": {"type": "string"}, "n": {"type": "integer"}, "m": {"type": "integer"}},
                {},
            ),
            ({"id": {"type": "string"}, "n": {"type": "integer"}}, {"title": "Event"}),
        )
    ),
    "PROTOBUF": tuple(  # type: ignore[assignment]
        'syntax = "proto3";\n' + body
        for body in (
            "message E { string id = 1; }\nmessage F { int32 x = 1; }\n",
            # a message added: new readers know more, old readers miss it
            "message E { string id = 1; }\nmessage F { int32 x = 1; }\nmessage G { }\n",
            "message E { string id = 1; }\n",  # a message removed: the mirror image
            "message E { string id = 1; int32 n = 2; }\nmessage F { int32 x = 1; }\n",
        )
    ),
}

EXPECTED = {  # level -> (backward-only accepted, forward-only accepted, full accepted)
    "NONE": (True, True, True),
    "BACKWARD": (True, False, True),
    "FORWARD": (False, True, True),
    "FULL": (False, False, True),
}
# With one earlier version the transitive levels must judge exactly as their plain forms.
EXPECTED.update({f"{level}_TRANSITIVE": EXPECTED[level] for level in list(EXPECTED)[1:]})


def _cases() -> list[tuple[str, str, int]]:
    return [(t, level, change) for t in CHANGES for level in EXPECTED for change in range(3)]


@pytest.mark.parametrize(("schema_type", "level", "change"), _cases())
def test_level_accepts_exactly_the_changes_it_allows(
    api: Api, subject_name: Callable[[str], str], schema_type: str, level: str, change: int
) -> None:
    base, backward_only, forward_only, full = CHANGES[schema_type]
    candidate = (backward_only, forward_only, full)[change]
    subject = subject_name(schema_type.lower())
    assert api.put(f"/config/{subject}", {"compatibility": level})[0] == 200
    status, body = api.post(
        f"/subjects/{subject}/versions", {"schema": base, "schemaType": schema_type}
    )
    assert status == 200, body
    status, body = api.post(
        f"/subjects/{subject}/versions", {"schema": candidate, "schemaType": schema_type}
    )
    accepted = EXPECTED[level][change]
    assert status == (200 if accepted else 409), body
    if not accepted:
        assert body["error_code"] == 409 and "(" in body["message"]  # names the rule
