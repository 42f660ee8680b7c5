"""SASL on nerve and on Kafka 4.4 configured alike: PLAIN with JAAS users, SCRAM-SHA-256
and SCRAM-SHA-512 with credentials made by AlterUserScramCredentials. Refusals carry the same
error code and message, and the connection closes after them."""

from __future__ import annotations

import uuid

import pytest
import scramp
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import NewTopic
from kio.schema.errors import ErrorCode
from kio.schema.metadata.v12.request import MetadataRequest
from kio.schema.sasl_handshake.v0.request import SaslHandshakeRequest as SaslHandshakeV0

from tests.broker._kio_client import KioClient
from tests.broker.security._sasl_wire import authenticate, closed_by_peer, handshake
from tests.broker.security.conftest import MECHANISMS, SCRAM_USERS, SecureBroker


def _sasl_client(address: str, mechanism: str, user: str, password: str, **extra: object) -> dict:
    return {
        "bootstrap.servers": address,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
        "log_level": 0,
        **extra,
    }


def _round_trip(config: dict, topic: str) -> list[bytes]:
    producer = Producer(config)
    for i in range(3):
        producer.produce(topic, f"value-{i}".encode())
    assert producer.flush(20) == 0
    consumer = Consumer({**config, "group.id": f"g-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([topic])
    values: list[bytes] = []
    try:
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value())
            if len(values) == 3:
                break
    finally:
        consumer.close()
    return values


@pytest.mark.parametrize(
    ("mechanism", "user", "password"),
    [
        ("PLAIN", "alice", "alice-secret"),
        ("SCRAM-SHA-256", "scram-user", SCRAM_USERS["scram-user"]),
        ("SCRAM-SHA-512", "scram-user", SCRAM_USERS["scram-user"]),
    ],
)
def test_librdkafka_produces_and_consumes_over_each_mechanism(
    secure: SecureBroker, mechanism: str, user: str, password: str
) -> None:
    config = _sasl_client(secure.listeners["SASL_PLAINTEXT"], mechanism, user, password)
    topic = f"sasl-{mechanism.lower()}-{uuid.uuid4().hex[:6]}"
    admin = secure.admin()
    admin.create_topics([NewTopic(topic, 1)])[topic].result(30)
    assert _round_trip(config, topic) == [b"value-0", b"value-1", b"value-2"]


def _refusal(secure: SecureBroker, mechanism: str, tokens: list[bytes]) -> tuple[int, str | None]:
    """Send the tokens after a handshake; the first error answered (code, message), and
    check that the broker closed the connection after it."""
    with KioClient(secure.listeners["SASL_PLAINTEXT"]) as client:
        assert handshake(client, mechanism).error_code == ErrorCode.none
        for token in tokens:
            response = authenticate(client, token)
            if response.error_code != ErrorCode.none:
                assert closed_by_peer(client)
                return response.error_code, response.error_message
    raise AssertionError("every token was accepted")


@pytest.mark.parametrize(
    "token",
    [b"\0alice\0wrong", b"\0nobody\0alice-secret", b"\0alice\0", b"\0\0pw", b"only-one-token"],
    ids=["wrong-password", "unknown-user", "no-password", "no-user", "malformed"],
)
def test_plain_refusals_match_kafka(secure: SecureBroker, token: bytes) -> None:
    code, message = _refusal(secure, "PLAIN", [token])
    assert code == ErrorCode.sasl_authentication_failed
    expected = {
        b"\0alice\0wrong": "Authentication failed: Invalid username or password",
        b"\0nobody\0alice-secret": "Authentication failed: Invalid username or password",
        b"\0alice\0": "Authentication failed: password not specified",
        b"\0\0pw": "Authentication failed: username not specified",
        b"only-one-token": "Invalid SASL/PLAIN response: expected 3 tokens, got 1",
    }[token]
    assert message == expected


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
@pytest.mark.parametrize("case", ["wrong-password", "unknown-user", "tampered-proof", "replayed"])
def test_scram_refusals_match_kafka(secure: SecureBroker, mechanism: str, case: str) -> None:
    user = "nobody" if case == "unknown-user" else "scram-user"
    password = "wrong" if case == "wrong-password" else SCRAM_USERS["scram-user"]
    address = secure.listeners["SASL_PLAINTEXT"]
    replayed = b""
    if case == "replayed":  # a proof that worked once, sent again on a new exchange
        with KioClient(address) as first:
            handshake(first, mechanism)
            scram = scramp.ScramClient([mechanism], user, password)
            reply = authenticate(first, scram.get_client_first().encode())
            scram.set_server_first(reply.auth_bytes.decode())
            replayed = scram.get_client_final().encode()
            assert authenticate(first, replayed).error_code == ErrorCode.none
    with KioClient(address) as client:
        assert handshake(client, mechanism).error_code == ErrorCode.none
        scram = scramp.ScramClient([mechanism], user, password)
        reply = authenticate(client, scram.get_client_first().encode())
        if reply.error_code == ErrorCode.none:
            scram.set_server_first(reply.auth_bytes.decode())
            final = scram.get_client_final()
            if case == "tampered-proof":
                head, _, proof = final.rpartition("p=")
                final = head + "p=" + ("A" if proof[0] != "A" else "B") + proof[1:]
            reply = authenticate(client, replayed or final.encode())
        assert reply.error_code == ErrorCode.sasl_authentication_failed
        assert reply.error_message == (
            "Authentication failed during authentication due to invalid credentials with "
            f"SASL mechanism {mechanism}"
        )
        assert closed_by_peer(client)


def test_unsupported_mechanism_is_refused_with_the_enabled_ones(secure: SecureBroker) -> None:
    with KioClient(secure.listeners["SASL_PLAINTEXT"]) as client:
        response = handshake(client, "GSSAPI")
        assert response.error_code == ErrorCode.unsupported_sasl_mechanism
        # Kafka lists them in the order of its own map of login contexts, not the setting's.
        assert sorted(response.mechanisms) == sorted(MECHANISMS.split(","))
        assert closed_by_peer(client)


def test_a_request_before_authentication_closes_the_connection(secure: SecureBroker) -> None:
    with KioClient(secure.listeners["SASL_PLAINTEXT"]) as client:
        client.send(MetadataRequest(topics=None, allow_auto_topic_creation=False,
                                    include_topic_authorized_operations=False))  # fmt: skip
        assert closed_by_peer(client)


def test_a_request_between_handshake_and_authentication_closes_the_connection(
    secure: SecureBroker,
) -> None:
    with KioClient(secure.listeners["SASL_PLAINTEXT"]) as client:
        assert handshake(client, "PLAIN").error_code == ErrorCode.none
        client.send(MetadataRequest(topics=None, allow_auto_topic_creation=False,
                                    include_topic_authorized_operations=False))  # fmt: skip
        assert closed_by_peer(client)


def test_librdkafka_reports_a_wrong_password_as_an_authentication_error(
    secure: SecureBroker,
) -> None:
    errors: list[KafkaError] = []
    producer = Producer(
        _sasl_client(
            secure.listeners["SASL_PLAINTEXT"],
            "SCRAM-SHA-256",
            "scram-user",
            "nope",
            error_cb=errors.append,
        )
    )
    for _ in range(40):
        producer.poll(0.25)
        if errors:
            break
    assert errors and errors[0].code() == KafkaError._AUTHENTICATION
    assert "Authentication failed during authentication" in errors[0].str()


def test_an_unauthenticated_frame_larger_than_sasl_server_max_receive_size_closes(
    secure: SecureBroker,
) -> None:
    """Kafka's sasl.server.max.receive.size (512 KiB): a peer cannot make the broker buffer
    a large request before it has authenticated."""
    with KioClient(secure.listeners["SASL_PLAINTEXT"]) as client:
        client.sock.sendall((600_000).to_bytes(4, "big") + b"\0" * 1000)
        assert closed_by_peer(client)


def test_after_authentication_large_requests_are_served(secure: SecureBroker) -> None:
    config = _sasl_client(secure.listeners["SASL_PLAINTEXT"], "PLAIN", "alice", "alice-secret")
    topic = f"sasl-large-{uuid.uuid4().hex[:6]}"
    admin = secure.admin()
    admin.create_topics([NewTopic(topic, 1)])[topic].result(30)
    producer = Producer({**config, "compression.type": "none"})
    producer.produce(topic, b"x" * 800_000)
    assert producer.flush(20) == 0


def test_sasl_handshake_v0_takes_bare_tokens(secure: SecureBroker) -> None:
    """SaslHandshake v0: the tokens that follow travel without Kafka's request framing."""
    with KioClient(secure.listeners["SASL_PLAINTEXT"]) as client:
        response = client.call(SaslHandshakeV0(mechanism="PLAIN"))
        assert response.error_code == ErrorCode.none
        token = b"\0alice\0alice-secret"
        client.sock.sendall(len(token).to_bytes(4, "big") + token)
        assert client._read(4) == b"\0\0\0\0"  # PLAIN's empty reply
        assert client.call(
            MetadataRequest(topics=None, allow_auto_topic_creation=False,
                            include_topic_authorized_operations=False)
        ).brokers  # fmt: skip
