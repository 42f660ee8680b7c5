"""The filter language: what it accepts, what it refuses (and says why), how records compare."""

from __future__ import annotations

import pytest

from nerve.console.filters import FilterError, compile_filter

RECORD = {
    "key": "acct-7",
    "value": {"amount": 250, "email": "ada@example.com", "tags": ["vip"], "nested": {"a": [1, 2]}},
    "headers": {"ce_type": "finance.transaction.recorded"},
    "ce": {"type": "finance.transaction.recorded", "correlationid": "c1"},
    "topic": "finance.transactions",
    "partition": 2,
    "offset": 10,
    "timestamp": 1_800_000_000_000,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('value.amount > 100 && key == "acct-7"', True),
        ("value.amount > 100 and partition == 3", False),
        ('headers.ce_type == "finance.transaction.recorded" || false', True),
        ('!(value.email.endsWith("@example.com"))', False),
        ('value.email.startsWith("ada") && value.email.contains("@")', True),
        ('"vip" in value.tags', True),
        ('value.tags.contains("vip")', True),
        ("value.nested.a[1] == 2", True),
        ('value["nested"]["a"][5] == null', True),  # out of range: null
        ("value.missing == null", True),
        ('value.email.matches("^a.a@")', True),
        ("size(value.tags) == 1 && value.email.size() > 3", True),
        ('ce.correlationid == "c1"', True),
        ('int("12") + 1 == 13 && double(value.amount) / 2 == 125.0', True),
        ('value.email.upper() == "ADA@EXAMPLE.COM"', True),
        ("offset != 10", False),
        ("timestamp >= 1800000000000 && -offset < 0", True),
        ('key == "a && b || !c"', False),  # operators inside strings are left alone
    ],
)
def test_expressions_evaluate_as_cel_would(text: str, expected: bool) -> None:
    assert compile_filter(text).matches(dict(RECORD)) is expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("__import__('os')", "unknown function __import__()"),
        ("open('/etc/passwd')", "unknown function open()"),
        ("value.amount.__class__.__mro__", None),  # field lookups, not attributes: harmless
        ("(lambda: 1)()", "Lambda is not part of the filter language"),
        ("[x for x in value]", "ListComp is not part of the filter language"),
        ("secret == 1", "unknown name 'secret'"),
        ("value.email.format(1)", "unknown method format()"),
        ("value[1:2]", "slices are not part of the filter language"),
        ("b'x' == key", "b'x' is not a value of the filter language"),
        ("value.amount >", "not an expression"),
        ("", "an empty filter"),
    ],
)
def test_anything_else_is_refused_with_its_reason(text: str, reason: str | None) -> None:
    if reason is None:
        assert compile_filter(text).matches(dict(RECORD)) is False
        return
    with pytest.raises(FilterError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        compile_filter(text)


def test_a_comparison_that_cannot_be_made_raises_for_that_record_only() -> None:
    flt = compile_filter("value.amount > 100")
    with pytest.raises(TypeError):
        flt.matches({**RECORD, "value": {"amount": "lots"}})
    assert flt.matches(dict(RECORD))


def test_the_filter_says_what_it_needs_decoded() -> None:
    assert not compile_filter('key == "a"').needs_value
    assert compile_filter("value.x == 1").needs_value
    assert compile_filter('ce.type == "t"').needs_headers
    assert not compile_filter("partition == 1").needs_headers


def test_required_strings_let_a_scan_skip_values_that_cannot_match() -> None:
    flt = compile_filter('value.status == "big" && value.total > 3 && "x" == value.a.b')
    assert flt.needles == (b'"big"', b'"x"')
    assert compile_filter('value.status == "big" || key == "k"').needles == ()  # not required
    assert compile_filter('value == "plain"').needles == ()  # a text value has no quotes
    assert compile_filter("value.n == 3").needles == ()  # numbers have many spellings
    assert compile_filter('value.name == "Zoë"').needles == ('"Zoë"'.encode(),)
