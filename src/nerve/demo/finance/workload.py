"""The demo's workload: users, profiles and a stream of transactions, reproducible from a
seed, and what the system must end up with (the ``--check`` oracle)."""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from nerve.demo.finance.events import TransactionRequested, UserProfile

START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
THRESHOLD = Decimal(100)
FRAUD_ACCOUNT = "acc-3"
SALARY = Decimal(250)
SALARY_EVERY = 20  # an account's salary comes with every 20th of its transactions


@dataclass
class Expected:
    balances: dict[str, Decimal] = field(default_factory=dict)
    emails: set[str] = field(default_factory=set)  # transaction ids that must cause one
    fraud_accounts: set[str] = field(default_factory=set)
    recorded: int = 0  # by transactions, well-formed
    rejected: int = 0  # malformed (transactions) or overdrawing (balances)
    rejected_ids: set[str] = field(default_factory=set)
    applied: int = 0  # balance changes: recorded less the overdrafts


def profiles(users: int) -> list[UserProfile]:
    names = ["Ada", "Bo", "Cy", "Dee", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jo", "Kai", "Lu"]
    return [
        UserProfile(
            user_id=f"u{i}",
            name=names[(i - 1) % len(names)],
            email=f"{names[(i - 1) % len(names)].lower()}{i}@example.com",
            threshold=THRESHOLD,
        )
        for i in range(1, users + 1)
    ]


def transactions(users: int, count: int, seed: int = 7) -> list[TransactionRequested]:
    """The fixed workload of ``--check``: ``count`` random transactions and the extras."""
    return list(stream(users, seed, count))


def stream(users: int, seed: int = 7, count: int | None = None) -> Iterator[TransactionRequested]:
    """An opening credit per account, then random debits and credits one simulated minute
    apart per account, a salary with every ``SALARY_EVERY``-th transaction of an account, a
    burst of quick debits on the fraud account, and one bad request; endless without
    ``count`` (the live demo). Debits outweigh credits: salaries keep accounts alive, and the
    debits that would overdraw an account are refused."""
    rng = random.Random(seed)
    clock = {f"acc-{i}": START for i in range(1, users + 1)}
    made = dict.fromkeys(clock, 0)

    def make(i: int, kind: str, amount: Decimal, gap: timedelta) -> TransactionRequested:
        account = f"acc-{i}"
        clock[account] += gap
        return TransactionRequested(
            transaction_id=uuid.UUID(int=rng.getrandbits(128)).hex,
            account_id=account,
            user_id=f"u{i}",
            kind=kind,  # type: ignore[arg-type]
            amount=amount,
            description=f"{kind} {amount}",
            at=clock[account],
        )

    for i in range(1, users + 1):
        yield make(i, "credit", Decimal(300), timedelta(minutes=1))
    burst_at = count // 2 if count is not None else 200
    for n in itertools.count():
        if count is not None and n >= count:
            return
        if n == burst_at:
            index = int(FRAUD_ACCOUNT.split("-")[1])
            for _ in range(7):
                yield make(index, "debit", Decimal(3), timedelta(seconds=5))
            yield make(1, "debit", Decimal(0), timedelta(minutes=1))  # refused
        i = rng.randint(1, users)
        made[f"acc-{i}"] += 1
        if made[f"acc-{i}"] % SALARY_EVERY == 0:
            salary = make(i, "credit", SALARY, timedelta(minutes=1))
            yield salary.model_copy(update={"description": "salary"})
            continue
        kind = "debit" if rng.random() < 0.6 else "credit"
        yield make(i, kind, Decimal(rng.randint(5, 120)), timedelta(minutes=1))


def expected(requests: list[TransactionRequested]) -> Expected:
    """What the services must produce from these requests, computed directly."""
    result = Expected()
    debits: dict[str, list[datetime]] = {}
    for request in requests:
        if request.amount <= 0:
            result.rejected += 1
            result.rejected_ids.add(request.transaction_id)
            continue
        result.recorded += 1
        signed = -request.amount if request.kind == "debit" else request.amount
        previous = result.balances.get(request.account_id, Decimal(0))
        balance = previous + signed
        if request.kind == "debit":
            # Counted before the overdraft check: fraud judges attempts, refused or not.
            recent = [
                t
                for t in debits.get(request.account_id, [])
                if t > request.at - timedelta(minutes=1)
            ]
            recent.append(request.at)
            debits[request.account_id] = recent
            if len(recent) > 5:
                result.fraud_accounts.add(request.account_id)
        if balance < 0:  # balances refuses an overdraft
            result.rejected += 1
            result.rejected_ids.add(request.transaction_id)
            continue
        result.applied += 1
        result.balances[request.account_id] = balance
        if balance < previous and balance < THRESHOLD <= previous:
            result.emails.add(request.transaction_id)
    return result
