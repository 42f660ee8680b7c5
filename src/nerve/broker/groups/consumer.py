"""The consumer group protocol of KIP-848: ConsumerGroupHeartbeat and its reconciliation.

A member sends its subscription and the partitions it owns in heartbeats; the coordinator
keeps a group epoch (bumped by every change of membership, subscription or subscribed
topics' partitions), computes a target assignment for that epoch with a server-side assignor
(``assignors.py``), and moves each member towards its target one step per heartbeat:

- a member that owns partitions its target no longer has keeps its epoch and is told to
  revoke them (state UNREVOKED_PARTITIONS) until a heartbeat says it did;
- then it moves to the target epoch and gets the target's partitions that no other member
  still owns; those that another member must first revoke follow later
  (UNRELEASED_PARTITIONS);
- with everything of its target it is STABLE.

No member waits for another (no stop-the-world join): a member that revokes late only holds
up the partitions it owns. Epochs fence zombies: a heartbeat or an offset commit with an
older epoch than the member's is refused (FENCED_MEMBER_EPOCH, STALE_MEMBER_EPOCH).

The group's records go to ``__consumer_offsets`` in Kafka's layout (``records.py``), so a
restart restores members, epochs and assignments. The ``Group`` of the shared store holds a
``ConsumerGroup`` in ``consumer``; the classic protocol lives in ``coordinator.py``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from nerve.broker.errors import ErrorCode
from nerve.broker.groups import records as offsets_records
from nerve.broker.groups.assignors import ASSIGNORS, Assignment, MemberSpec
from nerve.broker.groups.regex import RegexError, compile_regex

if TYPE_CHECKING:
    from nerve.broker.groups.coordinator import GroupCoordinator
    from nerve.broker.groups.group import Group

log = logging.getLogger("nerve.broker.groups")

LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2
REGEX_REFRESH_S = 1.0  # how stale a regex's matches may get before a heartbeat re-reads topics


class MemberState(enum.IntEnum):
    """Kafka's MemberState values, as written in the current assignment record."""

    STABLE = 1
    UNREVOKED_PARTITIONS = 2
    UNRELEASED_PARTITIONS = 3
    UNKNOWN = 4


@dataclass(eq=False)
class ConsumerMember:
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    rebalance_timeout_ms: int = 300_000
    subscribed_topic_names: tuple[str, ...] = ()
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    member_epoch: int = 0
    previous_member_epoch: int = -1
    state: MemberState = MemberState.STABLE
    assigned: Assignment = field(default_factory=dict)
    pending_revocation: Assignment = field(default_factory=dict)
    session_deadline: float = 0.0
    session_timer: asyncio.TimerHandle | None = None
    revocation_timer: asyncio.TimerHandle | None = None
    left_static: bool = False  # epoch -2: away, its assignment kept for its session
    joined: bool = False  # counted in the group epoch already
    # A member that speaks the classic protocol inside this consumer group (KIP-848's
    # migration path): its JoinGroup protocols, session and a JoinGroup waiting to be
    # answered; None for members of the consumer protocol.
    classic: ClassicMembership | None = None


@dataclass(eq=False)
class ClassicMembership:
    protocols: list[tuple[str, bytes]]
    session_timeout_ms: int
    join_waiter: asyncio.Future[Any] | None = None
    join_timer: asyncio.TimerHandle | None = None

    @property
    def protocol_name(self) -> str:
        return self.protocols[0][0] if self.protocols else ""


@dataclass(eq=False)
class ConsumerGroup:
    group_epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, ConsumerMember] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # instance id -> member id
    target: dict[str, Assignment] = field(default_factory=dict)
    # Subscribed topics as the last target saw them: name -> (id, partitions).
    topics: dict[str, tuple[uuid.UUID, int]] = field(default_factory=dict)
    regex_matches: dict[str, frozenset[str]] = field(default_factory=dict)
    regex_checked: float = -1.0

    def state(self) -> str:
        """Kafka's ConsumerGroupState names: Empty, Assigning, Reconciling, Stable."""
        if not self.members:
            return "Empty"
        if self.group_epoch != self.assignment_epoch:
            return "Assigning"
        for m in self.members.values():
            if m.member_epoch != self.assignment_epoch or m.state != MemberState.STABLE:
                return "Reconciling"
        return "Stable"

    def subscribed_names(self) -> set[str]:
        names: set[str] = set()
        for m in self.members.values():
            names.update(m.subscribed_topic_names)
            if m.subscribed_topic_regex is not None:
                names |= self.regex_matches.get(m.subscribed_topic_regex, frozenset())
        return names

    def preferred_assignor(self, default: str) -> str:
        """The assignor most members ask for, else the broker's first (Kafka's rule)."""
        votes: dict[str, int] = {}
        for m in self.members.values():
            if m.server_assignor:
                votes[m.server_assignor] = votes.get(m.server_assignor, 0) + 1
        if not votes:
            return default
        return max(sorted(votes), key=lambda name: votes[name])


@dataclass
class HeartbeatRequest:
    group_id: str
    member_id: str
    member_epoch: int
    instance_id: str | None
    rack_id: str | None
    rebalance_timeout_ms: int
    subscribed_topic_names: Sequence[str] | None
    subscribed_topic_regex: str | None
    server_assignor: str | None
    owned: Assignment | None  # None: unchanged since the last heartbeat
    client_id: str
    client_host: str
    version: int


class HeartbeatResult(NamedTuple):
    error: ErrorCode
    message: str | None = None
    member_id: str | None = None
    member_epoch: int = 0
    heartbeat_interval_ms: int = 0
    assignment: Assignment | None = None


class ConsumerProtocol:
    """ConsumerGroupHeartbeat over the coordinator's group store."""

    def __init__(self, coordinator: GroupCoordinator) -> None:
        self.coordinator = coordinator
        self.config = coordinator.config
        self.broker = coordinator.broker

    def setting(self, group_id: str, name: str, default: int) -> int:
        """A group config (``consumer.session.timeout.ms``, ...) set on the group with
        IncrementalAlterConfigs, else the broker's ``group.``-prefixed default."""
        value = self.broker.dynamic_configs.groups.get(group_id, {}).get(name)
        try:
            return int(value) if value is not None else default
        except ValueError:
            return default

    @property
    def assignors(self) -> list[str]:
        return [a.strip() for a in self.config.group_consumer_assignors.split(",") if a.strip()]

    # -- the heartbeat ---------------------------------------------------------------------

    def heartbeat(self, req: HeartbeatRequest) -> HeartbeatResult:
        invalid = self._validate(req)
        if invalid is not None:
            return HeartbeatResult(ErrorCode.invalid_request, invalid)
        if req.server_assignor is not None and req.server_assignor not in self.assignors:
            return HeartbeatResult(
                ErrorCode.unsupported_assignor,
                f"Assignor {req.server_assignor} is not supported. "
                f"Supported assignors: {', '.join(self.assignors)}.",
            )
        if req.subscribed_topic_regex is not None:
            try:
                compile_regex(req.subscribed_topic_regex)
            except RegexError as exc:
                return HeartbeatResult(
                    ErrorCode.invalid_regular_expression,
                    f"SubscribedTopicRegex `{req.subscribed_topic_regex}` is not a valid "
                    f"regular expression: {exc}.",
                )
        group = self.coordinator.groups.get(req.group_id)
        if group is not None and group.share is not None:
            return HeartbeatResult(
                ErrorCode.group_id_not_found, f"Group {req.group_id} is not a consumer group."
            )
        if group is not None and group.consumer is None and group.members:
            # The first member of the consumer protocol in a classic group: a rolling upgrade.
            from nerve.broker.groups.classic_members import upgrade

            refused = upgrade(self, group) if req.member_epoch == 0 else None
            if refused is not None or req.member_epoch != 0:
                return HeartbeatResult(
                    ErrorCode.group_id_not_found,
                    refused or f"Group {req.group_id} is not a consumer group.",
                )
        if group is None or group.consumer is None:
            if req.member_epoch != 0:
                # A leave included: Kafka answers it with GROUP_ID_NOT_FOUND too.
                return HeartbeatResult(
                    ErrorCode.group_id_not_found, f"Consumer group {req.group_id} not found."
                )
            group = group or self.coordinator._new_group(req.group_id)
            group.consumer = ConsumerGroup()
        cg = group.consumer
        assert cg is not None
        if req.member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            return self._leave(group, cg, req)
        member, error = self._member_for(group, cg, req)
        if error is not None:
            return error
        assert member is not None
        joining = req.member_epoch == 0
        before = _frozen(member.assigned)
        changed = self._update_member(cg, member, req)
        self._keep_alive(group, member)
        if changed or self._metadata_changed(cg, joining):
            cg.group_epoch += 1
            self._persist(group, cg, members=[member])
        elif joining:
            self._persist(group, cg, members=[member])
        if cg.group_epoch > cg.assignment_epoch:
            self._assign(group, cg)
        self._reconcile(group, cg, member, req.owned)
        self.after_change(group, cg)
        # As Kafka: the partitions are sent when they change (an epoch bump alone is not).
        send = joining or _frozen(member.assigned) != before
        return HeartbeatResult(
            ErrorCode.none,
            member_id=member.member_id,
            member_epoch=member.member_epoch,
            heartbeat_interval_ms=self.setting(
                group.group_id,
                "consumer.heartbeat.interval.ms",
                self.config.group_consumer_heartbeat_interval_ms,
            ),
            assignment={t: set(p) for t, p in member.assigned.items()} if send else None,
        )

    @staticmethod
    def _validate(req: HeartbeatRequest) -> str | None:
        """Kafka's request checks; the text is what a client logs."""
        if not req.group_id:
            return "GroupId can't be empty."
        if req.instance_id is not None and not req.instance_id:
            return "InstanceId can't be empty."
        if req.rack_id is not None and not req.rack_id:
            return "RackId can't be empty."
        if req.member_epoch > 0 or req.member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            if not req.member_id:
                return "MemberId can't be empty."
        elif req.member_epoch == 0:
            if req.version >= 1 and not req.member_id:
                return "MemberId can't be empty."
            if req.rebalance_timeout_ms == -1:
                return "RebalanceTimeoutMs must be provided in first request."
            if req.owned is None or any(req.owned.values()):
                return "TopicPartitions must be empty when (re-)joining."
            if req.subscribed_topic_names is None and req.subscribed_topic_regex is None:
                return "SubscribedTopicNames or SubscribedTopicRegex must be set in first request."
        else:
            return f"MemberEpoch is invalid: {req.member_epoch}."
        if req.member_epoch == STATIC_LEAVE_EPOCH and req.instance_id is None:
            return "InstanceId can't be null."
        return None

    def _member_for(
        self, group: Group, cg: ConsumerGroup, req: HeartbeatRequest
    ) -> tuple[ConsumerMember | None, HeartbeatResult | None]:
        member_id = req.member_id or uuid.uuid4().hex
        if req.member_epoch == 0:
            if req.instance_id is not None:
                return self._static_join(group, cg, req, member_id)
            member = cg.members.get(member_id)
            if member is None:
                if len(cg.members) >= self.config.group_consumer_max_size:
                    return None, HeartbeatResult(
                        ErrorCode.group_max_size_reached,
                        f"The consumer group has reached its maximum capacity of "
                        f"{self.config.group_consumer_max_size} members.",
                    )
                member = ConsumerMember(member_id=member_id)
                cg.members[member_id] = member
            # A known member rejoining with epoch 0 gets its assignment again, as in Kafka.
            return member, None
        member = cg.members.get(member_id)
        if member is None:
            return None, HeartbeatResult(
                ErrorCode.unknown_member_id,
                f"Member {member_id} is not a member of group {req.group_id}.",
            )
        if req.instance_id is not None and cg.static_members.get(req.instance_id) != member_id:
            return None, HeartbeatResult(
                ErrorCode.fenced_instance_id,
                f"Static member {member_id} with instance id {req.instance_id} was fenced.",
            )
        if req.member_epoch > member.member_epoch:
            return None, self._fenced(member, req.member_epoch)
        if req.member_epoch < member.member_epoch:
            # A member whose previous heartbeat's answer was lost retries with its old epoch:
            # fine while what it owns is a subset of what it has now.
            lost_answer = req.member_epoch == member.previous_member_epoch and (
                req.owned is not None and _subset(req.owned, member.assigned)
            )
            if not lost_answer:
                return None, self._fenced(member, req.member_epoch)
        return member, None

    @staticmethod
    def _fenced(member: ConsumerMember, epoch: int) -> HeartbeatResult:
        return HeartbeatResult(
            ErrorCode.fenced_member_epoch,
            f"The consumer group member has a greater member epoch ({epoch}) than the one "
            f"known by the group coordinator ({member.member_epoch}). The member must abandon "
            "all its partitions and rejoin."
            if epoch > member.member_epoch
            else f"The consumer group member has a smaller member epoch ({epoch}) than the one "
            f"known by the group coordinator ({member.member_epoch}). The member must abandon "
            "all its partitions and rejoin.",
        )

    def _static_join(
        self, group: Group, cg: ConsumerGroup, req: HeartbeatRequest, member_id: str
    ) -> tuple[ConsumerMember | None, HeartbeatResult | None]:
        """KIP-345 for the consumer protocol: a static member that left with epoch -2 (or
        whose session is still open) comes back under a new member id with its assignment."""
        assert req.instance_id is not None
        old_id = cg.static_members.get(req.instance_id)
        old = cg.members.get(old_id) if old_id is not None else None
        if old is None:
            member = cg.members.get(member_id) or ConsumerMember(member_id=member_id)
            cg.members[member_id] = member
            cg.static_members[req.instance_id] = member_id
            return member, None
        if old.member_id == member_id:
            return old, None
        if not old.left_static and old.classic is None:
            # A classic holder is replaced at once, as classic static members are (Kafka).
            return None, HeartbeatResult(
                ErrorCode.unreleased_instance_id,
                f"Static member {old.member_id} with instance id {req.instance_id} is not "
                "released yet.",
            )
        replacement = self.replace_static_member(group, cg, old, member_id)
        if old.classic is None:
            replacement.member_epoch = old.member_epoch
            replacement.previous_member_epoch = old.previous_member_epoch
            replacement.state = old.state
            replacement.pending_revocation = old.pending_revocation
        return replacement, None

    def replace_static_member(
        self, group: Group, cg: ConsumerGroup, old: ConsumerMember, member_id: str
    ) -> ConsumerMember:
        """KIP-345: a static member's new instance takes the place of ``old`` under a new
        member id, with its subscription and partitions (its epoch starts again from 0, so
        it reconciles towards the target it takes over); ``old`` is fenced."""
        assert old.instance_id is not None
        self._cancel(old)
        del cg.members[old.member_id]
        self._tombstone_member(group, old.member_id)
        if old.classic is not None:
            from nerve.broker.groups.group import JoinResult

            self.answer_join(old, JoinResult(ErrorCode.fenced_instance_id))
        replacement = ConsumerMember(
            member_id=member_id,
            joined=True,
            instance_id=old.instance_id,
            subscribed_topic_names=old.subscribed_topic_names,
            subscribed_topic_regex=old.subscribed_topic_regex,
            server_assignor=old.server_assignor,
            rebalance_timeout_ms=old.rebalance_timeout_ms,
            member_epoch=0,
            previous_member_epoch=0,
            assigned=old.assigned,
        )
        cg.members[member_id] = replacement
        cg.static_members[old.instance_id] = member_id
        if old.member_id in cg.target:
            cg.target[member_id] = cg.target.pop(old.member_id)
        log.info(
            "group %s: static member %s came back as %s", group.group_id, old.instance_id, member_id
        )
        return replacement

    def _update_member(self, cg: ConsumerGroup, m: ConsumerMember, req: HeartbeatRequest) -> bool:
        """Apply what the heartbeat changes; True when the subscription changed."""
        m.client_id, m.client_host = req.client_id, req.client_host
        m.left_static = False
        changed = False
        if req.instance_id is not None:
            m.instance_id = req.instance_id
        if req.rack_id is not None:
            m.rack_id = req.rack_id
        if req.rebalance_timeout_ms > 0:
            m.rebalance_timeout_ms = req.rebalance_timeout_ms
        if req.subscribed_topic_names is not None:
            names = tuple(sorted(set(req.subscribed_topic_names)))
            if names != m.subscribed_topic_names:
                m.subscribed_topic_names = names
                changed = True
        if req.subscribed_topic_regex is not None:
            regex = req.subscribed_topic_regex or None
            if regex != m.subscribed_topic_regex:
                m.subscribed_topic_regex = regex
                cg.regex_checked = -1.0
                changed = True
        if req.server_assignor is not None and req.server_assignor != m.server_assignor:
            m.server_assignor = req.server_assignor or None
            changed = True
        if not m.joined:
            m.joined = True
            changed = True
        return changed

    def _metadata_changed(self, cg: ConsumerGroup, force: bool) -> bool:
        """Whether the subscribed topics' ids or partition counts moved since the target."""
        loop = asyncio.get_running_loop()
        regexes = {m.subscribed_topic_regex for m in cg.members.values()} - {None}
        # A regex no member subscribes to any more is forgotten (Kafka drops its resolution).
        cg.regex_matches = {r: t for r, t in cg.regex_matches.items() if r in regexes}
        if regexes and (force or loop.time() - cg.regex_checked >= REGEX_REFRESH_S):
            cg.regex_checked = loop.time()
            names = [n for n in self.broker.topics.topics if not n.startswith("__")]
            matches: dict[str, frozenset[str]] = {}
            for regex in regexes:
                assert regex is not None
                if regex not in cg.regex_matches:
                    # As Kafka, which resolves a new regex in the background: the heartbeat
                    # bringing it is answered without its topics; a heartbeat from
                    # REGEX_REFRESH_S on resolves it and bumps the epoch.
                    matches[regex] = frozenset()
                    continue
                try:
                    pattern = compile_regex(regex)
                except RegexError:
                    matches[regex] = frozenset()
                    continue
                matches[regex] = frozenset(n for n in names if pattern.fullmatch(n))
            cg.regex_matches = matches
        current: dict[str, tuple[uuid.UUID, int]] = {}
        for name in cg.subscribed_names():
            topic = self.broker.topics.get(name)
            if topic is not None and topic.partitions:
                current[name] = (topic.topic_id, len(topic.partitions))
        if current != cg.topics:
            cg.topics = current
            return True
        return False

    # -- target assignment -----------------------------------------------------------------

    def _assign(self, group: Group, cg: ConsumerGroup) -> None:
        self._metadata_changed(cg, False)
        name = cg.preferred_assignor(self.assignors[0] if self.assignors else "uniform")
        assignor = ASSIGNORS.get(name, ASSIGNORS["uniform"])
        by_name = {n: tid for n, (tid, _) in cg.topics.items()}
        specs = {}
        for member_id, m in cg.members.items():
            wanted = set(m.subscribed_topic_names)
            if m.subscribed_topic_regex is not None:
                wanted |= cg.regex_matches.get(m.subscribed_topic_regex, frozenset())
            specs[member_id] = MemberSpec(
                topics=frozenset(by_name[n] for n in wanted if n in by_name),
                current=cg.target.get(member_id, {}),
            )
        partitions = {tid: count for tid, count in cg.topics.values()}
        cg.target = {m: a for m, a in assignor(specs, partitions).items()}
        cg.assignment_epoch = cg.group_epoch
        self._persist_target(group, cg)
        log.info(
            "group %s epoch %d: %s assignment of %d partition(s) over %d member(s)",
            group.group_id,
            cg.group_epoch,
            name,
            sum(partitions.values()),
            len(cg.members),
        )

    # -- reconciliation --------------------------------------------------------------------

    def _owned_by_others(self, cg: ConsumerGroup, member: ConsumerMember) -> set[tuple]:
        taken: set[tuple[uuid.UUID, int]] = set()
        for other in cg.members.values():
            if other is member:
                continue
            for source in (other.assigned, other.pending_revocation):
                for topic, parts in source.items():
                    taken.update((topic, p) for p in parts)
        return taken

    def _reconcile(
        self, group: Group, cg: ConsumerGroup, m: ConsumerMember, owned: Assignment | None
    ) -> None:
        before = (m.member_epoch, m.state, _frozen(m.assigned), _frozen(m.pending_revocation))
        if m.state == MemberState.UNREVOKED_PARTITIONS:
            still = owned is None or any(
                owned.get(t, set()) & parts for t, parts in m.pending_revocation.items()
            )
            if not still:
                m.pending_revocation = {}
                self._cancel_revocation(m)
                self._advance(cg, m)
        elif m.member_epoch != cg.assignment_epoch or m.state != MemberState.STABLE:
            self._advance(cg, m)
        after = (m.member_epoch, m.state, _frozen(m.assigned), _frozen(m.pending_revocation))
        if after != before:
            self._persist_current(group, m)
            if m.state == MemberState.UNREVOKED_PARTITIONS and m.revocation_timer is None:
                self._arm_revocation(group, cg, m)

    def _advance(self, cg: ConsumerGroup, m: ConsumerMember) -> None:
        """One step towards the target (Kafka's CurrentAssignmentBuilder)."""
        target = cg.target.get(m.member_id, {})
        keep: Assignment = {}
        revoke: Assignment = {}
        for topic in set(m.assigned) | set(target):
            have = m.assigned.get(topic, set())
            goal = target.get(topic, set())
            if have & goal:
                keep[topic] = have & goal
            if have - goal:
                revoke[topic] = have - goal
        if revoke:
            m.state = MemberState.UNREVOKED_PARTITIONS
            m.assigned = keep
            m.pending_revocation = revoke
            return
        taken = self._owned_by_others(cg, m)
        unreleased = False
        assigned: Assignment = {}
        for topic, goal in target.items():
            free = {p for p in goal if (topic, p) not in taken}
            unreleased = unreleased or len(free) < len(goal)
            if free:
                assigned[topic] = free
        if m.member_epoch != cg.assignment_epoch:
            m.previous_member_epoch = m.member_epoch
            m.member_epoch = cg.assignment_epoch
        m.assigned = assigned
        m.pending_revocation = {}
        m.state = MemberState.UNRELEASED_PARTITIONS if unreleased else MemberState.STABLE

    # -- leaving and timers ----------------------------------------------------------------

    def _leave(self, group: Group, cg: ConsumerGroup, req: HeartbeatRequest) -> HeartbeatResult:
        member = cg.members.get(req.member_id)
        if member is None and req.instance_id is not None:
            found = cg.static_members.get(req.instance_id)
            member = cg.members.get(found) if found is not None else None
        if member is None:
            return HeartbeatResult(
                ErrorCode.unknown_member_id,
                f"Member {req.member_id} is not a member of group {req.group_id}.",
            )
        if req.instance_id is not None and cg.static_members.get(req.instance_id) != (
            member.member_id
        ):
            return HeartbeatResult(
                ErrorCode.fenced_instance_id,
                f"Static member {req.member_id} with instance id {req.instance_id} was fenced.",
            )
        if req.member_epoch == STATIC_LEAVE_EPOCH:
            # The static member restarts: keep its place and partitions for its session.
            member.left_static = True
            self._keep_alive(group, member)
            log.info("group %s: static member %s is away", group.group_id, member.instance_id)
            return HeartbeatResult(
                ErrorCode.none, member_id=member.member_id, member_epoch=STATIC_LEAVE_EPOCH
            )
        self.remove_member(group, cg, member, "left the group")
        return HeartbeatResult(ErrorCode.none, member_id=member.member_id, member_epoch=LEAVE_EPOCH)

    def remove_member(
        self, group: Group, cg: ConsumerGroup, member: ConsumerMember, reason: str
    ) -> None:
        self._cancel(member)
        cg.members.pop(member.member_id, None)
        cg.target.pop(member.member_id, None)
        regexes = {m.subscribed_topic_regex for m in cg.members.values()}
        cg.regex_matches = {r: t for r, t in cg.regex_matches.items() if r in regexes}
        if member.instance_id is not None and cg.static_members.get(member.instance_id) == (
            member.member_id
        ):
            del cg.static_members[member.instance_id]
        log.info("group %s: member %s %s", group.group_id, member.member_id, reason)
        self._tombstone_member(group, member.member_id)
        if member.classic is not None:
            self.answer_join(member, None)
        from nerve.broker.groups.classic_members import downgrade, downgrade_allowed

        if downgrade_allowed(self, group.group_id, cg):
            # Only classic members are left: the group becomes a classic group again.
            downgrade(self, group)
            return
        cg.group_epoch += 1
        self._persist(group, cg, members=[])
        if cg.members:
            # Its partitions go to the others at their next heartbeats.
            self._assign(group, cg)
            self.after_change(group, cg)
        else:
            group.state_timestamp = self.coordinator.now_ms()  # offsets expire from here

    def _keep_alive(self, group: Group, member: ConsumerMember) -> None:
        loop = asyncio.get_running_loop()
        session_ms = self.setting(
            group.group_id,
            "consumer.session.timeout.ms",
            self.config.group_consumer_session_timeout_ms,
        )
        if member.classic is not None:
            session_ms = member.classic.session_timeout_ms
        member.session_deadline = loop.time() + session_ms / 1000
        if member.session_timer is None:
            member.session_timer = loop.call_at(
                member.session_deadline, self._check_session, group, member
            )

    def _check_session(self, group: Group, member: ConsumerMember) -> None:
        member.session_timer = None
        cg = group.consumer
        if cg is None or cg.members.get(member.member_id) is not member:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < member.session_deadline:
            member.session_timer = loop.call_at(
                member.session_deadline, self._check_session, group, member
            )
            return
        self.remove_member(group, cg, member, "timed out without a heartbeat")

    def _arm_revocation(self, group: Group, cg: ConsumerGroup, member: ConsumerMember) -> None:
        def expired() -> None:
            member.revocation_timer = None
            if (
                cg.members.get(member.member_id) is member
                and member.state == MemberState.UNREVOKED_PARTITIONS
            ):
                self.remove_member(
                    group,
                    cg,
                    member,
                    f"did not revoke its partitions within {member.rebalance_timeout_ms} ms",
                )

        member.revocation_timer = asyncio.get_running_loop().call_later(
            member.rebalance_timeout_ms / 1000, expired
        )

    @staticmethod
    def _cancel_revocation(member: ConsumerMember) -> None:
        if member.revocation_timer is not None:
            member.revocation_timer.cancel()
            member.revocation_timer = None

    def _cancel(self, member: ConsumerMember) -> None:
        self._cancel_revocation(member)
        if member.classic is not None and member.classic.join_timer is not None:
            member.classic.join_timer.cancel()
            member.classic.join_timer = None
        if member.session_timer is not None:
            member.session_timer.cancel()
            member.session_timer = None

    def cancel_timers(self, cg: ConsumerGroup) -> None:
        for member in cg.members.values():
            self._cancel(member)

    def start_timers(self, group: Group) -> None:
        """After a restart every member gets a full session to come back."""
        assert group.consumer is not None
        for member in group.consumer.members.values():
            self._keep_alive(group, member)

    # -- classic members (hooks of classic_members.py) -------------------------------------

    def after_change(self, group: Group, cg: ConsumerGroup) -> None:
        """Classic members waiting in JoinGroup for released partitions are answered."""
        from nerve.broker.groups.classic_members import complete_waiting_joins

        complete_waiting_joins(self, group, cg)

    @staticmethod
    def answer_join(member: ConsumerMember, result: Any) -> None:
        classic = member.classic
        if classic is None:
            return
        if classic.join_timer is not None:
            classic.join_timer.cancel()
            classic.join_timer = None
        waiter, classic.join_waiter = classic.join_waiter, None
        if waiter is not None and not waiter.done():
            from nerve.broker.groups.group import JoinResult

            waiter.set_result(result or JoinResult(ErrorCode.unknown_member_id))

    # -- offsets ---------------------------------------------------------------------------

    def commit_error(
        self, cg: ConsumerGroup, member_id: str, epoch: int, version: int
    ) -> ErrorCode | None:
        """OffsetCommit against a consumer group: from v9 the member epoch is checked."""
        if epoch < 0 and not member_id:
            # Outside group management (an admin, assign mode): only while nobody consumes.
            return None if not cg.members else ErrorCode.unknown_member_id
        member = cg.members.get(member_id)
        if member is None:
            return ErrorCode.unknown_member_id
        if member.classic is not None:
            # A classic member commits with its generation, which is its member epoch.
            return None if epoch == member.member_epoch else ErrorCode.illegal_generation
        if version < 9:
            return ErrorCode.unsupported_version
        if epoch != member.member_epoch:
            return ErrorCode.stale_member_epoch  # older or newer alike, as Kafka 4.4
        return None

    def fetch_error(self, cg: ConsumerGroup, member_id: str | None, epoch: int) -> ErrorCode | None:
        """OffsetFetch v9+ by a member: its epoch must be current."""
        if member_id is None or epoch < 0:
            return None
        member = cg.members.get(member_id)
        if member is None:
            return ErrorCode.unknown_member_id
        if epoch != member.member_epoch:
            return ErrorCode.stale_member_epoch
        return None

    # -- persistence -----------------------------------------------------------------------

    def _write(self, group: Group, pairs: list[tuple[bytes | None, bytes | None]]) -> None:
        # As the classic group's metadata: losing it costs the members a rejoin after a
        # restart, so the group goes on in memory when the disk refuses it (logged).
        self.coordinator._append_or_refuse(group.group_id, pairs, "consumer group state")

    def _persist(self, group: Group, cg: ConsumerGroup, members: list[ConsumerMember]) -> None:
        pairs: list[tuple[bytes | None, bytes | None]] = []
        for m in members:
            value = offsets_records.ConsumerMemberValue(
                instance_id=m.instance_id,
                rack_id=m.rack_id,
                client_id=m.client_id,
                client_host=m.client_host,
                subscribed_topic_names=list(m.subscribed_topic_names),
                subscribed_topic_regex=m.subscribed_topic_regex,
                rebalance_timeout_ms=m.rebalance_timeout_ms,
                server_assignor=m.server_assignor,
            )
            key = _key(offsets_records.CONSUMER_GROUP_MEMBER_METADATA, group, m.member_id)
            pairs.append((key, offsets_records.encode_member_value(value)))
        pairs.append(
            (
                _key(offsets_records.CONSUMER_GROUP_METADATA, group),
                offsets_records.encode_consumer_group_value(cg.group_epoch),
            )
        )
        self._write(group, pairs)

    def _persist_target(self, group: Group, cg: ConsumerGroup) -> None:
        pairs: list[tuple[bytes | None, bytes | None]] = [
            (
                _key(offsets_records.CONSUMER_GROUP_TARGET_MEMBER, group, member_id),
                offsets_records.encode_target_member_value(_encode_assignment(assignment)),
            )
            for member_id, assignment in cg.target.items()
        ]
        pairs.append(
            (
                _key(offsets_records.CONSUMER_GROUP_TARGET_METADATA, group),
                offsets_records.encode_target_metadata_value(cg.assignment_epoch),
            )
        )
        self._write(group, pairs)

    def _persist_current(self, group: Group, m: ConsumerMember) -> None:
        value = offsets_records.ConsumerCurrentValue(
            member_epoch=m.member_epoch,
            previous_member_epoch=m.previous_member_epoch,
            state=int(m.state),
            assigned=_encode_assignment(m.assigned),
            pending_revocation=_encode_assignment(m.pending_revocation),
        )
        key = _key(offsets_records.CONSUMER_GROUP_CURRENT_MEMBER, group, m.member_id)
        self._write(group, [(key, offsets_records.encode_current_value(value))])

    def _tombstone_member(self, group: Group, member_id: str) -> None:
        self._write(
            group,
            [
                (_key(kind, group, member_id), None)
                for kind in (
                    offsets_records.CONSUMER_GROUP_CURRENT_MEMBER,
                    offsets_records.CONSUMER_GROUP_TARGET_MEMBER,
                    offsets_records.CONSUMER_GROUP_MEMBER_METADATA,
                )
            ],
        )

    @staticmethod
    def tombstones(group: Group) -> list[tuple[bytes | None, bytes | None]]:
        """Every record of a consumer group, deleted (DeleteGroups, expiry)."""
        cg = group.consumer
        assert cg is not None
        pairs: list[tuple[bytes | None, bytes | None]] = []
        for member_id in set(cg.members) | set(cg.target):
            for kind in (
                offsets_records.CONSUMER_GROUP_CURRENT_MEMBER,
                offsets_records.CONSUMER_GROUP_TARGET_MEMBER,
                offsets_records.CONSUMER_GROUP_MEMBER_METADATA,
            ):
                pairs.append((_key(kind, group, member_id), None))
        for kind in (
            offsets_records.CONSUMER_GROUP_TARGET_METADATA,
            offsets_records.CONSUMER_GROUP_METADATA,
        ):
            pairs.append((_key(kind, group), None))
        return pairs

    @staticmethod
    def apply(group: Group, key: offsets_records.ConsumerKey, value: bytes | None) -> None:
        """Replay one record of the offsets topic into the group (at start)."""
        if group.consumer is None:
            group.consumer = ConsumerGroup()
        cg = group.consumer
        kind = key.record_type
        if kind == offsets_records.CONSUMER_GROUP_METADATA:
            if value is None:
                group.consumer = None
            else:
                cg.group_epoch = offsets_records.decode_epoch_value(value)
            return
        if kind == offsets_records.CONSUMER_GROUP_TARGET_METADATA:
            if value is not None:
                cg.assignment_epoch = offsets_records.decode_epoch_value(value)
            return
        if kind == offsets_records.CONSUMER_GROUP_PARTITION_METADATA:
            return
        if value is None:
            if kind == offsets_records.CONSUMER_GROUP_MEMBER_METADATA:
                gone = cg.members.pop(key.member, None)
                if gone is not None and gone.instance_id is not None:
                    cg.static_members.pop(gone.instance_id, None)
            elif kind == offsets_records.CONSUMER_GROUP_TARGET_MEMBER:
                cg.target.pop(key.member, None)
            return
        if kind == offsets_records.CONSUMER_GROUP_TARGET_MEMBER:
            cg.target[key.member] = _decode_assignment(
                offsets_records.decode_target_member_value(value)
            )
            return
        member = cg.members.get(key.member)
        if member is None:
            member = cg.members[key.member] = ConsumerMember(member_id=key.member, joined=True)
        if kind == offsets_records.CONSUMER_GROUP_MEMBER_METADATA:
            meta = offsets_records.decode_member_value(value)
            member.instance_id = meta.instance_id
            member.rack_id = meta.rack_id
            member.client_id = meta.client_id
            member.client_host = meta.client_host
            member.subscribed_topic_names = tuple(meta.subscribed_topic_names)
            member.subscribed_topic_regex = meta.subscribed_topic_regex
            member.rebalance_timeout_ms = meta.rebalance_timeout_ms
            member.server_assignor = meta.server_assignor
            if meta.instance_id is not None:
                cg.static_members[meta.instance_id] = key.member
        elif kind == offsets_records.CONSUMER_GROUP_CURRENT_MEMBER:
            current = offsets_records.decode_current_value(value)
            member.member_epoch = current.member_epoch
            member.previous_member_epoch = current.previous_member_epoch
            member.state = (
                MemberState(current.state) if current.state in (1, 2, 3) else (MemberState.STABLE)
            )
            member.assigned = _decode_assignment(current.assigned)
            member.pending_revocation = _decode_assignment(current.pending_revocation)


def _key(kind: int, group: Group, member: str = "") -> bytes:
    return offsets_records.encode_consumer_key(
        offsets_records.ConsumerKey(kind, group.group_id, member)
    )


def _encode_assignment(assignment: Assignment) -> offsets_records.TopicPartitions:
    return [(t.bytes, sorted(p)) for t, p in sorted(assignment.items()) if p]


def _decode_assignment(partitions: offsets_records.TopicPartitions) -> Assignment:
    return {uuid.UUID(bytes=t): set(p) for t, p in partitions if p}


def _frozen(assignment: Assignment) -> frozenset[tuple[uuid.UUID, int]]:
    return frozenset((t, p) for t, parts in assignment.items() for p in parts)


def _subset(owned: Assignment, assigned: Assignment) -> bool:
    return all(parts <= assigned.get(t, set()) for t, parts in owned.items())
