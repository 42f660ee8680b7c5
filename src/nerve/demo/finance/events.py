"""The finance system's events: the contracts between its services."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from nerve import Event


class TransactionRequested(
    Event, topic="finance.transaction-requests", key="account_id", partitions=4
):
    """A debit or credit someone asked for (a bank feed, an app); not yet recorded."""

    transaction_id: str
    account_id: str
    user_id: str
    kind: Literal["debit", "credit"]
    amount: Decimal  # positive; the kind says which way
    description: str = ""
    at: datetime


class TransactionRecorded(Event, topic="finance.transactions", key="account_id", partitions=4):
    """A debit or credit on an account, recorded for good; ``amount`` is signed."""

    transaction_id: str
    account_id: str
    user_id: str
    kind: Literal["debit", "credit"]
    amount: Decimal
    description: str = ""
    at: datetime


class TransactionRejected(Event, topic="finance.transactions-rejected", key="account_id"):
    """A request refused: malformed (by transactions) or overdrawing the account (by balances)."""

    transaction_id: str
    account_id: str
    reason: str


class BalanceChanged(Event, topic="finance.balance-changed", key="account_id", partitions=4):
    """A rich fact: the balance before and after, and the transaction that moved it."""

    account_id: str
    user_id: str
    previous: Decimal
    balance: Decimal
    transaction_id: str


class UserProfile(Event, topic="user.profile", key="user_id"):
    """Who a user is and when to warn them (a compacted topic: the latest per user)."""

    user_id: str
    name: str
    email: str
    threshold: Decimal


class LowBalance(Event, topic="finance.low-balance", key="user_id", partitions=4):
    """A balance fell below the user's threshold."""

    user_id: str
    email: str
    account_id: str
    balance: Decimal
    threshold: Decimal
    transaction_id: str


class FraudSuspected(Event, topic="finance.fraud-suspected", key="account_id"):
    """Debits that look like fraud: a burst (more than 5 in a minute), or a card test (a
    tiny debit, then a large one within minutes)."""

    account_id: str
    user_id: str
    debits: int
    window_seconds: int
    first_at: datetime
    last_at: datetime
    reason: Literal["burst", "card-testing"] = "burst"
