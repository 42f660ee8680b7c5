"""Issue 16 item 3: an aggregate's history read back from Kafka by key, as of a version or a
time, and old revisions of an event upcast to the reader's shape; on nerve and Apache Kafka.
The events are written by a real replica (``nerve run``) deciding real commands."""

import asyncio
import sys
import textwrap
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pytest

from nerve import Event
from nerve.es import Aggregate, CommandClient, Histories, command, load, upcast
from nerve.es.history import upcast_data
from nerve.service.config import RunConfig
from nerve.service.host import load_services

from .test_aggregates import _replicas

pytestmark = pytest.mark.slow

SERVICE = textwrap.dedent(
    """
    from nerve import Event, Service
    from nerve.es import Aggregate, Rejected, command

    class Deposit(Event, topic="{prefix}.deposits", key="account", partitions=3):
        account: str
        amount: int

    class Deposited(Event, topic="{prefix}.deposited", key="account", partitions=3):
        account: str
        amount: int

    bank = Service("{prefix}-bank", exactly_once=True)

    @bank.aggregate
    class Account(Aggregate, key="account"):
        balance: int = 0
        deposits: int = 0

        @command
        def deposit(self, cmd: Deposit) -> Deposited:
            if cmd.amount <= 0:
                raise Rejected("an amount must be positive")
            return Deposited(account=cmd.account, amount=cmd.amount)

        def apply(self, event: Deposited) -> None:
            self.balance += event.amount
            self.deposits += 1
    """
)


@pytest.mark.parametrize("broker_kind", ["nerve", "kafka"])
def test_history_by_key_as_of_a_version_and_a_time_with_old_revisions_upcast(
    request: pytest.FixtureRequest, tmp_path: Path, broker_kind: str
) -> None:
    server = request.getfixturevalue("nerve_for_diff" if broker_kind == "nerve" else "kafka")
    prefix = f"eh{uuid.uuid4().hex[:6]}"
    path = tmp_path / "bank.py"
    path.write_text(SERVICE.format(prefix=prefix))
    module = load_services(path)[0]
    names = sys.modules[f"nerve_services_{path.stem}"]
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    for topic in (f"{prefix}.deposits", f"{prefix}.deposited"):
        for future in admin.create_topics([NewTopic(topic, 3, 1)]).values():
            future.result(30)
    procs = _replicas(server.bootstrap, path, tmp_path, 1)
    config = RunConfig(bootstrap_servers=server.bootstrap, registry_url=None)
    client = CommandClient(module, config)
    amounts = {"a-1": [5, 7, 11, 13], "a-2": [100, 200], "a-3": [1]}
    between: datetime | None = None

    async def main() -> None:
        nonlocal between
        for i in range(4):  # interleaved, so the partitions hold other accounts' events too
            for account, values in amounts.items():
                if i < len(values):
                    outcome = await client.send(
                        names.Deposit(account=account, amount=values[i]),
                        expected_version=i,
                        timeout=60,
                    )
                    assert outcome.accepted, outcome
            if i == 1:
                await asyncio.sleep(0.05)
                between = datetime.now(UTC)
                await asyncio.sleep(0.05)

    try:
        asyncio.run(main())
    finally:
        client.close()
        for proc in procs:
            proc.terminate()
            proc.wait(30)
    assert between is not None
    account_type = names.Account
    with Histories(config) as histories:
        full = histories.load(account_type, "a-1")
        assert (full.version, full.state.balance, full.state.deposits) == (4, 36, 4)
        assert [e.amount for e in full.events] == [5, 7, 11, 13]
        assert [e.meta.extensions["nerveversion"] for e in full.events] == ["1", "2", "3", "4"]
        two = histories.load(account_type, "a-1", as_of_version=2)
        assert (two.version, two.state.balance) == (2, 12)
        then = histories.load(account_type, "a-1", as_of=between)
        assert (then.version, then.state.balance) == (2, 12)
        other = histories.load(account_type, "a-2")
        assert (other.version, other.state.balance) == (2, 300)
        assert histories.load(account_type, "nobody").version == 0
    # A one-shot load (its own consumer), and the service's async one.
    assert (
        asyncio.run(
            module.history(account_type, "a-2", as_of_version=1, config=config)
        ).state.balance
        == 100
    )
    assert load(account_type, "a-3", config=config).state.balance == 1

    # The reader's code has moved on: Deposited is at revision 2 (the amount in cents, named
    # so); the records written at revision 1 are upcast before they are validated.
    class DepositedV2(Event, topic=f"{prefix}.deposited", key="account"):
        revision: ClassVar[int] = 2
        account: str
        cents: int

    @upcast(DepositedV2, 1)
    def _cents(data: dict) -> dict:
        return {"account": data["account"], "cents": data.pop("amount") * 100}

    class AccountV2(Aggregate, key="account"):
        cents: int = 0

        @command
        def deposit(self, cmd: names.Deposit) -> DepositedV2:
            return DepositedV2(account=cmd.account, cents=cmd.amount * 100)

        def apply(self, event: DepositedV2) -> None:
            self.cents += event.cents

    upgraded = load(AccountV2, "a-1", config=config)
    assert upgraded.state.cents == 3600
    assert [e.cents for e in upgraded.events] == [500, 700, 1100, 1300]


def test_upcasting_refuses_a_missing_step_and_a_newer_revision_with_a_clear_error() -> None:
    class Placed(Event, topic=f"up{uuid.uuid4().hex[:6]}.placed", key="order_id"):
        revision: ClassVar[int] = 3
        order_id: str
        total_cents: int
        currency: str

    @upcast(Placed, 1)
    def _one(data: dict) -> dict:
        return {"order_id": data["order_id"], "total_cents": data["total"] * 100}

    with pytest.raises(LookupError, match="no upcaster from revision 2 to 3"):
        upcast_data(Placed, 1, {"order_id": "o", "total": 3})

    @upcast(Placed, 2)
    def _two(data: dict) -> dict:
        return {**data, "currency": "EUR"}

    assert upcast_data(Placed, 1, {"order_id": "o", "total": 3}) == {
        "order_id": "o",
        "total_cents": 300,
        "currency": "EUR",
    }
    with pytest.raises(ValueError, match="newer than this code's"):
        upcast_data(Placed, 4, {})
    with pytest.raises(ValueError, match="from an older revision"):
        upcast(Placed, 3)


SNAPSHOTTED = textwrap.dedent(
    """
    from nerve import Event, Service
    from nerve.es import Aggregate, command

    class Deposit(Event, topic="{prefix}.deposits", key="account", partitions=2):
        account: str
        amount: int

    class Deposited(Event, topic="{prefix}.deposited", key="account", partitions=2):
        account: str
        amount: int

    bank = Service("{prefix}-bank", exactly_once=True)

    @bank.aggregate(snapshot_every=10)
    class Account(Aggregate, key="account"):
        balance: int = 0
        amounts: list[int] = []

        @command
        def deposit(self, cmd: Deposit) -> Deposited:
            return Deposited(account=cmd.account, amount=cmd.amount)

        def apply(self, event: Deposited) -> None:
            self.balance += event.amount
            self.amounts.append(event.amount)
    """
)


@pytest.mark.parametrize("broker_kind", ["nerve", "kafka"])
def test_snapshots_every_ten_versions_start_a_history_and_agree_with_the_full_fold(
    request: pytest.FixtureRequest, tmp_path: Path, broker_kind: str
) -> None:
    server = request.getfixturevalue("nerve_for_diff" if broker_kind == "nerve" else "kafka")
    prefix = f"es{uuid.uuid4().hex[:6]}"
    path = tmp_path / "snapshotted.py"
    path.write_text(SNAPSHOTTED.format(prefix=prefix))
    module = load_services(path)[0]
    names = sys.modules[f"nerve_services_{path.stem}"]
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    for topic in (f"{prefix}.deposits", f"{prefix}.deposited"):
        for future in admin.create_topics([NewTopic(topic, 2, 1)]).values():
            future.result(30)
    procs = _replicas(server.bootstrap, path, tmp_path, 1)
    config = RunConfig(bootstrap_servers=server.bootstrap, registry_url=None)
    client = CommandClient(module, config)

    async def main() -> None:
        for n in range(25):
            for account in ("s-1", "s-2", "s-3"):
                outcome = await client.send(
                    names.Deposit(account=account, amount=n + 1), expected_version=n, timeout=60
                )
                assert outcome.accepted, outcome

    try:
        asyncio.run(main())
    finally:
        client.close()
        for proc in procs:
            proc.terminate()
            proc.wait(30)
    account_type = names.Account
    assert account_type.snapshot_topic == f"{prefix}-bank.account.snapshots"
    amounts = list(range(1, 26))
    # No clock margin: one replica wrote everything, so its clock is the snapshots' clock.
    with Histories(config, clock_margin_ms=0) as histories:
        for as_of, snapshot_version in ((None, 20), (25, 20), (19, 10), (10, 10), (9, 0)):
            upto = 25 if as_of is None else as_of
            got = histories.load(account_type, "s-1", as_of_version=as_of)
            assert got.snapshot_version == snapshot_version, as_of
            assert got.version == upto
            assert got.state.amounts == amounts[:upto]
            assert got.state.balance == sum(amounts[:upto])
            assert [e.amount for e in got.events] == amounts[snapshot_version:upto]
            full = histories.load(account_type, "s-1", as_of_version=as_of, snapshots=False)
            assert full.snapshot_version == 0
            assert full.state == got.state
        started = histories.load(account_type, "s-1")
        whole = histories.load(account_type, "s-1", snapshots=False)
        assert started.records_read < whole.records_read, "a snapshot spares the events before it"
    # The default margin (5 s before the snapshot) reads more, and folds the same.
    assert load(account_type, "s-1", config=config).state == whole.state


@pytest.mark.parametrize("broker_kind", ["nerve", "kafka"])
def test_a_history_whose_first_events_retention_removed_is_refused_not_read_empty(
    request: pytest.FixtureRequest, broker_kind: str
) -> None:
    """Loads start at offset 0; where 0 is gone the consumer must start at the log's start
    (auto.offset.reset earliest), so the gap in the versions is seen, not an empty history
    read from the end."""
    from confluent_kafka import Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    server = request.getfixturevalue("nerve_for_diff" if broker_kind == "nerve" else "kafka")
    prefix = f"er{uuid.uuid4().hex[:6]}"

    class Credited(Event, topic=f"{prefix}.credited", key="account", partitions=1):
        account: str
        amount: int

    class Credit(Event, topic=f"{prefix}.credits", key="account", partitions=1):
        account: str
        amount: int

    class Wallet(Aggregate, key="account"):
        balance: int = 0

        @command
        def credit(self, cmd: Credit) -> Credited:
            return Credited(account=cmd.account, amount=cmd.amount)

        def apply(self, event: Credited) -> None:
            self.balance += event.amount

    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic(Credited.topic, 1, 1)])[Credited.topic].result(30)
    producer = Producer({"bootstrap.servers": server.bootstrap})
    for version in range(1, 6):
        headers = [("ce_specversion", "1.0"), ("ce_id", uuid.uuid4().hex), ("ce_source", "/t"),
                   ("ce_type", Credited.topic), ("content-type", "application/json"),
                   ("ce_nerveversion", str(version))]  # fmt: skip
        producer.produce(Credited.topic, b'{"account":"w","amount":1}', b"w", headers=headers)
    assert producer.flush(30) == 0
    config = RunConfig(bootstrap_servers=server.bootstrap, registry_url=None)
    with Histories(config) as histories:
        assert histories.load(Wallet, "w").state.balance == 5
        deleted = admin.delete_records([TopicPartition(Credited.topic, 0, 2)])
        for future in deleted.values():
            future.result(30)
        with pytest.raises(RuntimeError, match=r"versions are \[3, 4, 5\]"):
            histories.load(Wallet, "w")
