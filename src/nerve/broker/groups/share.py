"""Share groups (KIP-932, queues for Kafka): ShareGroupHeartbeat, ShareFetch, ShareAcknowledge.

Members of a share group read the same partitions together; each record is handed to one
member at a time under an **acquisition lock** and counts its **deliveries**:

- ShareFetch acquires records for the asking member: first records released earlier (by a
  member or an expired lock), then new ones from the end of what was ever acquired, whole
  batches at a time, up to the request's ``max_records``. They stay ACQUIRED for
  ``group.share.record.lock.duration.ms`` (30 s).
- The member acknowledges each record (in ShareFetch or ShareAcknowledge): ACCEPT (done),
  RELEASE (back to AVAILABLE, for anyone), REJECT (ARCHIVED, never delivered again), RENEW
  (the lock starts over); a gap marks offsets without a record. A lock that expires, or a
  member that leaves or times out, releases what it held.
- A record delivered ``group.share.delivery.count.limit`` times (5) is ARCHIVED when released
  again: a poison message stops being redelivered.
- The share-partition start offset (SPSO) moves past every leading ACKNOWLEDGED or ARCHIVED
  record; a new group starts at the log end, or where ``share.auto.offset.reset`` (a group
  config) says.

The assignment spreads every subscribed partition over the members (all of them when there
are more members than partitions, each partition then read by several), Kafka's ``simple``
assignor's intent. There is no revocation: an assignment takes effect at once.

Durability: each share-partition's state (start offset, and the delivery state and count of
every record past it that is not plainly available) is written to ``__share_group_state`` as
Kafka's ShareSnapshot records whenever acknowledgements or released locks change it, and
replayed at start; records that were acquired come back available (their locks die with the
broker), with their delivery counts as last written (a delivery in progress at a crash is
not counted: state is written on acknowledgements and released locks, not on acquisition).
Membership is not kept: members rejoin.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import struct
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from nerve.broker import internal_topics
from nerve.broker.errors import ErrorCode
from nerve.broker.log.log import CorruptBatchError, OffsetOutOfRangeError
from nerve.protocol import records as batch_records

if TYPE_CHECKING:
    from nerve.broker.groups.assignors import Assignment
    from nerve.broker.groups.coordinator import GroupCoordinator
    from nerve.broker.groups.group import Group
    from nerve.broker.topics import Partition

log = logging.getLogger("nerve.broker.groups")

STATE_TOPIC = "__share_group_state"
_BATCH_HEAD = struct.Struct(">qi")  # base offset, batch length
_LAST_DELTA = struct.Struct(">i")  # at byte 23 of a v2 batch


class RecordState(enum.IntEnum):
    AVAILABLE = 0
    ACQUIRED = 1
    ACKNOWLEDGED = 2
    ARCHIVED = 4


class AckType(enum.IntEnum):
    GAP = 0
    ACCEPT = 1
    RELEASE = 2
    REJECT = 3
    RENEW = 4


@dataclass
class InFlight:
    state: RecordState
    deliveries: int
    member: str = ""
    deadline: float = 0.0


@dataclass(eq=False)
class SharePartition:
    """One topic-partition's state in one share group."""

    start: int  # the share-partition start offset (SPSO)
    end: int  # one past the last offset ever acquired (SPEO)
    records: dict[int, InFlight] = field(default_factory=dict)


@dataclass(eq=False)
class ShareMember:
    member_id: str
    member_epoch: int = 0
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    subscribed_topic_names: tuple[str, ...] = ()
    assigned: Assignment = field(default_factory=dict)
    session_deadline: float = 0.0
    session_timer: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class ShareGroup:
    group_epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, ShareMember] = field(default_factory=dict)
    topics: dict[str, tuple[uuid.UUID, int]] = field(default_factory=dict)
    partitions: dict[tuple[uuid.UUID, int], SharePartition] = field(default_factory=dict)
    # (member id) -> share session: its epoch and the partitions it fetches.
    sessions: dict[str, ShareSession] = field(default_factory=dict)
    target: dict[str, Assignment] = field(default_factory=dict)

    def state(self) -> str:
        if not self.members:
            return "Empty"
        return "Stable"


@dataclass(eq=False)
class ShareSession:
    epoch: int
    partitions: set[tuple[uuid.UUID, int]] = field(default_factory=set)


class ShareHeartbeatResult(NamedTuple):
    error: ErrorCode
    message: str | None = None
    member_id: str | None = None
    member_epoch: int = 0
    heartbeat_interval_ms: int = 0
    assignment: Assignment | None = None


class Acquired(NamedTuple):
    records: bytes
    ranges: list[tuple[int, int, int]]  # first offset, last offset, delivery count


class ShareProtocol:
    def __init__(self, coordinator: GroupCoordinator) -> None:
        self.coordinator = coordinator
        self.config = coordinator.config
        self.broker = coordinator.broker

    # -- share-partition state in __share_group_state --------------------------------------

    def start(self) -> None:
        """Replay ``__share_group_state`` (made on the first share group's first write)."""
        topic = self.broker.topics.get(STATE_TOPIC)
        if topic is None:
            return
        loaded = 0
        for _, header, batch in internal_topics.replay(topic):
            if header.is_control:
                continue
            for record in batch_records.decode_records(batch):
                if record.key is None:
                    continue
                try:
                    key = _decode_state_key(bytes(record.key))
                    if key is None:
                        continue
                    group_id, topic_id, index = key
                    group = self.coordinator.groups.get(group_id)
                    if group is None:
                        group = self.coordinator._new_group(group_id)
                    if group.share is None:
                        group.share = ShareGroup()
                    if record.value is None:
                        group.share.partitions.pop((topic_id, index), None)
                        continue
                    group.share.partitions[(topic_id, index)] = _decode_state_value(
                        bytes(record.value)
                    )
                    loaded += 1
                except (struct.error, ValueError) as exc:
                    log.warning("skipping a record of %s: %s", STATE_TOPIC, exc)
        if loaded:
            log.info("loaded %d share-partition state(s) from %s", loaded, STATE_TOPIC)

    def _persist(self, group_id: str, key: tuple[uuid.UUID, int], sp: SharePartition) -> None:
        # As a group's metadata: a write the disk refuses is logged and the state goes on in
        # memory (a restart then redelivers what it did not record).
        try:
            topic = internal_topics.ensure(
                self.broker, STATE_TOPIC, 1, self.config.offsets_topic_segment_bytes
            )
            pairs = [(_state_key(group_id, *key), _state_value(sp))]
            internal_topics.append(
                self.broker, internal_topics.partition_of(topic, group_id), pairs
            )
        except OSError as exc:
            log.error(
                "share group %s: cannot write its state to %s: %s", group_id, STATE_TOPIC, exc
            )

    # -- ShareGroupHeartbeat ---------------------------------------------------------------

    def heartbeat(
        self,
        group_id: str,
        member_id: str,
        member_epoch: int,
        rack_id: str | None,
        topics: Sequence[str] | None,
        client_id: str,
        client_host: str,
    ) -> ShareHeartbeatResult:
        if not group_id:
            return ShareHeartbeatResult(ErrorCode.invalid_request, "GroupId can't be empty.")
        if not member_id:
            return ShareHeartbeatResult(ErrorCode.invalid_request, "MemberId can't be empty.")
        if member_epoch < -1:
            return ShareHeartbeatResult(
                ErrorCode.invalid_request, f"MemberEpoch is invalid: {member_epoch}."
            )
        if member_epoch == 0 and topics is None:
            return ShareHeartbeatResult(
                ErrorCode.invalid_request,
                "SubscribedTopicNames must be set in first request.",
            )
        group = self.coordinator.groups.get(group_id)
        if group is not None and group.share is None and (group.members or group.consumer):
            return ShareHeartbeatResult(
                ErrorCode.group_id_not_found, f"Group {group_id} is not a share group."
            )
        if group is None or group.share is None:
            if member_epoch != 0:
                if member_epoch == -1:
                    return ShareHeartbeatResult(
                        ErrorCode.none, member_id=member_id, member_epoch=-1
                    )
                return ShareHeartbeatResult(
                    ErrorCode.group_id_not_found, f"Share group {group_id} not found."
                )
            group = group or self.coordinator._new_group(group_id)
            group.share = ShareGroup()
        sg = group.share
        assert sg is not None
        member = sg.members.get(member_id)
        if member_epoch == -1:
            if member is None:
                return ShareHeartbeatResult(
                    ErrorCode.unknown_member_id,
                    f"Member {member_id} is not a member of group {group_id}.",
                )
            self.remove_member(group, sg, member, "left the group")
            return ShareHeartbeatResult(ErrorCode.none, member_id=member_id, member_epoch=-1)
        if member is None:
            if member_epoch != 0:
                return ShareHeartbeatResult(
                    ErrorCode.unknown_member_id,
                    f"Member {member_id} is not a member of group {group_id}.",
                )
            member = sg.members[member_id] = ShareMember(member_id=member_id)
            sg.group_epoch += 1
        elif member_epoch not in (0, member.member_epoch):
            return ShareHeartbeatResult(
                ErrorCode.fenced_member_epoch,
                f"The share group member has a different member epoch ({member_epoch}) than "
                f"the one known by the group coordinator ({member.member_epoch}).",
            )
        member.rack_id = rack_id or member.rack_id
        member.client_id, member.client_host = client_id, client_host
        if topics is not None:
            names = tuple(sorted(set(topics)))
            if names != member.subscribed_topic_names:
                member.subscribed_topic_names = names
                sg.group_epoch += 1
        if self._metadata_changed(sg):
            sg.group_epoch += 1
        if sg.group_epoch > sg.assignment_epoch:
            self._assign(group, sg)
        self._keep_alive(group, member)
        before = _frozen(member.assigned)
        member.assigned = {t: set(p) for t, p in sg.target.get(member_id, {}).items()}
        changed = member_epoch == 0 or _frozen(member.assigned) != before
        member.member_epoch = sg.assignment_epoch
        return ShareHeartbeatResult(
            ErrorCode.none,
            member_id=member_id,
            member_epoch=member.member_epoch,
            heartbeat_interval_ms=self._setting(
                group_id,
                "share.heartbeat.interval.ms",
                self.config.group_share_heartbeat_interval_ms,
            ),
            assignment=member.assigned if changed else None,
        )

    def _metadata_changed(self, sg: ShareGroup) -> bool:
        names = {n for m in sg.members.values() for n in m.subscribed_topic_names}
        current = {}
        for name in names:
            topic = self.broker.topics.get(name)
            if topic is not None and topic.partitions:
                current[name] = (topic.topic_id, len(topic.partitions))
        if current != sg.topics:
            sg.topics = current
            return True
        return False

    def _assign(self, group: Group, sg: ShareGroup) -> None:
        """Every subscribed partition to a subscriber, spread evenly; with more subscribers
        than partitions each partition goes to several."""
        target: dict[str, Assignment] = {m: {} for m in sg.members}
        for name, (topic_id, count) in sorted(sg.topics.items()):
            subs = sorted(
                m for m, member in sg.members.items() if name in member.subscribed_topic_names
            )
            if not subs:
                continue
            slots = max(count, len(subs))
            for i in range(slots):
                target[subs[i % len(subs)]].setdefault(topic_id, set()).add(i % count)
        sg.target = target
        sg.assignment_epoch = sg.group_epoch
        log.info(
            "share group %s epoch %d: %d member(s)", group.group_id, sg.group_epoch, len(sg.members)
        )

    def remove_member(self, group: Group, sg: ShareGroup, member: ShareMember, reason: str) -> None:
        if member.session_timer is not None:
            member.session_timer.cancel()
            member.session_timer = None
        sg.members.pop(member.member_id, None)
        sg.sessions.pop(member.member_id, None)
        for sp in sg.partitions.values():
            for record in sp.records.values():
                if record.state == RecordState.ACQUIRED and record.member == member.member_id:
                    self._release(record)
        sg.group_epoch += 1
        self._assign(group, sg)
        log.info("share group %s: member %s %s", group.group_id, member.member_id, reason)

    def _keep_alive(self, group: Group, member: ShareMember) -> None:
        loop = asyncio.get_running_loop()
        session_ms = self._setting(
            group.group_id, "share.session.timeout.ms", self.config.group_share_session_timeout_ms
        )
        member.session_deadline = loop.time() + session_ms / 1000
        if member.session_timer is None:
            member.session_timer = loop.call_at(
                member.session_deadline, self._check_session, group, member
            )

    def _check_session(self, group: Group, member: ShareMember) -> None:
        member.session_timer = None
        sg = group.share
        if sg is None or sg.members.get(member.member_id) is not member:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < member.session_deadline:
            member.session_timer = loop.call_at(
                member.session_deadline, self._check_session, group, member
            )
            return
        self.remove_member(group, sg, member, "timed out without a heartbeat")

    def cancel_timers(self, sg: ShareGroup) -> None:
        for member in sg.members.values():
            if member.session_timer is not None:
                member.session_timer.cancel()
                member.session_timer = None

    # -- sessions --------------------------------------------------------------------------

    def session(
        self,
        group_id: str,
        member_id: str,
        epoch: int,
        wanted: Iterable[tuple[uuid.UUID, int]],
        forgotten: Iterable[tuple[uuid.UUID, int]],
    ) -> tuple[ShareGroup | None, ShareSession | None, ErrorCode]:
        group = self.coordinator.groups.get(group_id)
        sg = group.share if group is not None else None
        if sg is None or member_id not in sg.members:
            return None, None, ErrorCode.unknown_member_id
        current = sg.sessions.get(member_id)
        if epoch == 0:
            current = sg.sessions[member_id] = ShareSession(epoch=1)
        elif epoch == -1:
            if current is None:
                return sg, None, ErrorCode.share_session_not_found
            sg.sessions.pop(member_id, None)
        else:
            if current is None:
                return sg, None, ErrorCode.share_session_not_found
            if epoch != current.epoch:
                return sg, None, ErrorCode.invalid_share_session_epoch
            current.epoch += 1
        current.partitions.update(wanted)
        current.partitions.difference_update(forgotten)
        return sg, current, ErrorCode.none

    # -- acquisition -----------------------------------------------------------------------

    def _partition_state(
        self, group_id: str, sg: ShareGroup, partition: Partition
    ) -> SharePartition:
        key = (partition.topic.topic_id, partition.index)
        sp = sg.partitions.get(key)
        partition_log = partition.log
        if sp is None:
            reset = self.broker.dynamic_configs.groups.get(group_id, {}).get(
                "share.auto.offset.reset", "latest"
            )
            start = (
                partition_log.log_start_offset
                if reset == "earliest"
                else partition_log.log_end_offset
            )
            sp = sg.partitions[key] = SharePartition(start=start, end=start)
        if sp.start < partition_log.log_start_offset:
            # Retention deleted records the group had not finished: they are gone.
            sp.start = max(sp.start, partition_log.log_start_offset)
            sp.end = max(sp.end, sp.start)
            for offset in [o for o in sp.records if o < sp.start]:
                del sp.records[offset]
        return sp

    def _setting(self, group_id: str, name: str, default: int) -> int:
        """A share group config set on the group (IncrementalAlterConfigs), else the
        broker's ``group.``-prefixed default."""
        value = self.broker.dynamic_configs.groups.get(group_id, {}).get(name)
        try:
            return int(value) if value is not None else default
        except ValueError:
            return default

    def lock_ms(self, group_id: str) -> int:
        default = self.config.group_share_record_lock_duration_ms
        return self._setting(group_id, "share.record.lock.duration.ms", default)

    def _lock_s(self, group_id: str) -> float:
        return self.lock_ms(group_id) / 1000

    def _expire_locks(self, sp: SharePartition, now: float) -> bool:
        expired = False
        for record in sp.records.values():
            if record.state == RecordState.ACQUIRED and record.deadline <= now:
                self._release(record)
                expired = True
        return expired

    def _release(self, record: InFlight) -> None:
        record.member = ""
        if record.deliveries >= self.config.group_share_delivery_count_limit:
            record.state = RecordState.ARCHIVED
        else:
            record.state = RecordState.AVAILABLE

    @staticmethod
    def _advance_start(sp: SharePartition) -> None:
        while sp.start < sp.end:
            record = sp.records.get(sp.start)
            if record is None or record.state in (RecordState.ACKNOWLEDGED, RecordState.ARCHIVED):
                sp.records.pop(sp.start, None)
                sp.start += 1
                continue
            break

    def acquire(
        self,
        group_id: str,
        sg: ShareGroup,
        member_id: str,
        partition: Partition,
        max_records: int,
        max_bytes: int,
    ) -> Acquired:
        sp = self._partition_state(group_id, sg, partition)
        now = time.monotonic()
        if self._expire_locks(sp, now):
            self._advance_start(sp)
            self._persist(group_id, (partition.topic.topic_id, partition.index), sp)
        self._advance_start(sp)
        lock_s = self._lock_s(group_id)
        partition_log = partition.log
        acquired: list[int] = []
        available = sorted(
            o for o, r in sp.records.items() if r.state == RecordState.AVAILABLE and o < sp.end
        )
        data = b""
        try:
            if available:
                acquired = available[:max_records]
                data = partition_log.read_bytes(
                    acquired[0], max(max_bytes, 1), partition_log.log_end_offset
                )
                data = _cut_after(data, acquired[-1])
            elif sp.end < partition_log.log_end_offset:
                data = partition_log.read_bytes(
                    sp.end, max(max_bytes, 1), partition_log.log_end_offset
                )
                for base, last in _batch_ranges(data):
                    if len(acquired) >= max_records:
                        break
                    acquired.extend(o for o in range(max(base, sp.end), last + 1))
                if acquired:
                    data = _cut_after(data, acquired[-1])
        except (OffsetOutOfRangeError, CorruptBatchError):
            return Acquired(b"", [])
        if not acquired:
            return Acquired(b"", [])
        for offset in acquired:
            record = sp.records.get(offset)
            if record is None:
                record = sp.records[offset] = InFlight(RecordState.AVAILABLE, 0)
            record.state = RecordState.ACQUIRED
            record.deliveries += 1
            record.member = member_id
            record.deadline = now + lock_s
        sp.end = max(sp.end, acquired[-1] + 1)
        ranges: list[tuple[int, int, int]] = []
        for offset in acquired:
            count = sp.records[offset].deliveries
            if ranges and ranges[-1][1] == offset - 1 and ranges[-1][2] == count:
                ranges[-1] = (ranges[-1][0], offset, count)
            else:
                ranges.append((offset, offset, count))
        return Acquired(data, ranges)

    def acknowledge(
        self,
        group_id: str,
        sg: ShareGroup,
        member_id: str,
        partition: Partition,
        batches: Sequence[tuple[int, int, Sequence[int]]],
    ) -> ErrorCode:
        """Apply acknowledgements; INVALID_RECORD_STATE (nothing applied) when one names a
        record this member does not hold."""
        sp = self._partition_state(group_id, sg, partition)
        self._expire_locks(sp, time.monotonic())
        changes: list[tuple[InFlight, int]] = []
        for first, last, types in batches:
            if last < first or not types or (len(types) != 1 and len(types) != last - first + 1):
                return ErrorCode.invalid_request
            for i, offset in enumerate(range(first, last + 1)):
                kind = types[0] if len(types) == 1 else types[i]
                if kind not in _ACK_TYPES:
                    return ErrorCode.invalid_request
                record = sp.records.get(offset)
                if (
                    record is None
                    or record.state != RecordState.ACQUIRED
                    or record.member != member_id
                ):
                    return ErrorCode.invalid_record_state
                changes.append((record, kind))
        lock_s = self._lock_s(group_id)
        for record, kind in changes:
            if kind in (AckType.ACCEPT,):
                record.state, record.member = RecordState.ACKNOWLEDGED, ""
            elif kind in (AckType.GAP, AckType.REJECT):
                record.state, record.member = RecordState.ARCHIVED, ""
            elif kind == AckType.RELEASE:
                self._release(record)
            elif kind == AckType.RENEW:
                record.deadline = time.monotonic() + lock_s
        self._advance_start(sp)
        self._persist(group_id, (partition.topic.topic_id, partition.index), sp)
        return ErrorCode.none

    # -- the offset admin APIs (kafka-share-groups --describe --offsets, --reset-offsets,
    # --delete-offsets) ---------------------------------------------------------------------

    def start_offsets(
        self, group_id: str, wanted: Sequence[tuple[str, Sequence[int]]] | None
    ) -> list[tuple[str, uuid.UUID | None, list[tuple[int, int, int]]]] | None:
        """(topic, its id, [(partition, start offset, lag)]) for the partitions asked, or all
        the group has state for; -1 and -1 for a partition without state. None: no such share
        group (Kafka answers that with no topics, not an error)."""
        group = self.coordinator.groups.get(group_id)
        sg = group.share if group is not None else None
        if sg is None:
            return None
        topics = self.broker.topics
        by_id = {t.topic_id: t for t in topics.topics.values()}
        if wanted is None:
            named: dict[str, list[int]] = {}
            for topic_id, index in sorted(sg.partitions):
                found = by_id.get(topic_id)
                if found is not None:
                    named.setdefault(found.name, []).append(index)
            wanted = list(named.items())
        out: list[tuple[str, uuid.UUID | None, list[tuple[int, int, int]]]] = []
        for name, indexes in wanted:
            topic = topics.get(name)
            rows = []
            for index in indexes:
                sp = sg.partitions.get((topic.topic_id, index)) if topic is not None else None
                if sp is None or topic is None or index >= len(topic.partitions):
                    rows.append((index, -1, -1))
                    continue
                end = topic.partitions[index].log.log_end_offset
                done = sum(
                    1
                    for offset, record in sp.records.items()
                    if offset >= sp.start
                    and record.state in (RecordState.ACKNOWLEDGED, RecordState.ARCHIVED)
                )
                rows.append((index, sp.start, max(0, end - sp.start - done)))
            out.append((name, topic.topic_id if topic is not None else None, rows))
        return out

    def alter_start_offsets(
        self, group_id: str, offsets: Sequence[tuple[str, Sequence[tuple[int, int]]]]
    ) -> tuple[
        ErrorCode, str | None, list[tuple[str, uuid.UUID | None, list[tuple[int, ErrorCode]]]]
    ]:
        """Set share-partition start offsets (the group made if new); every record before
        the new start is done for, every one after it available with no delivery counted.
        A group with members is refused (NON_EMPTY_GROUP), as Kafka does."""
        group = self.coordinator.groups.get(group_id)
        if group is not None and group.share is None:
            return ErrorCode.group_id_not_found, f"Group {group_id} is not a share group.", []
        if group is not None and group.share is not None and group.share.members:
            return (
                ErrorCode.non_empty_group,
                f"Share group {group_id} is not empty: stop its members first.",
                [],
            )
        results = []
        changed: list[tuple[tuple[uuid.UUID, int], SharePartition]] = []
        for name, partitions in offsets:
            topic = self.broker.topics.get(name)
            rows = []
            for index, start in partitions:
                if topic is None or not 0 <= index < len(topic.partitions):
                    rows.append((index, ErrorCode.unknown_topic_or_partition))
                    continue
                partition_log = topic.partitions[index].log
                start = min(
                    max(start, partition_log.log_start_offset), partition_log.log_end_offset
                )
                changed.append(((topic.topic_id, index), SharePartition(start=start, end=start)))
                rows.append((index, ErrorCode.none))
            results.append((name, topic.topic_id if topic is not None else None, rows))
        if changed:
            if group is None:
                group = self.coordinator._new_group(group_id)
            if group.share is None:
                group.share = ShareGroup()
            for key, sp in changed:
                group.share.partitions[key] = sp
                self._persist(group_id, key, sp)
        return ErrorCode.none, None, results

    def delete_start_offsets(
        self, group_id: str, names: Sequence[str]
    ) -> tuple[ErrorCode, str | None, list[tuple[str, uuid.UUID | None, ErrorCode]]]:
        """Forget a share group's state of whole topics: a member reading them again starts
        where ``share.auto.offset.reset`` says, as a new group would."""
        group = self.coordinator.groups.get(group_id)
        sg = group.share if group is not None else None
        if sg is None:
            return ErrorCode.group_id_not_found, f"Share group {group_id} not found.", []
        if sg.members:
            return (
                ErrorCode.non_empty_group,
                f"Share group {group_id} is not empty: stop its members first.",
                [],
            )
        results: list[tuple[str, uuid.UUID | None, ErrorCode]] = []
        for name in names:
            topic = self.broker.topics.get(name)
            if topic is None:
                results.append((name, None, ErrorCode.unknown_topic_or_partition))
                continue
            for key in [k for k in sg.partitions if k[0] == topic.topic_id]:
                del sg.partitions[key]
                self.forget(group_id, key)
            results.append((name, topic.topic_id, ErrorCode.none))
        return ErrorCode.none, None, results

    def forget(self, group_id: str, key: tuple[uuid.UUID, int]) -> None:
        """A tombstone for a share-partition's state in ``__share_group_state``."""
        try:
            topic = internal_topics.ensure(
                self.broker, STATE_TOPIC, 1, self.config.offsets_topic_segment_bytes
            )
            internal_topics.append(
                self.broker,
                internal_topics.partition_of(topic, group_id),
                [(_state_key(group_id, *key), None)],
            )
        except OSError as exc:
            log.error(
                "share group %s: cannot write to %s that its state is deleted: %s",
                group_id,
                STATE_TOPIC,
                exc,
            )


_ACK_TYPES = frozenset(int(t) for t in AckType)


def _batch_ranges(data: bytes) -> list[tuple[int, int]]:
    """(base offset, last offset) of each record batch in ``data``."""
    out = []
    pos = 0
    while pos + 27 <= len(data):
        base, length = _BATCH_HEAD.unpack_from(data, pos)
        (delta,) = _LAST_DELTA.unpack_from(data, pos + 23)
        out.append((base, base + delta))
        pos += 12 + length
    return out


def _cut_after(data: bytes, last: int) -> bytes:
    """The batches of ``data`` up to the one holding ``last``."""
    pos = 0
    while pos + 27 <= len(data):
        base, length = _BATCH_HEAD.unpack_from(data, pos)
        pos += 12 + length
        (delta,) = _LAST_DELTA.unpack_from(data, pos - 12 - length + 23)
        if base + delta >= last:
            break
    return data[:pos]


def _state_key(group_id: str, topic_id: uuid.UUID, index: int) -> bytes:
    """ShareSnapshotKey: version 0, group, topic id, partition (not flexible)."""
    name = group_id.encode()
    return struct.pack(">hh", 0, len(name)) + name + topic_id.bytes + struct.pack(">i", index)


def _decode_state_key(data: bytes) -> tuple[str, uuid.UUID, int] | None:
    (version, size) = struct.unpack_from(">hh", data, 0)
    if version != 0:
        return None  # a ShareUpdate record (Kafka's deltas): nerve writes snapshots only
    group_id = data[4 : 4 + size].decode()
    topic_id = uuid.UUID(bytes=data[4 + size : 20 + size])
    (index,) = struct.unpack_from(">i", data, 20 + size)
    return group_id, topic_id, index


def _state_batches(sp: SharePartition) -> list[tuple[int, int, int, int]]:
    """(first, last, state, deliveries) runs past the start offset; acquired records are
    written as available (their lock ends with the broker), as Kafka's persister does."""
    runs: list[tuple[int, int, int, int]] = []
    for offset in sorted(o for o in sp.records if o >= sp.start):
        record = sp.records[offset]
        state = RecordState.AVAILABLE if record.state == RecordState.ACQUIRED else record.state
        if runs and runs[-1][1] == offset - 1 and runs[-1][2:] == (state, record.deliveries):
            runs[-1] = (runs[-1][0], offset, state, record.deliveries)
        else:
            runs.append((offset, offset, int(state), record.deliveries))
    return runs


def _state_value(sp: SharePartition) -> bytes:
    """ShareSnapshotValue v0 (flexible): snapshot epoch, state epoch, leader epoch, start
    offset, state batches."""
    batches = _state_batches(sp)
    out = bytearray(struct.pack(">hHiiq", 0, 0, 0, 0, sp.start))
    out += _uvarint(len(batches) + 1)
    for first, last, state, count in batches:
        out += struct.pack(">qqbh", first, last, state, count) + b"\x00"
    out += b"\x00"
    return bytes(out)


def _decode_state_value(data: bytes) -> SharePartition:
    (version, _, _, _, start) = struct.unpack_from(">hHiiq", data, 0)
    if version != 0:
        raise ValueError(f"share snapshot value version {version}")
    pos = 20
    count, pos = _read_uvarint(data, pos)
    sp = SharePartition(start=start, end=start)
    for _ in range(max(count - 1, 0)):
        first, last, state, deliveries = struct.unpack_from(">qqbh", data, pos)
        pos += 19
        _, pos = _read_uvarint(data, pos)  # tagged fields: none written
        for offset in range(first, last + 1):
            sp.records[offset] = InFlight(RecordState(state), deliveries)
        sp.end = max(sp.end, last + 1)
    return sp


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_uvarint(data: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _frozen(assignment: Assignment) -> frozenset[tuple[uuid.UUID, int]]:
    return frozenset((t, p) for t, parts in assignment.items() for p in parts)
