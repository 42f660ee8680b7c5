"""balances: keeps every account's balance and tells the world each time it changes; refuses a
debit that would overdraw the account (a TransactionRejected instead).

The balances are an aggregate per account over the recorded transactions (``nerve.streams``):
the state lives in a store of the task that owns the account's partition, changelogged to
``balances-accounts-changelog`` and checkpointed under ``--state-dir``, so a restart (or a
replica taking the partition over) carries on where the last commit left off. It runs
exactly-once: the store's changes, the emitted events and the consumed offsets commit in one
transaction, so a crash never applies a transaction twice nor loses one.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel

from nerve import Service
from nerve.demo.finance.events import BalanceChanged, TransactionRecorded, TransactionRejected

balances = Service(
    "balances",
    description="Keeps account balances; emits BalanceChanged for every transaction",
    owner="ledger-team",
    exactly_once=True,
)


class Account(BaseModel):
    """What balances keeps per account: the balance, and what the latest transaction did."""

    account_id: str = ""
    user_id: str = ""
    balance: Decimal = Decimal(0)
    previous: Decimal = Decimal(0)
    transaction_id: str = ""
    refused: str | None = None  # why the latest transaction was refused, if it was


def apply(account: Account, transaction: TransactionRecorded) -> Account:
    balance = account.balance + transaction.amount
    refused = None
    if balance < 0:
        refused = f"insufficient funds: balance {account.balance}, debit {-transaction.amount}"
        balance = account.balance
    return Account(
        account_id=transaction.account_id,
        user_id=transaction.user_id,
        balance=balance,
        previous=account.balance,
        transaction_id=transaction.transaction_id,
        refused=refused,
    )


def outcome(account: Account) -> BalanceChanged | TransactionRejected:
    if account.refused is not None:
        return TransactionRejected(
            transaction_id=account.transaction_id,
            account_id=account.account_id,
            reason=account.refused,
        )
    return BalanceChanged(
        account_id=account.account_id,
        user_id=account.user_id,
        previous=account.previous,
        balance=account.balance,
        transaction_id=account.transaction_id,
    )


# TransactionRecorded is keyed by account already: grouping by its key needs no repartition.
accounts = (
    balances.stream(TransactionRecorded).group_by_key().aggregate(Account, apply, name="accounts")
)
accounts.emit(outcome)
