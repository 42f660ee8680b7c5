"""ACLs and the authorizer, with the semantics of Kafka's StandardAuthorizer.

An ACL binds a resource pattern (type, name, LITERAL or PREFIXED; the literal name ``*``
matches every name) to an entry (principal, host, operation, ALLOW or DENY). A request is
allowed when the principal is a super user, or some ALLOW ACL matches and no DENY ACL does;
READ, WRITE, DELETE and ALTER imply DESCRIBE, ALTER_CONFIGS implies DESCRIBE_CONFIGS (ALLOW
only); a resource no ACL names at all is allowed only with allow.everyone.if.no.acl.found.

Decisions are cached per connection and dropped whenever the ACLs change, so produce and
fetch pay a dictionary lookup per topic however many ACLs there are.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from typing import NamedTuple

from nerve.broker.security.store import Key, Value
from nerve.security.principal import KafkaPrincipal


class ResourceType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class AclOperation(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14
    TWO_PHASE_COMMIT = 15


class Permission(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


WILDCARD = "*"
CLUSTER_NAME = "kafka-cluster"
_IMPLIES_DESCRIBE = frozenset(
    {
        AclOperation.DESCRIBE,
        AclOperation.READ,
        AclOperation.WRITE,
        AclOperation.DELETE,
        AclOperation.ALTER,
    }
)
_IMPLIES_DESCRIBE_CONFIGS = frozenset({AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS})


class Acl(NamedTuple):
    resource_type: int
    resource_name: str
    pattern_type: int
    principal: str
    host: str
    operation: int
    permission: int

    def key(self) -> Key:
        return {"kind": "acl", **self._asdict()}

    @classmethod
    def from_key(cls, key: Key) -> Acl:
        return cls(*(key[field] for field in cls._fields))


class AclFilter(NamedTuple):
    """DescribeAcls' and DeleteAcls' filter: None and ANY match everything."""

    resource_type: int
    resource_name: str | None
    pattern_type: int
    principal: str | None
    host: str | None
    operation: int
    permission: int

    def matches(self, acl: Acl) -> bool:
        if self.resource_type != ResourceType.ANY and self.resource_type != acl.resource_type:
            return False
        if not self._pattern_matches(acl):
            return False
        if self.principal is not None and self.principal != acl.principal:
            return False
        if self.host is not None and self.host != acl.host:
            return False
        if self.operation != AclOperation.ANY and self.operation != acl.operation:
            return False
        return self.permission == Permission.ANY or self.permission == acl.permission

    def _pattern_matches(self, acl: Acl) -> bool:
        kind, name = self.pattern_type, self.resource_name
        if kind == PatternType.MATCH:
            if name is None:
                return True
            if acl.pattern_type == PatternType.LITERAL:
                return acl.resource_name in (name, WILDCARD)
            return acl.pattern_type == PatternType.PREFIXED and name.startswith(acl.resource_name)
        if kind != PatternType.ANY and kind != acl.pattern_type:
            return False
        return name is None or name == acl.resource_name


class Authorizer:
    """The ACLs in memory, indexed for lookups by resource, and the decision rule."""

    def __init__(self, super_users: frozenset[str], allow_if_no_acl: bool) -> None:
        self.super_users = super_users
        self.allow_if_no_acl = allow_if_no_acl
        self.acls: set[Acl] = set()
        # Bumped on every change: connections drop their cached decisions when it moves.
        self.generation = 0
        self._literal: dict[tuple[int, str], list[Acl]] = defaultdict(list)
        self._prefixed: dict[tuple[int, str], list[Acl]] = defaultdict(list)
        self._prefix_lengths: dict[int, set[int]] = defaultdict(set)

    # -- the store ----------------------------------------------------------------------------

    def apply(self, key: Key, value: Value) -> None:
        acl = Acl.from_key(key)
        if value is None:
            self.remove(acl)
        else:
            self.add(acl)

    def add(self, acl: Acl) -> None:
        if acl in self.acls:
            return
        self.acls.add(acl)
        index = self._literal if acl.pattern_type == PatternType.LITERAL else self._prefixed
        index[(acl.resource_type, acl.resource_name)].append(acl)
        if acl.pattern_type == PatternType.PREFIXED:
            self._prefix_lengths[acl.resource_type].add(len(acl.resource_name))
        self.generation += 1

    def remove(self, acl: Acl) -> None:
        if acl not in self.acls:
            return
        self.acls.discard(acl)
        index = self._literal if acl.pattern_type == PatternType.LITERAL else self._prefixed
        bucket = index[(acl.resource_type, acl.resource_name)]
        bucket.remove(acl)
        if not bucket:
            del index[(acl.resource_type, acl.resource_name)]
            if acl.pattern_type == PatternType.PREFIXED and not any(
                t == acl.resource_type and len(n) == len(acl.resource_name) for t, n in index
            ):
                self._prefix_lengths[acl.resource_type].discard(len(acl.resource_name))
        self.generation += 1

    # -- decisions ----------------------------------------------------------------------------

    def is_super_user(self, principal: KafkaPrincipal) -> bool:
        return str(principal) in self.super_users

    def authorize(
        self,
        principal: KafkaPrincipal,
        host: str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: str,
    ) -> bool:
        if str(principal) in self.super_users:
            return True
        principals = (str(principal), "User:*")
        allowed = False
        found = False
        for acl in self._candidates(resource_type, name):
            found = True
            result = _result(acl, principals, host, operation)
            if result is Permission.DENY:
                return False
            if result is Permission.ALLOW:
                allowed = True
        if allowed:
            return True
        return not found and self.allow_if_no_acl

    def _candidates(self, resource_type: int, name: str) -> list[Acl]:
        out = list(self._literal.get((resource_type, name), ()))
        if name != WILDCARD:
            out += self._literal.get((resource_type, WILDCARD), ())
        for length in self._prefix_lengths.get(resource_type, ()):
            if length <= len(name):
                out += self._prefixed.get((resource_type, name[:length]), ())
        return out

    def any_allowed(
        self, principal: KafkaPrincipal, host: str, operation: AclOperation, resource_type: int
    ) -> bool:
        """Whether some resource of a type may be acted on (Kafka's authorizeByResourceType:
        an ALLOW for it, on any name or prefix, that no DENY on the same pattern undoes)."""
        if str(principal) in self.super_users:
            return True
        principals = (str(principal), "User:*")
        denied = {
            (a.resource_name, a.pattern_type)
            for a in self.acls
            if a.resource_type == resource_type
            and _result(a, principals, host, operation) is Permission.DENY
        }
        if (WILDCARD, PatternType.LITERAL) in denied:
            return False
        for acl in self.acls:
            if acl.resource_type != resource_type:
                continue
            if _result(acl, principals, host, operation) is not Permission.ALLOW:
                continue
            if (
                not any(
                    p == PatternType.PREFIXED and acl.resource_name.startswith(n) for n, p in denied
                )
                and (acl.resource_name, acl.pattern_type) not in denied
            ):
                return True
        return self.allow_if_no_acl and not any(a.resource_type == resource_type for a in self.acls)


def _result(
    acl: Acl, principals: tuple[str, str], host: str, operation: AclOperation
) -> Permission | None:
    if acl.principal not in principals:
        return None
    if acl.host != WILDCARD and acl.host != host:
        return None
    if acl.operation != AclOperation.ALL:
        if acl.permission == Permission.ALLOW:
            if operation == AclOperation.DESCRIBE:
                if acl.operation not in _IMPLIES_DESCRIBE:
                    return None
            elif operation == AclOperation.DESCRIBE_CONFIGS:
                if acl.operation not in _IMPLIES_DESCRIBE_CONFIGS:
                    return None
            elif operation != acl.operation:
                return None
        elif operation != acl.operation:
            return None
    return Permission.ALLOW if acl.permission == Permission.ALLOW else Permission.DENY
