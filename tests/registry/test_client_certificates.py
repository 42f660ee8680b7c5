"""Client certificates on the registry's HTTPS listener (issue 17, item 4): Confluent's
``ssl.client.authentication`` (and the older ``ssl.client.auth=true``) with a PEM truststore;
the certificate's subject, through Kafka's ``ssl.principal.mapping.rules``, is the principal
that per-subject ACLs name. Real registry processes on the shared broker, called by
confluent-kafka's SchemaRegistryClient and by httpx over TLS."""

from __future__ import annotations

import ssl
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from tests._broker import BrokerProcess
from tests._certs import Issued, TestCA
from tests._registry import RegistryProcess

AVRO = '{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}'
CONFLUENT_RULES = "confluent.schema.registry.auth.ssl.principal.mapping.rules"
RULES = "RULE:^CN=([^,]*),OU=eng.*$/$1/L"  # CN=Alice,OU=eng,... -> alice; others: refused


def _registry(
    tmp_path: Path, broker: BrokerProcess, ca: TestCA, server: Issued, **settings: str
) -> tuple[RegistryProcess, str]:
    if CONFLUENT_RULES not in settings:
        settings["ssl.principal.mapping.rules"] = RULES  # Kafka's name for the same rules
    proc = RegistryProcess(
        tmp_path / f"registry-{uuid.uuid4().hex[:6]}",
        broker.bootstrap,
        f"_schemas-mtls-{uuid.uuid4().hex[:8]}",
        {
            "ssl.keystore.location": str(server.keystore),
            "ssl.truststore.location": str(ca.ca),
            **settings,
        },
    )
    proc.start()
    return proc, f"https://127.0.0.1:{proc.port}"


def _client(url: str, ca: TestCA, issued: Issued | None) -> SchemaRegistryClient:
    config = {"url": url, "ssl.ca.location": str(ca.ca)}
    if issued is not None:
        config |= {
            "ssl.certificate.location": str(issued.cert),
            "ssl.key.location": str(issued.key),
        }
    return SchemaRegistryClient(config)


def _https(ca: TestCA, issued: Issued | None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(ca.ca))
    if issued is not None:
        context.load_cert_chain(str(issued.cert), str(issued.key))
    return httpx.Client(verify=context, timeout=10)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("mtls-ca"))


def test_the_certificate_subject_is_the_principal_acls_name(
    shared_broker: BrokerProcess, ca: TestCA, tmp_path: Path
) -> None:
    server = ca.issue("registry", "CN=localhost", server=True)
    alice = ca.issue("alice", "CN=Alice,OU=eng,O=acme")
    bob = ca.issue("bob", "CN=bob,OU=eng,O=acme")
    carol = ca.issue("carol", "CN=carol,OU=ops,O=acme")  # no rule maps her
    acl_topic = f"_schemas_acl-{uuid.uuid4().hex[:8]}"
    grant = subprocess.run(
        [sys.executable, "-m", "nerve", "schemas", "acl", "add", "-p", "alice",
         "-o", "SUBJECT_WRITE", "-o", "SUBJECT_READ", "-s", "orders-*",
         "-b", shared_broker.bootstrap, "--topic", acl_topic],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert grant.returncode == 0, grant.stderr
    proc, url = _registry(
        tmp_path,
        shared_broker,
        ca,
        server,
        **{
            "ssl.client.authentication": "REQUESTED",
            CONFLUENT_RULES: RULES,
            "confluent.schema.registry.authorizer.class": "acl",
            "confluent.schema.registry.acl.topic": acl_topic,
        },
    )
    try:
        schema_id = _client(url, ca, alice).register_schema("orders-value", Schema(AVRO, "AVRO"))
        assert _client(url, ca, alice).get_schema(schema_id).schema_str == AVRO
        with pytest.raises(SchemaRegistryError) as denied:
            _client(url, ca, bob).get_versions("orders-value")
        assert denied.value.error_code == 40301
        assert "User bob is denied operation SUBJECT_READ" in denied.value.error_message
        with pytest.raises(SchemaRegistryError) as denied:  # REQUESTED: no certificate is let in
            _client(url, ca, None).get_versions("orders-value")
        assert denied.value.error_code == 40301 and "ANONYMOUS" in denied.value.error_message
        with _https(ca, carol) as client:
            refused = client.get(f"{url}/subjects/orders-value/versions")
        assert refused.status_code == 401
        assert refused.json() == {"error_code": 401, "message": "Unauthorized"}
    finally:
        proc.close()


def test_required_refuses_a_client_without_a_trusted_certificate(
    shared_broker: BrokerProcess, ca: TestCA, tmp_path: Path
) -> None:
    server = ca.issue("registry2", "CN=localhost", server=True)
    alice = ca.issue("alice2", "CN=Alice,OU=eng")
    stranger = TestCA(tmp_path / "other-ca").issue("alice-elsewhere", "CN=Alice,OU=eng")
    proc, url = _registry(tmp_path, shared_broker, ca, server, **{"ssl.client.auth": "true"})
    try:
        with _https(ca, alice) as client:
            assert client.get(f"{url}/subjects").status_code == 200
        for who in (None, stranger):
            with _https(ca, who) as client, pytest.raises(httpx.HTTPError):
                client.get(f"{url}/subjects")
    finally:
        proc.close()


def test_client_certificate_settings_that_cannot_work_refuse_to_start(
    ca: TestCA, tmp_path: Path
) -> None:
    from nerve.registry.config import RegistryConfig, RegistryConfigError
    from nerve.registry.server import RegistryServer

    server = ca.issue("registry3", "CN=localhost", server=True)
    keystore, truststore = str(server.keystore), str(ca.ca)
    for settings, message in [
        ({"ssl.client.authentication": "REQUIRED"}, "needs HTTPS"),
        (
            {"ssl.keystore.location": keystore, "ssl.client.authentication": "REQUIRED"},
            "needs ssl.truststore.location",
        ),
        ({"ssl.keystore.location": keystore, "ssl.client.authentication": "SOMETIMES"}, "NONE,"),
        ({"ssl.client.auth": "yes"}, "true or false"),
        (
            {"ssl.keystore.location": keystore, "ssl.client.auth": "true",
             "ssl.truststore.location": str(tmp_path / "missing.pem")},
            "ssl.truststore.location",
        ),
        (
            {"ssl.keystore.location": keystore, "ssl.client.auth": "true",
             "ssl.truststore.location": truststore, "ssl.principal.mapping.rules": "RULE:(/x/"},
            "ssl.principal.mapping.rules",
        ),
    ]:  # fmt: skip
        config = RegistryConfig()
        config.apply(settings)
        with pytest.raises(RegistryConfigError, match=message):
            RegistryServer("127.0.0.1:1", config=config)
