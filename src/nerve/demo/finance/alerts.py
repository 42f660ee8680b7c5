"""alerts: warns users whose balance falls below their threshold (once per fall)."""

from __future__ import annotations

from nerve import Service
from nerve.demo.finance.events import BalanceChanged, LowBalance, UserProfile

alerts = Service(
    "alerts",
    description="Warns users whose balance falls below their threshold",
    owner="customer-team",
)
profiles = alerts.table("user.profile", UserProfile)


@alerts.on(BalanceChanged, where=lambda e: e.balance < e.previous)
async def check(event: BalanceChanged) -> LowBalance | None:
    profile = profiles.get(event.user_id)
    if profile is None:
        return None
    # Warn on the way down through the threshold, not on every debit below it.
    if event.balance < profile.threshold <= event.previous:
        return LowBalance(
            user_id=event.user_id,
            email=profile.email,
            account_id=event.account_id,
            balance=event.balance,
            threshold=profile.threshold,
            transaction_id=event.transaction_id,
        )
    return None
