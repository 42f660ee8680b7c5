"""alerts: warns users whose balance falls below their threshold (once per fall).

A stream-table join (``nerve.streams``): each falling BalanceChanged, re-keyed by its user
(a repartition topic, co-partitioned with ``user.profile``), looks up the user's profile (the
latest per user, as a table) and goes on with it: the LowBalance carries the user's email. A
balance change whose user has no profile yet finds no row and alerts nobody, as before.
At-least-once: after a crash an alert may be sent again, and notifier, which names each email
after its transaction, writes the same email again rather than a second one.
"""

from __future__ import annotations

from nerve import Service
from nerve.demo.finance.events import BalanceChanged, LowBalance, UserProfile

alerts = Service(
    "alerts",
    description="Warns users whose balance falls below their threshold",
    owner="customer-team",
)
profiles = alerts.stream(UserProfile).to_table(name="profiles")


def low_balance(joined: tuple[BalanceChanged, UserProfile]) -> LowBalance | None:
    change, profile = joined
    # Warn on the way down through the threshold, not on every debit below it.
    if not change.balance < profile.threshold <= change.previous:
        return None
    return LowBalance(
        user_id=change.user_id,
        email=profile.email,
        account_id=change.account_id,
        balance=change.balance,
        threshold=profile.threshold,
        transaction_id=change.transaction_id,
    )


(
    alerts.stream(BalanceChanged)
    .filter(lambda change: change.balance < change.previous)
    .select_key(lambda change: change.user_id, name="by-user")
    .join(profiles, lambda change, profile: (change, profile), name="with-profile")
    .emit(low_balance)
)
