"""Services on a secure broker (``Platform(secure=True)``: SASL_SSL, StandardAuthorizer): run as
the admin they work as on an open broker; run as a SCRAM user (``add_user``, ``config_for``) they
work with the ACLs for their topics and group, and without them are refused with a clear error,
in code and from ``nerve run``."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from nerve import Event, Service
from nerve.security.client_settings import read_properties, write_properties
from nerve.service.catalog import CATALOG_TOPIC
from nerve.service.runtime import ServiceError
from nerve.testing import Platform

pytestmark = pytest.mark.slow


class Asked(Event, topic="secure.asked", key="id"):
    id: str
    n: int


class Answered(Event, topic="secure.answered", key="id"):
    id: str
    doubled: int


class RunAsked(Event, topic="secure.run.asked", key="id"):
    id: str
    n: int


class RunAnswered(Event, topic="secure.run.answered", key="id"):
    id: str
    doubled: int


def doubling(name: str) -> Service:
    service = Service(name)

    @service.on(Asked)
    def double(event: Asked) -> Answered:
        return Answered(id=event.id, doubled=event.n * 2)

    return service


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    with Platform(secure=True) as secure:
        yield secure


def grant(platform: Platform, user: str, *rules: tuple[ResourceType, str, AclOperation]) -> None:
    admin = AdminClient(platform.kafka())
    allow, literal = AclPermissionType.ALLOW, ResourcePatternType.LITERAL
    bindings = [
        AclBinding(kind, name, literal, f"User:{user}", "*", op, allow) for kind, name, op in rules
    ]
    for future in admin.create_acls(bindings).values():
        future.result(30)


def service_rules(name: str) -> list[tuple[ResourceType, str, AclOperation]]:
    """What the doubling service needs: read its input, write its output, create both, its
    group, and announce itself in the catalog."""
    T, G = ResourceType.TOPIC, ResourceType.GROUP
    return [
        (T, Asked.topic, AclOperation.READ),
        (T, Asked.topic, AclOperation.CREATE),
        (T, Answered.topic, AclOperation.WRITE),
        (T, Answered.topic, AclOperation.CREATE),
        (T, CATALOG_TOPIC, AclOperation.WRITE),
        (T, CATALOG_TOPIC, AclOperation.CREATE),
        (G, name, AclOperation.READ),
    ]


def test_the_platform_is_secure_and_its_admin_runs_services(platform: Platform) -> None:
    assert platform.client_config["security.protocol"] == "SASL_SSL"
    with pytest.raises(KafkaException):  # a client without the settings gets nothing
        AdminClient({"bootstrap.servers": platform.bootstrap, "log_level": 0}).list_topics(
            timeout=5
        )
    settings = read_properties(platform.data_dir / "security" / "admin.properties")
    assert settings["bootstrap.servers"] == platform.bootstrap
    platform.run(doubling("secure-admin-doubler"))
    platform.emit(Asked(id="a1", n=21))
    [answer] = platform.expect(Answered, where=lambda e: e.id == "a1")
    assert answer.doubled == 42
    platform.stop_services()


def test_a_user_with_the_acls_of_its_service_runs_it(platform: Platform) -> None:
    user = platform.add_user("doubler")
    grant(platform, "doubler", *service_rules("secure-user-doubler"))
    [runner] = platform.run(doubling("secure-user-doubler"), config=platform.config_for(user))
    assert runner.consumer is not None
    platform.emit(Asked(id="u1", n=5))
    [answer] = platform.expect(Answered, where=lambda e: e.id == "u1")
    assert answer.doubled == 10
    # What it wrote went as the user: the committed offsets are its group's.
    admin = AdminClient(platform.kafka())
    described = admin.describe_consumer_groups(["secure-user-doubler"])["secure-user-doubler"]
    assert described.result(30).members
    platform.stop_services()


def test_a_user_without_acls_is_refused_with_a_clear_error(platform: Platform) -> None:
    user = platform.add_user("nobody")
    with pytest.raises(ServiceError, match=r"cannot create topic secure\.\w+: .*[Aa]uthoriz"):
        platform.run(doubling("secure-nobody"), config=platform.config_for(user))
    platform.stop_services()


def test_a_wrong_password_says_so_instead_of_cannot_reach(platform: Platform) -> None:
    user = platform.add_user("forgetful")
    wrong = platform.config_for({**user, "sasl.password": "not-it"})
    with pytest.raises(ServiceError, match=r"cannot reach Kafka at .*: .*Authentication failed"):
        platform.run(doubling("secure-forgetful"), config=wrong)
    platform.stop_services()


def test_a_user_without_its_group_acl_is_refused_and_it_is_logged(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    user = platform.add_user("groupless")
    rules = [r for r in service_rules("secure-groupless") if r[0] != ResourceType.GROUP]
    grant(platform, "groupless", *rules)
    with caplog.at_level(logging.WARNING):
        platform.run(doubling("secure-groupless"), config=platform.config_for(user))
        platform.emit(Asked(id="g1", n=1))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any("authoriz" in r.getMessage().lower() for r in caplog.records):
                break
            time.sleep(0.1)
    refusals = [r.getMessage() for r in caplog.records if "authoriz" in r.getMessage().lower()]
    assert refusals, [r.getMessage() for r in caplog.records]
    assert "secure-groupless" in refusals[0]
    assert not [e for e in platform.expect(Answered, count=0) if e.id == "g1"]
    platform.stop_services()


SERVICE = textwrap.dedent(
    """
    from nerve import Event, Service

    class Asked(Event, topic="secure.run.asked", key="id"):
        id: str
        n: int

    class Answered(Event, topic="secure.run.answered", key="id"):
        id: str
        doubled: int

    svc = Service("secure-run-doubler")

    @svc.on(Asked)
    def double(event: Asked) -> Answered:
        return Answered(id=event.id, doubled=event.n * 2)
    """
)


def nerve_run(path: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("NERVE_")}
    return subprocess.Popen(
        [sys.executable, "-m", "nerve", "run", str(path), "--no-registry", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**base, **env},
    )


def test_nerve_run_as_a_user_from_a_properties_file(platform: Platform, tmp_path: Path) -> None:
    service = tmp_path / "svc.py"
    service.write_text(SERVICE)
    user = platform.add_user("run-doubler")
    properties = tmp_path / "run-doubler.properties"
    write_properties(properties, user)

    refused = nerve_run(service, "-F", str(properties), env={})
    _, err = refused.communicate(timeout=90)
    assert refused.returncode == 1
    assert "cannot create topic secure.run." in err, err
    assert "Traceback" not in err

    T, G = ResourceType.TOPIC, ResourceType.GROUP
    grant(platform, "run-doubler",
          (T, "secure.run.asked", AclOperation.READ), (T, "secure.run.asked", AclOperation.CREATE),
          (T, "secure.run.answered", AclOperation.WRITE),
          (T, "secure.run.answered", AclOperation.CREATE),
          (G, "secure-run-doubler", AclOperation.READ))  # fmt: skip
    running = nerve_run(service, env={"NERVE_CLIENT_PROPERTIES": str(properties)})
    try:
        deadline = time.monotonic() + 60
        found: list[RunAnswered] = []
        while time.monotonic() < deadline and not found:
            assert running.poll() is None, running.communicate()[1]
            platform.emit(RunAsked(id="r1", n=4))
            time.sleep(1)
            found = platform.expect(RunAnswered, where=lambda e: e.id == "r1", count=0)
        assert found, "nerve run as the user answered nothing"
        assert found[0].doubled == 8
    finally:
        running.terminate()
        _, err = running.communicate(timeout=60)
    # The catalog topic was not granted: announcing is refused, said once, and the service ran.
    assert "could not announce" in err, err
