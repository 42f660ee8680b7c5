"""Records a stream skips are each counted in the log, a line per interval and not a line per
record: null keys a count skips, late records a window sets aside, records a pattern cannot
match; the count not said yet is said when the streams close."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import timedelta

import pytest

from nerve import Service
from nerve.streams import pattern, skips, tumbling
from nerve.streams.driver import TestDriver
from nerve.testing import Platform

SKIP_LINE = re.compile(r"(\d+) record\(s\) of (\S+) (.+) since the last such line \((\d+) in all\)")


def _lines(caplog: pytest.LogCaptureFixture, topic: str) -> list[tuple[int, str, int]]:
    found = []
    for entry in caplog.records:
        m = SKIP_LINE.search(entry.getMessage()) if entry.name == "nerve.streams" else None
        if m and m.group(2) == topic:
            found.append((int(m.group(1)), m.group(3), int(m.group(4))))
    return found


def test_a_thousand_null_keys_make_one_line_then_the_count_on_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = f"skips-null-{id(caplog)}"
    service = Service(f"skips-{id(caplog)}")
    service.stream(topic).group_by_key().count().to(f"{topic}.counts")
    with caplog.at_level(logging.INFO, "nerve.streams"):
        with TestDriver(service) as driver:
            for n in range(1000):
                driver.send(topic, f"v{n}")  # no key: skipped, as Kafka Streams does
            driver.send(topic, "kept", key="k")
            during = _lines(caplog, topic)
            assert [c for c, _, _ in during] == [1], during  # the first at once, no line each
            assert "null key" in during[0][1]
            assert [o.value for o in driver.output(f"{topic}.counts")] == ["1"]
        said = _lines(caplog, topic)
    assert len(said) == 2
    assert said[1][0] == 999 and said[1][2] == 1000  # the rest, said on close


def test_late_records_are_counted_per_interval(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = f"skips-late-{id(caplog)}"
    service = Service(f"skips-late-{id(caplog)}")
    (
        service.stream(topic, time="record")
        .group_by_key()
        .window(tumbling(timedelta(seconds=10)), grace=timedelta(seconds=1))
        .count()
        .to(f"{topic}.counts", key=lambda _k, w: f"{w.key}@{w.start}", value=str)
    )
    monkeypatch.setattr(skips, "INTERVAL_S", 0.0)  # every skip due: proves the count is kept
    with caplog.at_level(logging.INFO, "nerve.streams"), TestDriver(service) as driver:
        driver.send(topic, "a", key="k", timestamp=60_000)
        driver.send(topic, "late", key="k", timestamp=1_000)
        driver.send(topic, "late", key="k", timestamp=2_000)
        assert len(driver.late(topic)) == 2  # set aside, not dropped
    late = [line for line in _lines(caplog, topic) if "arrived late" in line[1]]
    assert [(c, total) for c, _, total in late] == [(1, 1), (1, 2)]
    monkeypatch.setattr(skips, "INTERVAL_S", 3600.0)
    with caplog.at_level(logging.INFO, "nerve.streams"):
        caplog.clear()
        with TestDriver(service) as driver:
            driver.send(topic, "a", key="k", timestamp=60_000)
            for n in range(500):
                driver.send(topic, "late", key="k", timestamp=1_000 + n)
            assert len(driver.late(topic)) == 500
    late = [line for line in _lines(caplog, topic) if "arrived late" in line[1]]
    # The kind is the same node and topic as above: its first line was said in the first
    # driver, so these 500 are said once, on close.
    assert [c for c, _, _ in late] == [500]


def test_records_a_pattern_cannot_match_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    topic = f"skips-pattern-{id(caplog)}"
    service = Service(f"skips-pattern-{id(caplog)}")

    (
        service.stream(topic, time="record")
        .group_by_key()
        .match(pattern().as_("a").followed_by().as_("b").within(timedelta(minutes=1)))
        .to(f"{topic}.pairs", value=lambda m: "pair")
    )

    with caplog.at_level(logging.INFO, "nerve.streams"), TestDriver(service) as driver:
        for _ in range(200):
            driver.send(topic, None, key="k")  # null values: nothing to match
    said = _lines(caplog, topic)
    assert sum(c for c, _, _ in said) == 200 and len(said) == 2
    assert all("null value" in reason for _, reason, _ in said)


def test_records_a_stream_cannot_read_are_dead_lettered_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """On a broker: 200 values that are not JSON all reach the dead-letter topic, and the log
    says so in a line or two instead of 200."""
    topic = f"skips-unreadable-{uuid.uuid4().hex[:8]}"
    service = Service(f"skips-unreadable-{uuid.uuid4().hex[:8]}")
    service.stream(topic, value="json", time="record").map(lambda v: str(v["n"])).to(f"{topic}.out")
    caplog.set_level(logging.INFO, logger="nerve")
    with Platform() as platform:
        platform.run(service)
        assert platform._producer is not None
        for n in range(200):
            platform._producer.produce(topic, value=b"{not json %d" % n, key=b"k")
        platform._producer.produce(topic, value=b'{"n": 7}', key=b"k")
        platform._producer.flush(30)
        out: list[object] = []
        for _ in range(60):
            out += platform.read(f"{topic}.out", timeout=1.0)
            if out:
                break
        assert [value for _, value, _ in out] == [b"7"]  # read after the bad ones: all handled
        letters: list[object] = []
        for _ in range(60):
            letters += platform.read(f"{topic}.dlq", timeout=1.0)
            if len(letters) >= 200:
                break
        assert len(letters) == 200
        platform.stop_services()
    messages = [r.getMessage() for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert 1 <= len(messages) <= 3, messages  # the first at once, the rest counted on stop
    said = _lines(caplog, topic)
    assert sum(c for c, _, _ in said) == 200 and said[-1][2] == 200
    assert "JSONDecodeError" in messages[0] or "Expecting" in messages[0]
