"""Brokers with SASL and TLS listeners, nerve and Apache Kafka configured alike, and the
certificates they use, made once per session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from tests._broker import BrokerProcess
from tests._certs import Issued, TestCA, ssl_listener_configs
from tests._kafka import KafkaProcess

PLAIN_JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'username="admin" password="admin-secret" user_admin="admin-secret" '
    'user_alice="alice-secret";'
)
SCRAM_JAAS = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
MECHANISMS = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
# SCRAM users both brokers get through AlterUserScramCredentials: user -> password.
SCRAM_USERS = {"scram-user": "scram-secret"}


def sasl_configs(*listeners: str) -> dict[str, str]:
    """The same SASL settings for nerve and Kafka: PLAIN users in JAAS, SCRAM users stored."""
    out = {"sasl.enabled.mechanisms": MECHANISMS}
    for listener in listeners:
        name = listener.lower()
        out[f"listener.name.{name}.plain.sasl.jaas.config"] = PLAIN_JAAS
        out[f"listener.name.{name}.scram-sha-256.sasl.jaas.config"] = SCRAM_JAAS
        out[f"listener.name.{name}.scram-sha-512.sasl.jaas.config"] = SCRAM_JAAS
    return out


@dataclass
class Certs:
    ca: TestCA
    server: Issued
    alice: Issued
    bob: Issued


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    ca = TestCA(tmp_path_factory.mktemp("certs"))
    return Certs(
        ca,
        ca.issue("server", "CN=localhost,O=nerve", server=True),
        ca.issue("alice", "CN=alice,OU=eng,O=acme"),
        ca.issue("bob", "CN=bob,OU=ops,O=acme"),
    )


@dataclass
class SecureBroker:
    """One broker (nerve or Kafka): PLAINTEXT for setup, SASL_PLAINTEXT, SSL (mTLS) and
    SASL_SSL for the tests."""

    name: str
    plaintext: str
    listeners: dict[str, str]

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.plaintext, "log_level": 0})


def add_scram_users(bootstrap: str, users: dict[str, str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    # A user may be altered once per request (Kafka's rule): one request per mechanism.
    for mechanism in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512):
        upserts = [
            UserScramCredentialUpsertion(
                user, ScramCredentialInfo(mechanism, 8192), password.encode()
            )
            for user, password in users.items()
        ]
        for future in admin.alter_user_scram_credentials(upserts).values():
            future.result(30)


SECURE_LISTENERS = {"SASL_PLAINTEXT": "SASL_PLAINTEXT", "SSL": "SSL", "SASL_SSL": "SASL_SSL"}


def secure_configs(certs: Certs) -> dict[str, str]:
    return {
        **sasl_configs("SASL_PLAINTEXT", "SASL_SSL"),
        **ssl_listener_configs(certs.ca, certs.server, "none"),
        "listener.name.ssl.ssl.client.auth": "required",
        "ssl.principal.mapping.rules": "RULE:^CN=([^,]*),OU=.*$/$1/L,DEFAULT",
    }


@pytest.fixture(scope="session")
def nerve_secure(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[SecureBroker]:
    root = tmp_path_factory.mktemp("nerve-secure")
    listeners = "PLAINTEXT://127.0.0.1:0," + ",".join(
        f"{name}://127.0.0.1:0" for name in SECURE_LISTENERS
    )
    proc = BrokerProcess(root / "data", configs={"listeners": listeners, **secure_configs(certs)})
    proc.start()
    try:
        add_scram_users(proc.listeners["PLAINTEXT"], SCRAM_USERS)
        yield SecureBroker("nerve", proc.listeners["PLAINTEXT"], proc.listeners)
    finally:
        proc.close()


@pytest.fixture(scope="session")
def kafka_secure(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[SecureBroker]:
    root = tmp_path_factory.mktemp("kafka-secure")
    proc = KafkaProcess(root / "data", configs=secure_configs(certs), listeners=SECURE_LISTENERS)
    proc.start()
    try:
        add_scram_users(proc.bootstrap, SCRAM_USERS)
        yield SecureBroker("kafka", proc.bootstrap, dict(proc.listener_addresses))
    finally:
        proc.remove()


@pytest.fixture(params=["nerve", "kafka"])
def secure(request: pytest.FixtureRequest) -> SecureBroker:
    """Each test runs against nerve and against Kafka 4.4 configured the same way."""
    broker: SecureBroker = request.getfixturevalue(f"{request.param}_secure")
    return broker


def client_tls(certs: Certs, who: Issued | None = None) -> dict[str, str]:
    out = {"ssl.ca.location": str(certs.ca.ca)}
    if who is not None:
        out.update({"ssl.certificate.location": str(who.cert), "ssl.key.location": str(who.key)})
    return out


__all__ = ["Path"]


AUTHORIZER = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    # ANONYMOUS: the PLAINTEXT listener the tests set up through (and Kafka's controller).
    "super.users": "User:ANONYMOUS;User:admin",
}


@pytest.fixture(scope="session")
def nerve_acl(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[SecureBroker]:
    root = tmp_path_factory.mktemp("nerve-acl")
    listeners = "PLAINTEXT://127.0.0.1:0," + ",".join(
        f"{name}://127.0.0.1:0" for name in SECURE_LISTENERS
    )
    configs = {"listeners": listeners, **secure_configs(certs), **AUTHORIZER}
    proc = BrokerProcess(root / "data", configs=configs)
    proc.start()
    try:
        yield SecureBroker("nerve", proc.listeners["PLAINTEXT"], proc.listeners)
    finally:
        proc.close()


@pytest.fixture(scope="session")
def kafka_acl(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[SecureBroker]:
    root = tmp_path_factory.mktemp("kafka-acl")
    proc = KafkaProcess(
        root / "data", configs={**secure_configs(certs), **AUTHORIZER}, listeners=SECURE_LISTENERS
    )
    proc.start()
    try:
        yield SecureBroker("kafka", proc.bootstrap, dict(proc.listener_addresses))
    finally:
        proc.remove()


@pytest.fixture(params=["nerve", "kafka"])
def acl_broker(request: pytest.FixtureRequest) -> SecureBroker:
    """A broker with StandardAuthorizer semantics: nerve and Kafka 4.4 configured alike."""
    broker: SecureBroker = request.getfixturevalue(f"{request.param}_acl")
    return broker
