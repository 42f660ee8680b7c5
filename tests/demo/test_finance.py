"""The finance demo: its oracle, its streams services in the test driver against that oracle
(restarted from their changelogs midway), and ``nerve demo finance --check`` end to end (five
services as processes, one killed and restarted mid-stream)."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest
from confluent_kafka import Producer

from nerve.demo.finance import alerts, balances, demo, fraud, workload
from nerve.demo.finance.events import (
    BalanceChanged,
    FraudSuspected,
    LowBalance,
    TransactionRecorded,
    TransactionRejected,
)
from nerve.streams.driver import TestDriver
from nerve.testing import Platform

REQUESTS = workload.transactions(8, 600)
WANT = workload.expected(REQUESTS)


def recorded() -> list[TransactionRecorded]:
    """What transactions makes of the workload's well-formed requests."""
    out = []
    for r in REQUESTS:
        if r.amount <= 0:
            continue
        signed = -r.amount if r.kind == "debit" else r.amount
        fields = r.model_dump(exclude={"amount"})
        out.append(TransactionRecorded(**fields, amount=signed))
    return out


def test_balances_aggregate_every_account_and_refuse_overdrafts_across_a_restart() -> None:
    changes: list[BalanceChanged] = []
    refused: set[str] = set()
    with TestDriver(balances.balances, partitions=4) as driver:
        for n, transaction in enumerate(recorded()):
            if n == 250:
                driver.restart()  # every task from its changelog alone
            driver.send(transaction)
            changes += driver.emitted(BalanceChanged)
            refused |= {e.transaction_id for e in driver.emitted(TransactionRejected)}
        account, _ = driver.store("accounts")["acc-1"]  # (aggregate, timestamp)
        assert account.balance == WANT.balances["acc-1"]
    assert len(changes) == WANT.applied
    assert {c.account_id: c.balance for c in changes} == WANT.balances
    malformed = {r.transaction_id for r in REQUESTS if r.amount <= 0}
    assert refused == WANT.rejected_ids - malformed
    assert all(c.previous + t.amount == c.balance for c, t in _paired(changes))


def _paired(changes: list[BalanceChanged]) -> list[tuple[BalanceChanged, TransactionRecorded]]:
    by_id = {t.transaction_id: t for t in recorded()}
    return [(c, by_id[c.transaction_id]) for c in changes]


def _changes() -> list[BalanceChanged]:
    with TestDriver(balances.balances, partitions=4) as driver:
        for transaction in recorded():
            driver.send(transaction)
        return driver.emitted(BalanceChanged)


def test_alerts_join_each_fall_with_its_users_profile_for_the_email() -> None:
    with TestDriver(alerts.alerts, partitions=4) as driver:
        stranger = BalanceChanged(
            account_id="acc-99", user_id="u99", previous=Decimal(150), balance=Decimal(50),
            transaction_id="t-stranger",
        )  # fmt: skip
        driver.send(stranger, timestamp=1)  # no profile: no row, nobody to warn
        for profile in workload.profiles(8):
            driver.send(profile, timestamp=2)
        sent = []
        for change in _changes():
            driver.send(change, timestamp=3)
            sent += driver.emitted(LowBalance)
    assert {a.transaction_id for a in sent} == WANT.emails and len(sent) == len(WANT.emails)
    emails = {p.user_id: p.email for p in workload.profiles(8)}
    assert all(a.email == emails[a.user_id] and a.balance < a.threshold for a in sent)
    assert all(a.meta.causation_id for a in sent)  # still in the transaction's chain


def test_fraud_flags_the_burst_and_the_card_test_once_each_across_a_restart() -> None:
    flagged = []
    with TestDriver(fraud.fraud, partitions=4) as driver:
        transactions = recorded()
        burst = [n for n, t in enumerate(transactions) if t.amount == -3]
        probe = next(n for n, t in enumerate(transactions) if t.amount == -workload.PROBE)
        for n, transaction in enumerate(transactions):
            if n in (burst[3], probe + 2):
                driver.restart()  # mid-burst, and between the probe and the hit
            driver.send(transaction)
            flagged += driver.emitted(FraudSuspected)
        late = driver.late(TransactionRecorded.topic)
    assert sorted((f.account_id, f.reason) for f in flagged) == [
        (workload.CARD_TESTING_ACCOUNT, "card-testing"),
        (workload.FRAUD_ACCOUNT, "burst"),
    ]
    alert = next(f for f in flagged if f.reason == "burst")
    assert alert.debits == fraud.LIMIT + 1 and alert.last_at - alert.first_at <= fraud.WINDOW
    card = next(f for f in flagged if f.reason == "card-testing")
    assert card.last_at - card.first_at <= fraud.CARD_TEST
    assert late == []


def test_workload_is_reproducible_and_exercises_every_service() -> None:
    first, second = workload.transactions(8, 300), workload.transactions(8, 300)
    assert [t.transaction_id for t in first] == [t.transaction_id for t in second]
    want = workload.expected(first)
    assert want.recorded == len(first) - 1  # one malformed request
    overdrafts = want.rejected - 1
    assert overdrafts > 0 and want.applied == want.recorded - overdrafts
    assert want.emails, "the workload must drive some balance below a threshold"
    assert want.fraud_accounts == {workload.FRAUD_ACCOUNT}
    assert want.card_testing_accounts == {workload.CARD_TESTING_ACCOUNT}
    times = [t.at for t in first]
    assert times == sorted(times), "one clock: the feed comes in time order"
    account = "acc-1"
    signed = [
        (-t.amount if t.kind == "debit" else t.amount)
        for t in first
        if t.account_id == account and t.amount > 0 and t.transaction_id not in want.rejected_ids
    ]
    assert want.balances[account] == sum(signed, Decimal(0))


def test_the_live_workload_keeps_accounts_alive() -> None:
    # Salaries come in, overdrafts are refused: after a long run (the live demo's first few
    # minutes) no balance is negative and most are above the alert threshold.
    requests = workload.transactions(8, 3000)
    assert sum(1 for t in requests if t.description == "salary") > 100
    want = workload.expected(requests)
    assert min(want.balances.values()) >= 0
    above = [b for b in want.balances.values() if b >= workload.THRESHOLD]
    assert len(above) >= len(want.balances) // 2, want.balances


def test_the_live_view_counts_what_the_topics_hold() -> None:
    # Events already on the topics when the watcher starts are counted too.
    with Platform(registry=False) as platform:
        producer = Producer({"bootstrap.servers": platform.bootstrap})
        for n in range(3):
            change = BalanceChanged(
                account_id="acc-1", user_id="u1", previous=Decimal(n), balance=Decimal(n + 1),
                transaction_id=f"t{n}",
            )  # fmt: skip
            demo.send(producer, change)
        demo.send(
            producer,
            TransactionRejected(transaction_id="t9", account_id="acc-1", reason="insufficient"),
        )
        producer.flush(10)
        watcher = demo.Watcher(platform.bootstrap)
        try:
            seen = watcher.poll(0.5)
            for _ in range(40):
                if seen.counts[BalanceChanged.topic] == 3 and seen.rejected_ids:
                    break
                seen = watcher.poll(0.25)
        finally:
            watcher.close()
    assert seen.counts[BalanceChanged.topic] == 3
    assert seen.balances == {"acc-1": Decimal(3)}
    assert seen.rejected_ids == {"t9"} and "insufficient" in seen.rejected[0]


@pytest.mark.slow
def test_check_passes_with_a_service_killed_mid_stream() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nerve", "demo", "finance", "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "killed balances (SIGKILL)" in done.stdout
    assert "fraud flagged: acc-2 (card-testing), acc-3 (burst)" in done.stdout
    assert "check passed" in done.stdout
