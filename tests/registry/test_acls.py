"""Per-subject rights on ``nerve registry`` (issue 17, item 4): Confluent's Schema Registry ACL
model (operations such as SUBJECT_READ and SUBJECT_WRITE on subject patterns, GLOBAL_* on the
registry; DENY beats ALLOW), the ACLs written to a Kafka topic by ``nerve schemas acl`` and
followed by the running registry. A real registry process with HTTP Basic users on the shared
broker, called by confluent-kafka's SchemaRegistryClient as different users."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from nerve.registry.config import RegistryConfig, RegistryConfigError
from nerve.registry.server import RegistryServer
from tests._broker import BrokerProcess
from tests._registry import RegistryProcess
from tests.compat.test_groups import wait_for
from tests.registry.test_auth import RegistryWith, registry_with  # noqa: F401 - fixture

AVRO = '{"type":"record","name":"%s","fields":[{"name":"id","type":"string"}]}'


def acl(bootstrap: str, topic: str, *argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "nerve", "schemas", "acl", *argv, "-b", bootstrap, "--topic", topic],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def refused(call: Callable[[], object]) -> SchemaRegistryError:
    with pytest.raises(SchemaRegistryError) as caught:
        call()
    return caught.value


def test_each_user_may_do_what_its_acls_grant_and_changes_apply_without_restart(
    registry_with: RegistryWith,  # noqa: F811
    shared_broker: BrokerProcess,
    tmp_path: Path,
) -> None:
    users = tmp_path / "users"
    users.write_text("admin: admin-secret,admin\ndev: dev-secret,developer\n")
    topic = f"_schemas_acl-{uuid.uuid4().hex[:8]}"
    bootstrap = shared_broker.bootstrap
    acl(bootstrap, topic, "add", "-p", "admin", "-o", "*", "-s", "*")
    acl(bootstrap, topic, "add", "-p", "dev", "-o", "SUBJECT_READ", "-o", "SUBJECT_WRITE",
        "-s", "orders-*")  # fmt: skip
    acl(bootstrap, topic, "add", "-p", "dev", "-o", "SUBJECT_WRITE", "-s", "orders-secret-value",
        "--deny")  # fmt: skip
    registry: RegistryProcess = registry_with(
        {
            "authentication.method": "BASIC",
            "authentication.users.file": str(users),
            "confluent.schema.registry.authorizer.class": (
                "io.confluent.kafka.schemaregistry.security.authorizer.schemaregistryacl."
                "SchemaRegistryAclAuthorizer"
            ),
            "confluent.schema.registry.acl.topic": topic,
        }
    )
    admin = SchemaRegistryClient(
        {"url": registry.url, "basic.auth.user.info": "admin:admin-secret"}
    )
    dev = SchemaRegistryClient({"url": registry.url, "basic.auth.user.info": "dev:dev-secret"})

    orders_id = dev.register_schema("orders-value", Schema(AVRO % "Order", "AVRO"))
    assert dev.get_latest_version("orders-value").schema_id == orders_id
    assert dev.get_schema(orders_id).schema_str == AVRO % "Order"
    payments_id = admin.register_schema("payments-value", Schema(AVRO % "Payment", "AVRO"))

    for call, operation in [
        (lambda: dev.register_schema("payments-value", Schema(AVRO, "AVRO")), "SUBJECT_WRITE"),
        (lambda: dev.get_latest_version("payments-value"), "SUBJECT_READ"),
        (lambda: dev.get_subjects(), "GLOBAL_READ"),
        (lambda: dev.set_compatibility("orders-value", "NONE"), "SUBJECT_COMPATIBILITY_WRITE"),
        (lambda: dev.set_compatibility(level="NONE"), "GLOBAL_COMPATIBILITY_WRITE"),
        (lambda: dev.delete_subject("orders-value"), "SUBJECT_DELETE"),
        # DENY beats the ALLOW of orders-*.
        (lambda: dev.register_schema("orders-secret-value", Schema(AVRO, "AVRO")), "SUBJECT_WRITE"),
    ]:  # fmt: skip
        error = refused(call)
        assert (error.http_status_code, error.error_code) == (403, 40301), error
        assert operation in error.error_message and "dev" in error.error_message
    # A schema by id: only through a subject the user may read.
    error = refused(lambda: dev.get_schema(payments_id))
    assert "SCHEMA_READ" in error.error_message
    # The admin's * covers every operation, global ones too.
    assert set(admin.get_subjects()) == {"orders-value", "payments-value"}
    assert admin.get_schema(orders_id).schema_str == AVRO % "Order"

    # Granted and revoked while the registry runs.
    assert "added: ALLOW dev GLOBAL_READ" in acl(
        bootstrap, topic, "add", "-p", "dev", "-o", "GLOBAL_READ"
    )

    def lists() -> bool:
        try:
            return set(dev.get_subjects()) == {"orders-value", "payments-value"}
        except SchemaRegistryError:
            return False

    wait_for(lists, 20, "dev's new GLOBAL_READ to apply")
    acl(bootstrap, topic, "remove", "-p", "dev", "-o", "SUBJECT_READ", "-o", "SUBJECT_WRITE",
        "-s", "orders-*")  # fmt: skip

    def revoked() -> bool:  # over raw HTTP: the client caches what it read
        answer = httpx.get(
            f"{registry.url}/subjects/orders-value/versions/latest", auth=("dev", "dev-secret")
        )
        return answer.status_code == 403 and answer.json()["error_code"] == 40301

    wait_for(revoked, 20, "dev's rights on orders-* to go")
    listing = acl(bootstrap, topic, "list")
    assert "dev" in listing and "GLOBAL_READ" in listing and "orders-secret-value" in listing
    assert "orders-*" not in listing


def test_an_authorizer_nerve_does_not_have_is_refused_at_start() -> None:
    config = RegistryConfig()
    config.apply({"confluent.schema.registry.authorizer.class": "io.confluent.RbacAuthorizer"})
    with pytest.raises(RegistryConfigError, match="ACL authorizer only"):
        RegistryServer("127.0.0.1:1", config=config)
