"""The group coordinator: Kafka's classic group protocol and committed offsets.

Members join (JoinGroup), the coordinator waits for every known member to rejoin or for the
rebalance timeout, bumps the generation, picks a protocol and a leader and answers every join;
the leader computes the assignment and hands it back (SyncGroup), which the coordinator passes
to each member. Heartbeats keep members alive and tell them when to rejoin. The rules follow
Kafka's own coordinator (KIP-62 rebalance timeouts, KIP-134 initial delay, KIP-345 static
members, KIP-394 member ids, KIP-211 offset expiry); the assignment itself is computed by the
clients, so eager and cooperative rebalancing both work unchanged.

State lives in the compacted ``__consumer_offsets`` topic (``records.py``), written on every
commit and generation change and replayed at start. A single asyncio loop runs it all, so no
locks: every method runs to completion before another request is looked at.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nerve.broker import internal_topics
from nerve.broker.errors import ErrorCode
from nerve.broker.groups import classic_members
from nerve.broker.groups import records as offsets_records
from nerve.broker.groups.consumer import ConsumerProtocol
from nerve.broker.groups.group import (
    CommittedOffset,
    Group,
    GroupState,
    JoinResult,
    Member,
    SyncResult,
)
from nerve.broker.groups.share import ShareProtocol
from nerve.broker.log.log import read_marker
from nerve.protocol import records

if TYPE_CHECKING:
    from nerve.broker.server import Broker
    from nerve.broker.topics import Topic

log = logging.getLogger("nerve.broker.groups")

OFFSETS_TOPIC = "__consumer_offsets"


@dataclass
class JoinRequest:
    group_id: str
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    require_known_member_id: bool  # JoinGroup v4+ (KIP-394)
    reason: str | None = None
    supports_skip_assignment: bool = False  # JoinGroup v9+ (KIP-814)


@dataclass
class OffsetCommit:
    topic: str
    partition: int
    offset: int
    leader_epoch: int
    metadata: str | None


class GroupCoordinator:
    """All groups of this broker, their timers, and their records in ``__consumer_offsets``."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.config = broker.config
        self.groups: dict[str, Group] = {}
        self._offsets_topic: Topic | None = None
        self._expiry_task: asyncio.Task[None] | None = None
        # Offsets committed inside open transactions, by producer id: visible once the
        # transaction commits (its marker reaches the offsets topic), dropped if it aborts.
        self.pending_txn: dict[int, dict[tuple[str, str, int], CommittedOffset]] = {}
        # The consumer group protocol (KIP-848) over the same groups and offsets.
        self.consumer = ConsumerProtocol(self)
        self.share = ShareProtocol(self)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Create the offsets topic if needed, replay it, and start the offset expiry task."""
        topic = internal_topics.ensure(
            self.broker,
            OFFSETS_TOPIC,
            self.config.offsets_topic_num_partitions,
            self.config.offsets_topic_segment_bytes,
        )
        self._offsets_topic = topic
        loaded = self._load(topic)
        self.share.start()
        internal_topics.report_damage(topic, _group_of_key, "groups")
        loop = asyncio.get_running_loop()
        for group in self.groups.values():
            for member in group.members.values():
                self._keep_alive(group, member)
            if group.consumer is not None:
                self.consumer.start_timers(group)
        if loaded:
            log.info("loaded %d group(s) from %s", len(self.groups), OFFSETS_TOPIC)
        self._expiry_task = loop.create_task(self._expiry_loop())

    async def stop(self) -> None:
        if self._expiry_task is not None:
            self._expiry_task.cancel()
        for group in self.groups.values():
            self._cancel_timers(group)
            if group.consumer is not None:
                self.consumer.cancel_timers(group.consumer)
            if group.share is not None:
                self.share.cancel_timers(group.share)

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    def _new_group(self, group_id: str) -> Group:
        group = Group(group_id=group_id, state_timestamp=self.now_ms())
        self.groups[group_id] = group
        return group

    # -- JoinGroup -------------------------------------------------------------------------

    def join(self, req: JoinRequest) -> JoinResult | asyncio.Future[JoinResult]:
        if not req.group_id:
            return JoinResult(ErrorCode.invalid_group_id)
        if not (
            self.config.group_min_session_timeout_ms
            <= req.session_timeout_ms
            <= self.config.group_max_session_timeout_ms
        ):
            return JoinResult(ErrorCode.invalid_session_timeout)
        group = self.groups.get(req.group_id)
        if group is None:
            if req.member_id:
                return JoinResult(ErrorCode.unknown_member_id)
            group = self._new_group(req.group_id)
        if group.is_(GroupState.DEAD):
            return JoinResult(ErrorCode.coordinator_not_available)
        if group.share is not None:
            return JoinResult(ErrorCode.inconsistent_group_protocol)
        if group.consumer is not None:
            if group.consumer.members:
                # A classic member of a consumer group (KIP-848's migration path).
                return classic_members.classic_join(self.consumer, group, req)
            self._to_classic(group)
        if not group.supports(req.protocol_type, req.protocols):
            return JoinResult(ErrorCode.inconsistent_group_protocol)
        if not self._accepts(group, req.member_id):
            self._refuse_over_max_size(group, req.member_id)
            return JoinResult(ErrorCode.group_max_size_reached)
        if not req.member_id:
            if req.group_instance_id:
                return self._join_static_without_id(group, req)
            member_id = f"{req.client_id}-{uuid.uuid4()}"
            if req.require_known_member_id:
                # KIP-394: hand out the id and wait for the member to join with it, so that a
                # client that retries a timed-out join does not leave a ghost member behind.
                loop = asyncio.get_running_loop()
                group.pending_members[member_id] = loop.call_later(
                    req.session_timeout_ms / 1000, self._expire_pending, group, member_id
                )
                return JoinResult(ErrorCode.member_id_required, member_id=member_id)
            return self._add_member(group, member_id, req)
        if req.member_id in group.pending_members:
            group.pending_members.pop(req.member_id).cancel()
            return self._add_member(group, req.member_id, req)
        member = group.members.get(req.member_id)
        fenced = self._fenced(group, req.member_id, req.group_instance_id)
        if fenced is not None:
            return JoinResult(fenced)
        if member is None:
            return JoinResult(ErrorCode.unknown_member_id)
        if group.is_(GroupState.PREPARING_REBALANCE):
            return self._update_member(group, member, req, "member rejoined")
        if group.is_(GroupState.COMPLETING_REBALANCE):
            if member.protocols == req.protocols:
                # A retried join of this generation: answer it again.
                return self._join_result(group, member)
            return self._update_member(group, member, req, "member changed its subscription")
        if group.is_(GroupState.STABLE):
            if member.member_id == group.leader:
                return self._update_member(group, member, req, "leader rejoined")
            if member.protocols != req.protocols:
                return self._update_member(group, member, req, "member changed its subscription")
            return self._join_result(group, member)
        return JoinResult(ErrorCode.unknown_member_id)

    def _accepts(self, group: Group, member_id: str) -> bool:
        """``group.max.size``, counted as Kafka counts it: while a rebalance gathers members,
        by the members already waiting in it (so that, the limit lowered, the last to rejoin
        are the ones left out); otherwise by the members the group has. Members already in
        are always accepted once the group is empty or settled."""
        limit = self.config.group_max_size
        if group.is_(GroupState.EMPTY) or group.is_(GroupState.DEAD):
            return True
        member = group.members.get(member_id) if member_id else None
        if group.is_(GroupState.PREPARING_REBALANCE):
            waiting = sum(1 for m in group.members.values() if m.awaiting_join)
            return (member is not None and member.awaiting_join) or waiting < limit
        return member is not None or len(group.members) < limit

    def _refuse_over_max_size(self, group: Group, member_id: str) -> None:
        """A member refused for the group's size leaves it (Kafka removes it too), so the
        rebalance in progress does not wait for it."""
        member = group.members.get(member_id) if member_id else None
        log.warning(
            "group %s: member %s refused: the group has reached group.max.size (%d)",
            group.group_id,
            member_id or "(new)",
            self.config.group_max_size,
        )
        if member is not None:
            self._remove_member_and_rebalance(group, member, "member over group.max.size")

    def _to_classic(self, group: Group) -> None:
        """An empty consumer group becomes a classic group again (offsets kept)."""
        self._append_or_refuse(
            group.group_id, self.consumer.tombstones(group), "the end of its consumer state"
        )
        group.consumer = None
        log.info("group %s: empty consumer group now used by the classic protocol", group.group_id)

    def _join_static_without_id(
        self, group: Group, req: JoinRequest
    ) -> JoinResult | asyncio.Future[JoinResult]:
        """KIP-345: a static member (re)starting takes over its instance id's place."""
        assert req.group_instance_id is not None
        new_id = f"{req.group_instance_id}-{uuid.uuid4()}"
        old_id = group.static_members.get(req.group_instance_id)
        old = group.members.get(old_id) if old_id is not None else None
        if old is None:
            return self._add_member(group, new_id, req)
        # Fence the previous incarnation: its pending calls and later requests are refused.
        self._answer_join(old, JoinResult(ErrorCode.fenced_instance_id, member_id=old.member_id))
        self._answer_sync(old, SyncResult(ErrorCode.fenced_instance_id))
        del group.members[old.member_id]
        old.member_id = new_id
        group.members[new_id] = old
        group.static_members[req.group_instance_id] = new_id
        was_leader = group.leader == old_id
        if was_leader:
            group.leader = new_id
        log.info(
            "group %s: static member %s restarted as %s",
            group.group_id,
            req.group_instance_id,
            new_id,
        )
        self._keep_alive(group, old)
        if group.is_(GroupState.STABLE):
            previous = list(old.protocols)
            old.protocols = list(req.protocols)
            if group.select_protocol() == group.protocol:
                # As Kafka: the group's protocol stays, so no rebalance; the member gets its
                # assignment back in SyncGroup. A restarted leader must not compute a new
                # assignment, which a stable group would not hand out: from JoinGroup v9 it is
                # told it leads with skip_assignment (KIP-814), before that the answer names
                # the old leader id, so that it thinks it follows.
                old.session_timeout_ms = req.session_timeout_ms
                old.rebalance_timeout_ms = req.rebalance_timeout_ms
                old.client_id = req.client_id
                old.client_host = req.client_host
                self._persist_group(group)
                result = self._join_result(group, old)
                if not was_leader:
                    return result
                if req.supports_skip_assignment:
                    return result._replace(skip_assignment=True)
                return result._replace(leader=old_id or "", members=())
            old.protocols = previous
        return self._update_member(group, old, req, "static member restarted")

    def _add_member(
        self, group: Group, member_id: str, req: JoinRequest
    ) -> asyncio.Future[JoinResult]:
        member = Member(
            member_id=member_id,
            group_instance_id=req.group_instance_id,
            client_id=req.client_id,
            client_host=req.client_host,
            session_timeout_ms=req.session_timeout_ms,
            rebalance_timeout_ms=req.rebalance_timeout_ms,
            protocol_type=req.protocol_type,
            protocols=list(req.protocols),
        )
        if not group.members:
            group.protocol_type = req.protocol_type
        group.members[member_id] = member
        if req.group_instance_id:
            group.static_members[req.group_instance_id] = member_id
        if group.leader is None or group.leader not in group.members:
            group.leader = member_id
        group.new_member_added = True
        waiter = self._await_join(member)
        self._keep_alive(group, member)
        self._rebalance_or_try_complete(group, f"member {member_id} joined")
        return waiter

    def _update_member(
        self, group: Group, member: Member, req: JoinRequest, reason: str
    ) -> asyncio.Future[JoinResult]:
        member.protocols = list(req.protocols)
        member.session_timeout_ms = req.session_timeout_ms
        member.rebalance_timeout_ms = req.rebalance_timeout_ms
        member.client_id = req.client_id
        member.client_host = req.client_host
        waiter = self._await_join(member)
        self._keep_alive(group, member)
        self._rebalance_or_try_complete(group, reason)
        return waiter

    def _await_join(self, member: Member) -> asyncio.Future[JoinResult]:
        # A join retried while the first is still waiting replaces it; the first connection
        # is gone or has given up on it.
        self._answer_join(member, JoinResult(ErrorCode.rebalance_in_progress))
        member.join_waiter = asyncio.get_running_loop().create_future()
        return member.join_waiter

    def _rebalance_or_try_complete(self, group: Group, reason: str) -> None:
        if group.is_(GroupState.PREPARING_REBALANCE):
            self._try_complete_join(group)
        else:
            self._prepare_rebalance(group, reason)

    def _join_result(self, group: Group, member: Member) -> JoinResult:
        members: tuple[tuple[str, str | None, bytes], ...] = ()
        if member.member_id == group.leader:
            members = tuple(
                (m.member_id, m.group_instance_id, m.metadata_for(group.protocol))
                for m in group.members.values()
            )
        return JoinResult(
            ErrorCode.none,
            generation=group.generation,
            protocol_type=group.protocol_type,
            protocol_name=group.protocol,
            leader=group.leader or "",
            member_id=member.member_id,
            members=members,
        )

    # -- rebalancing -----------------------------------------------------------------------

    def _prepare_rebalance(self, group: Group, reason: str) -> None:
        if group.is_(GroupState.COMPLETING_REBALANCE):
            for member in group.members.values():
                self._answer_sync(member, SyncResult(ErrorCode.rebalance_in_progress))
        self._cancel_timer(group, "sync_timer")
        self._cancel_timer(group, "join_timer")
        was_empty = group.is_(GroupState.EMPTY)
        self._set_state(group, GroupState.PREPARING_REBALANCE)
        loop = asyncio.get_running_loop()
        timeout_ms = group.rebalance_timeout_ms
        if was_empty:
            # KIP-134: wait a little for more members before the first generation, so that a
            # group of N starting replicas settles in one rebalance, not N.
            delay = min(self.config.group_initial_rebalance_delay_ms, timeout_ms)
            group.new_member_added = False
            group.initial_delay = True
            group.join_timer = loop.call_later(
                delay / 1000, self._initial_delay_expired, group, max(timeout_ms - delay, 0)
            )
        else:
            group.initial_delay = False
            group.join_timer = loop.call_later(timeout_ms / 1000, self._complete_join, group)
        log.info(
            "group %s rebalancing (generation %d): %s", group.group_id, group.generation, reason
        )
        self._try_complete_join(group)

    def _initial_delay_expired(self, group: Group, remaining_ms: int) -> None:
        group.join_timer = None
        if group.new_member_added and remaining_ms > 0:
            group.new_member_added = False
            delay = min(self.config.group_initial_rebalance_delay_ms, remaining_ms)
            group.join_timer = asyncio.get_running_loop().call_later(
                delay / 1000, self._initial_delay_expired, group, remaining_ms - delay
            )
            return
        group.initial_delay = False
        self._complete_join(group)

    def _try_complete_join(self, group: Group) -> None:
        if (
            group.is_(GroupState.PREPARING_REBALANCE)
            and not group.initial_delay
            and group.all_members_rejoined()
        ):
            self._complete_join(group)

    def _complete_join(self, group: Group) -> None:
        self._cancel_timer(group, "join_timer")
        group.initial_delay = False
        if not group.is_(GroupState.PREPARING_REBALANCE):
            return
        for member in list(group.members.values()):
            # Dynamic members that did not rejoin in time are out; static ones keep their
            # place until their session times out (KIP-345).
            if not member.awaiting_join and member.group_instance_id is None:
                self._remove_member(group, member)
        if not group.members:
            group.generation += 1
            group.protocol = None
            group.leader = None
            self._set_state(group, GroupState.EMPTY)
            self._persist_group(group)
            log.info("group %s is empty (generation %d)", group.group_id, group.generation)
            return
        leader = group.members.get(group.leader or "")
        if leader is None or not leader.awaiting_join:
            joined = [m for m in group.members.values() if m.awaiting_join]
            group.leader = (joined or list(group.members.values()))[0].member_id
        group.generation += 1
        group.protocol = group.select_protocol()
        self._set_state(group, GroupState.COMPLETING_REBALANCE)
        for member in group.members.values():
            if member.awaiting_join:
                self._answer_join(member, self._join_result(group, member))
            self._keep_alive(group, member)
        group.sync_timer = asyncio.get_running_loop().call_later(
            group.rebalance_timeout_ms / 1000, self._sync_expired, group, group.generation
        )
        log.info(
            "group %s generation %d: %d member(s), protocol %s, leader %s",
            group.group_id,
            group.generation,
            len(group.members),
            group.protocol,
            group.leader,
        )

    def _sync_expired(self, group: Group, generation: int) -> None:
        """The leader never sent the assignment: drop who did not sync and rebalance."""
        group.sync_timer = None
        if not group.is_(GroupState.COMPLETING_REBALANCE) or group.generation != generation:
            return
        for member in list(group.members.values()):
            if not member.awaiting_sync:
                self._remove_member(group, member)
        self._prepare_rebalance(group, "members did not sync within the rebalance timeout")

    # -- SyncGroup -------------------------------------------------------------------------

    def sync(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: Sequence[tuple[str, bytes]],
    ) -> SyncResult | asyncio.Future[SyncResult]:
        group = self.groups.get(group_id)
        if group is None:
            return SyncResult(ErrorCode.unknown_member_id)
        if group.consumer is not None:
            return classic_members.classic_sync(
                self.consumer, group, generation, member_id, protocol_type, protocol_name
            )
        fenced = self._fenced(group, member_id, group_instance_id)
        if fenced is not None:
            return SyncResult(fenced)
        member = group.members.get(member_id)
        if member is None:
            return SyncResult(ErrorCode.unknown_member_id)
        if generation != group.generation:
            return SyncResult(ErrorCode.illegal_generation)
        if (protocol_type is not None and protocol_type != group.protocol_type) or (
            protocol_name is not None and protocol_name != group.protocol
        ):
            return SyncResult(ErrorCode.inconsistent_group_protocol)
        if group.is_(GroupState.EMPTY, GroupState.DEAD):
            return SyncResult(ErrorCode.unknown_member_id)
        if group.is_(GroupState.PREPARING_REBALANCE):
            return SyncResult(ErrorCode.rebalance_in_progress)
        if group.is_(GroupState.STABLE):
            self._keep_alive(group, member)
            return SyncResult(
                ErrorCode.none, group.protocol_type, group.protocol, member.assignment
            )
        # CompletingRebalance: wait for the leader's assignment.
        self._answer_sync(member, SyncResult(ErrorCode.rebalance_in_progress))
        waiter: asyncio.Future[SyncResult] = asyncio.get_running_loop().create_future()
        member.sync_waiter = waiter
        self._keep_alive(group, member)
        if member_id == group.leader:
            assigned = dict(assignments)
            for m in group.members.values():
                m.assignment = assigned.get(m.member_id, b"")
            self._cancel_timer(group, "sync_timer")
            self._set_state(group, GroupState.STABLE)
            self._persist_group(group)
            for m in group.members.values():
                self._answer_sync(
                    m, SyncResult(ErrorCode.none, group.protocol_type, group.protocol, m.assignment)
                )
            log.info("group %s stable at generation %d", group.group_id, group.generation)
        return waiter

    # -- Heartbeat and LeaveGroup ----------------------------------------------------------

    def heartbeat(
        self, group_id: str, generation: int, member_id: str, group_instance_id: str | None
    ) -> ErrorCode:
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.unknown_member_id
        if group.consumer is not None:
            return classic_members.classic_heartbeat(self.consumer, group, generation, member_id)
        fenced = self._fenced(group, member_id, group_instance_id)
        if fenced is not None:
            return fenced
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.unknown_member_id
        if generation != group.generation:
            return ErrorCode.illegal_generation
        if group.is_(GroupState.EMPTY):
            return ErrorCode.unknown_member_id
        if group.is_(GroupState.DEAD):
            return ErrorCode.coordinator_not_available
        self._keep_alive(group, member)
        if group.is_(GroupState.PREPARING_REBALANCE):
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    def leave(
        self, group_id: str, leaving: Sequence[tuple[str, str | None]]
    ) -> list[tuple[str, str | None, ErrorCode]]:
        """Remove members; returns (member id, instance id, error) for each one asked for."""
        group = self.groups.get(group_id)
        if group is not None and group.consumer is not None:
            return classic_members.classic_leave(self.consumer, group, leaving)
        out: list[tuple[str, str | None, ErrorCode]] = []
        for member_id, instance_id in leaving:
            if group is None:
                out.append((member_id, instance_id, ErrorCode.unknown_member_id))
                continue
            if not member_id and instance_id:
                # An admin removing a static member by its instance id (KIP-345).
                member_id = group.static_members.get(instance_id, "")
            fenced = self._fenced(group, member_id, instance_id)
            if fenced is not None:
                out.append((member_id, instance_id, fenced))
                continue
            if member_id in group.pending_members:
                group.pending_members.pop(member_id).cancel()
                self._try_complete_join(group)
                out.append((member_id, instance_id, ErrorCode.none))
                continue
            member = group.members.get(member_id)
            if member is None:
                out.append((member_id, instance_id, ErrorCode.unknown_member_id))
                continue
            self._remove_member_and_rebalance(group, member, f"member {member_id} left")
            out.append((member_id, instance_id, ErrorCode.none))
        return out

    def _fenced(self, group: Group, member_id: str, instance_id: str | None) -> ErrorCode | None:
        """FENCED_INSTANCE_ID when a static instance id now belongs to another member id."""
        if instance_id is None:
            return None
        current = group.static_members.get(instance_id)
        if current is not None and current != member_id:
            return ErrorCode.fenced_instance_id
        return None

    # -- membership and sessions -----------------------------------------------------------

    def _remove_member(self, group: Group, member: Member) -> None:
        group.members.pop(member.member_id, None)
        instance_id = member.group_instance_id
        if instance_id is not None and group.static_members.get(instance_id) == member.member_id:
            del group.static_members[instance_id]
        if member.session_timer is not None:
            member.session_timer.cancel()
            member.session_timer = None
        self._answer_join(member, JoinResult(ErrorCode.unknown_member_id))
        self._answer_sync(member, SyncResult(ErrorCode.unknown_member_id))

    def _remove_member_and_rebalance(self, group: Group, member: Member, reason: str) -> None:
        self._remove_member(group, member)
        if group.is_(GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, reason)
        elif group.is_(GroupState.PREPARING_REBALANCE):
            self._try_complete_join(group)

    def _keep_alive(self, group: Group, member: Member) -> None:
        """Push the member's session deadline out by its session timeout."""
        loop = asyncio.get_running_loop()
        member.session_deadline = loop.time() + member.session_timeout_ms / 1000
        if member.session_timer is None:
            # One timer per member, re-armed lazily: a heartbeat only moves the deadline.
            member.session_timer = loop.call_at(
                member.session_deadline, self._check_session, group, member
            )

    def _check_session(self, group: Group, member: Member) -> None:
        member.session_timer = None
        if group.members.get(member.member_id) is not member:
            return
        loop = asyncio.get_running_loop()
        if member.awaiting_join or member.awaiting_sync:
            # A member blocked in JoinGroup or SyncGroup is alive by definition.
            self._keep_alive(group, member)
            return
        if loop.time() < member.session_deadline:
            member.session_timer = loop.call_at(
                member.session_deadline, self._check_session, group, member
            )
            return
        log.info(
            "group %s: member %s timed out after %d ms without a heartbeat",
            group.group_id,
            member.member_id,
            member.session_timeout_ms,
        )
        self._remove_member_and_rebalance(
            group, member, f"member {member.member_id} session timed out"
        )

    def _expire_pending(self, group: Group, member_id: str) -> None:
        if group.pending_members.pop(member_id, None) is not None:
            self._try_complete_join(group)

    @staticmethod
    def _answer_join(member: Member, result: JoinResult) -> None:
        if member.join_waiter is not None and not member.join_waiter.done():
            member.join_waiter.set_result(result)
        member.join_waiter = None

    @staticmethod
    def _answer_sync(member: Member, result: SyncResult) -> None:
        if member.sync_waiter is not None and not member.sync_waiter.done():
            member.sync_waiter.set_result(result)
        member.sync_waiter = None

    def _set_state(self, group: Group, state: GroupState) -> None:
        group.state = state
        group.state_timestamp = self.now_ms()

    @staticmethod
    def _cancel_timer(group: Group, name: str) -> None:
        handle: asyncio.TimerHandle | None = getattr(group, name)
        if handle is not None:
            handle.cancel()
            setattr(group, name, None)

    def _cancel_timers(self, group: Group) -> None:
        self._cancel_timer(group, "join_timer")
        self._cancel_timer(group, "sync_timer")
        for handle in group.pending_members.values():
            handle.cancel()
        for member in group.members.values():
            if member.session_timer is not None:
                member.session_timer.cancel()
                member.session_timer = None

    # -- offsets ---------------------------------------------------------------------------

    def commit_offsets(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        group_instance_id: str | None,
        commits: Sequence[OffsetCommit],
        version: int = 9,
    ) -> tuple[list[ErrorCode], asyncio.Future[None] | None]:
        """Validate and store commits; returns an error per commit and a durability waiter."""
        error = self._commit_error(group_id, generation, member_id, group_instance_id, version)
        if error is not None:
            return [error] * len(commits), None
        group = self.groups.get(group_id) or self._new_group(group_id)
        member = group.members.get(member_id)
        if member is not None:
            self._keep_alive(group, member)
        now = self.now_ms()
        errors: list[ErrorCode] = []
        pairs: list[tuple[bytes | None, bytes | None]] = []
        stored: list[tuple[tuple[str, int], CommittedOffset]] = []
        for c in commits:
            if self.broker.topics.partition(c.topic, c.partition) is None:
                errors.append(ErrorCode.unknown_topic_or_partition)
                continue
            metadata = c.metadata or ""
            if len(metadata.encode()) > self.config.offset_metadata_max_bytes:
                errors.append(ErrorCode.offset_metadata_too_large)
                continue
            committed = CommittedOffset(c.offset, c.leader_epoch, metadata, now)
            stored.append(((c.topic, c.partition), committed))
            pairs.append(_offset_record(group_id, c.topic, c.partition, committed))
            errors.append(ErrorCode.none)
        waiter = None
        if pairs:
            # Written first: an offset the log does not hold is never acknowledged or served.
            if not self._append_or_refuse(group_id, pairs, "its commit"):
                return [_STORAGE if e == ErrorCode.none else e for e in errors], None
            group.offsets.update(stored)
            if self.config.log_fsync_policy != "never":
                waiter = self.broker.group_commit.sync()
        return errors, waiter

    def _commit_error(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        group_instance_id: str | None,
        version: int = 9,
    ) -> ErrorCode | None:
        if not group_id:
            return ErrorCode.invalid_group_id
        group = self.groups.get(group_id)
        if group is None:
            # Only a consumer outside group management (generation -1) may create a group by
            # committing; a member of a group that does not exist has lost it (Kafka 4).
            return None if generation < 0 else ErrorCode.group_id_not_found
        if group.is_(GroupState.DEAD):
            return ErrorCode.coordinator_not_available
        if group.consumer is not None:
            return self.consumer.commit_error(group.consumer, member_id, generation, version)
        fenced = self._fenced(group, member_id, group_instance_id)
        if fenced is not None:
            return fenced
        if generation < 0 and group.is_(GroupState.EMPTY):
            return None
        if group.is_(GroupState.COMPLETING_REBALANCE):
            return ErrorCode.rebalance_in_progress
        if member_id not in group.members:
            return ErrorCode.unknown_member_id
        if generation != group.generation:
            return ErrorCode.illegal_generation
        return None

    def txn_commit_offsets(
        self,
        group_id: str,
        producer_id: int,
        producer_epoch: int,
        generation: int,
        member_id: str,
        group_instance_id: str | None,
        commits: Sequence[OffsetCommit],
    ) -> list[ErrorCode]:
        """TxnOffsetCommit: offsets that take effect when the producer's transaction commits."""
        group = self.groups.get(group_id)
        if group is not None and (generation >= 0 or member_id):
            # KIP-447: a producer that names its consumer's generation is checked like a
            # commit from that consumer, so a zombie's offsets never land.
            error = self._commit_error(group_id, generation, member_id, group_instance_id)
            if error is not None:
                return [error] * len(commits)
        if group is None:
            self._new_group(group_id)
        now = self.now_ms()
        errors: list[ErrorCode] = []
        pairs: list[tuple[bytes | None, bytes | None]] = []
        staged: dict[tuple[str, str, int], CommittedOffset] = {}
        for c in commits:
            if self.broker.topics.partition(c.topic, c.partition) is None:
                errors.append(ErrorCode.unknown_topic_or_partition)
                continue
            metadata = c.metadata or ""
            if len(metadata.encode()) > self.config.offset_metadata_max_bytes:
                errors.append(ErrorCode.offset_metadata_too_large)
                continue
            committed = CommittedOffset(c.offset, c.leader_epoch, metadata, now)
            staged[(group_id, c.topic, c.partition)] = committed
            pairs.append(_offset_record(group_id, c.topic, c.partition, committed))
            errors.append(ErrorCode.none)
        if pairs:
            # Written as a transactional batch, as Kafka does: replay keeps it pending until
            # the transaction's marker says commit or abort.
            if not self._append_or_refuse(
                group_id, pairs, "its transactional commit", producer=(producer_id, producer_epoch)
            ):
                return [_STORAGE if e == ErrorCode.none else e for e in errors]
            self.pending_txn.setdefault(producer_id, {}).update(staged)
        return errors

    def complete_transaction(self, producer_id: int, commit: bool) -> None:
        pending = self.pending_txn.pop(producer_id, {})
        if not commit:
            return
        for (group_id, topic, partition), committed in pending.items():
            group = self.groups.get(group_id) or self._new_group(group_id)
            group.offsets[(topic, partition)] = committed

    def is_unstable(self, group_id: str, topic: str, partition: int) -> bool:
        """An open transaction holds an offset for this partition (require_stable fetches)."""
        key = (group_id, topic, partition)
        return any(key in pending for pending in self.pending_txn.values())

    def fetch_offsets(
        self, group_id: str, wanted: Iterable[tuple[str, Sequence[int]]] | None
    ) -> list[tuple[str, list[tuple[int, CommittedOffset | None]]]]:
        """Committed offsets by topic; ``wanted`` None means every partition with a commit."""
        group = self.groups.get(group_id)
        offsets = group.offsets if group is not None else {}
        if wanted is None:
            by_topic: dict[str, list[tuple[int, CommittedOffset | None]]] = {}
            for (topic, partition), committed in sorted(offsets.items()):
                by_topic.setdefault(topic, []).append((partition, committed))
            return list(by_topic.items())
        return [
            (topic, [(p, offsets.get((topic, p))) for p in partitions])
            for topic, partitions in wanted
        ]

    def delete_offsets(
        self, group_id: str, wanted: Sequence[tuple[str, Sequence[int]]]
    ) -> tuple[ErrorCode, list[tuple[str, list[tuple[int, ErrorCode]]]]]:
        """OffsetDelete: refused for topics an active consumer group still subscribes to."""
        group = self.groups.get(group_id)
        if group is None or group.is_(GroupState.DEAD):
            return ErrorCode.group_id_not_found, []
        subscribed: set[str] = set()
        if group.consumer is not None:
            subscribed = group.consumer.subscribed_names() if group.consumer.members else set()
        elif group.members:
            topics = group.subscribed_topics()
            if topics is None:
                return ErrorCode.non_empty_group, []
            subscribed = topics
        out: list[tuple[str, list[tuple[int, ErrorCode]]]] = []
        pairs: list[tuple[bytes | None, bytes | None]] = []
        gone: list[tuple[str, int]] = []
        for topic, partitions in wanted:
            results: list[tuple[int, ErrorCode]] = []
            for p in partitions:
                if topic in subscribed:
                    results.append((p, ErrorCode.group_subscribed_to_topic))
                    continue
                if self.broker.topics.partition(topic, p) is None:
                    results.append((p, ErrorCode.unknown_topic_or_partition))
                    continue
                if (topic, p) in group.offsets:
                    pairs.append(_tombstone(group_id, topic, p))
                    gone.append((topic, p))
                results.append((p, ErrorCode.none))
            out.append((topic, results))
        if pairs and not self._append_or_refuse(group_id, pairs, "its offset deletion"):
            return _STORAGE, []
        for key in gone:
            group.offsets.pop(key, None)
        return ErrorCode.none, out

    def forget_topic(self, topic: str) -> None:
        """A deleted topic's committed offsets go with it, as in Kafka."""
        for group in list(self.groups.values()):
            gone = [key for key in group.offsets if key[0] == topic]
            if not gone:
                continue
            for key in gone:
                del group.offsets[key]
            self._append_or_refuse(
                group.group_id,
                [_tombstone(group.group_id, topic, p) for _, p in gone],
                f"the removal of its offsets of deleted topic {topic}",
            )

    # -- admin -----------------------------------------------------------------------------

    def list_groups(self, states: Sequence[str] = (), types: Sequence[str] = ()) -> list[Group]:
        wanted_states = {s.lower() for s in states}
        wanted_types = {t.lower() for t in types}
        return [
            g
            for g in self.groups.values()
            if not g.is_(GroupState.DEAD)
            and (not wanted_states or g.state_name.lower() in wanted_states)
            and (not wanted_types or g.group_type in wanted_types)
        ]

    def delete_groups(self, group_ids: Sequence[str]) -> list[tuple[str, ErrorCode]]:
        out: list[tuple[str, ErrorCode]] = []
        for group_id in group_ids:
            group = self.groups.get(group_id)
            if group is None or group.is_(GroupState.DEAD):
                out.append((group_id, ErrorCode.group_id_not_found))
                continue
            if not group.is_empty:
                out.append((group_id, ErrorCode.non_empty_group))
                continue
            if not self._drop_group(group):
                out.append((group_id, _STORAGE))
                continue
            log.info("deleted group %s", group_id)
            out.append((group_id, ErrorCode.none))
        return out

    def _drop_group(self, group: Group) -> bool:
        """Write tombstones for a group's offsets and metadata, then forget it; False (and the
        group kept) if they cannot be written."""
        pairs = [_tombstone(group.group_id, t, p) for t, p in group.offsets]
        if group.consumer is not None:
            pairs.extend(self.consumer.tombstones(group))
        pairs.append((offsets_records.encode_key(offsets_records.GroupKey(group.group_id)), None))
        if not self._append_or_refuse(group.group_id, pairs, "its deletion"):
            return False
        if group.share is not None:
            # Its share-partitions' state too (kafka-share-groups --delete), or a restart
            # would bring the group back from __share_group_state.
            for key in list(group.share.partitions):
                self.share.forget(group.group_id, key)
        self._cancel_timers(group)
        group.state = GroupState.DEAD
        del self.groups[group.group_id]
        return True

    # -- offset expiry (KIP-211) -----------------------------------------------------------

    async def _expiry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.offsets_retention_check_interval_ms / 1000)
            try:
                self.expire_offsets(self.now_ms())
            except Exception:
                log.exception("offset expiry failed")

    def expire_offsets(self, now_ms: int) -> int:
        """Drop offsets of groups that stayed empty for offsets.retention.minutes.

        A group under consumer management expires all its offsets once it has been empty for
        the retention period; a group that only stores offsets (assign-mode consumers) expires
        each offset that long after its commit.
        """
        retention_ms = self.config.offsets_retention_minutes * 60_000
        expired = 0
        for group in list(self.groups.values()):
            if not group.is_empty:
                continue
            if group.protocol_type or group.consumer is not None:
                gone = list(group.offsets) if group.state_timestamp + retention_ms <= now_ms else []
            else:
                gone = [
                    key
                    for key, committed in group.offsets.items()
                    if committed.commit_timestamp + retention_ms <= now_ms
                ]
            if gone:
                tombstones = [_tombstone(group.group_id, t, p) for t, p in gone]
                if not self._append_or_refuse(group.group_id, tombstones, "its offset expiry"):
                    continue
                for key in gone:
                    del group.offsets[key]
                expired += len(gone)
                log.info("group %s: expired %d committed offset(s)", group.group_id, len(gone))
            if not group.offsets:
                self._drop_group(group)
        return expired

    # -- persistence -----------------------------------------------------------------------

    def _persist_group(self, group: Group) -> None:
        value = offsets_records.GroupValue(
            protocol_type=group.protocol_type or "",
            generation=group.generation,
            protocol=group.protocol,
            leader=group.leader,
            state_timestamp=group.state_timestamp,
            members=[
                offsets_records.MemberValue(
                    member_id=m.member_id,
                    group_instance_id=m.group_instance_id,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    rebalance_timeout_ms=m.rebalance_timeout_ms,
                    session_timeout_ms=m.session_timeout_ms,
                    subscription=m.metadata_for(group.protocol),
                    assignment=m.assignment,
                )
                for m in group.members.values()
            ],
        )
        key = offsets_records.encode_key(offsets_records.GroupKey(group.group_id))
        # Losing this record only costs the members a rebalance after a restart (durability.md):
        # the group goes on in memory when it cannot be written.
        self._append_or_refuse(
            group.group_id,
            [(key, offsets_records.encode_group_value(value))],
            f"its generation {group.generation} (a restart will rebalance it)",
        )

    def _append(
        self,
        group_id: str,
        pairs: list[tuple[bytes | None, bytes | None]],
        producer: tuple[int, int] | None = None,
    ) -> None:
        assert self._offsets_topic is not None, "coordinator not started"
        partition = internal_topics.partition_of(self._offsets_topic, group_id)
        internal_topics.append(self.broker, partition, pairs, producer)

    def _append_or_refuse(
        self,
        group_id: str,
        pairs: list[tuple[bytes | None, bytes | None]],
        what: str,
        producer: tuple[int, int] | None = None,
    ) -> bool:
        """Write records of a group; False (logged) when the disk refuses them (full, failing).
        Callers answer NOT_COORDINATOR, Kafka's answer for a coordinator that cannot write:
        clients find the coordinator again and retry."""
        try:
            self._append(group_id, pairs, producer)
        except OSError as exc:
            log.error("group %s: cannot write %s to %s: %s", group_id, what, OFFSETS_TOPIC, exc)
            return False
        return True

    def _load(self, topic: Topic) -> int:
        """Replay the offsets topic into ``self.groups``; returns the records read."""
        count = 0
        for partition, header, batch in internal_topics.replay(topic):
            if header.is_control:
                marker = read_marker(batch)
                if marker is not None:
                    self.complete_transaction(header.producer_id, marker[0])
                continue
            txn_producer = header.producer_id if header.is_transactional else None
            for record in records.decode_records(batch):
                count += 1
                try:
                    self._apply(record.key, record.value, txn_producer)
                except offsets_records.RecordFormatError as exc:
                    log.warning(
                        "skipping record at %s-%d offset %d: %s",
                        topic.name,
                        partition.index,
                        record.offset,
                        exc,
                    )
        for group in self.groups.values():
            group.state = GroupState.STABLE if group.members else GroupState.EMPTY
        return count

    def _apply(
        self, key_bytes: bytes | None, value_bytes: bytes | None, txn_producer: int | None
    ) -> None:
        if key_bytes is None:
            return
        key = offsets_records.decode_key(key_bytes)
        if isinstance(key, offsets_records.OffsetKey) and txn_producer is not None:
            if value_bytes is not None:
                value = offsets_records.decode_offset_value(value_bytes)
                self.pending_txn.setdefault(txn_producer, {})[
                    (key.group, key.topic, key.partition)
                ] = CommittedOffset(
                    value.offset, value.leader_epoch, value.metadata, value.commit_timestamp
                )
            return
        if isinstance(key, offsets_records.OffsetKey):
            group = self.groups.get(key.group)
            if value_bytes is None:
                if group is not None:
                    group.offsets.pop((key.topic, key.partition), None)
                return
            value = offsets_records.decode_offset_value(value_bytes)
            group = group or self._new_group(key.group)
            group.offsets[(key.topic, key.partition)] = CommittedOffset(
                value.offset, value.leader_epoch, value.metadata, value.commit_timestamp
            )
        elif isinstance(key, offsets_records.ConsumerKey):
            group = self.groups.get(key.group)
            if group is None:
                if value_bytes is None:
                    return
                group = self._new_group(key.group)
            ConsumerProtocol.apply(group, key, value_bytes)
        elif isinstance(key, offsets_records.GroupKey):
            if value_bytes is None:
                self.groups.pop(key.group, None)
                return
            meta = offsets_records.decode_group_value(value_bytes)
            group = self.groups.get(key.group) or self._new_group(key.group)
            group.protocol_type = meta.protocol_type or None
            group.generation = meta.generation
            group.protocol = meta.protocol
            group.leader = meta.leader
            group.state_timestamp = meta.state_timestamp
            group.members = {}
            group.static_members = {}
            for m in meta.members:
                group.members[m.member_id] = Member(
                    member_id=m.member_id,
                    group_instance_id=m.group_instance_id,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    session_timeout_ms=m.session_timeout_ms,
                    rebalance_timeout_ms=m.rebalance_timeout_ms,
                    protocol_type=meta.protocol_type,
                    protocols=[(meta.protocol or "", m.subscription)],
                    assignment=m.assignment,
                )
                if m.group_instance_id:
                    group.static_members[m.group_instance_id] = m.member_id


Pair = tuple[bytes | None, bytes | None]
# What a coordinator that cannot write to its log answers (Kafka maps KAFKA_STORAGE_ERROR so).
_STORAGE = ErrorCode.not_coordinator


def _group_of_key(key: bytes) -> str | None:
    decoded = offsets_records.decode_key(key)
    return decoded.group if decoded is not None else None


def _offset_record(group_id: str, topic: str, partition: int, committed: CommittedOffset) -> Pair:
    """The ``__consumer_offsets`` record of one committed offset."""
    key = offsets_records.OffsetKey(group_id, topic, partition)
    value = offsets_records.OffsetValue(
        committed.offset, committed.leader_epoch, committed.metadata, committed.commit_timestamp
    )
    return offsets_records.encode_key(key), offsets_records.encode_offset_value(value)


def _tombstone(group_id: str, topic: str, partition: int) -> Pair:
    """The record that deletes one committed offset (compaction drops both later)."""
    return offsets_records.encode_key(offsets_records.OffsetKey(group_id, topic, partition)), None
