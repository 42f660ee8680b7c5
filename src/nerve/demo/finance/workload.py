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
FRAUD_ACCOUNT = "acc-3"  # a burst of quick debits
CARD_TESTING_ACCOUNT = "acc-2"  # a tiny probe, then a large debit minutes later
PROBE = Decimal("0.50")
HIT = Decimal(900)
SALARY = Decimal(250)
SALARY_EVERY = 20  # an account's salary comes with every 20th of its transactions


@dataclass
class Expected:
    balances: dict[str, Decimal] = field(default_factory=dict)
    emails: set[str] = field(default_factory=set)  # transaction ids that must cause one
    fraud_accounts: set[str] = field(default_factory=set)  # a burst of debits
    card_testing_accounts: set[str] = field(default_factory=set)  # a probe, then a hit
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


def stream(
    users: int, seed: int = 7, count: int | None = None, start: datetime = START
) -> Iterator[TransactionRequested]:
    """An opening credit per account, then random debits and credits, a salary with every
    ``SALARY_EVERY``-th transaction of an account, a burst of quick debits on the fraud
    account, a card test (a probe, a hit) on another, and one bad request; endless without
    ``count`` (the live demo). Debits outweigh credits: salaries keep accounts alive, and the
    debits that would overdraw an account are refused.

    One clock for all accounts, a simulated minute per transaction (5 s within the burst):
    the transactions come in time order, as a bank feed sends them, so a partition's event
    time only moves forward and the fraud service's windows and patterns see them in order."""
    rng = random.Random(seed)
    clock = [start]
    made = dict.fromkeys((f"acc-{i}" for i in range(1, users + 1)), 0)

    def make(i: int, kind: str, amount: Decimal, gap: timedelta) -> TransactionRequested:
        clock[0] += gap
        return TransactionRequested(
            transaction_id=uuid.UUID(int=rng.getrandbits(128)).hex,
            account_id=f"acc-{i}",
            user_id=f"u{i}",
            kind=kind,  # type: ignore[arg-type]
            amount=amount,
            description=f"{kind} {amount}",
            at=clock[0],
        )

    for i in range(1, users + 1):
        yield make(i, "credit", Decimal(300), timedelta(minutes=1))
    burst_at = count // 2 if count is not None else 200
    probe_at = burst_at + (count // 4 if count is not None else 100)
    card = int(CARD_TESTING_ACCOUNT.split("-")[1])
    for n in itertools.count():
        if count is not None and n >= count:
            return
        if n == burst_at:
            index = int(FRAUD_ACCOUNT.split("-")[1])
            for _ in range(7):
                yield make(index, "debit", Decimal(3), timedelta(seconds=5))
            yield make(1, "debit", Decimal(0), timedelta(minutes=1))  # refused
        if n == probe_at and card <= users:
            yield make(card, "debit", PROBE, timedelta(minutes=1))
        if n == probe_at + 5 and card <= users:  # five minutes on: refused, and flagged
            yield make(card, "debit", HIT, timedelta(minutes=1))
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
    probes: dict[str, list[datetime]] = {}
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
            # Judged before the overdraft check: fraud judges attempts, refused or not.
            # More than 5 debits within a minute (bounds inclusive, as a sliding window's).
            recent = [
                t
                for t in debits.get(request.account_id, [])
                if t >= request.at - timedelta(minutes=1)
            ]
            recent.append(request.at)
            debits[request.account_id] = recent
            if len(recent) > 5:
                result.fraud_accounts.add(request.account_id)
            # A debit under 1 followed within 10 minutes by one over 500: card testing.
            if request.amount < 1:
                probes.setdefault(request.account_id, []).append(request.at)
            elif request.amount > 500 and any(
                request.at - t <= timedelta(minutes=10) for t in probes.get(request.account_id, [])
            ):
                result.card_testing_accounts.add(request.account_id)
        if balance < 0:  # balances refuses an overdraft
            result.rejected += 1
            result.rejected_ids.add(request.transaction_id)
            continue
        result.applied += 1
        result.balances[request.account_id] = balance
        if balance < previous and balance < THRESHOLD <= previous:
            result.emails.add(request.transaction_id)
    return result
