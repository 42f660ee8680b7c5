"""Bearer tokens on ``nerve console`` (issue 17, item 4): ``authentication.method=BEARER``
with the registry's ``oauthbearer.*`` settings, for scripts and SSO proxies that send
``Authorization: Bearer <JWT>``. The token's subject is the logged-in user, and with
``kafka.principal=user`` the console reaches the broker with SASL OAUTHBEARER and the registry
with the same token, so the broker's ACLs and the registry's per-subject ACLs decide what the
page shows. Real processes: a broker (StandardAuthorizer, PLAIN and OAUTHBEARER on a
SASL_PLAINTEXT listener), a registry taking bearer tokens with ACLs on, and the console."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from cryptography.hazmat.primitives.asymmetric import rsa

from nerve.console.config import ConsoleConfig, ConsoleConfigError
from nerve.console.server import ConsoleServer
from tests._broker import BrokerProcess
from tests._console import ConsoleProcess
from tests._registry import RegistryProcess
from tests.console.test_login import _wait_acls

ISSUER = "https://login.example.test"
AUDIENCE = "nerve"
ADMIN_JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'username="admin" password="admin-secret" user_admin="admin-secret";'
)
AVRO = '{"type":"record","name":"%s","fields":[{"name":"id","type":"string"}]}'


@dataclass
class Setup:
    key: rsa.RSAPrivateKey
    broker: BrokerProcess
    registry: RegistryProcess
    console: ConsoleProcess
    mine: str  # a topic alice may read
    theirs: str  # one she may not

    def token(self, kid: str = "k1", key: rsa.RSAPrivateKey | None = None, **claims: object) -> str:
        now = int(time.time())
        body = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
        body.update(claims)
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": kid})

    def get(self, path: str, token: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(self.console.url + path, headers=headers, timeout=30)


def _oauth_settings(jwks: Path) -> dict[str, str]:
    return {
        "oauthbearer.jwks.endpoint.url": jwks.as_uri(),
        "oauthbearer.expected.issuer": ISSUER,
        "oauthbearer.expected.audience": AUDIENCE,
    }


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("console-bearer")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = root / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig"}]}))
    broker = BrokerProcess(
        root / "broker",
        configs={
            # PLAINTEXT on loopback is the administrator's (and the registry's).
            "listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
            "sasl.enabled.mechanisms": "PLAIN,OAUTHBEARER",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": ADMIN_JAAS,
            "sasl.oauthbearer.jwks.endpoint.url": jwks.as_uri(),
            "sasl.oauthbearer.expected.audience": AUDIENCE,
            "sasl.oauthbearer.expected.issuer": ISSUER,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:ANONYMOUS;User:admin",
        },
    )
    broker.start()
    registry = console = None
    try:
        plain = broker.listeners["PLAINTEXT"]
        tag = uuid.uuid4().hex[:8]
        mine, theirs = f"bearer-{tag}-alice", f"bearer-{tag}-bob"
        admin = AdminClient({"bootstrap.servers": plain})
        for future in admin.create_topics([NewTopic(t, 1, 1) for t in (mine, theirs)]).values():
            future.result(30)
        grants = [
            AclBinding(ResourceType.TOPIC, mine, ResourcePatternType.LITERAL, "User:alice", "*",
                       operation, AclPermissionType.ALLOW)
            for operation in (AclOperation.DESCRIBE, AclOperation.READ)
        ] + [
            AclBinding(ResourceType.GROUP, "nerve-console-", ResourcePatternType.PREFIXED,
                       "User:alice", "*", AclOperation.DESCRIBE, AclPermissionType.ALLOW)
        ]  # fmt: skip
        for future in admin.create_acls(grants).values():
            future.result(30)
        _wait_acls(admin, len(grants))
        producer = Producer({"bootstrap.servers": plain, "linger.ms": 0})
        producer.produce(mine, value=b'{"secret": "for-alice"}')
        producer.produce(theirs, value=b'{"secret": "for-bob-only"}')
        assert producer.flush(30) == 0

        acl_topic = f"_schemas_acl-{tag}"
        for user in ("alice", "bob"):
            grant = subprocess.run(
                [sys.executable, "-m", "nerve", "schemas", "acl", "add", "-p", user,
                 "-o", "SUBJECT_WRITE", "-o", "SUBJECT_READ",
                 "-o", "SUBJECT_COMPATIBILITY_READ", "-s", f"{user}-*",
                 "-b", plain, "--topic", acl_topic],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert grant.returncode == 0, grant.stderr
        grant = subprocess.run(  # alice may list subjects; bob may not
            [sys.executable, "-m", "nerve", "schemas", "acl", "add", "-p", "alice",
             "-o", "GLOBAL_READ", "-b", plain, "--topic", acl_topic],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert grant.returncode == 0, grant.stderr
        registry = RegistryProcess(
            root / "registry",
            plain,
            topic=f"_schemas-{tag}",
            settings={
                "authentication.method": "BEARER",
                **_oauth_settings(jwks),
                "confluent.schema.registry.authorizer.class": "acl",
                "confluent.schema.registry.acl.topic": acl_topic,
            },
        )
        registry.start()
        setup = Setup(key, broker, registry, None, mine, theirs)  # type: ignore[arg-type]
        for user in ("alice", "bob"):
            client = SchemaRegistryClient(
                {
                    "url": registry.url,
                    "bearer.auth.credentials.source": "STATIC_TOKEN",
                    "bearer.auth.token": setup.token(sub=user),
                    "bearer.auth.logical.cluster": "lsrc-nerve",
                    "bearer.auth.identity.pool.id": "pool-nerve",
                }
            )
            client.register_schema(f"{user}-value", Schema(AVRO % user.title(), "AVRO"))
        extra = ["-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=PLAIN",
                 "-X", "sasl.username=admin", "-X", "sasl.password=admin-secret",
                 "--config", "authentication.method=BEARER"]  # fmt: skip
        for name, value in _oauth_settings(jwks).items():
            extra += ["--config", f"{name}={value}"]
        console = ConsoleProcess(
            root / "console", broker.listeners["SASL_PLAINTEXT"], registry.url, *extra
        )
        console.start()
        setup.console = console
        yield setup
    finally:
        if console is not None:
            console.close()
        if registry is not None:
            registry.close()
        broker.close()


def test_without_a_valid_token_every_page_is_refused_with_a_bearer_challenge(
    setup: Setup,
) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    cases = {
        "none": None,
        "expired": setup.token(exp=now - 120, iat=now - 600),
        "wrong issuer": setup.token(iss="https://evil.test"),
        "wrong audience": setup.token(aud="elsewhere"),
        "signed by another key": setup.token(key=stranger),
        "unknown key id": setup.token(kid="k9"),
        "not a JWT": "not-a-token",
    }
    for case, token in cases.items():
        for path in ("/", "/topics", f"/topics/{setup.mine}/messages", "/schemas"):
            answer = setup.get(path, token)
            assert answer.status_code == 401, (case, path)
            assert answer.headers["www-authenticate"] == 'Bearer realm="nerve-console"', case
            assert setup.mine not in answer.text
    basic = httpx.get(setup.console.url + "/topics", auth=("admin", "admin-secret"), timeout=30)
    assert basic.status_code == 401
    assert setup.get("/healthz", None).status_code == 200  # authentication.skip.paths


def test_the_token_subject_is_logged_in_and_reaches_kafka_as_itself(setup: Setup) -> None:
    alice = setup.token()
    listing = setup.get("/topics", alice)
    assert listing.status_code == 200, listing.text[-1500:]
    assert '<span class="user" title="logged in as">alice</span>' in listing.text
    assert "/logout" not in listing.text  # the token comes with each request: nothing to forget
    assert f'data-topic="{setup.mine}"' in listing.text
    assert setup.theirs not in listing.text  # the broker's ACLs, through OAUTHBEARER
    mine = setup.get(f"/topics/{setup.mine}/messages?from=start", alice)
    assert mine.status_code == 200 and "for-alice" in mine.text, mine.text[-1500:]
    theirs = setup.get(f"/topics/{setup.theirs}/messages?from=start", alice)
    assert theirs.status_code == 404 and "for-bob-only" not in theirs.text
    bob = setup.get("/topics", setup.token(sub="bob"))  # no ACLs at all
    assert bob.status_code == 200 and "bearer-" not in bob.text


def test_the_token_reaches_the_registry_whose_acls_decide(setup: Setup) -> None:
    alice = setup.token()
    own = setup.get("/schemas/alice-value", alice)
    assert own.status_code == 200 and "Alice" in own.text, own.text[-1500:]
    other = setup.get("/schemas/bob-value", alice)
    assert other.status_code == 403
    assert "User alice is denied operation SUBJECT_READ on subject bob-value" in other.text
    assert setup.get("/schemas/bob-value", setup.token(sub="bob")).status_code == 200
    # The list: the registry lets alice list subjects (GLOBAL_READ); the console leaves out
    # the one whose versions it refuses her. Bob may not list them: he sees the refusal.
    listing = setup.get("/schemas", alice)
    assert listing.status_code == 200, listing.text[-1500:]
    assert 'data-subject="alice-value"' in listing.text
    assert "bob-value" not in listing.text
    refused = setup.get("/schemas", setup.token(sub="bob"))
    assert refused.status_code == 403
    assert "User bob is denied operation GLOBAL_READ" in refused.text


def test_a_refreshed_token_keeps_working(setup: Setup) -> None:
    """An SSO proxy renews tokens: each new token is a new session of the same user."""
    for _ in range(3):
        page = setup.get(
            f"/topics/{setup.mine}/messages?from=start", setup.token(jti=uuid.uuid4().hex)
        )
        assert page.status_code == 200 and "for-alice" in page.text


def test_bearer_with_a_connection_that_cannot_carry_tokens_refuses_to_start(
    setup: Setup, tmp_path: Path
) -> None:
    jwks = tmp_path / "jwks.json"
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(setup.key.public_key()))
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1"}]}))
    settings = {"authentication.method": "BEARER", **_oauth_settings(jwks)}
    for client, extra, message in [
        ({}, {}, "security.protocol must be SASL_SSL or SASL_PLAINTEXT, not PLAINTEXT"),
        ({"security.protocol": "SSL"}, {}, "not SSL"),
        (
            {"security.protocol": "SASL_SSL"},
            {"user.sasl.mechanism": "SCRAM-SHA-512"},
            "not user.sasl.mechanism=SCRAM-SHA-512",
        ),
    ]:
        config = ConsoleConfig(client_config=client)
        config.apply({**settings, **extra})
        with pytest.raises(ConsoleConfigError, match=message):
            ConsoleServer(config)
    config = ConsoleConfig()  # the console's own principal for everyone: no token to pass on
    config.apply({**settings, "kafka.principal": "console"})
    ConsoleServer(config)
    process = ConsoleProcess(
        tmp_path / "c", setup.broker.listeners["PLAINTEXT"], setup.registry.url,
        "--config", "authentication.method=BEARER",
        *(f"--config={name}={value}" for name, value in settings.items()),
    )  # fmt: skip
    with pytest.raises(Exception, match="SASL_SSL or SASL_PLAINTEXT"):
        process.start()
    process.close()
