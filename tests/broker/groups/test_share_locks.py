"""Share groups' acquisition locks and delivery limit, on a broker with short settings: an
expired lock makes the record available again with one more delivery counted, and a record
delivered ``group.share.delivery.count.limit`` times is archived, not delivered again."""

from __future__ import annotations

import time

from tests._ck import produce_ok
from tests.broker._kio_client import KioClient
from tests.conftest import Backend, BrokerFactory, TopicNameFactory
from tests.differential.test_differential import create
from tests.differential.test_share_groups import ShareMember, acquired, earliest


def test_expired_locks_redeliver_until_the_delivery_limit_archives(
    broker_factory: BrokerFactory, topic_name: TopicNameFactory
) -> None:
    broker = broker_factory(
        {"group.share.record.lock.duration.ms": 300, "group.share.delivery.count.limit": 2}
    )
    backend = Backend("nerve", broker.bootstrap)
    topic, group = topic_name(), topic_name("share")
    create(backend, topic)
    earliest(backend, group)
    produce_ok(broker.bootstrap, topic, [b"poison", b"fine"])
    with KioClient(broker.bootstrap) as client:
        member = ShareMember(client, group, topic)
        assert acquired(member.fetch()) == [(0, 1, 1)]
        member.fetch([(1, 1, [1])])  # "fine" accepted; "poison" never acknowledged
        time.sleep(0.5)
        # Its lock expired: available again, a second delivery.
        assert acquired(member.fetch()) == [(0, 0, 2)]
        time.sleep(0.5)
        # Expired again at the limit: archived, so nothing more comes.
        assert acquired(member.fetch()) == []
        produce_ok(broker.bootstrap, topic, [b"next"])
        assert acquired(member.fetch()) == [(2, 2, 1)]


def test_a_member_that_leaves_releases_what_it_held_to_the_others(
    broker_factory: BrokerFactory, topic_name: TopicNameFactory
) -> None:
    broker = broker_factory({})
    backend = Backend("nerve", broker.bootstrap)
    topic, group = topic_name(), topic_name("share")
    create(backend, topic)
    earliest(backend, group)
    produce_ok(broker.bootstrap, topic, [f"v{i}".encode() for i in range(3)])
    with KioClient(broker.bootstrap) as one, KioClient(broker.bootstrap) as two:
        first, second = ShareMember(one, group, topic), ShareMember(two, group, topic)
        assert acquired(first.fetch()) == [(0, 2, 1)]
        assert acquired(second.fetch()) == []  # all held by the first
        from tests.differential.test_share_groups import heartbeat

        assert heartbeat(one, group, first.id, -1, None).error_code == 0
        assert acquired(second.fetch()) == [(0, 2, 2)]


def test_share_partition_state_survives_a_broker_kill(
    broker_factory: BrokerFactory, topic_name: TopicNameFactory
) -> None:
    """Accepted and rejected records stay done after a restart; released and unacknowledged
    ones come back with the deliveries they had (the state is in __share_group_state)."""
    broker = broker_factory({})
    backend = Backend("nerve", broker.bootstrap)
    topic, group = topic_name(), topic_name("share")
    create(backend, topic)
    earliest(backend, group)
    produce_ok(broker.bootstrap, topic, [f"v{i}".encode() for i in range(6)])
    with KioClient(broker.bootstrap) as client:
        member = ShareMember(client, group, topic)
        assert acquired(member.fetch()) == [(0, 5, 1)]
        # 0 accepted, 1 rejected, 2 released (and so acquired again, second delivery),
        # 3-5 left unacknowledged.
        again = member.fetch([(0, 2, [1, 3, 2])])
        assert acquired(again) == [(2, 2, 2)]
    broker.kill()
    broker.restart()
    with KioClient(broker.bootstrap) as client:
        member = ShareMember(client, group, topic)
        after = member.fetch()
    # 2-5 were acquired when the broker died: available again, 0 and 1 stay done. Counts
    # are as last written: the delivery in progress at the kill is not counted (as Kafka's
    # persister, which writes on acknowledgements and released locks, not on acquisition).
    assert acquired(after) == [(2, 5, 2)]


def test_group_configs_set_the_lock_and_the_consumer_heartbeat_of_one_group(
    broker_factory: BrokerFactory, topic_name: TopicNameFactory
) -> None:
    """share.record.lock.duration.ms and consumer.heartbeat.interval.ms set on one group
    (IncrementalAlterConfigs) override the broker's defaults for that group only."""
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

    from tests.differential.test_consumer_groups import join

    broker = broker_factory({})
    backend = Backend("nerve", broker.bootstrap)
    topic, share_group, consumer_group = topic_name(), topic_name("share"), topic_name("cg")
    create(backend, topic)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for group, name, value in (
        (share_group, "share.record.lock.duration.ms", "15000"),
        (consumer_group, "consumer.heartbeat.interval.ms", "7000"),
    ):
        entry = ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
        resource = ConfigResource("group", group, incremental_configs=[entry])
        admin.incremental_alter_configs([resource])[resource].result(10)
    with KioClient(broker.bootstrap) as client:
        member = ShareMember(client, share_group, topic)
        fetched = member.fetch()
        _, joined = join(client, consumer_group, topic)
    assert fetched.acquisition_lock_timeout.total_seconds() == 15
    assert joined.heartbeat_interval.total_seconds() == 7
