"""balances: keeps every account's balance and tells the world each time it changes; refuses a
debit that would overdraw the account (a TransactionRejected instead).

Its state is the latest BalanceChanged per account, restored from that topic at start; it runs
exactly-once, so a crash never applies a transaction twice.
"""

from __future__ import annotations

from decimal import Decimal

from nerve import Service
from nerve.demo.finance.events import BalanceChanged, TransactionRecorded, TransactionRejected

balances = Service(
    "balances",
    description="Keeps account balances; emits BalanceChanged for every transaction",
    owner="ledger-team",
    exactly_once=True,
)
latest = balances.table("balances", from_=BalanceChanged)


@balances.on(TransactionRecorded)
def apply(transaction: TransactionRecorded) -> BalanceChanged | TransactionRejected:
    current = latest.get(transaction.account_id)
    previous = current.balance if current is not None else Decimal(0)
    if previous + transaction.amount < 0:
        return TransactionRejected(
            transaction_id=transaction.transaction_id,
            account_id=transaction.account_id,
            reason=f"insufficient funds: balance {previous}, debit {-transaction.amount}",
        )
    return BalanceChanged(
        account_id=transaction.account_id,
        user_id=transaction.user_id,
        previous=previous,
        balance=previous + transaction.amount,
        transaction_id=transaction.transaction_id,
    )
