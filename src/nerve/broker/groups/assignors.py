"""Server-side assignors of the consumer group protocol (KIP-848): ``uniform`` and ``range``.

The coordinator, not a leader member, computes each member's target assignment from the
members' subscriptions and the topics' partition counts. Both assignors are sticky: a member
keeps the partitions it has where the balance allows, so a rebalance moves as few partitions
as it must (the consumer protocol revokes only what moves).

``uniform`` (Kafka's default) spreads every subscribed partition over the members so that
partition counts differ by at most one where subscriptions allow; ``range`` gives each member
of a topic's subscribers a contiguous range of that topic's partitions, members in id order.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

# topic id -> partitions
Assignment = dict[uuid.UUID, set[int]]


@dataclass(frozen=True)
class MemberSpec:
    """What an assignor knows of a member: its subscribed topics and what it has now."""

    topics: frozenset[uuid.UUID]
    current: Mapping[uuid.UUID, set[int]]


def uniform(
    members: Mapping[str, MemberSpec], partitions: Mapping[uuid.UUID, int]
) -> dict[str, Assignment]:
    """Every subscribed partition to one subscriber, counts balanced, current owners kept."""
    order = sorted(members)
    owner: dict[tuple[uuid.UUID, int], str] = {}
    load = dict.fromkeys(order, 0)
    eligible: dict[uuid.UUID, list[str]] = {}
    for topic in partitions:
        eligible[topic] = [m for m in order if topic in members[m].topics]
    wanted = sum(partitions[t] for t, subs in eligible.items() if subs)
    # A member keeps what it has up to the fair share (one more while the remainder lasts),
    # which for equal subscriptions is the balanced end state already.
    cap = -(-wanted // len(order)) if order else 0
    for member in order:
        for topic, owned in sorted(members[member].current.items()):
            count = partitions.get(topic, 0)
            if topic not in members[member].topics:
                continue
            for p in sorted(owned):
                if p < count and (topic, p) not in owner and load[member] < cap:
                    owner[(topic, p)] = member
                    load[member] += 1
    # The rest, fewest-choice partitions first, to the least loaded subscriber.
    free = [
        (topic, p)
        for topic in sorted(partitions, key=lambda t: (len(eligible[t]), str(t)))
        if eligible[topic]
        for p in range(partitions[topic])
        if (topic, p) not in owner
    ]
    for topic, p in free:
        member = min(eligible[topic], key=lambda m: (load[m], order.index(m)))
        owner[(topic, p)] = member
        load[member] += 1
    _balance(owner, load, eligible, order)
    out: dict[str, Assignment] = {m: {} for m in order}
    for (topic, p), member in owner.items():
        out[member].setdefault(topic, set()).add(p)
    return out


def _balance(
    owner: dict[tuple[uuid.UUID, int], str],
    load: dict[str, int],
    eligible: Mapping[uuid.UUID, list[str]],
    order: list[str],
) -> None:
    """Move partitions from the most to the least loaded eligible member while that helps
    (only unequal subscriptions need it)."""
    moved = True
    rounds = 0
    while moved and rounds < 10_000:
        moved = False
        rounds += 1
        for tp in sorted(owner, key=lambda tp: (-load[owner[tp]], str(tp[0]), -tp[1])):
            current = owner[tp]
            target = min(eligible[tp[0]], key=lambda m: (load[m], order.index(m)))
            if load[current] - load[target] > 1:
                owner[tp] = target
                load[current] -= 1
                load[target] += 1
                moved = True
                break


def range_(
    members: Mapping[str, MemberSpec], partitions: Mapping[uuid.UUID, int]
) -> dict[str, Assignment]:
    """Per topic, its subscribers in id order get contiguous shares (the first ones one
    more); a member keeps the partitions it has within its share's size."""
    out: dict[str, Assignment] = {m: {} for m in members}
    for topic, count in partitions.items():
        subscribers = sorted(m for m, spec in members.items() if topic in spec.topics)
        if not subscribers:
            continue
        base, extra = divmod(count, len(subscribers))
        quota = {m: base + (1 if i < extra else 0) for i, m in enumerate(subscribers)}
        taken: set[int] = set()
        for m in subscribers:
            kept = sorted(p for p in members[m].current.get(topic, ()) if p < count)
            for p in kept[: quota[m]]:
                out[m].setdefault(topic, set()).add(p)
                taken.add(p)
        free = iter(p for p in range(count) if p not in taken)
        for m in subscribers:
            have = out[m].setdefault(topic, set())
            while len(have) < quota[m]:
                have.add(next(free))
            if not have:
                del out[m][topic]
    return out


ASSIGNORS = {"uniform": uniform, "range": range_}
