"""``nerve acl plan --http --apply`` covers streams, aggregates and projections (issue 17 item
5), on nerve and on Kafka 4.4 with StandardAuthorizer configured alike: a SCRAM user granted
only the plan runs ``nerve run --http-port`` of a service with a repartitioned table count that
emits events, a windowed count with a late record, an aggregate with replies and snapshots,
and a SQLite projection; every output arrives, the repartition topic is purged, nothing is
refused; the same user (planned with ``--rebuild``) rebuilds the projection, and another
granted only ``--sender``'s plan sends the aggregate a command and gets its decision. With one
planned ACL deleted (writing a changelog) it is refused and counts no more."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from nerve.es.node import REPLY_TO
from nerve.service import envelope
from nerve.service.content import EventReader
from nerve.service.host import load_services
from nerve.service.topic_reader import read_to_end
from tests.broker.security.conftest import SecureBroker, add_scram_users
from tests.broker.security.test_acl_apply import _as, _held, _planned, _row, _wait_held

pytestmark = pytest.mark.slow

SERVICE = """
    import sqlite3
    from nerve import Event, Service
    from nerve.es import Aggregate, command
    from nerve.streams import tumbling

    class Sold(Event, topic="{p}.sold", key="id"):
        id: str
        shop: str

    class Tally(Event, topic="{p}.tallies", key="shop"):
        shop: str
        count: int

    class Open(Event, topic="{p}.open", key="shop"):
        shop: str

    class Opened(Event, topic="{p}.opened", key="shop"):
        shop: str

    svc = Service("{p}", exactly_once=True)
    sold = svc.stream(Sold)

    def tally(shop: str, count: int) -> Tally:
        return Tally(shop=shop, count=count)

    sold.group_by(lambda s: s.shop, name="shop").count(name="per-shop").emit(tally)
    sold.group_by_key().window(tumbling(60_000)).count(name="per-minute").to("{p}.minutes")

    @svc.aggregate(snapshot_every=1)
    class Shop(Aggregate, key="shop"):
        opened: bool = False

        @command
        def open(self, cmd: Open) -> Opened:
            return Opened(shop=cmd.shop)

        def apply(self, event: Opened) -> None:
            self.opened = True

    @svc.projection(Sold, database={database!r})
    def sales(event: Sold, db: sqlite3.Connection) -> None:
        db.execute("create table if not exists sales (id text primary key, shop text)")
        db.execute("insert into sales values (?, ?)", (event.id, event.shop))
    """


# A command sent with CommandClient as the sender user: prints the outcome and the version.
SEND = """
import asyncio, sys
from pathlib import Path
from nerve.es import CommandClient
from nerve.service.config import RunConfig
from nerve.service.host import load_services

path, bootstrap, user, password = sys.argv[1:]
[service] = load_services(Path(path))
config = RunConfig(bootstrap_servers=bootstrap, registry_url=None, client_config={
    "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": user, "sasl.password": password})
[command] = [t for t in service.streams_builder.sources
             if t.event_type is not None and t.event_type.__name__ == "Open"]
client = CommandClient(service.name, config)
outcome = asyncio.run(client.send(command.event_type(shop="south"), timeout=60))
client.close()
print(outcome.status, outcome.version)
"""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("NERVE_")}


def _run(path: Path, broker: SecureBroker, user: str, state: Path, log: Path) -> Any:
    """``nerve run`` as the SCRAM user, its log in ``log``."""
    command = [
        sys.executable, "-m", "nerve", "run", str(path),
        "-b", broker.listeners["SASL_PLAINTEXT"],
        "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=SCRAM-SHA-512",
        "-X", f"sasl.username={user}", "-X", f"sasl.password={user}-secret",
        "--no-registry", "--state-dir", str(state), "--http-port", "127.0.0.1:0",
    ]  # fmt: skip
    out = open(log, "ab")  # noqa: SIM115 - the child writes to it
    return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=_env())


def _stop(proc: Any) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _send(producer: Producer, event: Any, **extensions: str) -> None:
    meta = event.meta
    meta.source, meta.type = "/tests/acl-plan", event.event_type
    meta.extensions.update(extensions)
    data = event.__pydantic_serializer__.to_json(event)
    value, headers = envelope.write(meta, data, envelope.JSON, event.content_mode)
    producer.produce(event.topic, value=value, key=event.record_key(), headers=headers)
    producer.flush(30)


def _until(what: str, check: Callable[[], Any], log: Path, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what}; the service's log:\n{log.read_text()}"
        time.sleep(0.3)
    return found


def _refusals(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if "authoriz" in line.lower()]


def test_the_plan_runs_streams_an_aggregate_and_a_projection(
    acl_broker: SecureBroker, tmp_path: Path
) -> None:
    p = f"plan{uuid.uuid4().hex[:8]}"
    database = tmp_path / "sales.db"
    path = tmp_path / f"{p}.py"
    path.write_text(textwrap.dedent(SERVICE.format(p=p, database=str(database))))
    sender = f"{p}-sender"
    add_scram_users(acl_broker.plaintext, {p: f"{p}-secret", sender: f"{sender}-secret"})
    planned = _planned(path, "--http", "--rebuild")
    sender_planned = _planned(path, "--sender")
    for options in (["--http", "--rebuild"], ["--sender"]):
        done = subprocess.run(
            [sys.executable, "-m", "nerve", "acl", "plan", str(path), *options, "--apply",
             *_as(acl_broker, "admin", "admin-secret")],
            capture_output=True, text=True, timeout=120, env=_env(),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""  # nothing unplanned
    _wait_held(acl_broker, f"User:{p}", Counter(map(_row, planned)))
    _wait_held(acl_broker, f"User:{sender}", Counter(map(_row, sender_planned)))
    assert {r[2] for r in map(_row, sender_planned)} == {f"{p}.open", f"{p}.replies",
                                                         "/nerve/clients/"}  # fmt: skip

    [service] = load_services(path)
    sources = [s.event_type for s in service.streams_builder.sources if s.event_type]
    types = {t.__name__: t for t in [*service.emits, *sources]}
    admin = {"bootstrap.servers": acl_broker.plaintext, "log_level": 0}
    producer = Producer(admin)
    reader = EventReader(None)

    def events(name: str) -> list[Any]:
        found = []
        for message in read_to_end(admin, types[name].topic, timeout_s=5) or ():
            _, data, content_type = envelope.read(message.headers(), message.value())
            found.append(reader.read(types[name], data, content_type))
        return found

    def raw(topic: str) -> list[Any]:
        return list(read_to_end(admin, topic, timeout_s=5) or ())

    log = tmp_path / "run.log"
    proc = _run(path, acl_broker, p, tmp_path / "state", log)
    try:
        _until("started", lambda: "started" in log.read_text(), log)
        started = time.monotonic()
        sold = types["Sold"]
        for i, shop in enumerate(["north", "north", "south"]):
            _send(producer, sold(id=f"s{i}", shop=shop))
        late = sold(id="s-late", shop="north")
        late.meta.time = "2020-01-01T00:00:00+00:00"  # its window closed long ago
        _send(producer, late)
        _send(producer, types["Open"](shop="north"), **{REPLY_TO: f"{p}.replies"})

        _until("north counted 3 times", lambda: any(
            t.shop == "north" and t.count == 3 for t in events("Tally")), log)  # fmt: skip
        _until("the opened event", lambda: events("Opened"), log)
        [reply] = _until("a reply", lambda: raw(f"{p}.replies"), log)
        assert json.loads(reply.value())["status"] == "accepted"
        assert len(_until("a snapshot", lambda: raw(f"{p}.shop.snapshots"), log)) == 1
        assert len(_until("the late record", lambda: raw(f"{p}.sold.late"), log)) == 1
        _until("windowed counts", lambda: raw(f"{p}.minutes"), log)
        _until("the replica announced", lambda: any(
            p.encode() in (m.value() or b"") for m in raw("_nerve_replicas")), log)  # fmt: skip

        def projected() -> bool:
            try:
                with sqlite3.connect(database) as db:
                    return db.execute("select count(*) from sales").fetchone() == (4,)
            except sqlite3.OperationalError:  # no table yet
                return False

        _until("the projection", projected, log)
        # The sender, with only its plan, gets the aggregate's decision over Kafka.
        decided = subprocess.run(
            [sys.executable, "-c", SEND, str(path), acl_broker.listeners["SASL_PLAINTEXT"],
             sender, f"{sender}-secret"],
            capture_output=True, text=True, timeout=120, env=_env(),
        )  # fmt: skip
        assert decided.stdout.split() == ["accepted", "1"], decided.stderr
        # Consumed records of the repartition topic are purged (DeleteRecords) after a batch
        # once 30 s have passed since the start (the last purge).
        time.sleep(max(0.0, started + 31 - time.monotonic()))
        _send(producer, sold(id="s3", shop="south"))
        probe = Consumer({**admin, "group.id": f"{p}-probe"})
        where = TopicPartition(f"{p}-shop-by-repartition", 0)
        try:
            _until("the purge", lambda: probe.get_watermark_offsets(where)[0] > 0, log)
        finally:
            probe.close()
        assert not _refusals(log), _refusals(log)
    finally:
        _stop(proc)

    # The service's user, planned with --rebuild, rebuilds the projection from the start.
    rebuilt = subprocess.run(
        [sys.executable, "-m", "nerve", "projection", "rebuild", str(path), "sales",
         "-b", acl_broker.listeners["SASL_PLAINTEXT"],
         "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=SCRAM-SHA-512",
         "-X", f"sasl.username={p}", "-X", f"sasl.password={p}-secret", "-r", ""],
        capture_output=True, text=True, timeout=120, env=_env(),
    )  # fmt: skip
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "generation 2" in rebuilt.stdout + rebuilt.stderr, rebuilt.stdout + rebuilt.stderr

    # One planned ACL less: writing the table's changelog.
    changelog = f"{p}-per-shop-changelog"
    gone = ("TOPIC", "LITERAL", changelog, "WRITE", "ALLOW")
    assert gone in map(_row, planned)
    wanted = AclBindingFilter(
        ResourceType.TOPIC,
        changelog,
        ResourcePatternType.LITERAL,
        f"User:{p}",
        "*",
        AclOperation.WRITE,
        AclPermissionType.ALLOW,
    )
    client = acl_broker.admin()
    for future in client.delete_acls([wanted]).values():
        assert len(future.result(30)) == 1
    _wait_held(acl_broker, f"User:{p}", Counter(r for r in map(_row, planned) if r != gone))
    assert _held(acl_broker, f"User:{p}")[gone] == 0
    log = tmp_path / "run-without.log"
    proc = _run(path, acl_broker, p, tmp_path / "state", log)
    try:
        _until("started", lambda: "started" in log.read_text(), log)
        _send(producer, types["Sold"](id="s9", shop="north"))
        _until("refused", lambda: any("TOPIC_AUTHORIZATION_FAILED" in r for r in _refusals(log)),
               log)  # fmt: skip
        time.sleep(2)
        assert max(t.count for t in events("Tally") if t.shop == "north") == 3
    finally:
        _stop(proc)
