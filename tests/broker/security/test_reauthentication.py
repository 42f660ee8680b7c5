"""Session lifetime and re-authentication (KIP-368, connections.max.reauth.ms), and
OAUTHBEARER with JWTs checked against a JSON Web Key Set."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import jwt
import pytest
from confluent_kafka import KafkaError, Producer
from cryptography.hazmat.primitives.asymmetric import rsa
from kio.schema.errors import ErrorCode
from kio.schema.metadata.v12.request import MetadataRequest

from tests._broker import BrokerProcess
from tests.broker._kio_client import KioClient
from tests.broker.security._sasl_wire import authenticate, closed_by_peer, handshake
from tests.broker.security.conftest import PLAIN_JAAS

REAUTH_MS = 1500


def _metadata() -> MetadataRequest:
    return MetadataRequest(
        topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False
    )


@pytest.fixture(scope="module")
def short_sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    tmp_path = tmp_path_factory.mktemp("short-sessions")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "test-key", "use": "sig"}]}))
    broker = BrokerProcess(
        tmp_path / "data",
        configs={
            "listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
            "sasl.enabled.mechanisms": "PLAIN,OAUTHBEARER",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
            "listener.name.sasl_plaintext.plain.connections.max.reauth.ms": REAUTH_MS,
            "sasl.oauthbearer.jwks.endpoint.url": jwks.as_uri(),
            "sasl.oauthbearer.expected.audience": "nerve",
            "sasl.oauthbearer.expected.issuer": "https://issuer.test",
        },
    )
    broker.start()
    try:
        yield {"address": broker.listeners["SASL_PLAINTEXT"], "key": key}
    finally:
        broker.close()


def _plain(client: KioClient, user: str, password: str) -> object:
    assert handshake(client, "PLAIN").error_code == ErrorCode.none
    return authenticate(client, f"\0{user}\0{password}".encode())


def test_the_session_lifetime_is_connections_max_reauth_ms(short_sessions: dict) -> None:
    with KioClient(short_sessions["address"]) as client:
        response = _plain(client, "alice", "alice-secret")
        assert response.error_code == ErrorCode.none
        assert response.session_lifetime.total_seconds() * 1000 == REAUTH_MS
        assert client.call(_metadata()).brokers


def test_a_session_not_renewed_in_time_is_closed_at_its_next_request(
    short_sessions: dict,
) -> None:
    with KioClient(short_sessions["address"]) as client:
        assert _plain(client, "alice", "alice-secret").error_code == ErrorCode.none
        time.sleep(REAUTH_MS / 1000 + 0.5)
        client.send(_metadata())
        assert closed_by_peer(client)


def test_re_authentication_renews_the_session_and_keeps_the_principal(
    short_sessions: dict,
) -> None:
    with KioClient(short_sessions["address"]) as client:
        assert _plain(client, "alice", "alice-secret").error_code == ErrorCode.none
        for _ in range(3):
            time.sleep(REAUTH_MS / 1000 * 0.6)
            assert _plain(client, "alice", "alice-secret").error_code == ErrorCode.none
            assert client.call(_metadata()).brokers
        response = _plain(client, "admin", "admin-secret")
        assert response.error_code == ErrorCode.sasl_authentication_failed
        assert response.error_message == (
            "Cannot change principals during re-authentication from User.alice: User.admin"
        )
        assert closed_by_peer(client)


def test_librdkafka_re_authenticates_and_keeps_producing(short_sessions: dict) -> None:
    errors: list[KafkaError] = []
    producer = Producer(
        {
            "bootstrap.servers": short_sessions["address"],
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN",
            "sasl.username": "alice",
            "sasl.password": "alice-secret",
            "error_cb": errors.append,
            "log_level": 0,
        }
    )
    topic = f"reauth-{uuid.uuid4().hex[:6]}"
    delivered: list[object] = []
    deadline = time.monotonic() + 4 * REAUTH_MS / 1000
    while time.monotonic() < deadline:
        producer.produce(topic, b"x", on_delivery=lambda err, msg: delivered.append(err))
        producer.poll(0.1)
    assert producer.flush(20) == 0
    assert delivered and all(err is None for err in delivered)
    assert not [e for e in errors if e.code() == KafkaError._AUTHENTICATION]


def _token(key: rsa.RSAPrivateKey, **claims: object) -> str:
    now = int(time.time())
    body = {"sub": "svc-orders", "aud": "nerve", "iss": "https://issuer.test", "iat": now,
            "exp": now + 60, **claims}  # fmt: skip
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "test-key"})


def _oauth(address: str, token: str) -> tuple[object, KioClient]:
    client = KioClient(address)
    assert handshake(client, "OAUTHBEARER").error_code == ErrorCode.none
    return authenticate(client, f"n,,\x01auth=Bearer {token}\x01\x01".encode()), client


def test_a_valid_token_authenticates_for_its_remaining_life(short_sessions: dict) -> None:
    response, client = _oauth(short_sessions["address"], _token(short_sessions["key"]))
    with client:
        assert response.error_code == ErrorCode.none
        assert 50 <= response.session_lifetime.total_seconds() <= 60
        assert client.call(_metadata()).brokers


@pytest.mark.parametrize(
    "case", ["expired", "wrong-audience", "wrong-issuer", "other-key", "tampered", "no-subject"]
)
def test_a_bad_token_is_refused_with_the_rfc7628_error(short_sessions: dict, case: str) -> None:
    key = short_sessions["key"]
    if case == "expired":
        token = _token(key, exp=int(time.time()) - 120)
    elif case == "wrong-audience":
        token = _token(key, aud="someone-else")
    elif case == "wrong-issuer":
        token = _token(key, iss="https://elsewhere.test")
    elif case == "other-key":
        token = _token(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    elif case == "tampered":
        head, body, signature = _token(key).split(".")
        claims = json.loads(jwt.utils.base64url_decode(body))
        claims["sub"] = "admin"
        body = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
        token = f"{head}.{body}.{signature}"
    else:
        token = _token(key, sub="")
    response, client = _oauth(short_sessions["address"], token)
    with client:
        assert response.error_code == ErrorCode.none
        assert json.loads(response.auth_bytes) == {"status": "invalid_token"}
        final = authenticate(client, b"\x01")
        assert final.error_code == ErrorCode.sasl_authentication_failed
        assert final.error_message == '{"status":"invalid_token"}'
        assert closed_by_peer(client)


def test_librdkafka_authenticates_with_a_token_from_its_callback(short_sessions: dict) -> None:
    key = short_sessions["key"]

    def token(_config: object) -> tuple[str, float]:
        return _token(key), time.time() + 60

    producer = Producer(
        {
            "bootstrap.servers": short_sessions["address"],
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "OAUTHBEARER",
            "oauth_cb": token,
            "log_level": 0,
        }
    )
    producer.produce(f"oauth-{uuid.uuid4().hex[:6]}", b"hello")
    assert producer.flush(20) == 0
