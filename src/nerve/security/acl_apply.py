"""Creating planned ACLs on a cluster (``nerve acl plan --apply``) through Kafka's admin API:
DescribeAcls for each planned principal first, then CreateAcls for only the entries it lacks,
so a second run creates nothing and says so. ACLs the principal holds beyond the plan are
reported, never deleted: the plan is a floor, and an operator may have granted more on
purpose. Works against any Kafka with an authorizer (nerve's, StandardAuthorizer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# (resource type, name, pattern type, principal, host, operation, permission): Kafka's names
Key = tuple[str, str, str, str, str, str, str]


class ApplyError(Exception):
    """The cluster refused to list or create ACLs (no authorizer, not allowed): its reason,
    and what was created before the refusal."""

    def __init__(self, message: str, created: list[Key] | None = None) -> None:
        super().__init__(message)
        self.created = created or []


@dataclass
class Applied:
    """What a run did: the keys it created, those already there, and the principal's other
    ACLs (left alone)."""

    created: list[Key] = field(default_factory=list)
    present: list[Key] = field(default_factory=list)
    extra: list[Key] = field(default_factory=list)


def key(entry: dict[str, Any]) -> Key:
    """A plan entry (``Plan.entries``) as a comparable key."""
    return (
        entry["resource_type"],
        entry["name"],
        entry["pattern_type"],
        entry["principal"],
        entry["host"],
        entry["operation"],
        entry["permission"],
    )


def line(k: Key) -> str:
    """As kafka-acls --list prints an entry."""
    resource, name, pattern, principal, host, operation, permission = k
    return (
        f"(principal={principal}, host={host}, operation={operation}, "
        f"permissionType={permission}) on {resource}:{pattern}:{name}"
    )


def _binding(k: Key) -> Any:
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    resource, name, pattern, principal, host, operation, permission = k
    return AclBinding(
        ResourceType[resource],
        name,
        ResourcePatternType[pattern],
        principal,
        host,
        AclOperation[operation],
        AclPermissionType[permission],
    )


def _key_of(binding: Any) -> Key:
    return (
        binding.restype.name,
        binding.name,
        binding.resource_pattern_type.name,
        binding.principal,
        binding.host,
        binding.operation.name,
        binding.permission_type.name,
    )


def _reason(exc: BaseException) -> str:
    """The error's own words; its code's description where the broker's message is a dump
    (Kafka 4.4 answers a CreateAcls refused on its controller with the request's toString)."""
    from confluent_kafka import KafkaError

    error = exc.args[0] if exc.args else exc
    if not isinstance(error, KafkaError):
        return str(error)
    text = str(error.str())
    if len(text) > 200 or text.startswith("Request Request("):
        return str(KafkaError(error.code()).str())
    return text


def existing(admin: Any, principal: str, timeout: float = 30) -> list[Key]:
    """The ACLs the cluster holds for ``principal``, on any resource and host."""
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    # None matches any name and any host (confluent-kafka's stubs say str).
    wanted = AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]
        ResourcePatternType.ANY,
        principal,
        None,  # type: ignore[arg-type]
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    try:
        found = admin.describe_acls(wanted, request_timeout=timeout).result(timeout)
    except Exception as exc:
        raise ApplyError(f"cannot list the ACLs of {principal}: {_reason(exc)}") from None
    return [_key_of(b) for b in found]


def apply(admin: Any, entries: list[dict[str, Any]], timeout: float = 30) -> Applied:
    """Create those of ``entries`` (``Plan.entries``, several services' alike) the cluster
    lacks; an entry planned twice (two services as one principal) is created once."""
    planned = list(dict.fromkeys(key(e) for e in entries))
    held: list[Key] = []
    for principal in dict.fromkeys(k[3] for k in planned):
        held += existing(admin, principal, timeout)
    have = set(held)
    out = Applied(
        present=[k for k in planned if k in have],
        extra=sorted(set(held) - set(planned)),
    )
    missing = [k for k in planned if k not in have]
    if not missing:
        return out
    try:
        futures = admin.create_acls([_binding(k) for k in missing], request_timeout=timeout)
    except Exception as exc:  # refused before sending: bad input
        raise ApplyError(f"cannot create ACLs: {_reason(exc)}") from None
    refused: dict[Key, str] = {}
    for binding, future in futures.items():
        try:
            future.result(timeout)
        except Exception as exc:
            refused[_key_of(binding)] = _reason(exc)
        else:
            out.created.append(_key_of(binding))
    out.created.sort(key=missing.index)
    if refused:
        why = "; ".join(dict.fromkeys(refused.values()))
        raise ApplyError(f"cannot create {len(refused)} of {len(missing)} ACLs: {why}", out.created)
    return out
