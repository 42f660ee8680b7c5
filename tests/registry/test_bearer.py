"""Bearer tokens on ``nerve registry`` (issue 17, item 4): ``authentication.method=BEARER``
with Confluent Platform's ``oauthbearer.*`` settings, JWTs signed by a key of a JSON Web Key
Set, the token's subject the principal that per-subject ACLs name. A real registry process on
the shared broker, called by confluent-kafka's SchemaRegistryClient (``STATIC_TOKEN``) and by
raw HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from cryptography.hazmat.primitives.asymmetric import rsa

from tests._broker import BrokerProcess
from tests.registry.test_auth import RegistryWith, registry_with  # noqa: F401 - fixture

AVRO = '{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}'
ISSUER = "https://login.example.test"
AUDIENCE = "schema-registry"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def token(key: rsa.RSAPrivateKey, kid: str = "k1", **claims: object) -> str:
    now = int(time.time())
    body = {"sub": "svc-orders", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
    body.update(claims)
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


def client(url: str, bearer: str) -> SchemaRegistryClient:
    return SchemaRegistryClient(
        {
            "url": url,
            "bearer.auth.credentials.source": "STATIC_TOKEN",
            "bearer.auth.token": bearer,
            "bearer.auth.logical.cluster": "lsrc-nerve",  # sent as a header; nerve ignores it
            "bearer.auth.identity.pool.id": "pool-nerve",
        }
    )


def test_a_valid_token_is_its_subject_and_bad_tokens_get_401(
    registry_with: RegistryWith,  # noqa: F811
    shared_broker: BrokerProcess,
    signing_key: rsa.RSAPrivateKey,
    tmp_path: Path,
) -> None:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig"}]}))
    acl_topic = f"_schemas_acl-{uuid.uuid4().hex[:8]}"
    grant = subprocess.run(
        [sys.executable, "-m", "nerve", "schemas", "acl", "add", "-p", "svc-orders",
         "-o", "SUBJECT_WRITE", "-o", "SUBJECT_READ", "-s", "orders-*",
         "-b", shared_broker.bootstrap, "--topic", acl_topic],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert grant.returncode == 0, grant.stderr
    registry = registry_with(
        {
            "authentication.method": "BEARER",
            "oauthbearer.jwks.endpoint.url": jwks.as_uri(),
            "oauthbearer.expected.issuer": ISSUER,
            "oauthbearer.expected.audience": AUDIENCE,
            "confluent.schema.registry.authorizer.class": "acl",
            "confluent.schema.registry.acl.topic": acl_topic,
        }
    )
    orders = client(registry.url, token(signing_key))
    schema_id = orders.register_schema("orders-value", Schema(AVRO, "AVRO"))
    assert orders.get_schema(schema_id).schema_str == AVRO
    # The subject is the principal the ACLs name: svc-orders may not write elsewhere.
    with pytest.raises(SchemaRegistryError) as denied:
        orders.register_schema("payments-value", Schema(AVRO, "AVRO"))
    assert denied.value.error_code == 40301 and "svc-orders" in denied.value.error_message
    other = client(registry.url, token(signing_key, sub="svc-payments"))
    with pytest.raises(SchemaRegistryError) as denied:
        other.register_schema("orders-value", Schema(AVRO, "AVRO"))
    assert denied.value.error_code == 40301 and "svc-payments" in denied.value.error_message

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    for case, header in [
        ("expired", f"Bearer {token(signing_key, exp=now - 120, iat=now - 600)}"),
        ("wrong issuer", f"Bearer {token(signing_key, iss='https://evil.test')}"),
        ("wrong audience", f"Bearer {token(signing_key, aud='elsewhere')}"),
        ("signed by another key", f"Bearer {token(stranger)}"),
        ("unknown key id", f"Bearer {token(signing_key, kid='k9')}"),
        ("tampered", f"Bearer {token(signing_key)[:-4]}AAAA"),
        ("not a JWT", "Bearer not-a-token"),
        ("Basic instead", "Basic c3ZjLW9yZGVyczpzZWNyZXQ="),
        ("none", ""),
    ]:
        headers = {"Authorization": header} if header else {}
        answer = httpx.get(f"{registry.url}/subjects/orders-value/versions", headers=headers)
        assert answer.status_code == 401, case
        assert answer.json() == {"error_code": 401, "message": "Unauthorized"}, case
        assert answer.headers["www-authenticate"] == 'Bearer realm="SchemaRegistry"', case


def test_bearer_without_a_key_set_refuses_to_start() -> None:
    from nerve.registry.auth import AuthConfigError
    from nerve.registry.config import RegistryConfig
    from nerve.registry.server import RegistryServer

    config = RegistryConfig()
    config.apply({"authentication.method": "BEARER"})
    with pytest.raises(AuthConfigError, match=r"oauthbearer\.jwks\.endpoint\.url"):
        RegistryServer("127.0.0.1:1", config=config)
