"""Event sourcing and CQRS on Kafka: aggregates whose state is folded from their own events,
commands routed by aggregate key to the one replica that owns it, and decisions, events, the
new state and the command's offset committed in one transaction.

Kafka has no conditional append, so the event-store guarantee ("append only if the aggregate
is still at version N") comes from a single writer per aggregate: the streams task that owns
the aggregate's partition (nerve.streams). ``expected_version`` on a command gives optimistic
concurrency on top. Sagas (process managers) react to events per key with their state and
deadlines kept the same way. Runs on nerve's broker or any Kafka.
"""

from __future__ import annotations

from nerve.es.aggregate import Aggregate, Rejected, command
from nerve.es.commands import CommandClient, Conflict, Outcome
from nerve.es.history import Histories, History, load, upcast
from nerve.es.saga import Saga, step, timeout

__all__ = [
    "Aggregate",
    "CommandClient",
    "Conflict",
    "Histories",
    "History",
    "Outcome",
    "Rejected",
    "Saga",
    "command",
    "load",
    "step",
    "timeout",
    "upcast",
]
