"""The finance demo: its oracle, and ``nerve demo finance --check`` end to end (five services
as processes, one killed and restarted mid-stream)."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest

from nerve.demo.finance import workload


def test_workload_is_reproducible_and_exercises_every_service() -> None:
    first, second = workload.transactions(8, 300), workload.transactions(8, 300)
    assert [t.transaction_id for t in first] == [t.transaction_id for t in second]
    want = workload.expected(first)
    assert want.rejected == 1 and want.recorded == len(first) - 1
    assert want.emails, "the workload must drive some balance below a threshold"
    assert want.fraud_accounts == {workload.FRAUD_ACCOUNT}
    account = "acc-1"
    signed = [
        (-t.amount if t.kind == "debit" else t.amount)
        for t in first
        if t.account_id == account and t.amount > 0
    ]
    assert want.balances[account] == sum(signed, Decimal(0))


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
