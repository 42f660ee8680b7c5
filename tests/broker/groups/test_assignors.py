"""The server-side assignors of the consumer protocol: balanced, complete and sticky."""

from __future__ import annotations

import uuid

from nerve.broker.groups.assignors import MemberSpec, range_, uniform

A, B = uuid.UUID(int=1), uuid.UUID(int=2)


def spec(*topics: uuid.UUID, **current: set[int]) -> MemberSpec:
    return MemberSpec(frozenset(topics), {A: current["a"]} if "a" in current else {})


def owned(result: dict[str, dict[uuid.UUID, set[int]]]) -> list[tuple[uuid.UUID, int]]:
    return sorted((t, p) for parts in result.values() for t, ps in parts.items() for p in ps)


def test_uniform_gives_every_partition_once_and_balances_counts() -> None:
    members = {m: spec(A, B) for m in ("m1", "m2", "m3")}
    result = uniform(members, {A: 4, B: 3})
    assert owned(result) == sorted([(A, p) for p in range(4)] + [(B, p) for p in range(3)])
    sizes = sorted(sum(map(len, parts.values())) for parts in result.values())
    assert sizes == [2, 2, 3]


def test_uniform_keeps_current_owners_when_a_member_joins() -> None:
    before = {"m1": spec(A, a={0, 1, 2}), "m2": spec(A, a={3, 4, 5})}
    after = uniform({**before, "m3": spec(A)}, {A: 6})
    assert after["m1"][A] <= {0, 1, 2} and after["m2"][A] <= {3, 4, 5}
    assert len(after["m3"][A]) == 2
    assert owned(after) == [(A, p) for p in range(6)]


def test_uniform_respects_unequal_subscriptions() -> None:
    members = {"only-a": spec(A), "both": spec(A, B)}
    result = uniform(members, {A: 2, B: 2})
    assert result == {"only-a": {A: {0, 1}}, "both": {B: {0, 1}}}


def test_range_gives_contiguous_shares_in_member_order() -> None:
    members = {m: spec(A) for m in ("b", "a", "c")}
    result = range_(members, {A: 7})
    assert result == {"a": {A: {0, 1, 2}}, "b": {A: {3, 4}}, "c": {A: {5, 6}}}


def test_a_member_without_subscribed_topics_gets_nothing() -> None:
    result = uniform({"m1": spec(A), "m2": spec()}, {A: 3})
    assert result["m2"] == {}
    assert range_({"m1": spec(A), "m2": spec()}, {A: 3})["m2"] == {}
