"""ACLs on nerve and on Kafka 4.4 with StandardAuthorizer, configured alike: a principal
without the right ACL is refused with the same error code on either broker, for each API
a client uses; ACLs added or removed take effect at once; deny beats allow; prefixed
patterns, implied DESCRIBE and principals from client certificates behave as Kafka's."""

from __future__ import annotations

import time
import uuid
import uuid as _uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicCollection
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from kio.schema.describe_acls.v3.request import DescribeAclsRequest
from kio.schema.list_offsets.v7.request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic

from tests.broker._kio_client import KioClient
from tests.broker.security._sasl_wire import authenticate, handshake
from tests.broker.security.conftest import Certs, SecureBroker, client_tls

ZERO = _uuid.UUID(int=0)


def _as(broker: SecureBroker, user: str, password: str, **extra: object) -> dict[str, object]:
    return {
        "bootstrap.servers": broker.listeners["SASL_PLAINTEXT"],
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": user,
        "sasl.password": password,
        "log_level": 0,
        **extra,
    }


def _alice(broker: SecureBroker, **extra: object) -> dict[str, object]:
    return _as(broker, "alice", "alice-secret", **extra)


@pytest.fixture
def names() -> Iterator[str]:
    yield uuid.uuid4().hex[:8]


def _topic(broker: SecureBroker, name: str, partitions: int = 1) -> str:
    admin = broker.admin()
    admin.create_topics([NewTopic(name, partitions)])[name].result(30)
    return name


def _grant(broker: SecureBroker, *bindings: AclBinding) -> None:
    """Create the ACLs and wait until DescribeAcls lists each: Kafka's authorizer applies them
    through its metadata log a moment after CreateAcls answers (nerve at once), and a request
    made in between is refused."""
    admin = broker.admin()
    for future in admin.create_acls(list(bindings)).values():
        future.result(30)
    deadline = time.monotonic() + 15
    for binding in bindings:
        wanted = AclBindingFilter(binding.restype, binding.name, binding.resource_pattern_type,
                                  binding.principal, binding.host, binding.operation,
                                  binding.permission_type)  # fmt: skip
        while not admin.describe_acls(wanted).result(30) and time.monotonic() < deadline:
            time.sleep(0.05)


def _acl(kind: ResourceType, name: str, operation: AclOperation,
         permission: AclPermissionType = AclPermissionType.ALLOW,
         principal: str = "User:alice",
         pattern: ResourcePatternType = ResourcePatternType.LITERAL) -> AclBinding:  # fmt: skip
    return AclBinding(kind, name, pattern, principal, "*", operation, permission)


def _produce_error(config: dict[str, object], topic: str) -> int | None:
    errors: list[object] = []
    producer = Producer({**config, "message.timeout.ms": 10000})
    producer.produce(topic, b"v", on_delivery=lambda err, msg: errors.append(err))
    producer.flush(15)
    err = errors[0] if errors else None
    return None if err is None else err.code()  # type: ignore[attr-defined]


def _eventually(attempt: Callable[[], object], expected: object, timeout: float = 15) -> bool:
    """Kafka applies an ACL change through its metadata log, a moment after CreateAcls
    answers (nerve at once): retry until the outcome is the expected one."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = attempt()
        if outcome == expected or time.monotonic() > deadline:
            return outcome == expected
        time.sleep(0.2)


def _admin_error(future: object) -> int:
    with pytest.raises(KafkaException) as failure:
        future.result(30)  # type: ignore[attr-defined]
    return int(failure.value.args[0].code())


def test_produce_without_write_is_topic_authorization_failed(
    acl_broker: SecureBroker, names: str
) -> None:
    topic = _topic(acl_broker, f"acl-produce-{names}")
    assert _produce_error(_alice(acl_broker), topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    _grant(acl_broker, _acl(ResourceType.TOPIC, topic, AclOperation.WRITE))
    assert _produce_error(_alice(acl_broker), topic) is None  # at once, no restart


def test_metadata_lists_only_what_the_principal_may_describe(
    acl_broker: SecureBroker, names: str
) -> None:
    hidden = _topic(acl_broker, f"acl-hidden-{names}")
    shown = _topic(acl_broker, f"acl-shown-{names}")
    _grant(acl_broker, _acl(ResourceType.TOPIC, shown, AclOperation.READ))  # implies DESCRIBE
    admin = AdminClient(_alice(acl_broker))
    listed = admin.list_topics(timeout=10).topics
    assert shown in listed
    assert hidden not in listed
    named = admin.list_topics(hidden, timeout=10).topics[hidden]
    assert named.error is not None
    assert named.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_consuming_needs_read_on_the_group_and_the_topic(
    acl_broker: SecureBroker, names: str
) -> None:
    topic = _topic(acl_broker, f"acl-consume-{names}")
    group = f"acl-group-{names}"
    producer = Producer({"bootstrap.servers": acl_broker.plaintext, "log_level": 0})
    producer.produce(topic, b"hello")
    producer.flush(10)

    def first_error_or_value() -> object:
        consumer = Consumer(
            _alice(acl_broker, **{"group.id": group, "auto.offset.reset": "earliest"})
        )
        consumer.subscribe([topic])
        try:
            for _ in range(40):
                message = consumer.poll(0.5)
                if message is None:
                    continue
                if message.error() is not None:
                    return message.error().code()
                return message.value()
        finally:
            consumer.close()
        return None

    assert first_error_or_value() == KafkaError.GROUP_AUTHORIZATION_FAILED
    _grant(acl_broker, _acl(ResourceType.GROUP, group, AclOperation.READ))
    assert _eventually(first_error_or_value, KafkaError.TOPIC_AUTHORIZATION_FAILED)
    _grant(acl_broker, _acl(ResourceType.TOPIC, topic, AclOperation.READ))
    assert _eventually(first_error_or_value, b"hello")


def test_admin_operations_are_refused_with_kafkas_codes(
    acl_broker: SecureBroker, names: str
) -> None:
    topic = _topic(acl_broker, f"acl-admin-{names}")
    admin = AdminClient(_alice(acl_broker))
    new = f"acl-new-{names}"
    assert _admin_error(admin.create_topics([NewTopic(new, 1)])[new]) == (
        KafkaError.TOPIC_AUTHORIZATION_FAILED
    )
    assert _admin_error(admin.delete_topics([topic])[topic]) == (
        KafkaError.TOPIC_AUTHORIZATION_FAILED
    )
    assert _admin_error(admin.create_partitions([NewPartitions(topic, 3)])[topic]) == (
        KafkaError.TOPIC_AUTHORIZATION_FAILED
    )
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    assert _admin_error(admin.describe_configs([resource])[resource]) == (
        KafkaError.TOPIC_AUTHORIZATION_FAILED
    )
    broker_resource = ConfigResource(ConfigResource.Type.BROKER, "1")
    assert _admin_error(admin.describe_configs([broker_resource])[broker_resource]) == (
        KafkaError.CLUSTER_AUTHORIZATION_FAILED
    )
    group = f"acl-nogroup-{names}"
    assert _admin_error(admin.delete_consumer_groups([group])[group]) == (
        KafkaError.GROUP_AUTHORIZATION_FAILED
    )
    assert _admin_error(admin.describe_consumer_groups([group])[group]) == (
        KafkaError.GROUP_AUTHORIZATION_FAILED
    )
    # librdkafka answers a refused DescribeAcls with an empty list: read the code itself.
    with KioClient(acl_broker.listeners["SASL_PLAINTEXT"]) as client:
        handshake(client, "PLAIN")
        assert authenticate(client, b"\0alice\0alice-secret").error_code == 0
        described = client.call(
            DescribeAclsRequest(
                resource_type_filter=1,
                resource_name_filter=None,
                pattern_type_filter=1,
                principal_filter=None,
                host_filter=None,
                operation=1,
                permission_type=1,
            )
        )
        assert described.error_code == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    binding = _acl(ResourceType.TOPIC, topic, AclOperation.READ)
    assert _admin_error(admin.create_acls([binding])[binding]) == (
        KafkaError.CLUSTER_AUTHORIZATION_FAILED
    )


def test_transactional_and_idempotent_producers_need_their_acls(
    acl_broker: SecureBroker, names: str
) -> None:
    topic = _topic(acl_broker, f"acl-txn-{names}")
    txn = f"acl-txn-id-{names}"
    producer = Producer(_alice(acl_broker, **{"transactional.id": txn}))
    with pytest.raises(KafkaException) as failure:
        producer.init_transactions(15)
    assert failure.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    _grant(acl_broker, _acl(ResourceType.TRANSACTIONAL_ID, txn, AclOperation.WRITE),
           _acl(ResourceType.TOPIC, topic, AclOperation.WRITE))  # fmt: skip
    producer = Producer(_alice(acl_broker, **{"transactional.id": txn}))
    producer.init_transactions(15)
    producer.begin_transaction()
    producer.produce(topic, b"in a transaction")
    producer.commit_transaction(15)


def test_deny_beats_allow_and_prefixed_patterns_match(acl_broker: SecureBroker, names: str) -> None:
    prefix = f"acl-team-{names}-"
    allowed = _topic(acl_broker, prefix + "orders")
    denied = _topic(acl_broker, prefix + "salaries")
    _grant(
        acl_broker,
        _acl(ResourceType.TOPIC, prefix, AclOperation.WRITE,
             pattern=ResourcePatternType.PREFIXED),
        _acl(ResourceType.TOPIC, denied, AclOperation.WRITE, AclPermissionType.DENY),
    )  # fmt: skip
    assert _produce_error(_alice(acl_broker), allowed) is None
    assert _produce_error(_alice(acl_broker), denied) == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_everyone_and_removed_acls(acl_broker: SecureBroker, names: str) -> None:
    topic = _topic(acl_broker, f"acl-everyone-{names}")
    everyone = _acl(ResourceType.TOPIC, topic, AclOperation.WRITE, principal="User:*")
    _grant(acl_broker, everyone)
    assert _produce_error(_alice(acl_broker), topic) is None
    admin = acl_broker.admin()
    matching = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, None,
                                None, AclOperation.ANY, AclPermissionType.ANY)  # fmt: skip
    described = admin.describe_acls(matching).result(30)
    assert [(b.principal, b.operation, b.permission_type) for b in described] == [
        ("User:*", AclOperation.WRITE, AclPermissionType.ALLOW)
    ]
    deleted = admin.delete_acls([matching])[matching].result(30)
    assert [b.principal for b in deleted] == ["User:*"]
    time.sleep(0.5)  # Kafka applies the metadata change asynchronously
    assert _produce_error(_alice(acl_broker), topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_create_acls_refuses_what_kafka_refuses(acl_broker: SecureBroker) -> None:
    admin = acl_broker.admin()
    bad = AclBinding(ResourceType.BROKER, "not-the-cluster", ResourcePatternType.LITERAL,
                     "User:alice", "*", AclOperation.ALTER, AclPermissionType.ALLOW)  # fmt: skip
    assert _admin_error(admin.create_acls([bad])[bad]) == KafkaError.INVALID_REQUEST


def test_a_certificate_principal_is_authorized_by_its_mapped_name(
    acl_broker: SecureBroker, certs: Certs, names: str
) -> None:
    """ssl.principal.mapping.rules turn CN=alice,OU=eng,O=acme into User:alice."""
    topic = _topic(acl_broker, f"acl-mtls-{names}")
    _grant(acl_broker, _acl(ResourceType.TOPIC, topic, AclOperation.WRITE))

    def tls(who: object) -> dict[str, object]:
        return {
            "bootstrap.servers": acl_broker.listeners["SSL"],
            "security.protocol": "SSL",
            "log_level": 0,
            **client_tls(certs, who),
        }  # type: ignore[arg-type]

    assert _produce_error(tls(certs.alice), topic) is None
    assert _produce_error(tls(certs.bob), topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_list_offsets_without_describe_is_refused(acl_broker: SecureBroker, names: str) -> None:
    topic = _topic(acl_broker, f"acl-offsets-{names}")
    # librdkafka reports a topic it may not see as an unknown partition: read the code itself.
    with KioClient(acl_broker.listeners["SASL_PLAINTEXT"]) as client:
        handshake(client, "PLAIN")
        assert authenticate(client, b"\0alice\0alice-secret").error_code == 0
        response = client.call(
            ListOffsetsRequest(
                replica_id=-1,
                isolation_level=0,
                topics=(
                    ListOffsetsTopic(
                        name=topic,
                        partitions=(
                            ListOffsetsPartition(
                                partition_index=0, current_leader_epoch=-1, timestamp=-1
                            ),
                        ),
                    ),
                ),
            )
        )
        [entry] = response.topics
        assert [p.error_code for p in entry.partitions] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]


def test_authorized_operations_are_the_principals(acl_broker: SecureBroker, names: str) -> None:
    topic = _topic(acl_broker, f"acl-ops-{names}")
    group = f"acl-ops-group-{names}"
    _grant(
        acl_broker,
        _acl(ResourceType.TOPIC, topic, AclOperation.READ),
        _acl(ResourceType.TOPIC, topic, AclOperation.ALTER_CONFIGS),
        _acl(ResourceType.BROKER, "kafka-cluster", AclOperation.DESCRIBE),
        _acl(ResourceType.GROUP, group, AclOperation.READ),
    )
    admin = AdminClient(_alice(acl_broker))

    def topic_ops() -> object:
        described = admin.describe_topics(
            TopicCollection([topic]), include_authorized_operations=True
        )[topic].result(30)
        return sorted(op.name for op in described.authorized_operations or [])

    assert _eventually(topic_ops, ["ALTER_CONFIGS", "DESCRIBE", "DESCRIBE_CONFIGS", "READ"])
    cluster = admin.describe_cluster(include_authorized_operations=True).result(30)
    assert sorted(op.name for op in cluster.authorized_operations or []) == ["DESCRIBE"]


def test_the_consumer_group_protocol_needs_read_on_the_group_and_topic(
    acl_broker: SecureBroker, names: str
) -> None:
    """KIP-848's ConsumerGroupHeartbeat is authorized as Kafka does it."""
    topic = _topic(acl_broker, f"acl-kip848-{names}")
    group = f"acl-kip848-group-{names}"
    producer = Producer({"bootstrap.servers": acl_broker.plaintext, "log_level": 0})
    producer.produce(topic, b"hello")
    producer.flush(10)

    def first_error_or_value() -> object:
        consumer = Consumer(
            _alice(
                acl_broker,
                **{
                    "group.id": group,
                    "group.protocol": "consumer",
                    "auto.offset.reset": "earliest",
                },
            )
        )
        consumer.subscribe([topic])
        try:
            for _ in range(40):
                message = consumer.poll(0.5)
                if message is None:
                    continue
                if message.error() is not None:
                    return message.error().code()
                return message.value()
        finally:
            consumer.close()
        return None

    assert first_error_or_value() == KafkaError.GROUP_AUTHORIZATION_FAILED
    _grant(
        acl_broker,
        _acl(ResourceType.GROUP, group, AclOperation.READ),
        _acl(ResourceType.TOPIC, topic, AclOperation.READ),
    )
    assert _eventually(first_error_or_value, b"hello")


@pytest.mark.parametrize("grant", [None, "READ", "CREATE", "CREATE+DESCRIBE"])
def test_metadata_auto_creation_needs_create(
    acl_broker: SecureBroker, names: str, grant: str | None
) -> None:
    """A topic the principal may describe but not create is TOPIC_AUTHORIZATION_FAILED when
    its Metadata request would auto-create it, as Kafka answers."""
    topic = f"acl-auto-{(grant or 'none').replace('+', '-')}-{names}"
    for operation in (grant or "").split("+") if grant else ():
        _grant(acl_broker, _acl(ResourceType.TOPIC, topic, getattr(AclOperation, operation)))
    with KioClient(acl_broker.listeners["SASL_PLAINTEXT"]) as client:
        handshake(client, "PLAIN")
        assert authenticate(client, b"\0alice\0alice-secret").error_code == 0

        def code() -> object:
            response = client.call(
                MetadataRequest(
                    topics=(MetadataRequestTopic(topic_id=ZERO, name=topic),),
                    allow_auto_topic_creation=True,
                    include_topic_authorized_operations=False,
                )
            )
            return response.topics[0].error_code

        expected = {
            None: KafkaError.TOPIC_AUTHORIZATION_FAILED,
            "READ": KafkaError.TOPIC_AUTHORIZATION_FAILED,
            "CREATE": KafkaError.TOPIC_AUTHORIZATION_FAILED,  # CREATE does not imply DESCRIBE
            "CREATE+DESCRIBE": KafkaError.UNKNOWN_TOPIC_OR_PART,  # created; Kafka 4's answer
        }[grant]
        assert _eventually(code, expected)
