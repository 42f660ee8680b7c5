"""``nerve acl plan``: the ACLs it prints are enough to run the service as a principal that has
nothing else, on a broker with authorization on (Platform(secure=True)), dead letters,
exactly-once transactions, the idempotent handlers' table and the catalog included."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from nerve.service.host import load_services
from nerve.testing import Platform

SERVICE = textwrap.dedent(
    """
    from nerve import Event, Service

    class Ordered(Event, topic="plan.orders", key="id"):
        id: str
        qty: int

    class Packed(Event, topic="plan.packed", key="id"):
        id: str
        boxes: int

    svc = Service("plan-packer", exactly_once=True)

    @svc.on(Ordered, idempotent=True)
    def pack(event: Ordered) -> Packed:
        if event.qty < 0:
            raise ValueError("a negative quantity")
        return Packed(id=event.id, boxes=event.qty)
    """
)


def acl_plan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nerve", "acl", "plan", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def service_file(tmp_path: Path) -> Path:
    path = tmp_path / "packer.py"
    path.write_text(SERVICE)
    return path


def test_the_plan_names_what_the_service_touches(service_file: Path) -> None:
    done = acl_plan(str(service_file), "--json")
    assert done.returncode == 0, done.stderr
    got = {
        (e["resource_type"], e["pattern_type"], e["name"], e["operation"])
        for e in json.loads(done.stdout)
    }
    assert got == {
        ("TOPIC", "LITERAL", "plan.orders", "READ"),
        ("TOPIC", "LITERAL", "plan.orders", "CREATE"),
        ("TOPIC", "LITERAL", "plan.orders.dlq", "WRITE"),
        ("TOPIC", "LITERAL", "plan.orders.dlq", "CREATE"),
        ("TOPIC", "LITERAL", "plan.packed", "WRITE"),
        ("TOPIC", "LITERAL", "plan.packed", "CREATE"),
        ("GROUP", "LITERAL", "plan-packer", "READ"),
        ("TOPIC", "LITERAL", "plan-packer.handled", "READ"),
        ("TOPIC", "LITERAL", "plan-packer.handled", "WRITE"),
        ("TOPIC", "LITERAL", "plan-packer.handled", "CREATE"),
        ("GROUP", "PREFIXED", "nerve-table-", "DESCRIBE"),
        ("TRANSACTIONAL_ID", "PREFIXED", "plan-packer-", "WRITE"),
        ("TOPIC", "LITERAL", "_nerve_catalog", "WRITE"),
        ("TOPIC", "LITERAL", "_nerve_catalog", "CREATE"),
    }
    assert {e["principal"] for e in json.loads(done.stdout)} == {"User:plan-packer"}
    text = acl_plan(str(service_file), "--principal", "User:ops").stdout.splitlines()
    assert text[0] == "# plan-packer as User:ops"
    assert (
        "(principal=User:ops, host=*, operation=WRITE, permissionType=ALLOW) on "
        "TRANSACTIONAL_ID:PREFIXED:plan-packer-  # exactly once"
    ) in text


def test_bad_arguments_are_one_line(service_file: Path, tmp_path: Path) -> None:
    missing = acl_plan(str(tmp_path / "nothing.py"))
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"nerve acl: no such file {tmp_path / 'nothing.py'}"
    unknown = acl_plan(str(service_file), "--service", "other")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "nerve acl: no service other in the files"


@pytest.mark.slow
def test_the_planned_acls_are_enough_to_run_it(
    service_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    done = acl_plan(str(service_file), "--json", "--principal", "User:planned")
    assert done.returncode == 0, done.stderr
    [service] = load_services(service_file)
    with Platform(secure=True) as platform:
        user = platform.add_user("planned")
        admin = AdminClient(platform.kafka())
        bindings = [
            AclBinding(
                ResourceType[e["resource_type"]],
                e["name"],
                ResourcePatternType[e["pattern_type"]],
                e["principal"],
                e["host"],
                AclOperation[e["operation"]],
                AclPermissionType.ALLOW,
            )
            for e in json.loads(done.stdout)
        ]
        for future in admin.create_acls(bindings).values():
            future.result(30)
        with caplog.at_level(logging.INFO):
            platform.run(service, config=platform.config_for(user))
            events = {t.__name__: t for t in {h.event_type for h in service.handlers}}
            emitted = {t.__name__: t for t in service.emits}
            ordered_type, packed_type = events["Ordered"], emitted["Packed"]
            platform.emit(ordered_type(id="o1", qty=3))
            platform.emit(ordered_type(id="o2", qty=-1))  # dead-lettered
            [packed] = platform.expect(packed_type, where=lambda e: e.id == "o1", timeout=30)
            assert packed.boxes == 3
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not platform.read("plan.orders.dlq"):
                time.sleep(0.2)
            assert len(platform.read("plan.orders.dlq")) == 1
            platform.stop_services()
        refused = [
            r.getMessage()
            for r in caplog.records
            if "authoriz" in r.getMessage().lower() or "could not announce" in r.getMessage()
        ]
        assert not refused, refused
        catalog = platform.read("_nerve_catalog")
        assert [key for key, _, _ in catalog] == [b"plan-packer"]


def test_streams_are_said_to_be_unplanned_not_left_out_silently(tmp_path: Path) -> None:
    path = tmp_path / "counter.py"
    path.write_text(
        "from nerve import Service\n"
        "svc = Service('plan-counter')\n"
        "svc.stream('plan.words', value='text').to('plan.copied')\n"
    )
    done = acl_plan(str(path))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == (
        "nerve acl: plan-counter: the ACLs of its streams are not planned yet; add them by hand"
    )
    assert done.stdout.splitlines()[0] == "# plan-counter as User:plan-counter"
