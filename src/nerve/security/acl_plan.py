"""The least-privilege ACLs a service needs, read from its code (``nerve acl plan``): what a
running service touches, as nerve's runtime touches it (nerve.service.runtime), so that a
principal granted exactly these can run it on a cluster with ``allow.everyone.if.no.acl.found``
off. Kafka's rules make it short: READ and WRITE imply DESCRIBE on a topic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nerve.service.catalog import CATALOG_TOPIC
from nerve.service.dead_letters import dlq_topic
from nerve.service.service import Service


@dataclass(frozen=True)
class Acl:
    """One ALLOW entry: an operation on a resource pattern (Kafka's names)."""

    resource: str  # TOPIC, GROUP, TRANSACTIONAL_ID, CLUSTER
    pattern: str  # LITERAL or PREFIXED
    name: str
    operation: str  # READ, WRITE, CREATE, DELETE, DESCRIBE_CONFIGS, ALTER_CONFIGS

    def line(self, principal: str) -> str:
        """As kafka-acls --list prints an entry, one line."""
        return (
            f"(principal={principal}, host=*, operation={self.operation}, "
            f"permissionType=ALLOW) on {self.resource}:{self.pattern}:{self.name}"
        )


class Plan:
    """ACLs in the order first asked for, each with why it is needed."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.reasons: dict[Acl, list[str]] = {}
        # What the plan does not cover yet: said, never silently left out.
        self.unplanned: list[str] = []

    def add(
        self, resource: str, name: str, operations: str, why: str, *, prefixed: bool = False
    ) -> None:
        for operation in operations.split():
            acl = Acl(resource, "PREFIXED" if prefixed else "LITERAL", name, operation)
            reasons = self.reasons.setdefault(acl, [])
            if why not in reasons:
                reasons.append(why)

    def entries(self, principal: str) -> list[dict[str, Any]]:
        return [
            {
                "principal": principal,
                "host": "*",
                "resource_type": acl.resource,
                "pattern_type": acl.pattern,
                "name": acl.name,
                "operation": acl.operation,
                "permission": "ALLOW",
                "why": "; ".join(why),
            }
            for acl, why in self.reasons.items()
        ]


def plan(service: Service, *, http: bool = False, rebuild: bool = False) -> Plan:
    """What ``service`` needs: READ (and CREATE) on what it consumes, WRITE (and CREATE) on
    what it emits, its dead-letter topics, its consumer group, its ``.handled`` table, tables,
    its streams' (and so its aggregates' and sagas') topics, its projections' groups and
    topics, a transactional id prefix when exactly once, and the catalog it announces itself
    in. CREATE is there because a service creates the topics that are missing; drop it where
    an operator creates them. ``http``: it runs with ``--http-port`` (its streams' tables are
    served, replicas announced in ``_nerve_replicas``). ``rebuild``: this principal also runs
    ``nerve projection rebuild`` of the service's projections."""
    name = service.name
    out = Plan(service)
    builder = service.streams_builder
    streams = builder is not None and bool(builder.sources)
    consumed = list(dict.fromkeys(h.topic for h in service.handlers))
    for topic in consumed:
        out.add("TOPIC", topic, "READ CREATE", "consumes")
        out.add("TOPIC", dlq_topic(topic), "WRITE CREATE", "dead letters")
    for event_type in service.emits:
        out.add("TOPIC", event_type.topic, "WRITE CREATE", "emits")
    for handler in service.handlers:
        for event_type in handler.emits:
            out.add("TOPIC", event_type.topic, "WRITE CREATE", "emits")
    if streams:
        _streams(out, service, http)
    if consumed or streams:
        out.add("GROUP", name, "READ", "share group" if service.share_group else "its group")
        if service.share_group:
            out.add("GROUP", name, "DESCRIBE_CONFIGS ALTER_CONFIGS", "where the share group starts")
    if any(h.idempotent for h in service.handlers):
        out.add("TOPIC", f"{name}.handled", "READ WRITE CREATE", "idempotent handlers' table")
    for table in service.tables:
        out.add("TOPIC", table.topic, "READ", "table")
    if service.tables or any(h.idempotent for h in service.handlers):
        # A table reads by assignment, but its consumer has a group of its own
        # (nerve-table-<uuid>, never joined) whose coordinator librdkafka looks up.
        out.add("GROUP", "nerve-table-", "DESCRIBE", "tables' readers", prefixed=True)
    for projection in service.projections:
        # Its own consumer thread and group; it writes to its database, never to Kafka.
        why = f"projection {projection.name}"
        for topic in projection.by_topic:
            out.add("TOPIC", topic, "READ CREATE", why)
        out.add("GROUP", f"{name}.{projection.name}", "READ", why)
        if rebuild:
            # The rebuild reads by assignment from the build's own positions and commits them
            # to the database, never to Kafka; librdkafka looks up its group's coordinator.
            why = f"nerve projection rebuild {projection.name}"
            for topic in projection.by_topic:
                out.add("TOPIC", topic, "READ", why)
            out.add("GROUP", f"{name}.{projection.name}.rebuild", "DESCRIBE", why)
    if service.exactly_once:
        # <service>-<uuid> per process (runtime): a prefix
        out.add("TRANSACTIONAL_ID", f"{name}-", "WRITE", "exactly once", prefixed=True)
    out.add("TOPIC", CATALOG_TOPIC, "WRITE CREATE", "announces itself (best effort)")
    return out


def sender_plan(service: Service) -> Plan:
    """What a process sending commands to ``service``'s aggregates needs
    (``nerve.es.CommandClient``, ``service.send``): WRITE and CREATE on each command topic
    (the client makes a missing one), READ and CREATE on ``<service>.replies``, where the
    decisions come back, and DESCRIBE on groups prefixed ``/nerve/clients/`` (the reply reader
    reads by assignment from the end, in a group of its own, ``/nerve/clients/<id>-replies``,
    never joined, whose coordinator librdkafka looks up). An empty plan: it has no aggregates."""
    from nerve.es.node import AggregateNode
    from nerve.streams.engine import Topology

    out = Plan(service)
    builder = service.streams_builder
    if builder is None or not builder.sources:
        return out
    topology = Topology(builder)
    aggregates = [n for sub in topology.subs for n in sub.nodes if isinstance(n, AggregateNode)]
    for node in aggregates:
        why = f"sends commands to {node.cls.__name__}"
        for command_type in node.cls.commands:
            out.add("TOPIC", command_type.topic, "WRITE CREATE", why)
    if aggregates:
        out.add("TOPIC", f"{service.name}.replies", "READ CREATE", "reads the decisions")
        out.add("GROUP", "/nerve/clients/", "DESCRIBE", "its reply reader", prefixed=True)
    return out


# Nodes that send records arriving after their window (or watermark) to ``<origin>.late``.
_LATE_KINDS = frozenset({"window", "sliding-window", "session-window", "pattern"})
# Nodes whose store is a table served over HTTP (nerve.streams.queries).
_QUERYABLE_KINDS = frozenset({"aggregate", "table", "window", "sliding-window", "session-window"})


def _streams(out: Plan, service: Service, http: bool) -> None:
    """The streams part (nerve.streams.running), aggregates and sagas included (they are
    streams nodes): source topics, repartition topics and stores' changelogs by the names the
    topology gives them (fixed by the order of definition, so literal), ``.late`` topics of
    windowed and pattern operators' inputs, what ``to`` writes (an aggregate's replies and
    snapshots too), and the group its changelogs are restored with."""
    from nerve.service.handlers import declared_emits
    from nerve.streams.engine import Topology

    name = service.name
    topology = Topology(service.streams_builder)
    builder = topology.builder
    for topic in topology.user_topics:
        out.add("TOPIC", topic, "READ CREATE", "streams from")
        out.add("TOPIC", dlq_topic(topic), "WRITE CREATE", "dead letters")
    for topic, source in topology.sources_of_topic.items():
        if source.internal:
            # DELETE: what was consumed of it is purged (DeleteRecords), as Kafka Streams does.
            out.add("TOPIC", topic, "READ WRITE CREATE DELETE", "repartition topic")
    for sub in topology.subs:
        for changelog in topology.changelogs(sub):
            out.add("TOPIC", changelog, "READ WRITE CREATE", "changelog of its streams' state")
    for sub in topology.subs:
        for node in sub.nodes:
            if node.kind in _LATE_KINDS:
                for topic in builder.upstream_topics(node):
                    out.add("TOPIC", f"{topic}.late", "WRITE CREATE", "late records")
    for topic in sorted(builder.output_topics):
        out.add("TOPIC", topic, "WRITE CREATE", "streams write to")
    # Restoring reads the changelogs by assignment with this group, never joined; librdkafka
    # looks up its coordinator all the same.
    out.add("GROUP", f"{name}-restore", "DESCRIBE", "restores its streams' state")
    if http and any(
        n.kind in _QUERYABLE_KINDS and n.stores for sub in topology.subs for n in sub.nodes
    ):
        from nerve.streams.queries import REPLICAS_TOPIC

        out.add("TOPIC", REPLICAS_TOPIC, "READ WRITE CREATE", "announces where its tables are")
        out.add("GROUP", "nerve-table-", "DESCRIBE", "tables' readers", prefixed=True)
    if any(node.fn is None or not declared_emits(node.fn) for node in service.stream_emits):
        # emit() without a return annotation: the events' types, so topics, are not known.
        out.unplanned.append("events its streams emit() without a declared return type")
