"""ssl.principal.mapping.rules as Kafka's SslPrincipalMapper applies them (its documented
examples), and a PKCS12 keystore on a real SSL listener."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from nerve.security.ssl_principal import NoMatchingRule, SslPrincipalMapper
from tests.broker.security.conftest import Certs
from tests.conftest import BrokerFactory


@pytest.mark.parametrize(
    ("rules", "name", "expected"),
    [
        ("DEFAULT", "CN=alice,OU=eng,O=acme", "CN=alice,OU=eng,O=acme"),
        ("RULE:^CN=(.*?),OU=(.*?),O=(.*?)$/$1@$2/", "CN=alice,OU=eng,O=acme", "alice@eng"),
        ("RULE:^CN=(.*?),OU=.*$/$1/L", "CN=Alice,OU=eng,O=acme", "alice"),
        ("RULE:^CN=(.*?),OU=.*$/$1/U", "CN=Alice,OU=eng,O=acme", "ALICE"),
        ("RULE:^CN=([^,]*)$/$1/,DEFAULT", "CN=bob,OU=ops", "CN=bob,OU=ops"),
        ("RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L, DEFAULT", "OU=x,CN=Duke,O=y", "duke"),
        ("RULE:^CN=(.*?),OU=(.*?)$/$1\\/$2/", "CN=a,OU=b", "a/b"),
        ("RULE:^CN=(.*)$/$1@$4/", "CN=a", "a@$4"),  # a group that does not exist stays text
    ],
)
def test_rules_map_names_as_kafka(rules: str, name: str, expected: str) -> None:
    assert SslPrincipalMapper(rules).name(name) == expected


def test_a_name_no_rule_matches_is_refused() -> None:
    with pytest.raises(NoMatchingRule):
        SslPrincipalMapper("RULE:^CN=(.*),OU=eng$/$1/").name("CN=bob,OU=ops")


def test_malformed_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="Invalid rule"):
        SslPrincipalMapper("RULE:^CN=(.*)$/$1/X")


def test_a_pkcs12_keystore_serves_tls(
    broker_factory: BrokerFactory, certs: Certs, tmp_path: Path
) -> None:
    key = serialization.load_pem_private_key(certs.server.key.read_bytes(), None)
    cert = x509.load_pem_x509_certificate(certs.server.cert.read_bytes())
    keystore = tmp_path / "server.p12"
    keystore.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"server", key, cert, None,  # type: ignore[arg-type]
            serialization.BestAvailableEncryption(b"store-secret"),
        )
    )  # fmt: skip
    broker = broker_factory(
        {
            "listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(keystore),
            "ssl.keystore.password": "store-secret",
        }
    )
    admin = AdminClient({"bootstrap.servers": broker.listeners["SSL"], "security.protocol": "SSL",
                         "ssl.ca.location": str(certs.ca.ca), "log_level": 0})  # fmt: skip
    assert admin.list_topics(timeout=10).brokers
