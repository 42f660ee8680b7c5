"""``nerve acl plan``: the ACLs it prints are enough to run the service as a principal that has
nothing else, on a broker with authorization on (Platform(secure=True)), dead letters,
exactly-once transactions, the idempotent handlers' table and the catalog included."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from nerve.service.host import load_services
from nerve.streams import running
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


STREAMS = textwrap.dedent(
    """
    import sqlite3
    from nerve import Event, Service
    from nerve.streams import tumbling

    class Sold(Event, topic="plan.sold", key="id"):
        id: str
        shop: str

    class Tally(Event, topic="plan.tallies", key="shop"):
        shop: str
        count: int

    svc = Service("plan-shop", exactly_once=True)
    sold = svc.stream(Sold)

    def tally(shop: str, count: int) -> Tally:
        return Tally(shop=shop, count=count)

    # A repartition topic and a store's changelog; a window with its .late topic.
    sold.group_by(lambda s: s.shop, name="shop").count(name="per-shop").emit(tally)
    sold.group_by_key().window(tumbling(60_000)).count(name="per-minute").to("plan.minutes")

    @svc.projection(Sold, database=DATABASE)
    def sales(event: Sold, db: sqlite3.Connection) -> None:
        db.execute("create table if not exists sales (id text primary key, shop text)")
        db.execute("insert into sales values (?, ?)", (event.id, event.shop))
    """
)


@pytest.fixture
def streams_file(tmp_path: Path) -> Path:
    path = tmp_path / "shop.py"
    path.write_text(f"DATABASE = {str(tmp_path / 'sales.db')!r}\n{STREAMS}")
    return path


def test_streams_and_projections_are_planned(streams_file: Path) -> None:
    done = acl_plan(str(streams_file), "--json")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # nothing left unplanned
    got = {
        (e["resource_type"], e["pattern_type"], e["name"], e["operation"])
        for e in json.loads(done.stdout)
    }
    rw = ("READ", "WRITE", "CREATE")
    changelogs = ["0-times", "per-minute", "1-times", "per-shop"]
    assert got == {
        *(("TOPIC", "LITERAL", "plan.sold", op) for op in ("READ", "CREATE")),
        *(("TOPIC", "LITERAL", "plan.sold.dlq", op) for op in ("WRITE", "CREATE")),
        *(("TOPIC", "LITERAL", "plan-shop-shop-by-repartition", op) for op in (*rw, "DELETE")),
        *(("TOPIC", "LITERAL", f"plan-shop-{c}-changelog", op) for c in changelogs for op in rw),
        *(("TOPIC", "LITERAL", t, op) for t in ("plan.sold.late", "plan.minutes", "plan.tallies")
          for op in ("WRITE", "CREATE")),
        ("GROUP", "LITERAL", "plan-shop", "READ"),
        ("GROUP", "LITERAL", "plan-shop-restore", "DESCRIBE"),
        ("GROUP", "LITERAL", "plan-shop.sales", "READ"),
        ("TRANSACTIONAL_ID", "PREFIXED", "plan-shop-", "WRITE"),
        ("TOPIC", "LITERAL", "_nerve_catalog", "WRITE"),
        ("TOPIC", "LITERAL", "_nerve_catalog", "CREATE"),
    }  # fmt: skip
    served = acl_plan(str(streams_file), "--json", "--http")
    extra = {
        (e["resource_type"], e["pattern_type"], e["name"], e["operation"])
        for e in json.loads(served.stdout)
    } - got
    assert extra == {
        *(("TOPIC", "LITERAL", "_nerve_replicas", op) for op in rw),
        ("GROUP", "PREFIXED", "nerve-table-", "DESCRIBE"),
    }
    rebuilding = acl_plan(str(streams_file), "--json", "--rebuild")
    extra = {
        (e["resource_type"], e["pattern_type"], e["name"], e["operation"])
        for e in json.loads(rebuilding.stdout)
    } - got
    assert extra == {("GROUP", "LITERAL", "plan-shop.sales.rebuild", "DESCRIBE")}
    # Nothing to send commands to: said, and no plan.
    nothing = acl_plan(str(streams_file), "--json", "--sender")
    assert nothing.returncode == 0
    assert json.loads(nothing.stdout) == []
    assert nothing.stderr.strip() == "nerve acl: plan-shop has no aggregates to send commands to"


def test_a_sender_of_commands_is_planned(tmp_path: Path) -> None:
    path = tmp_path / "orders.py"
    path.write_text(textwrap.dedent(
        """
        from nerve import Event, Service
        from nerve.es import Aggregate, command

        class Place(Event, topic="plan.place", key="order_id"):
            order_id: str

        class Cancel(Event, topic="plan.cancel", key="order_id"):
            order_id: str

        class Placed(Event, topic="plan.placed", key="order_id"):
            order_id: str

        svc = Service("plan-orders", exactly_once=True)

        @svc.aggregate
        class Order(Aggregate, key="order_id"):
            @command
            def place(self, cmd: Place) -> Placed:
                return Placed(order_id=cmd.order_id)

            @command
            def cancel(self, cmd: Cancel) -> None:
                return None
        """
    ))  # fmt: skip
    done = acl_plan(str(path), "--sender")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "# plan-orders as User:plan-orders-sender",
        *(f"(principal=User:plan-orders-sender, host=*, operation={op}, permissionType=ALLOW) "
          f"on TOPIC:LITERAL:{topic}  # sends commands to Order"
          for topic in ("plan.place", "plan.cancel") for op in ("WRITE", "CREATE")),
        *("(principal=User:plan-orders-sender, host=*, operation=" + op + ", permissionType="
          "ALLOW) on TOPIC:LITERAL:plan-orders.replies  # reads the decisions"
          for op in ("READ", "CREATE")),
        "(principal=User:plan-orders-sender, host=*, operation=DESCRIBE, permissionType=ALLOW) "
        "on GROUP:PREFIXED:/nerve/clients/  # its reply reader",
    ]  # fmt: skip


def test_what_cannot_be_planned_is_said_not_left_out_silently(tmp_path: Path) -> None:
    path = tmp_path / "copier.py"
    path.write_text(
        "from nerve import Service\n"
        "svc = Service('plan-copier')\n"
        "svc.stream('plan.words', value='text').emit(lambda text: None)\n"
    )
    done = acl_plan(str(path))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == (
        "nerve acl: plan-copier: not planned: events its streams emit() without a declared "
        "return type; add their ACLs by hand"
    )
    assert done.stdout.splitlines()[0] == "# plan-copier as User:plan-copier"


def _grant(platform: Platform, entries: list[dict[str, str]]) -> None:
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
        for e in entries
    ]
    admin = AdminClient(platform.kafka())
    for future in admin.create_acls(bindings).values():
        future.result(30)


def _refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if "authoriz" in r.getMessage().lower() or "could not announce" in r.getMessage()
    ]


@pytest.mark.slow
def test_the_planned_acls_run_streams_and_a_projection(
    streams_file: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stateful stream (a repartition, a table's changelog, a window with late records),
    an emitted event and a projection, as a principal with only the plan; then without one
    ACL of the plan."""
    monkeypatch.setattr(running, "PURGE_INTERVAL_S", 0.2)  # purge while the test runs
    done = acl_plan(str(streams_file), "--json", "--principal", "User:planned")
    assert done.returncode == 0, done.stderr
    entries = json.loads(done.stdout)
    [service] = load_services(streams_file)
    sold_type = next(iter(service.streams_builder.sources)).event_type
    tally_type = next(t for t in service.emits if t.__name__ == "Tally")
    [projection] = service.projections
    with Platform(secure=True) as platform:
        user = platform.add_user("planned")
        _grant(platform, entries)
        with caplog.at_level(logging.INFO):
            platform.run(service, config=platform.config_for(user))
            platform.emit(sold_type(id="s1", shop="north"))
            platform.emit(sold_type(id="s2", shop="north"))
            platform.emit(sold_type(id="s3", shop="south"))
            late = sold_type(id="s0", shop="north")
            late.meta.time = "2020-01-01T00:00:00+00:00"  # its window closed long ago
            platform.emit(late)
            [north] = platform.expect(
                tally_type, where=lambda t: t.shop == "north" and t.count == 3, timeout=60
            )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not platform.read("plan.sold.late"):
                time.sleep(0.2)
            assert len(platform.read("plan.sold.late")) == 1
            assert platform.read("plan.minutes")
            projection.settled(platform.kafka(), timeout=60)
            with sqlite3.connect(tmp_path / "sales.db") as db:
                assert db.execute("select count(*) from sales").fetchone() == (4,)
            # What was consumed of the repartition topic is purged (DeleteRecords).
            probe = Consumer(platform.kafka(**{"group.id": "plan-probe"}))
            where = TopicPartition("plan-shop-shop-by-repartition", 0)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and probe.get_watermark_offsets(where)[0] == 0:
                time.sleep(0.2)
            assert probe.get_watermark_offsets(where)[0] > 0
            probe.close()
            platform.stop_services()
        assert north.count == 3
        assert not _refusals(caplog), _refusals(caplog)
        assert "purging" not in caplog.text

        # Without one planned ACL (writing the table's changelog) it stops counting, and
        # says why.
        caplog.clear()
        admin = AdminClient(platform.kafka())
        wanted = AclBindingFilter(
            ResourceType.TOPIC,
            "plan-shop-per-shop-changelog",
            ResourcePatternType.LITERAL,
            "User:planned",
            "*",
            AclOperation.WRITE,
            AclPermissionType.ALLOW,
        )
        for future in admin.delete_acls([wanted]).values():
            assert len(future.result(30)) == 1
        with caplog.at_level(logging.INFO):
            platform.run(service, config=platform.config_for(user))
            platform.emit(sold_type(id="s4", shop="north"))
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not _refusals(caplog):
                time.sleep(0.2)
            assert any("TOPIC_AUTHORIZATION_FAILED" in line for line in _refusals(caplog))
            time.sleep(2)
            counts = [t.count for t in platform.expect(tally_type) if t.shop == "north"]
            assert max(counts) == 3  # s4 is not counted
            platform.stop_services()
