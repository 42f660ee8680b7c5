"""Which operations a client may perform on a resource, as Kafka reports them in Metadata,
DescribeCluster and DescribeGroups (``include_*_authorized_operations``).

nerve has no authorizer yet (the security issue adds ACLs), so every operation Kafka defines
for a resource type is allowed, which is what Kafka answers when no authorizer is configured.
"""

from __future__ import annotations

import enum


class AclOperation(enum.IntEnum):
    """Kafka's AclOperation codes (the bit positions of an authorized-operations field)."""

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


class ResourceType(enum.IntEnum):
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4


# Kafka's AclEntry.supportedOperations, per resource type.
_OPS = AclOperation
SUPPORTED: dict[ResourceType, frozenset[AclOperation]] = {
    ResourceType.TOPIC: frozenset({_OPS.READ, _OPS.WRITE, _OPS.CREATE, _OPS.DELETE, _OPS.ALTER,
                                   _OPS.DESCRIBE, _OPS.DESCRIBE_CONFIGS, _OPS.ALTER_CONFIGS}),
    ResourceType.GROUP: frozenset({_OPS.READ, _OPS.DELETE, _OPS.DESCRIBE, _OPS.DESCRIBE_CONFIGS,
                                   _OPS.ALTER_CONFIGS}),
    ResourceType.CLUSTER: frozenset({_OPS.CREATE, _OPS.ALTER, _OPS.DESCRIBE, _OPS.CLUSTER_ACTION,
                                     _OPS.DESCRIBE_CONFIGS, _OPS.ALTER_CONFIGS,
                                     _OPS.IDEMPOTENT_WRITE}),
}  # fmt: skip

# The value of an authorized-operations field the client did not ask for.
NOT_REQUESTED = -(2**31)


def authorized_operations(resource: ResourceType, requested: bool = True) -> int:
    """The bit field of operations allowed on ``resource`` (all of them: no authorizer)."""
    if not requested:
        return NOT_REQUESTED
    return sum(1 << op for op in SUPPORTED[resource])
