"""fraud: flags accounts with more than 5 debits within a minute.

Added after the others, without touching them: it subscribes to TransactionRecorded, which
already flows. Its window lives in memory, per account; it starts from the earliest
transactions on first deployment, so it judges history too.
"""

from __future__ import annotations

from collections import defaultdict, deque
from datetime import datetime, timedelta

from nerve import Service
from nerve.demo.finance.events import FraudSuspected, TransactionRecorded

WINDOW = timedelta(minutes=1)
LIMIT = 5

fraud = Service(
    "fraud", description="Flags accounts with more than 5 debits in a minute", owner="risk-team"
)
recent: dict[str, deque[datetime]] = defaultdict(deque)
flagged_until: dict[str, datetime] = {}


@fraud.on(TransactionRecorded, where=lambda t: t.kind == "debit")
def watch(debit: TransactionRecorded) -> FraudSuspected | None:
    window = recent[debit.account_id]
    window.append(debit.at)
    while window and window[0] <= debit.at - WINDOW:
        window.popleft()
    if len(window) <= LIMIT:
        return None
    if flagged_until.get(debit.account_id, datetime.min.replace(tzinfo=debit.at.tzinfo)) > debit.at:
        return None  # already flagged for this burst
    flagged_until[debit.account_id] = debit.at + WINDOW
    return FraudSuspected(
        account_id=debit.account_id,
        user_id=debit.user_id,
        debits=len(window),
        window_seconds=int(WINDOW.total_seconds()),
        first_at=window[0],
        last_at=debit.at,
    )
