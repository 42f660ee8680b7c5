"""Tables against a real broker: a table follows a topic created after its service started (and
partitions added later), and every Platform run starts a service's tables from nothing."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewPartitions

from nerve.service import Event, Service
from nerve.testing import Platform


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    with Platform() as running:
        yield running


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


class Profile(Event, topic="tt.profiles", key="user_id"):
    user_id: str
    threshold: Decimal


class Dropped(Event, topic="tt.dropped", key="user_id"):
    user_id: str
    balance: Decimal


class Alert(Event, topic="tt.alerts", key="user_id"):
    user_id: str


def test_a_table_follows_a_topic_created_after_the_service_started(platform: Platform) -> None:
    # The README's order: start the service, then produce. The profile topic does not exist
    # when the table starts.
    alerts = Service("tt-alerts")
    profiles = alerts.table(Profile.topic, Profile)

    @alerts.on(Dropped)
    def check(event: Dropped) -> Alert | None:
        profile = profiles.get(event.user_id)
        if profile is not None and event.balance < profile.threshold:
            return Alert(user_id=event.user_id)
        return None

    platform.run(alerts)
    platform.emit(Profile(user_id="u1", threshold=Decimal(100)))
    assert wait_for(lambda: "u1" in profiles), "the table never saw the topic once it appeared"
    platform.emit(Dropped(user_id="u1", balance=Decimal(20)))
    [alert] = platform.expect(Alert)
    assert alert.user_id == "u1"

    # Partitions added later are followed from their beginning too.
    admin = AdminClient({"bootstrap.servers": platform.bootstrap})
    admin.create_partitions([NewPartitions(Profile.topic, 3)])[Profile.topic].result(10)
    producer = Producer({"bootstrap.servers": platform.bootstrap})  # knows 3 partitions
    for partition in (1, 2):
        producer.produce(
            Profile.topic,
            key=f"p{partition}".encode(),
            value=Profile(user_id=f"p{partition}", threshold=Decimal(1)).model_dump_json(),
            partition=partition,
        )
    producer.flush(10)
    assert wait_for(lambda: "p1" in profiles and "p2" in profiles, timeout=30)
    platform.stop_services()


class Setting(Event, topic="tt.settings", key="name"):
    name: str
    value: str


class Tick(Event, topic="tt.ticks", key="n"):
    n: int


# Module level, as services are written: the same objects serve every Platform below.
settings_service = Service("tt-settings")
settings = settings_service.table(Setting.topic, Setting)
seen: list[int] = []


@settings_service.on(Tick, idempotent=True)
def tick(event: Tick) -> None:
    seen.append(event.n)


def test_each_platform_starts_a_module_level_service_from_nothing() -> None:
    with Platform() as first:
        first.emit(Setting(name="colour", value="red"))
        first.run(settings_service)
        assert settings.get("colour") is not None
        first.emit(Tick(n=1))
        assert wait_for(lambda: seen == [1])
    tables_before = len(settings_service.tables)
    with Platform() as second:
        second.run(settings_service)
        # A new broker: nothing of the first run is left in the table.
        assert len(settings) == 0 and settings.get("colour") is None
        second.emit(Setting(name="size", value="L"))
        assert wait_for(lambda: settings.get("size") is not None), "the table no longer follows"
        # The idempotency record of the first run is gone too: the same id is new here.
        second.emit(Tick(n=2))
        assert wait_for(lambda: seen == [1, 2])
    assert len(settings_service.tables) == tables_before  # a run adds no tables to the service


# A module-level streams service: its stores live on disk (RocksDB), not only in memory.
counting = Service("tables-word-counts")
word_counts = counting.stream("tables.words", value="text").group_by(lambda w: w).count()
word_counts.changes().to("tables.word-counts")


def count_words_on_a_new_platform() -> dict[bytes, bytes]:
    """Run ``counting`` on a fresh Platform over three words; its counts, once both are out."""
    with Platform(registry=False) as platform:
        producer = Producer({"bootstrap.servers": platform.bootstrap})
        for word in ("a", "a", "b"):
            producer.produce("tables.words", key=word.encode(), value=word.encode())
        assert producer.flush(10) == 0
        (runner,) = platform.run(counting)
        stopped = weakref.ref(runner)
        del runner
        counts: dict[bytes, bytes] = {}

        def counted() -> bool:
            counts.update({k: v for k, v, _ in platform.read("tables.word-counts", 1.0)})
            return len(counts) == 2

        assert wait_for(counted, 60), counts
        assert word_counts.get("a") == 2
        state = Path(platform.state_dir)
        assert state.is_relative_to(platform.data_dir) and any(state.rglob("*"))
    # The stopped run is gone from the service: no table answers from its state, and nothing
    # keeps its runner (with its producer, still calling the stopped broker) alive.
    with pytest.raises(RuntimeError, match="not running here"):
        word_counts.get("a")
    gc.collect()
    assert stopped() is None, gc.get_referrers(stopped())
    return counts


def test_each_platform_keeps_streams_state_in_its_own_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where a service's default state directory would be
    monkeypatch.delenv("NERVE_STATE_DIR", raising=False)
    # Each run counts from nothing: the first run's counts are not carried over.
    assert count_words_on_a_new_platform() == {b"a": b"2", b"b": b"1"}
    assert count_words_on_a_new_platform() == {b"a": b"2", b"b": b"1"}
    # Nothing was written outside the platforms' own directories.
    assert not (tmp_path / ".nerve").exists()
