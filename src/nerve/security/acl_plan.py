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


def plan(service: Service) -> Plan:
    """What ``service`` needs: READ (and CREATE) on what it consumes, WRITE (and CREATE) on
    what it emits, its dead-letter topics, its consumer group, its ``.handled`` table, tables,
    a transactional id prefix when exactly once, and the catalog it announces itself in
    (projections and streams are named in ``unplanned``). CREATE is there because a service
    creates the topics that are missing; drop it where an operator creates them."""
    name = service.name
    out = Plan(service)
    consumed = list(dict.fromkeys(h.topic for h in service.handlers))
    for topic in consumed:
        out.add("TOPIC", topic, "READ CREATE", "consumes")
        out.add("TOPIC", dlq_topic(topic), "WRITE CREATE", "dead letters")
    for event_type in service.emits:
        out.add("TOPIC", event_type.topic, "WRITE CREATE", "emits")
    for handler in service.handlers:
        for event_type in handler.emits:
            out.add("TOPIC", event_type.topic, "WRITE CREATE", "emits")
    if consumed:
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
    if service.projections:
        out.unplanned.append("projections")
    if service.streams_builder is not None and service.streams_builder.sources:
        out.unplanned.append("streams")
    if service.exactly_once:
        # <service>-<uuid> per process (runtime): a prefix
        out.add("TRANSACTIONAL_ID", f"{name}-", "WRITE", "exactly once", prefixed=True)
    out.add("TOPIC", CATALOG_TOPIC, "WRITE CREATE", "announces itself (best effort)")
    return out
