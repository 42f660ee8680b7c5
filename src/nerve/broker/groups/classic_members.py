"""Classic members inside a consumer group: KIP-848's migration path.

A group moves from the classic protocol to the consumer protocol one member at a time, as a
rolling upgrade does: when the first member of the consumer protocol heartbeats to a classic
group, the group becomes a consumer group (``upgrade``) and its classic members stay, each
with the partitions it had. From then on their JoinGroup, SyncGroup, Heartbeat and LeaveGroup
are served by the consumer protocol's coordinator (``consumer.py``), as Kafka does:

- JoinGroup updates the member's subscription (read from its ConsumerProtocolSubscription)
  and reconciles it towards its target assignment; the partitions it still owns are those
  its subscription says (cooperative) or none (eager, which revoked everything before
  rejoining). The answer comes once the member has all its target partitions that others
  have released, or after its rebalance timeout with what it has. The generation is its
  member epoch, the leader nobody: the coordinator assigns.
- SyncGroup hands it its partitions as a ConsumerProtocolAssignment.
- Heartbeat answers REBALANCE_IN_PROGRESS while its epoch is behind the group's assignment,
  so that it rejoins and gives up or takes partitions.

The way back (``downgrade``), as Kafka's online downgrade: when the last member of the
consumer protocol leaves (or times out, or is removed for not revoking) and classic members
remain, the group becomes a classic group again. Each classic member keeps its partitions as
its classic assignment, the generation is the group epoch, and a classic rebalance starts at
once, so the members rejoin and their leader assigns, as in any classic group.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from nerve.broker.errors import ErrorCode
from nerve.broker.groups import records as offsets_records
from nerve.broker.groups.consumer import (
    ClassicMembership,
    ConsumerGroup,
    ConsumerMember,
    MemberState,
)
from nerve.broker.groups.group import GroupState, JoinResult, Member, SyncResult

if TYPE_CHECKING:
    from nerve.broker.groups.assignors import Assignment
    from nerve.broker.groups.consumer import ConsumerProtocol
    from nerve.broker.groups.coordinator import JoinRequest
    from nerve.broker.groups.group import Group

log = logging.getLogger("nerve.broker.groups")


def _to_ids(protocol: ConsumerProtocol, named: Sequence[tuple[str, list[int]]]) -> Assignment:
    out: Assignment = {}
    for name, parts in named:
        topic = protocol.broker.topics.get(name)
        if topic is not None and parts:
            out.setdefault(topic.topic_id, set()).update(parts)
    return out


def _to_names(protocol: ConsumerProtocol, assignment: Assignment) -> list[tuple[str, list[int]]]:
    out = []
    for topic_id, parts in assignment.items():
        topic = protocol.broker.topics.by_id.get(topic_id)
        if topic is not None and parts:
            out.append((topic.name, sorted(parts)))
    return sorted(out)


def upgrade(protocol: ConsumerProtocol, group: Group) -> str | None:
    """Turn a classic group with members into a consumer group that keeps them; returns why
    not when its members are not consumers (another protocol type, unreadable metadata) or
    ``group.consumer.migration.policy`` forbids it."""
    if protocol.config.group_consumer_migration_policy not in ("bidirectional", "upgrade"):
        return (
            f"Cannot upgrade classic group {group.group_id} to consumer group because "
            "online upgrade is disabled."
        )
    if group.protocol_type != "consumer":
        return f"Group {group.group_id} is not a consumer group."
    members: list[ConsumerMember] = []
    for m in group.members.values():
        try:
            topics, _ = offsets_records.parse_subscription(m.metadata_for(group.protocol))
            assigned = offsets_records.parse_assignment(m.assignment)
        except offsets_records.RecordFormatError:
            return f"Group {group.group_id} has a member whose subscription cannot be read."
        members.append(
            ConsumerMember(
                member_id=m.member_id,
                instance_id=m.group_instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                rebalance_timeout_ms=m.rebalance_timeout_ms,
                subscribed_topic_names=tuple(sorted(set(topics))),
                member_epoch=group.generation,
                assigned=_to_ids(protocol, assigned),
                joined=True,
                classic=ClassicMembership(list(m.protocols), m.session_timeout_ms),
            )
        )
    coordinator = protocol.coordinator
    for m in group.members.values():
        coordinator._answer_join(m, JoinResult(ErrorCode.rebalance_in_progress))
        coordinator._answer_sync(m, SyncResult(ErrorCode.rebalance_in_progress))
    coordinator._cancel_timers(group)
    cg = ConsumerGroup(group_epoch=group.generation, assignment_epoch=group.generation)
    for member in members:
        cg.members[member.member_id] = member
        cg.target[member.member_id] = {t: set(p) for t, p in member.assigned.items()}
        if member.instance_id is not None:
            cg.static_members[member.instance_id] = member.member_id
    group.members = {}
    group.static_members = {}
    group.pending_members = {}
    group.leader = None
    group.state = GroupState.EMPTY
    group.consumer = cg
    key = offsets_records.encode_key(offsets_records.GroupKey(group.group_id))
    coordinator._append_or_refuse(group.group_id, [(key, None)], "its classic metadata")
    protocol._persist(group, cg, members)
    protocol._persist_target(group, cg)
    for member in members:
        protocol._persist_current(group, member)
        protocol._keep_alive(group, member)
    log.info(
        "group %s: upgraded to the consumer protocol with %d classic member(s)",
        group.group_id,
        len(members),
    )
    return None


def classic_join(
    protocol: ConsumerProtocol, group: Group, req: JoinRequest
) -> JoinResult | asyncio.Future[JoinResult]:
    cg = group.consumer
    assert cg is not None
    if req.protocol_type != "consumer" or not req.protocols:
        return JoinResult(ErrorCode.inconsistent_group_protocol)
    try:
        topics, owned_named = offsets_records.parse_subscription(req.protocols[0][1])
    except offsets_records.RecordFormatError:
        return JoinResult(ErrorCode.inconsistent_group_protocol)
    instance_id = req.group_instance_id
    if not req.member_id:
        member_id = f"{req.client_id}-{uuid.uuid4()}"
        if req.require_known_member_id and instance_id is None:
            return JoinResult(ErrorCode.member_id_required, member_id=member_id)
    else:
        member_id = req.member_id
    # KIP-345: a static member's instance id names it. Without a member id it replaces the
    # member holding that id (of either protocol: a restart that rolled its client back to
    # the classic protocol too), taking its partitions; with one, the id must be the holder's.
    holder_id = cg.static_members.get(instance_id) if instance_id is not None else None
    holder = cg.members.get(holder_id) if holder_id is not None else None
    if instance_id is not None and req.member_id:
        if holder is None:
            return JoinResult(ErrorCode.unknown_member_id)
        if holder.member_id != member_id:
            return JoinResult(ErrorCode.fenced_instance_id)
    member = cg.members.get(member_id)
    if holder is not None and not req.member_id:
        if downgrade_allowed(protocol, group.group_id, cg, replaced=holder):
            return _downgrade_replacing(protocol, group, holder, member_id, req)
        member = protocol.replace_static_member(group, cg, holder, member_id)
    elif member is None:
        # The id handed out with MEMBER_ID_REQUIRED is not kept: any new id joins, as Kafka.
        member = ConsumerMember(member_id=member_id)
        cg.members[member_id] = member
        if instance_id is not None:
            cg.static_members[instance_id] = member_id
    elif member.classic is None:
        return JoinResult(ErrorCode.unknown_member_id)
    protocol.answer_join(member, JoinResult(ErrorCode.rebalance_in_progress))
    member.classic = ClassicMembership(list(req.protocols), req.session_timeout_ms)
    member.instance_id = req.group_instance_id
    member.client_id, member.client_host = req.client_id, req.client_host
    member.rebalance_timeout_ms = req.rebalance_timeout_ms
    names = tuple(sorted(set(topics)))
    changed = names != member.subscribed_topic_names or not member.joined
    member.subscribed_topic_names = names
    member.joined = True
    protocol._keep_alive(group, member)
    if changed or protocol._metadata_changed(cg, False):
        cg.group_epoch += 1
    protocol._persist(group, cg, [member])
    if cg.group_epoch > cg.assignment_epoch:
        protocol._assign(group, cg)
    # What it still owns: a cooperative member says so; an eager one revoked everything.
    owned = _to_ids(protocol, owned_named)
    protocol._reconcile(group, cg, member, owned)
    if member.state == MemberState.UNREVOKED_PARTITIONS:
        # It keeps what it has for now; SyncGroup takes the rest away and it rejoins.
        return _join_result(member)
    waiter: asyncio.Future[JoinResult] = asyncio.get_running_loop().create_future()
    member.classic.join_waiter = waiter
    member.classic.join_timer = asyncio.get_running_loop().call_later(
        member.rebalance_timeout_ms / 1000,
        lambda: protocol.answer_join(member, _join_result(member)),
    )
    protocol.after_change(group, cg)
    return waiter


def complete_waiting_joins(protocol: ConsumerProtocol, group: Group, cg: ConsumerGroup) -> None:
    for member in cg.members.values():
        classic = member.classic
        if classic is None or classic.join_waiter is None:
            continue
        if member.state == MemberState.UNRELEASED_PARTITIONS:
            protocol._reconcile(group, cg, member, None)
        if member.state == MemberState.STABLE:
            protocol.answer_join(member, _join_result(member))


def _join_result(member: ConsumerMember) -> JoinResult:
    assert member.classic is not None
    return JoinResult(
        ErrorCode.none,
        generation=member.member_epoch,
        protocol_type="consumer",
        protocol_name=member.classic.protocol_name,
        leader="",
        member_id=member.member_id,
    )


def _classic_member(
    group: Group, member_id: str, generation: int | None
) -> tuple[ConsumerMember | None, ErrorCode | None]:
    cg = group.consumer
    assert cg is not None
    member = cg.members.get(member_id)
    if member is None or member.classic is None:
        return None, ErrorCode.unknown_member_id
    if generation is not None and generation != member.member_epoch:
        return None, ErrorCode.illegal_generation
    return member, None


def classic_sync(
    protocol: ConsumerProtocol,
    group: Group,
    generation: int,
    member_id: str,
    protocol_type: str | None,
    protocol_name: str | None,
) -> SyncResult:
    member, error = _classic_member(group, member_id, generation)
    if error is not None:
        return SyncResult(error)
    assert member is not None and member.classic is not None
    if (protocol_type is not None and protocol_type != "consumer") or (
        protocol_name is not None and protocol_name != member.classic.protocol_name
    ):
        return SyncResult(ErrorCode.inconsistent_group_protocol)
    protocol._keep_alive(group, member)
    assignment = offsets_records.encode_assignment(_to_names(protocol, member.assigned))
    return SyncResult(ErrorCode.none, "consumer", member.classic.protocol_name, assignment)


def classic_heartbeat(
    protocol: ConsumerProtocol, group: Group, generation: int, member_id: str
) -> ErrorCode:
    member, error = _classic_member(group, member_id, generation)
    if error is not None:
        return error
    assert member is not None
    cg = group.consumer
    assert cg is not None
    protocol._keep_alive(group, member)
    if member.member_epoch != cg.assignment_epoch or member.state != MemberState.STABLE:
        return ErrorCode.rebalance_in_progress
    return ErrorCode.none


def classic_leave(
    protocol: ConsumerProtocol, group: Group, leaving: Sequence[tuple[str, str | None]]
) -> list[tuple[str, str | None, ErrorCode]]:
    cg = group.consumer
    assert cg is not None
    out = []
    for member_id, instance_id in leaving:
        if not member_id and instance_id:
            member_id = cg.static_members.get(instance_id, "")
        member = cg.members.get(member_id)
        if member is None:
            out.append((member_id, instance_id, ErrorCode.unknown_member_id))
            continue
        protocol.remove_member(group, cg, member, "left the group")
        out.append((member_id, instance_id, ErrorCode.none))
    return out


def _downgrade_replacing(
    protocol: ConsumerProtocol,
    group: Group,
    replaced: ConsumerMember,
    member_id: str,
    req: JoinRequest,
) -> JoinResult:
    """The last member of the consumer protocol is replaced by a classic static member (its
    instance restarted with the classic protocol): the group becomes a classic group at once,
    stable, each member with its target partitions and the joining one with those of the
    member it replaces; no rebalance, as Kafka does. The joining member is told it is a
    follower, so its SyncGroup just collects its partitions."""
    cg = group.consumer
    assert cg is not None
    member = protocol.replace_static_member(group, cg, replaced, member_id)
    member.classic = ClassicMembership(list(req.protocols), req.session_timeout_ms)
    member.client_id, member.client_host = req.client_id, req.client_host
    member.rebalance_timeout_ms = req.rebalance_timeout_ms
    log.info(
        "group %s: static member %s rejoined with the classic protocol, replacing the last "
        "member of the consumer protocol",
        group.group_id,
        req.group_instance_id,
    )
    downgrade(protocol, group, rebalance=False)
    return JoinResult(
        ErrorCode.none,
        generation=group.generation,
        protocol_type="consumer",
        protocol_name=group.protocol,
        member_id=member_id,
    )


def downgrade_allowed(
    protocol: ConsumerProtocol,
    group_id: str,
    cg: ConsumerGroup,
    replaced: ConsumerMember | None = None,
) -> bool:
    """Kafka's rule for an online downgrade: every member (but ``replaced``, whom a classic
    static member is replacing) speaks the classic protocol, someone remains after members
    left, no more members than ``group.max.size`` allows a classic group, and the migration
    policy allows it."""
    others = [m for m in cg.members.values() if m is not replaced]
    if (replaced is None and not others) or any(m.classic is None for m in others):
        return False
    if protocol.config.group_consumer_migration_policy not in ("bidirectional", "downgrade"):
        return False
    if len(cg.members) > protocol.config.group_max_size:
        log.info(
            "group %s stays a consumer group: its %d members are more than group.max.size (%d)",
            group_id,
            len(cg.members),
            protocol.config.group_max_size,
        )
        return False
    return True


def downgrade(protocol: ConsumerProtocol, group: Group, rebalance: bool = True) -> None:
    """Turn a consumer group whose members all speak the classic protocol back into a
    classic group, and start a classic rebalance (or, with ``rebalance=False``, leave it
    stable with each member's target partitions as its assignment)."""
    cg = group.consumer
    assert cg is not None
    coordinator = protocol.coordinator
    protocol.cancel_timers(cg)
    coordinator._append_or_refuse(
        group.group_id, protocol.tombstones(group), "the end of its consumer state"
    )
    members: dict[str, Member] = {}
    for m in cg.members.values():
        classic = m.classic
        assert classic is not None
        member = Member(
            member_id=m.member_id,
            group_instance_id=m.instance_id,
            client_id=m.client_id,
            client_host=m.client_host,
            session_timeout_ms=classic.session_timeout_ms,
            rebalance_timeout_ms=m.rebalance_timeout_ms,
            protocol_type="consumer",
            protocols=list(classic.protocols),
            assignment=offsets_records.encode_assignment(
                _to_names(protocol, m.assigned if rebalance else cg.target.get(m.member_id, {}))
            ),
        )
        # A JoinGroup still waiting is answered by the classic rebalance that follows.
        member.join_waiter, classic.join_waiter = classic.join_waiter, None
        members[member.member_id] = member
    group.consumer = None
    group.members = members
    group.static_members = {
        m.group_instance_id: m.member_id for m in members.values() if m.group_instance_id
    }
    group.pending_members = {}
    group.generation = cg.group_epoch
    group.protocol_type = "consumer"
    group.protocol = (
        group.select_protocol()
        if group.candidate_protocols()
        else next(iter(members.values())).protocols[0][0]
    )
    group.leader = next(iter(members))
    coordinator._set_state(group, GroupState.STABLE)
    coordinator._persist_group(group)
    for member in members.values():
        coordinator._keep_alive(group, member)
    log.info(
        "group %s: downgraded to the classic protocol with %d member(s)",
        group.group_id,
        len(members),
    )
    if rebalance:
        coordinator._prepare_rebalance(
            group, "downgraded from the consumer protocol: its last member of that protocol left"
        )
