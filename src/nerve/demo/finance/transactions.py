"""transactions: records requested debits and credits, refusing the malformed ones."""

from __future__ import annotations

from nerve import Service
from nerve.demo.finance.events import (
    TransactionRecorded,
    TransactionRejected,
    TransactionRequested,
)

transactions = Service(
    "transactions", description="Records debits and credits on accounts", owner="payments-team"
)


@transactions.on(TransactionRequested)
def record(request: TransactionRequested) -> TransactionRecorded | TransactionRejected:
    if request.amount <= 0:
        return TransactionRejected(
            transaction_id=request.transaction_id,
            account_id=request.account_id,
            reason=f"amount must be positive, got {request.amount}",
        )
    signed = -request.amount if request.kind == "debit" else request.amount
    return TransactionRecorded(
        transaction_id=request.transaction_id,
        account_id=request.account_id,
        user_id=request.user_id,
        kind=request.kind,
        amount=signed,
        description=request.description,
        at=request.at,
    )
