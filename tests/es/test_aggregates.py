"""Issue 16 items 1, 2 and 7: aggregates on Kafka. Commands routed by key to the replica that
owns the aggregate, decisions answered over the reply topic, optimistic concurrency; and the
race: 32 concurrent writers in four processes on 10 aggregates, two replicas, on nerve and on
Apache Kafka —
every accepted command's event exactly once, in version order, every refused one refused for a
stale version."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

pytestmark = pytest.mark.slow

SERVICE = textwrap.dedent(
    """
    from nerve import Event, Service
    from nerve.es import Aggregate, Rejected, command

    class Deposit(Event, topic="{prefix}.deposits", key="account", partitions=4):
        account: str
        amount: int
        writer: int = 0
        n: int = 0

    class Deposited(Event, topic="{prefix}.deposited", key="account", partitions=4):
        account: str
        amount: int
        balance: int
        writer: int
        n: int

    bank = Service("{prefix}-bank", exactly_once=True)

    @bank.aggregate
    class Account(Aggregate, key="account"):
        balance: int = 0

        @command
        def deposit(self, cmd: Deposit) -> Deposited:
            if cmd.amount <= 0:
                raise Rejected("an amount must be positive")
            return Deposited(account=cmd.account, amount=cmd.amount,
                             balance=self.balance + cmd.amount, writer=cmd.writer, n=cmd.n)

        def apply(self, event: Deposited) -> None:
            self.balance = event.balance
    """
)

WRITERS = 32
PROCESSES = 4
ACCOUNTS = 10
PER_WRITER = 6

# One writer process: WRITERS // PROCESSES writers as tasks over one CommandClient, each
# sending deposits with the version it last saw; prints what was accepted and refused.
WRITERS_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, random, sys
    from collections import defaultdict
    from pathlib import Path

    from nerve.es import CommandClient
    from nerve.service.config import RunConfig
    from nerve.service.host import load_services

    bootstrap, path, first, count, per_writer = sys.argv[1:6]
    path = Path(path)
    module = load_services(path)[0]
    deposit = sys.modules[f"nerve_services_{path.stem}"].Deposit
    client = CommandClient(module, RunConfig(bootstrap_servers=bootstrap, registry_url=None))
    known = defaultdict(int)
    accepted, counts = [], {"conflicts": 0, "rejected": 0}

    async def writer(w):
        rng = random.Random(w)
        done = 0
        while done < int(per_writer):
            account = f"acc{rng.randrange(ACCOUNTS)}"
            if rng.random() < 0.05:
                outcome = await client.send(deposit(account=account, amount=0), timeout=60)
                assert outcome.status == "rejected" and "positive" in (outcome.reason or "")
                counts["rejected"] += 1
                continue
            command = deposit(account=account, amount=1 + rng.randrange(9), writer=w, n=done)
            expected = known[account]
            outcome = await client.send(command, expected_version=expected, timeout=60)
            if outcome.status == "conflict":
                assert outcome.version != expected, "refused only for a stale version"
                known[account] = max(known[account], outcome.version)
                counts["conflicts"] += 1
                continue
            assert outcome.status == "accepted", outcome
            assert outcome.version == expected + 1
            assert outcome.events[0]["data"]["n"] == done
            known[account] = max(known[account], outcome.version)
            accepted.append((w, done))
            done += 1

    async def main():
        await asyncio.gather(*(writer(w) for w in range(int(first), int(first) + int(count))))

    try:
        asyncio.run(main())
    finally:
        client.close()
    print(json.dumps({"accepted": accepted, **counts}))
    """
).replace("ACCOUNTS", str(ACCOUNTS))


def _replicas(
    bootstrap: str, path: Path, tmp_path: Path, count: int
) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(count):
        command = [sys.executable, "-m", "nerve", "run", str(path), "-b", bootstrap,
                   "--no-registry", "--state-dir", str(tmp_path / f"state-{i}")]  # fmt: skip
        log = open(tmp_path / f"replica-{i}.log", "ab")  # noqa: SIM115 - the child writes to it
        procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log))
    return procs


def _history(bootstrap: str, topic: str) -> dict[str, list[tuple[int, dict]]]:
    """Each account's events in offset order: (version, data)."""
    import json

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"es-check-{uuid.uuid4().hex[:6]}",
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    try:
        partitions = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        found: dict[str, list[tuple[int, dict]]] = defaultdict(list)
        ends = 0
        deadline = time.monotonic() + 30
        while ends < len(partitions) and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error() is not None:
                    ends += message.error().code() == KafkaError._PARTITION_EOF
                    continue
                headers = dict(message.headers() or [])
                data = json.loads(message.value())
                found[data["account"]].append((int(headers["ce_nerveversion"]), data))
        return found
    finally:
        consumer.close()


@pytest.mark.parametrize("broker_kind", ["nerve", "kafka"])
def test_thirty_two_writers_on_ten_aggregates_never_interleave_or_lose_an_event(
    request: pytest.FixtureRequest, tmp_path: Path, broker_kind: str
) -> None:
    server = request.getfixturevalue("nerve_for_diff" if broker_kind == "nerve" else "kafka")
    prefix = f"es{uuid.uuid4().hex[:6]}"
    path = tmp_path / "bank.py"
    path.write_text(SERVICE.format(prefix=prefix))
    # The command topic with its four partitions before anything writes to it (a broker that
    # auto-creates would give it one if a command came first).
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    for future in admin.create_topics([NewTopic(f"{prefix}.deposits", 4, 1)]).values():
        future.result(30)
    procs = _replicas(server.bootstrap, path, tmp_path, 2)
    # The writers in four processes, eight each: what one process learns of the versions the
    # others never hear of, so they race on every aggregate as separate services would.
    script = tmp_path / "writers.py"
    script.write_text(WRITERS_SCRIPT)
    writers: list[subprocess.Popen[str]] = []
    accepted: list[tuple[int, int]] = []
    conflicts = rejected = 0
    try:
        for first in range(0, WRITERS, WRITERS // PROCESSES):
            argv = [sys.executable, str(script), server.bootstrap, str(path), str(first),
                    str(WRITERS // PROCESSES), str(PER_WRITER)]  # fmt: skip
            writers.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True))
        for proc in writers:
            out, _ = proc.communicate(timeout=300)
            assert proc.returncode == 0, out
            result = json.loads(out.splitlines()[-1])
            accepted += [tuple(pair) for pair in result["accepted"]]
            conflicts += result["conflicts"]
            rejected += result["rejected"]
    except BaseException:
        # What the replicas said is what tells a stall from a wrong answer.
        for log in sorted(tmp_path.glob("replica-*.log")):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}")
        raise
    finally:
        for proc in writers:
            if proc.poll() is None:
                proc.kill()
        for proc in procs:
            proc.terminate()
            proc.wait(30)
    history = _history(server.bootstrap, f"{prefix}.deposited")
    seen = [(data["writer"], data["n"]) for events in history.values() for _, data in events]
    assert sorted(seen) == sorted(accepted), "every accepted command's event, exactly once"
    for account, events in history.items():
        assert [v for v, _ in events] == list(range(1, len(events) + 1)), account
        balance = 0
        for _, data in events:
            balance += data["amount"]
            assert data["balance"] == balance, account
    print(
        f"{broker_kind}: {len(accepted)} accepted, {conflicts} refused for a stale version, "
        f"{rejected} rejected by the aggregate"
    )
    assert conflicts > 0, "the writers raced"
