"""Offset expiry (KIP-211) on a broker run in this process, with its clock passed explicitly:
offsets.retention.minutes is days by default, too long to wait for over a socket."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nerve.broker.config import BrokerConfig
from nerve.broker.groups.coordinator import JoinRequest, OffsetCommit
from nerve.broker.server import Broker

RETENTION_MS = 7 * 24 * 3600 * 1000  # Kafka's default offsets.retention.minutes (10080)


def make_config(data_dir: Path) -> BrokerConfig:
    config = BrokerConfig(data_dir=data_dir, port=0)
    config.apply({"group.initial.rebalance.delay.ms": "0"})
    return config


async def expire_scenario(data_dir: Path) -> None:
    broker = Broker(make_config(data_dir))
    await broker.start()
    groups = broker.groups
    broker.topics.create("t", 2)

    # An assign-mode consumer's offsets expire per commit time.
    errors, durable = groups.commit_offsets(
        "simple", -1, "", None, [OffsetCommit("t", 0, 5, -1, "")]
    )
    assert durable is not None
    await durable
    committed_at = groups.groups["simple"].offsets[("t", 0)].commit_timestamp

    # A consumer group's offsets expire once the group has been empty for the retention.
    joined = groups.join(
        JoinRequest("managed", "", None, "c", "/127.0.0.1", 6000, 6000, "consumer",
                    [("range", b"")], require_known_member_id=False)
    )  # fmt: skip
    assert isinstance(joined, asyncio.Future)
    result = await joined
    synced = groups.sync("managed", result.generation, result.member_id, None, None, None, [])
    assert isinstance(synced, asyncio.Future) and synced.done()  # the leader's own sync
    errors, durable = groups.commit_offsets(
        "managed", result.generation, result.member_id, None, [OffsetCommit("t", 1, 9, -1, "")]
    )
    assert [e.name for e in errors] == ["none"]
    assert groups.expire_offsets(committed_at + RETENTION_MS - 1) == 0
    # The assign-mode offset expires; the group with a member keeps its own, however old.
    assert groups.expire_offsets(committed_at + 10 * RETENTION_MS) == 1
    assert "simple" not in groups.groups
    assert ("t", 1) in groups.groups["managed"].offsets
    groups.leave("managed", [(result.member_id, None)])
    emptied_at = groups.groups["managed"].state_timestamp
    assert groups.expire_offsets(emptied_at + RETENTION_MS - 1) == 0
    assert groups.expire_offsets(emptied_at + RETENTION_MS) == 1
    assert groups.groups == {}
    await broker.stop()

    # The expiry was written as tombstones: a restart does not bring the offsets back.
    restarted = Broker(make_config(data_dir))
    await restarted.start()
    try:
        assert restarted.groups.groups == {}
    finally:
        await restarted.stop()


def test_offsets_of_empty_groups_expire_and_stay_expired_after_restart(tmp_path: Path) -> None:
    asyncio.run(expire_scenario(tmp_path / "data"))


async def restore_scenario(data_dir: Path) -> None:
    broker = Broker(make_config(data_dir))
    await broker.start()
    broker.topics.create("t", 1)
    joined = broker.groups.join(
        JoinRequest("g", "", "replica-1", "c", "/127.0.0.1", 6000, 6000, "consumer",
                    [("range", b"sub")], require_known_member_id=False)
    )  # fmt: skip
    assert isinstance(joined, asyncio.Future)
    result = await joined
    broker.groups.sync("g", result.generation, result.member_id, "replica-1", None, None,
                       [(result.member_id, b"assignment")])  # fmt: skip
    await broker.stop()

    restarted = Broker(make_config(data_dir))
    await restarted.start()
    try:
        group = restarted.groups.groups["g"]
        # The generation, its members and their assignment come back from __consumer_offsets,
        # so members that heartbeat through a broker restart need no rebalance.
        assert group.state.value == "Stable"
        assert group.generation == result.generation
        assert group.members[result.member_id].assignment == b"assignment"
        assert group.static_members == {"replica-1": result.member_id}
        assert restarted.groups.heartbeat("g", result.generation, result.member_id, None).name == (
            "none"
        )
    finally:
        await restarted.stop()


def test_group_generation_and_assignment_are_restored_after_restart(tmp_path: Path) -> None:
    asyncio.run(restore_scenario(tmp_path / "data"))
