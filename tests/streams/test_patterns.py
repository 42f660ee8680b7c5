"""Sequence patterns (complex event processing) in the test driver: contiguity, negation,
repetition, conditions on earlier events, within and its timeouts, out-of-order events held for
grace or sent to the late topic, and partial matches restored from the changelog."""

from __future__ import annotations

from datetime import timedelta

import pytest

from nerve import Service
from nerve.service.events import Event
from nerve.streams import Match, pattern
from nerve.streams.driver import TestDriver

MIN = 60_000


class Tx(Event, topic="cep.tx", key="card"):
    account: str
    card: str = "c"
    amount: float


class Login(Event, topic="cep.login", key="account"):
    account: str


class Suspected(Event, topic="cep.suspected", key="account"):
    account: str
    amounts: list[float]
    start: int = 0
    end: int = 0


class Missing(Event, topic="cep.missing", key="account"):
    account: str
    step: str
    amounts: list[float]


def _amounts(m: Match) -> list[float]:
    out: list[float] = []
    for name in m:
        taken = m[name]
        out.extend(t.amount for t in (taken if isinstance(taken, list) else [taken]))
    return out


def _service(p, *, on_timeout: bool = False, after_match: str = "all") -> Service:
    service = Service("cep")

    def missing(m: Match) -> Missing:
        return Missing(account=m.key, step=m.missing or "", amounts=_amounts(m))

    @service.match(
        p,
        key=lambda t: t.account,
        on_timeout=missing if on_timeout else None,
        after_match=after_match,
    )
    def found(m: Match) -> Suspected:
        return Suspected(account=m.key, amounts=_amounts(m), start=m.start, end=m.end)

    return service


def _card_testing():
    return (
        pattern(Tx, where=lambda t: abs(t.amount) < 1)
        .as_("probe")
        .followed_by(Tx, where=lambda t: abs(t.amount) > 500)
        .as_("hit")
        .within(timedelta(minutes=10))
    )


def _found(driver: TestDriver) -> list[tuple[str, list[float]]]:
    return [(e.account, e.amounts) for e in driver.emitted(Suspected)]


def test_followed_by_skips_events_in_between_and_within_bounds_the_match() -> None:
    with TestDriver(_service(_card_testing()), partitions=3) as driver:
        driver.send(Tx(account="a", amount=0.5), timestamp=0)
        driver.send(Tx(account="b", amount=0.2), timestamp=1)
        driver.send(Tx(account="a", amount=40), timestamp=2 * MIN)  # relaxed: skipped
        driver.send(Tx(account="a", amount=900), timestamp=10 * MIN)  # within (inclusive)
        driver.send(Tx(account="b", amount=900), timestamp=10 * MIN + 2)  # too late for b
        assert _found(driver) == [("a", [0.5, 900])]
        events = driver.emitted()
        assert events == []
        # The match is gone once completed; b's probe expired.
        driver.send(Tx(account="a", amount=800), timestamp=11 * MIN)
        assert _found(driver) == []


def test_every_probe_starts_a_match_unless_skip_past_last() -> None:
    for after, expected in [("all", 2), ("skip_past_last", 1)]:
        with TestDriver(_service(_card_testing(), after_match=after)) as driver:
            driver.send(Tx(account="a", amount=0.5), timestamp=0)
            driver.send(Tx(account="a", amount=0.3), timestamp=1)
            driver.send(Tx(account="a", amount=600), timestamp=2)
            driver.send(Tx(account="a", amount=700), timestamp=3)
            assert len(_found(driver)) == expected, after


def test_match_carries_the_key_bounds_and_named_events() -> None:
    with TestDriver(_service(_card_testing())) as driver:
        driver.send(Tx(account="a", amount=0.5), timestamp=1_000)
        driver.send(Tx(account="a", amount=600), timestamp=5_000)
        [event] = driver.emitted(Suspected)
        assert (event.account, event.start, event.end) == ("a", 1_000, 5_000)


def test_next_needs_the_very_next_event_of_the_key() -> None:
    p = (
        pattern(Tx, where=lambda t: t.amount < 1)
        .as_("probe")
        .next(Tx, where=lambda t: t.amount > 500)
        .as_("hit")
        .within(timedelta(minutes=10))
    )
    with TestDriver(_service(p), partitions=2) as driver:
        driver.send(Tx(account="a", amount=0.5), timestamp=0)
        driver.send(Tx(account="b", amount=0.5), timestamp=1)  # another key: no matter
        driver.send(Tx(account="a", amount=600), timestamp=2)
        assert _found(driver) == [("a", [0.5, 600])]
        driver.send(Tx(account="b", amount=50), timestamp=3)  # breaks b's sequence
        driver.send(Tx(account="b", amount=600), timestamp=4)
        assert _found(driver) == []


def test_where_sees_the_events_matched_before() -> None:
    p = (
        pattern(Tx)
        .as_("first")
        .followed_by(Tx, where=lambda t, m: t.amount > 2 * m["first"].amount)
        .as_("doubled")
        .within(timedelta(minutes=1))
    )
    with TestDriver(_service(p, after_match="skip_past_last")) as driver:
        driver.send(Tx(account="a", amount=10), timestamp=0)
        driver.send(Tx(account="a", amount=15), timestamp=1)
        driver.send(Tx(account="a", amount=21), timestamp=2)
        assert _found(driver) == [("a", [10, 21])]


def test_not_followed_by_between_steps_ends_the_partial_match() -> None:
    p = (
        pattern(Tx, where=lambda t: t.amount < 1)
        .as_("probe")
        .not_followed_by(Login)
        .followed_by(Tx, where=lambda t: t.amount > 500)
        .as_("hit")
        .within(timedelta(minutes=10))
    )
    with TestDriver(_service(p)) as driver:
        driver.send(Tx(account="a", amount=0.5), timestamp=0)
        driver.send(Login(account="a"), timestamp=1)
        driver.send(Tx(account="a", amount=600), timestamp=2)
        assert _found(driver) == []
        driver.send(Tx(account="a", amount=0.5), timestamp=3)
        driver.send(Tx(account="a", amount=600), timestamp=4)
        assert _found(driver) == [("a", [0.5, 600])]


def test_a_final_not_followed_by_completes_when_within_ends() -> None:
    p = (
        pattern(Tx, where=lambda t: t.amount > 500)
        .as_("big")
        .not_followed_by(Login)
        .within(timedelta(minutes=5))
    )
    with TestDriver(_service(p)) as driver:
        driver.send(Tx(account="a", amount=600), timestamp=0)
        driver.send(Tx(account="b", amount=600), timestamp=1)
        driver.send(Login(account="b"), timestamp=MIN)
        driver.send(Tx(account="c", amount=5), timestamp=5 * MIN)  # the end itself: not yet
        assert _found(driver) == []
        driver.send(Tx(account="c", amount=5), timestamp=5 * MIN + 1)  # a's window ended
        assert _found(driver) == [("a", [600])]
        driver.send(Tx(account="c", amount=5), timestamp=6 * MIN)
        assert _found(driver) == []  # b logged in


def test_one_or_more_takes_every_event_until_the_next_step() -> None:
    p = (
        pattern(Tx, where=lambda t: t.amount < 1)
        .as_("probes")
        .one_or_more()
        .followed_by(Tx, where=lambda t: t.amount > 500)
        .as_("hit")
        .within(timedelta(minutes=10))
    )
    with TestDriver(_service(p, after_match="skip_past_last")) as driver:
        for i, amount in enumerate([0.1, 20, 0.2, 0.3, 900]):
            driver.send(Tx(account="a", amount=amount), timestamp=i)
        assert _found(driver) == [("a", [0.1, 0.2, 0.3, 900])]


def test_a_final_one_or_more_completes_with_all_its_events_when_within_ends() -> None:
    p = (
        pattern(Tx, where=lambda t: t.amount > 500)
        .as_("big")
        .one_or_more()
        .within(timedelta(minutes=1))
    )
    with TestDriver(_service(p, after_match="skip_past_last")) as driver:
        for i, amount in enumerate([600, 5, 700, 800]):
            driver.send(Tx(account="a", amount=amount), timestamp=i * 1000)
        assert _found(driver) == []
        driver.send(Tx(account="a", amount=5), timestamp=2 * MIN)
        assert _found(driver) == [("a", [600, 700, 800])]


def test_times_takes_exactly_n() -> None:
    p = (
        pattern(Tx, where=lambda t: t.amount < 1)
        .as_("probes")
        .times(3)
        .within(timedelta(minutes=1))
    )
    with TestDriver(_service(p, after_match="skip_past_last")) as driver:
        for i, amount in enumerate([0.1, 0.2, 50, 0.3, 0.4, 0.5]):
            driver.send(Tx(account="a", amount=amount), timestamp=i)
        assert _found(driver) == [("a", [0.1, 0.2, 0.3])]  # 0.4, 0.5: not three yet


def test_a_timed_out_partial_match_is_a_missing_step_alert() -> None:
    # Stream time is per partition: one partition, so b's records end a's window.
    with TestDriver(_service(_card_testing(), on_timeout=True)) as driver:
        driver.send(Tx(account="a", amount=0.5), timestamp=0)
        driver.send(Tx(account="b", amount=3), timestamp=10 * MIN)
        assert driver.emitted(Missing) == []
        driver.send(Tx(account="b", amount=3), timestamp=10 * MIN + 1)  # another key's time
        [alert] = driver.emitted(Missing)
        assert (alert.account, alert.step, alert.amounts) == ("a", "hit", [0.5])
        assert _found(driver) == []


def test_out_of_order_events_wait_for_grace_then_match_in_event_time_order() -> None:
    p = (
        pattern(Tx, where=lambda t: t.amount < 1)
        .as_("probe")
        .next(Tx, where=lambda t: t.amount > 500)
        .as_("hit")
        .within(timedelta(minutes=10), grace=timedelta(seconds=30))
    )
    with TestDriver(_service(p)) as driver:
        driver.send(Tx(account="a", amount=600), timestamp=20_000)
        driver.send(Tx(account="a", amount=0.5), timestamp=10_000)  # earlier: still in grace
        assert _found(driver) == []  # held until stream time passes them by 30 s
        driver.send(Tx(account="a", amount=7), timestamp=50_000)
        assert _found(driver) == [("a", [0.5, 600])]
        driver.send(Tx(account="a", amount=0.5), timestamp=1_000)  # before 50 s - 30 s
        assert [o.value.amount for o in driver.late(Tx.topic)] == [0.5]


def test_without_grace_an_older_event_is_late() -> None:
    with TestDriver(_service(_card_testing())) as driver:
        driver.send(Tx(account="a", amount=600), timestamp=5_000)
        driver.send(Tx(account="a", amount=0.5), timestamp=4_000)
        assert len(driver.late(Tx.topic)) == 1
        assert _found(driver) == []


def test_partial_matches_survive_a_restart_from_the_changelog() -> None:
    p = (
        pattern(Tx, where=lambda t: t.amount < 1)
        .as_("probe")
        .followed_by(Tx, where=lambda t: t.amount > 500)
        .as_("hit")
        .within(timedelta(minutes=10), grace=timedelta(seconds=5))
    )
    with TestDriver(_service(p, on_timeout=True)) as driver:
        driver.send(Tx(account="a", amount=0.5), timestamp=0)
        driver.send(Tx(account="b", amount=0.5), timestamp=1_000)
        driver.send(Tx(account="a", amount=900), timestamp=3_000)  # held for grace
        driver.restart()
        driver.send(Tx(account="c", amount=1), timestamp=9_000)  # releases a's hit
        assert _found(driver) == [("a", [0.5, 900])]
        driver.restart()
        driver.send(Tx(account="b", amount=700), timestamp=20_000)
        driver.send(Tx(account="b", amount=1), timestamp=30_000)
        assert _found(driver) == [("b", [0.5, 700])]
        assert driver.emitted(Missing) == []


def test_a_pattern_without_within_is_refused() -> None:
    with pytest.raises(ValueError, match="within"):
        _service(pattern(Tx).followed_by(Tx))
    with pytest.raises(ValueError, match="named"):
        pattern(Tx).as_("x").followed_by(Tx).as_("x")


def test_state_is_bounded_by_within_and_described_in_the_topology() -> None:
    with TestDriver(_service(_card_testing())) as driver:
        for i in range(50):
            driver.send(Tx(account=f"acc{i}", amount=0.5), timestamp=i)
        assert len(driver.store("found")) == 50  # a partial match per account
        driver.send(Tx(account="x", amount=3), timestamp=11 * MIN)
        assert driver.store("found") == {}  # every window ended: nothing kept
        [node] = [
            n
            for sub in driver.topology.describe()["subtopologies"]
            for n in sub["nodes"]
            if n["kind"] == "pattern"
        ]
        assert [s["name"] for s in node["pattern"]] == ["probe", "hit"]
        assert node["within_ms"] == 10 * MIN


def test_group_by_match_gives_a_stream_of_matches_and_timeouts() -> None:
    service = Service("cep-stream")
    (
        service.stream(Tx)
        .group_by(lambda t: t.account)
        .match(_card_testing(), timeouts=True)
        .map(lambda m: f"{'timeout' if m.timed_out else 'match'} {m.key} {m.missing}")
        .to("cep.out")
    )
    with TestDriver(service) as driver:
        driver.send(Tx(account="a", amount=0.5), timestamp=0)
        driver.send(Tx(account="b", amount=0.5), timestamp=1)
        driver.send(Tx(account="b", amount=600), timestamp=2)
        driver.send(Tx(account="c", amount=1), timestamp=20 * MIN)
        assert [o.value for o in driver.output("cep.out")] == ["match b None", "timeout a hit"]


class Stamped(Event, topic="cep.stamped", key="account"):
    account: str
    amount: float
    at: int


def test_event_time_can_come_from_a_field() -> None:
    service = Service("cep-field-time")
    p = (
        pattern(Stamped, where=lambda t: t.amount < 1)
        .as_("probe")
        .next(Stamped, where=lambda t: t.amount > 500)
        .as_("hit")
        .within(timedelta(minutes=1), grace=timedelta(seconds=10))
    )

    @service.match(p, key=lambda t: t.account, time=lambda t: t.at)
    def found(m: Match) -> Suspected:
        return Suspected(account=m.key, amounts=[m["probe"].amount, m["hit"].amount])

    with TestDriver(service) as driver:
        # Arrival order is hit then probe; the field says probe came first.
        driver.send(Stamped(account="a", amount=900, at=2_000), timestamp=100)
        driver.send(Stamped(account="a", amount=0.5, at=1_000), timestamp=200)
        driver.send(Stamped(account="b", amount=5, at=20_000), timestamp=300)
        assert _found(driver) == [("a", [0.5, 900])]
