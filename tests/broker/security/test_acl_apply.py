"""``nerve acl plan --apply`` (issue 17 item 5) on nerve and on Kafka 4.4 with StandardAuthorizer,
configured alike: it creates exactly the planned ACLs the cluster lacks through CreateAcls and
says which, leaves the principal's other ACLs alone (and says so), a second run creates none
and says so, two services planned as one principal share their entries, and a principal not
allowed to alter ACLs is refused in one line with nothing created."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from pathlib import Path

from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from tests.broker.security.conftest import SecureBroker

# (resource type, pattern type, name, operation, permission)
Held = Counter[tuple[str, str, str, str, str]]


def _service_file(tmp_path: Path, *, second: bool = False) -> tuple[Path, str]:
    tag = uuid.uuid4().hex[:8]
    name = f"apply-{tag}"
    text = f"""
        from nerve import Event, Service

        class Asked(Event, topic="apply.{tag}.asked", key="id"):
            id: str

        class Told(Event, topic="apply.{tag}.told", key="id"):
            id: str

        svc = Service("{name}", exactly_once=True)

        @svc.on(Asked)
        def tell(event: Asked) -> Told:
            return Told(id=event.id)
        """
    if second:
        text += f"""
        other = Service("{name}-other")

        @other.on(Told)
        def hear(event: Told) -> None:
            pass
        """
    path = tmp_path / f"svc_{tag}.py"
    path.write_text(textwrap.dedent(text))
    return path, name


def _nerve(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NERVE_")}
    return subprocess.run(
        [sys.executable, "-m", "nerve", "acl", "plan", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _as(broker: SecureBroker, user: str, password: str) -> list[str]:
    return [
        "-b", broker.listeners["SASL_PLAINTEXT"],
        "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=PLAIN",
        "-X", f"sasl.username={user}", "-X", f"sasl.password={password}",
    ]  # fmt: skip


def _held(broker: SecureBroker, principal: str) -> Held:
    """Counted, so that a duplicate entry would show."""
    wanted = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        principal,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    admin = broker.admin()  # kept until the answer is in: a dropped client cancels it
    found: list[AclBinding] = admin.describe_acls(wanted).result(30)
    return Counter(
        (
            b.restype.name,
            b.resource_pattern_type.name,
            b.name,
            b.operation.name,
            b.permission_type.name,
        )
        for b in found
        if b.host == "*"
    )


def _wait_held(broker: SecureBroker, principal: str, wanted: Held) -> None:
    # Kafka's authorizer applies CreateAcls through its metadata log a moment later.
    deadline = time.monotonic() + 30
    while (held := _held(broker, principal)) != wanted:
        assert time.monotonic() < deadline, (held, wanted)
        time.sleep(0.1)


def _planned(path: Path, *args: str) -> list[dict[str, str]]:
    done = _nerve(str(path), "--json", *args)
    assert done.returncode == 0, done.stderr
    entries: list[dict[str, str]] = json.loads(done.stdout)
    return entries


def _row(entry: dict[str, str]) -> tuple[str, str, str, str, str]:
    return (
        entry["resource_type"],
        entry["pattern_type"],
        entry["name"],
        entry["operation"],
        entry["permission"],
    )


def _line(principal: str, row: tuple[str, str, str, str, str]) -> str:
    resource, pattern, name, operation, permission = row
    return (
        f"(principal={principal}, host=*, operation={operation}, "
        f"permissionType={permission}) on {resource}:{pattern}:{name}"
    )


def _create(broker: SecureBroker, principal: str, *rows: tuple[str, str, str, str, str]) -> None:
    admin = broker.admin()
    bindings = [
        AclBinding(
            ResourceType[resource],
            name,
            ResourcePatternType[pattern],
            principal,
            "*",
            AclOperation[operation],
            AclPermissionType[permission],
        )
        for resource, pattern, name, operation, permission in rows
    ]
    for future in admin.create_acls(bindings).values():
        future.result(30)


def test_apply_creates_what_is_missing_once(acl_broker: SecureBroker, tmp_path: Path) -> None:
    path, name = _service_file(tmp_path)
    principal = f"User:{name}"
    planned = [_row(e) for e in _planned(path)]
    assert len(planned) == len(set(planned)) >= 8
    # One planned entry is there already; one the plan does not name is too.
    there = ("GROUP", "LITERAL", name, "READ", "ALLOW")
    extra = ("TOPIC", "LITERAL", f"{name}.elsewhere", "READ", "ALLOW")
    assert there in planned
    _create(acl_broker, principal, there, extra)
    _wait_held(acl_broker, principal, Counter([there, extra]))

    first = _nerve(str(path), "--apply", *_as(acl_broker, "admin", "admin-secret"))
    assert first.returncode == 0, first.stderr
    out = first.stdout.splitlines()
    assert out[0] == f"# {name} as {principal}"  # the plan is printed first
    created = {line.removeprefix("created ") for line in out if line.startswith("created (")}
    assert created == {_line(principal, r) for r in planned if r != there}
    assert f"not in the plan, left alone: {_line(principal, extra)}" in out
    assert out[-1] == f"created {len(planned) - 1} ACLs, 1 already there"
    _wait_held(acl_broker, principal, Counter([*planned, extra]))

    again = _nerve(str(path), "--apply", "--json", *_as(acl_broker, "admin", "admin-secret"))
    assert again.returncode == 0, again.stderr
    assert {e["applied"] for e in json.loads(again.stdout)} == {"present"}
    assert "created" not in again.stderr
    assert again.stderr.splitlines()[-1] == (
        f"nothing to create: the {len(planned)} planned ACLs are there"
    )
    time.sleep(1)  # room for a stray CreateAcls to show on Kafka
    assert _held(acl_broker, principal) == Counter([*planned, extra])


def test_two_services_as_one_principal_share_entries(
    acl_broker: SecureBroker, tmp_path: Path
) -> None:
    path, name = _service_file(tmp_path, second=True)
    principal = f"User:{name}-ops"
    entries = _planned(path, "--principal", principal)
    assert len({e["service"] for e in entries}) == 2
    unique = Counter(dict.fromkeys(map(_row, entries), 1))
    assert len(unique) < len(entries)  # the catalog's, at least, is planned twice
    done = _nerve(
        str(path), "--apply", "--principal", principal, "-b", acl_broker.plaintext, "--json"
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1] == f"created {len(unique)} ACLs, 0 already there"
    _wait_held(acl_broker, principal, unique)


def test_apply_as_a_principal_not_allowed_is_refused(
    acl_broker: SecureBroker, tmp_path: Path
) -> None:
    path, name = _service_file(tmp_path)
    done = _nerve(str(path), "--apply", *_as(acl_broker, "alice", "alice-secret"))
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("nerve acl: cannot ") and "authoriz" in line.lower(), line
    assert "Traceback" not in done.stderr
    assert "created" not in done.stdout
    assert _held(acl_broker, f"User:{name}") == Counter()
