"""Event sourcing: commands/s with optimistic concurrency on one replica, and loading a
1,000-event aggregate, nerve against the eventsourcing library on SQLite and on PostgreSQL,
same machine, same run.

nerve: one replica (``nerve run``) of a service with an aggregate; the commands, each with
``expected_version`` (what the aggregate's version will be when it is handled), are written
to the command topic first, then the replica starts; commands/s is counted from the first
reply committed to the last (every command decided, its event, state, reply and offset in a
transaction). Loading is ``nerve.es.Histories.load`` of an aggregate with 1,000 events (read
back from Kafka and folded; the consumer kept between loads).

CPU per command: the replica's CPU time (every thread) from the first reply to the last, and
the broker's over the same span (nerve's broker is a Python process too); eventsourcing's is
its process's (its database server's own CPU is not counted). Load CPU:
the loading process's CPU time, median.

eventsourcing: an ``Application`` doing the same commands one after another (get the
aggregate, check the expected version, trigger the event, save; its aggregate cache on, its
fastest mode), and ``repository.get`` of a 1,000-event aggregate with no cache or snapshot.

    .venv/bin/python bench/es.py [--aggregates 1000 --per 20] [--markdown out.md]

``BENCH_PROFILE=prefix`` runs the replica under cProfile (``prefix.prof``).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from tests._postgres import PostgresProcess  # noqa: E402

from _broker import SpawnedBroker, nerve_command  # noqa: E402

SERVICE = textwrap.dedent(
    """
    from nerve import Event, Service
    from nerve.es import Aggregate, Rejected, command

    class Deposit(Event, topic="{prefix}.deposits", key="account", partitions=4):
        account: str
        amount: int

    class Deposited(Event, topic="{prefix}.deposited", key="account", partitions=4):
        account: str
        amount: int

    class Post(Event, topic="{prefix}.posts", key="ledger", partitions=1):
        ledger: str
        amount: int

    class Posted(Event, topic="{prefix}.posted", key="ledger", partitions=1):
        ledger: str
        amount: int

    bank = Service("{prefix}-bank", exactly_once=True, max_in_flight={batch})

    @bank.aggregate
    class Account(Aggregate, key="account"):
        balance: int = 0

        @command
        def deposit(self, cmd: Deposit) -> Deposited:
            if cmd.amount <= 0:
                raise Rejected("an amount must be positive")
            return Deposited(account=cmd.account, amount=cmd.amount)

        def apply(self, event: Deposited) -> None:
            self.balance += event.amount

    @bank.aggregate
    class Ledger(Aggregate, key="ledger"):
        balance: int = 0

        @command
        def post(self, cmd: Post) -> Posted:
            return Posted(ledger=cmd.ledger, amount=cmd.amount)

        def apply(self, event: Posted) -> None:
            self.balance += event.amount
    """
)


def taskset(cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None else []


def nerve_case(
    args: argparse.Namespace, bootstrap: str, work: Path, broker_pid: int | None = None
) -> dict[str, Any]:
    import json

    from confluent_kafka import Consumer, KafkaError, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from nerve.es import Histories
    from nerve.es.node import EXPECTED_VERSION, REPLY_TO
    from nerve.service import envelope
    from nerve.service.config import RunConfig
    from nerve.service.host import load_services

    prefix = f"bes{uuid.uuid4().hex[:6]}"
    path = work / f"{prefix}.py"
    path.write_text(SERVICE.format(prefix=prefix, batch=args.batch))
    service = load_services(path)[0]
    names = sys.modules[f"nerve_services_{path.stem}"]
    replies = f"{service.name}.replies"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [NewTopic(f"{prefix}.{t}", n, 1) for t, n in
              (("deposits", 4), ("deposited", 4), ("posts", 1), ("posted", 1))]  # fmt: skip
    topics.append(NewTopic(replies, 4, 1))
    for future in admin.create_topics(topics).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                         "partitioner": "murmur2_random", "enable.idempotence": True})  # fmt: skip

    def write(command: Any, expected: int) -> None:
        meta = command.meta
        meta.source, meta.type = "/bench", command.event_type
        meta.extensions[REPLY_TO] = replies
        meta.extensions[EXPECTED_VERSION] = str(expected)
        producer.produce(command.topic, command.__pydantic_serializer__.to_json(command),
                         command.record_key(), headers=envelope.to_headers(meta))  # fmt: skip
        producer.poll(0)

    for n in range(args.per):  # round-robin over the aggregates, as writers would interleave
        for a in range(args.aggregates):
            write(names.Deposit(account=f"acc{a}", amount=1 + n), n)
    for n in range(args.events):
        write(names.Post(ledger="big", amount=1), n)
    producer.flush(60)
    total = args.aggregates * args.per + args.events
    # BENCH_PROFILE=prefix: the replica under cProfile, its profile written to prefix.prof.
    profile = os.environ.get("BENCH_PROFILE")
    command = nerve_command()
    if profile:
        command = [sys.executable, "-m", "cProfile", "-o", f"{profile}.prof", "-m", "nerve"]
    replica = subprocess.Popen(
        [
            *taskset(args.worker_cpu),
            *command,
            "run",
            str(path),
            "-b",
            bootstrap,
            "--no-registry",
            "--state-dir",
            str(work / "state"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(work / "replica.log", "ab"),  # noqa: SIM115 - the child writes to it
    )
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{prefix}-bench",
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                         "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([replies])
    seen = 0
    statuses: dict[str, int] = {}
    first = last = 0.0
    first_count = 0
    # The replica's CPU time (all its threads) from the first reply to the last: what a
    # command costs it, a figure other work on the machine disturbs less than the rate.
    cpu_first = cpu_last = 0.0
    # The broker's too: with three records a command (event, reply, state) it may be the limit.
    broker_first = broker_last = 0.0
    deadline = time.monotonic() + args.max_seconds
    try:
        while seen < total and time.monotonic() < deadline:
            batch = consumer.consume(10_000, 0.02)  # fine-grained: a run lasts seconds
            now = time.monotonic()
            for message in batch:
                if message.error() is not None:
                    if message.error().code() != KafkaError._PARTITION_EOF:
                        raise RuntimeError(message.error())
                    continue
                status = json.loads(message.value())["status"]
                statuses[status] = statuses.get(status, 0) + 1
                seen += 1
            if batch and not first:
                first, first_count, cpu_first = now, seen, _cpu_seconds(replica.pid)
                broker_first = _cpu_seconds(broker_pid) if broker_pid else 0.0
            if batch:
                last, cpu_last = now, _cpu_seconds(replica.pid)
                broker_last = _cpu_seconds(broker_pid) if broker_pid else 0.0
    finally:
        consumer.close()
        replica.terminate()
        replica.wait(30)
    if statuses.get("accepted", 0) != total:
        raise RuntimeError(f"nerve: {seen} of {total} replies, {statuses} (see replica.log)")
    rate = (seen - first_count) / (last - first) if last > first else 0.0
    cpu_us = (cpu_last - cpu_first) / max(seen - first_count, 1) * 1e6
    broker_us = (broker_last - broker_first) / max(seen - first_count, 1) * 1e6
    config = RunConfig(bootstrap_servers=bootstrap, registry_url=None)
    with Histories(config) as histories:
        loads, load_cpu = [], []
        for _ in range(args.loads + 1):
            started, cpu = time.perf_counter(), time.process_time()
            history = histories.load(names.Ledger, "big", keep_events=False)
            loads.append(time.perf_counter() - started)
            load_cpu.append(time.process_time() - cpu)
        assert history.version == args.events and history.state.balance == args.events
        fresh_started = time.perf_counter()
        with Histories(config) as once:
            once.load(names.Ledger, "big", keep_events=False)
        fresh = time.perf_counter() - fresh_started
    name = "nerve" if args.batch is None else f"nerve (batches of {args.batch:,})"
    return {"system": name, "commands_per_s": rate, "commands": total, "cpu_us": cpu_us,
            "broker_cpu_us": broker_us, "load_ms": statistics.median(loads[1:]) * 1000,
            "first_load_ms": fresh * 1000,
            "load_cpu_ms": statistics.median(load_cpu[1:]) * 1000,
            "records_read": history.records_read}  # fmt: skip


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, all its threads, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@functools.cache
def _eventsourcing_bank() -> Any:
    """The eventsourcing application, made once (it registers its classes by name)."""
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class Account(Aggregate):
        def __init__(self) -> None:
            self.balance = 0

        @event("Deposited")
        def deposit(self, amount: int) -> None:
            self.balance += amount

    class Bank(Application[Any]):
        def open(self) -> Any:
            account = Account()
            self.save(account)
            return account.id

        def deposit(self, account_id: Any, amount: int, expected: int) -> None:
            account = self.repository.get(account_id)
            # Its versions count the creation event too: version N+1 is N deposits.
            if account.version != expected + 1:
                raise RuntimeError(f"conflict: {account.version} != {expected + 1}")
            account.deposit(amount)
            self.save(account)

    return Bank


def eventsourcing_case(args: argparse.Namespace, env: dict[str, str], name: str) -> dict[str, Any]:
    Bank = _eventsourcing_bank()
    app = Bank(env={**env, "AGGREGATE_CACHE_MAXSIZE": str(args.aggregates * 2)})
    ids = [app.open() for _ in range(args.aggregates)]
    started, cpu = time.perf_counter(), time.process_time()
    for n in range(args.per):
        for account_id in ids:
            app.deposit(account_id, 1 + n, n)
    took = time.perf_counter() - started
    cpu_us = (time.process_time() - cpu) / (args.aggregates * args.per) * 1e6
    commands = args.aggregates * args.per
    big = app.open()
    for n in range(args.events - 1):  # with its creation: args.events events
        app.deposit(big, 1, n)
    app.close()
    cold = Bank(env=env)  # no cache: every get reads the events and folds them
    loads, load_cpu = [], []
    for _ in range(args.loads + 1):
        t, cpu = time.perf_counter(), time.process_time()
        account = cold.repository.get(big)
        loads.append(time.perf_counter() - t)
        load_cpu.append(time.process_time() - cpu)
    assert account.version == args.events
    cold.close()
    return {"system": name, "commands_per_s": commands / took, "commands": commands,
            "cpu_us": cpu_us, "load_cpu_ms": statistics.median(load_cpu[1:]) * 1000,
            "load_ms": statistics.median(loads[1:]) * 1000, "first_load_ms": loads[0] * 1000,
            "records_read": args.events}  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    base = next((r for r in rows if r["system"] == "eventsourcing-postgres"), None)
    lines = [
        "| system | commands | commands/s | ratio | CPU us/command | broker CPU us/command | "
        "load 1,000 events (ms, median) | ratio | load CPU (ms) | first load (ms) | records read |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        c_ratio = f"{r['commands_per_s'] / base['commands_per_s']:.1f}" if base else "-"
        l_ratio = f"{base['load_ms'] / r['load_ms']:.1f}" if base else "-"
        broker = f"{r['broker_cpu_us']:.0f}" if "broker_cpu_us" in r else "-"
        lines.append(
            f"| {r['system']} | {r['commands']:,} | {r['commands_per_s']:,.0f} | {c_ratio} |"
            f" {r['cpu_us']:.0f} | {broker} | {r['load_ms']:.1f} | {l_ratio} |"
            f" {r['load_cpu_ms']:.1f} | {r['first_load_ms']:.1f} | {r['records_read']:,} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--aggregates", type=int, default=1000)
    parser.add_argument("--per", type=int, default=20, help="commands per aggregate")
    parser.add_argument("--events", type=int, default=1000, help="events of the loaded one")
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--batch", type=int, default=None,
                        help="nerve's records per batch (transaction): max_in_flight")  # fmt: skip
    parser.add_argument("--systems", default="nerve,eventsourcing-sqlite,eventsourcing-postgres")
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--broker-cpu", type=int, default=0)
    parser.add_argument("--worker-cpu", type=int, default=1)
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    if args.no_pin:
        args.broker_cpu = args.worker_cpu = None
    systems = args.systems.split(",")
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="nerve-bench-es-") as tmp:
        work = Path(tmp)
        if "nerve" in systems:
            with SpawnedBroker(cpu=args.broker_cpu) as broker:
                rows.append(nerve_case(args, broker.bootstrap, work, broker.process.pid))
                print(rows[-1], flush=True)
        if "eventsourcing-sqlite" in systems:
            env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                   "SQLITE_DBNAME": str(work / "es.sqlite")}  # fmt: skip
            rows.append(eventsourcing_case(args, env, "eventsourcing-sqlite"))
            print(rows[-1], flush=True)
        if "eventsourcing-postgres" in systems:
            pg = PostgresProcess().start()
            try:
                env = {"PERSISTENCE_MODULE": "eventsourcing.postgres",
                       "POSTGRES_DBNAME": pg.database, "POSTGRES_HOST": "127.0.0.1",
                       "POSTGRES_PORT": str(pg.port), "POSTGRES_USER": pg.user,
                       "POSTGRES_PASSWORD": "unused"}  # fmt: skip
                rows.append(eventsourcing_case(args, env, "eventsourcing-postgres"))
                print(rows[-1], flush=True)
            finally:
                pg.close()
    from importlib.metadata import version as version_of

    version = version_of("eventsourcing")
    out = table(rows)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    note = (f"\n\n{when}; eventsourcing {version}; load average before "
            f"{load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}; ratios against "
            "eventsourcing on PostgreSQL (higher is better)")  # fmt: skip
    print(out + note)
    if args.markdown:
        args.markdown.write_text(out + note + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
