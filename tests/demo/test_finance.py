"""The finance demo: its oracle, and ``nerve demo finance --check`` end to end (five services
as processes, one killed and restarted mid-stream)."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest
from confluent_kafka import Producer

from nerve.demo.finance import demo, workload
from nerve.demo.finance.events import BalanceChanged, TransactionRejected
from nerve.testing import Platform


def test_workload_is_reproducible_and_exercises_every_service() -> None:
    first, second = workload.transactions(8, 300), workload.transactions(8, 300)
    assert [t.transaction_id for t in first] == [t.transaction_id for t in second]
    want = workload.expected(first)
    assert want.recorded == len(first) - 1  # one malformed request
    overdrafts = want.rejected - 1
    assert overdrafts > 0 and want.applied == want.recorded - overdrafts
    assert want.emails, "the workload must drive some balance below a threshold"
    assert want.fraud_accounts == {workload.FRAUD_ACCOUNT}
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
    assert "check passed" in done.stdout
