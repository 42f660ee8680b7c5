"""fraud: flags accounts with more than 5 debits within a minute, and card testing (a debit
under 1, then one over 500 within 10 minutes).

Added after the others, without touching them: it subscribes to TransactionRecorded, which
already flows, and starts from the earliest transactions on first deployment, so it judges
history too. Both rules run on the transactions' own time (``at``) with ``nerve.streams``: the
burst is a sliding-window count per account, the card test a sequence pattern per account.
Their state (the windows, the partial matches, stream time) lives in stores changelogged to
Kafka, so a restart or a replica taking an account's partition over judges exactly as the
process before it would have; exactly-once makes each alert one event.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from nerve import Service
from nerve.demo.finance.events import FraudSuspected, TransactionRecorded
from nerve.streams import Match, Windowed, pattern, sliding

WINDOW = timedelta(minutes=1)
LIMIT = 5
CARD_TEST = timedelta(minutes=10)
# How far out of time order a transaction may come and still be judged (later ones go to
# finance.transactions.late, never dropped silently).
GRACE = timedelta(minutes=5)

fraud = Service(
    "fraud",
    description="Flags bursts of debits and card testing",
    owner="risk-team",
    exactly_once=True,
)


def at(transaction: TransactionRecorded) -> int:
    """A transaction's event time: when it happened (epoch ms), not when it was recorded."""
    return int(transaction.at.timestamp() * 1000)


class Debits(BaseModel):
    """A window's debits of one account: how many, whose, the first and the last (epoch ms)."""

    count: int = 0
    user_id: str = ""
    first: int = 0
    last: int = 0


def add(debits: Debits, transaction: TransactionRecorded) -> Debits:
    when = at(transaction)
    return Debits(
        count=debits.count + 1,
        user_id=transaction.user_id,
        first=min(debits.first, when) if debits.count else when,
        last=max(debits.last, when),
    )


def burst(window: Windowed[Debits]) -> FraudSuspected:
    return FraudSuspected(
        account_id=window.key,
        user_id=window.value.user_id,
        debits=window.value.count,
        window_seconds=int(WINDOW.total_seconds()),
        first_at=datetime.fromtimestamp(window.value.first / 1000, UTC),
        last_at=datetime.fromtimestamp(window.value.last / 1000, UTC),
    )


def sixth(window: Windowed[Debits]) -> bool:
    """The minute up to a debit (its own window ends at it) holds the one debit too many:
    one alert per burst, not one per window the burst fills."""
    return window.value.count == LIMIT + 1 and window.end == window.value.last


debits = fraud.stream(TransactionRecorded, time=at).filter(lambda t: t.kind == "debit")
(
    debits.group_by_key()  # keyed by account already
    .window(sliding(WINDOW), grace=GRACE)
    .aggregate(Debits, add, name="debits")
    .where(sixth)
    .emit(burst)
)


def _debit(transaction: TransactionRecorded) -> bool:
    return transaction.kind == "debit"


@fraud.match(
    pattern(TransactionRecorded, where=lambda t: _debit(t) and -t.amount < 1)
    .as_("probe")
    .followed_by(TransactionRecorded, where=lambda t: _debit(t) and -t.amount > 500)
    .as_("hit")
    .within(CARD_TEST, grace=GRACE),
    key=lambda t: t.account_id,
    time=at,
    after_match="skip_past_last",
)
def card_testing(m: Match) -> FraudSuspected:
    probe, hit = m["probe"], m["hit"]
    return FraudSuspected(
        account_id=m.key,
        user_id=hit.user_id,
        debits=2,
        window_seconds=int(CARD_TEST.total_seconds()),
        first_at=probe.at,
        last_at=hit.at,
        reason="card-testing",
    )
