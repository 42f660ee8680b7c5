"""Store values as the changelog writes them: models spliced from pydantic's own JSON read back
as they were, and as the json path (what older releases wrote) reads them."""

from __future__ import annotations

import json

from pydantic import BaseModel

from nerve.streams.joins import value_hash
from nerve.streams.serde import _dumps, decode_value, encode_value, to_jsonable


class Line(BaseModel):
    sku: str
    price: float


class State(BaseModel):
    status: str = "new"
    lines: list[Line] = []
    ratio: float = 1e-05
    note: str | None = None


def _state() -> State:
    return State(status="placé", lines=[Line(sku="a", price=0.1), Line(sku="b", price=1e20)])


def test_a_model_and_a_model_in_a_tuple_read_back_equal() -> None:
    for value in (_state(), (7, _state()), (1, "x", _state(), None), State()):
        assert decode_value(encode_value(value)) == value


def test_encoded_as_the_json_path_encodes_it() -> None:
    # Same JSON values as model_dump + json.dumps (what a changelog of an older release holds),
    # whatever the text of the floats.
    for value in (_state(), (7, _state())):
        assert json.loads(encode_value(value) or b"") == to_jsonable(value)
        assert decode_value(_dumps(to_jsonable(value)).encode()) == value


def test_join_value_hash_is_the_json_path_s() -> None:
    import hashlib

    value = (3, _state())
    expected = hashlib.blake2b(_dumps(to_jsonable(value)).encode(), digest_size=16).hexdigest()
    assert value_hash(value) == expected
    assert value_hash(None) is None


def test_a_plain_tuple_is_written_as_the_json_path_writes_it() -> None:
    for value in [("a|b", 1796309332244), (3, None, 0.5, "é"), (), (True, 1), (("x", 1), 2)]:
        assert encode_value(value) == _dumps(to_jsonable(value)).encode()
        assert decode_value(encode_value(value)) == value
