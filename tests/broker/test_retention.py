"""Retention by time and size, and log compaction, as a client observes them.

The brokers here run their retention check and cleaner every 200 ms; tests wait for the effect
in bounded polling loops, never by sleeping and hoping.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests._broker import BrokerProcess
from tests._ck import Out, consume, create_topic, produce_ok, read_to_end, watermarks
from tests.conftest import BrokerFactory, TopicNameFactory

FAST_HOUSEKEEPING = {
    "log.retention.check.interval.ms": 200,
    "log.cleaner.backoff.ms": 200,
}


@pytest.fixture
def fast_broker(broker_factory: BrokerFactory) -> BrokerProcess:
    return broker_factory(FAST_HOUSEKEEPING)


def wait_for(
    condition: Callable[[], bool], describe: Callable[[], str], timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout}s: {describe()}")
        time.sleep(0.1)


def wait_until_stable(read: Callable[[], tuple[int, int]], quiet: float = 1.5) -> tuple[int, int]:
    """Poll until the value has not changed for ``quiet`` seconds (several check intervals)."""
    value = read()
    since = time.monotonic()
    deadline = since + 30
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "watermarks never settled"
        time.sleep(0.1)
        now = read()
        if now != value:
            value, since = now, time.monotonic()
    return value


def test_retention_ms_deletes_expired_segments_and_keeps_recent_records(
    fast_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(
        fast_broker.bootstrap,
        topic,
        configs={"internal.segment.bytes": 2048, "retention.ms": 600_000},
    )
    hour_ago = int(time.time() * 1000) - 3_600_000
    old = [Out(b"old-%03d" % i + b"." * 200, timestamp=hour_ago + i) for i in range(60)]
    new = [Out(b"new-%03d" % i + b"." * 200) for i in range(10)]
    produce_ok(fast_broker.bootstrap, topic, old, flush_every=1)
    produce_ok(fast_broker.bootstrap, topic, new, flush_every=1)

    wait_for(
        lambda: watermarks(fast_broker.bootstrap, topic)[0] > 0,
        lambda: f"watermarks still {watermarks(fast_broker.bootstrap, topic)}",
    )
    low, high = wait_until_stable(lambda: watermarks(fast_broker.bootstrap, topic))

    assert high == 70
    assert 0 < low <= 60, "only segments whose newest record is older than retention.ms go"
    got = consume(fast_broker.bootstrap, topic, high - low, idle=0.5)
    assert [r.offset for r in got] == list(range(low, 70))
    assert [r.value for r in got[-10:]] == [o.value for o in new]


def test_retention_bytes_keeps_the_newest_segments_within_the_limit(
    fast_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(
        fast_broker.bootstrap,
        topic,
        configs={"internal.segment.bytes": 2048, "retention.bytes": 4096},
    )
    sent = [Out(b"%03d" % i + b"#" * 200) for i in range(100)]
    produce_ok(fast_broker.bootstrap, topic, sent, flush_every=1)

    wait_for(
        lambda: watermarks(fast_broker.bootstrap, topic)[0] > 0,
        lambda: f"watermarks still {watermarks(fast_broker.bootstrap, topic)}",
    )
    low, high = wait_until_stable(lambda: watermarks(fast_broker.bootstrap, topic))

    assert high == 100
    # ~270 bytes per single-record batch on disk: at least retention.bytes must stay, and at
    # most retention.bytes plus about one segment.
    assert 10 <= high - low <= 35, (low, high)
    got = consume(fast_broker.bootstrap, topic, high - low, idle=0.5)
    assert [r.value for r in got] == [o.value for o in sent[low:]]


def test_compaction_keeps_only_latest_value_per_key_at_original_offsets(
    fast_broker: BrokerProcess, topic_name: TopicNameFactory
) -> None:
    topic = topic_name()
    create_topic(
        fast_broker.bootstrap,
        topic,
        configs={
            "cleanup.policy": "compact",
            "internal.segment.bytes": 2048,
            "delete.retention.ms": 100,
            "min.compaction.lag.ms": 0,
        },
    )
    keys = [b"k%d" % i for i in range(10)]
    pad = b"~" * 150
    updates = [Out(b"%s=round%d;" % (k, r) + pad, key=k) for r in range(5) for k in keys]
    delivery = produce_ok(fast_broker.bootstrap, topic, updates, flush_every=5)
    latest_offset = {m.key(): m.offset() for m in delivery.ok}  # later rounds overwrite
    tombstoned = keys[:2]
    produce_ok(fast_broker.bootstrap, topic, [Out(None, key=k) for k in tombstoned])
    expected = {k: (latest_offset[k], b"%s=round4;" % k + pad) for k in keys[2:]}

    state: dict[str, object] = {}

    def compacted() -> bool:
        # Steady traffic on another key keeps rolling segments, as a live topic would.
        produce_ok(fast_broker.bootstrap, topic, [Out(pad, key=b"filler")] * 5)
        records = [r for r in read_to_end(fast_broker.bootstrap, topic) if r.key != b"filler"]
        seen = [(r.key, r.offset, r.value) for r in records]
        state["seen"] = [(k, o, (v or b"")[:12] if v is not None else None) for k, o, v in seen]
        offsets = [r.offset for r in records]
        assert offsets == sorted(offsets), "compaction must keep records in offset order"
        latest = {r.key: (r.offset, r.value) for r in records}
        return len(records) == len(expected) and latest == expected

    wait_for(
        compacted, lambda: f"records left (key, offset, value prefix): {state.get('seen')}", 60
    )
