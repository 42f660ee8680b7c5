"""One consumer group's state: members, generation, chosen protocol, committed offsets.

Plain data with the few rules that only look at the group itself (protocol selection, who has
rejoined). Everything that waits or changes state over time is in ``coordinator.py``.
"""

from __future__ import annotations

import asyncio
import enum
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from nerve.broker.groups.consumer import ConsumerGroup
    from nerve.broker.groups.share import ShareGroup


class GroupState(enum.Enum):
    """The classic protocol's states, named as Kafka names them on the wire."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


class JoinResult(NamedTuple):
    """What a JoinGroup call is answered with (error codes are ints, Kafka's)."""

    error: int
    generation: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    member_id: str = ""
    # (member id, group instance id, metadata): only the leader gets the member list.
    members: tuple[tuple[str, str | None, bytes], ...] = ()
    skip_assignment: bool = False


class SyncResult(NamedTuple):
    error: int
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


@dataclass
class CommittedOffset:
    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp: int


@dataclass(eq=False)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]  # (name, metadata) in the member's preference order
    assignment: bytes = b""
    join_waiter: asyncio.Future[JoinResult] | None = None
    sync_waiter: asyncio.Future[SyncResult] | None = None
    session_deadline: float = 0.0  # loop time at which the member is considered dead
    session_timer: asyncio.TimerHandle | None = None

    def metadata_for(self, protocol: str | None) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol:
                return metadata
        return b""

    @property
    def awaiting_join(self) -> bool:
        return self.join_waiter is not None and not self.join_waiter.done()

    @property
    def awaiting_sync(self) -> bool:
        return self.sync_waiter is not None and not self.sync_waiter.done()


@dataclass(eq=False)
class Group:
    group_id: str
    state: GroupState = GroupState.EMPTY
    state_timestamp: int = 0  # wall-clock ms of the last state change (offset expiry)
    generation: int = 0
    protocol_type: str | None = None
    protocol: str | None = None
    leader: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    pending_members: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # instance id -> member id
    offsets: dict[tuple[str, int], CommittedOffset] = field(default_factory=dict)
    join_timer: asyncio.TimerHandle | None = None
    sync_timer: asyncio.TimerHandle | None = None
    initial_delay: bool = False  # waiting out group.initial.rebalance.delay.ms (KIP-134)
    new_member_added: bool = False  # a member joined during the initial delay: extend it
    # A group of the consumer protocol (KIP-848) keeps its members here; classic fields
    # then stay empty. Offsets are shared by both protocols.
    consumer: ConsumerGroup | None = None
    share: ShareGroup | None = None  # a share group (KIP-932), in memory only

    @property
    def group_type(self) -> str:
        if self.share is not None:
            return "share"
        return "consumer" if self.consumer is not None else "classic"

    @property
    def state_name(self) -> str:
        if self.share is not None:
            return self.share.state()
        return self.consumer.state() if self.consumer is not None else self.state.value

    @property
    def is_empty(self) -> bool:
        """No member of any protocol (offsets may expire, the group may be deleted)."""
        if self.share is not None:
            return not self.share.members
        if self.consumer is not None:
            return not self.consumer.members
        return self.is_(GroupState.EMPTY)

    def is_(self, *states: GroupState) -> bool:
        return self.state in states

    @property
    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def all_members_rejoined(self) -> bool:
        """Every member is waiting in JoinGroup and no handed-out member id is outstanding."""
        return not self.pending_members and all(m.awaiting_join for m in self.members.values())

    def candidate_protocols(self) -> set[str]:
        """Protocols every member supports."""
        members = list(self.members.values())
        if not members:
            return set()
        common = {name for name, _ in members[0].protocols}
        for member in members[1:]:
            common &= {name for name, _ in member.protocols}
        return common

    def supports(self, protocol_type: str, protocols: list[tuple[str, bytes]]) -> bool:
        """Whether a member with these protocols may join (Kafka's supportsProtocols)."""
        names = {name for name, _ in protocols}
        if not self.members:
            return bool(protocol_type) and bool(names)
        return protocol_type == self.protocol_type and bool(names & self.candidate_protocols())

    def select_protocol(self) -> str:
        """Each member votes for its most preferred protocol that all support; most votes win."""
        candidates = self.candidate_protocols()
        votes: Counter[str] = Counter()
        for member in self.members.values():
            for name, _ in member.protocols:
                if name in candidates:
                    votes[name] += 1
                    break
        return votes.most_common(1)[0][0]

    def subscribed_topics(self) -> set[str] | None:
        """Topics the members subscribe to, or None when the protocol is not ``consumer``."""
        from nerve.broker.groups.records import subscribed_topics

        if self.protocol_type != "consumer" or self.protocol is None:
            return None
        topics: set[str] = set()
        for member in self.members.values():
            topics |= subscribed_topics(member.metadata_for(self.protocol))
        return topics
