"""DescribeAcls, CreateAcls, DeleteAcls and DescribeUserScramCredentials, answered as Kafka
answers them when no authorizer and no SCRAM user is configured: ACL requests get
SECURITY_DISABLED (tools such as MirrorMaker 2 then skip ACL syncing quietly), and SCRAM
descriptions list no users. The security issue replaces these with real ACLs and credentials.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nerve.broker.errors import ErrorCode
from nerve.broker.handlers.metadata import NO_THROTTLE
from nerve.protocol import codec

if TYPE_CHECKING:
    from nerve.broker.server import Broker


def handle_describe_acls(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(29, header.api_version, True)
    return codec.make(
        module,
        "DescribeAclsResponse",
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.security_disabled,
        error_message="No Authorizer is configured on the broker",
        resources=(),
    )


def handle_create_acls(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(30, header.api_version, True)
    result = codec.make(
        module,
        "AclCreationResult",
        error_code=ErrorCode.security_disabled,
        error_message="No Authorizer is configured.",
    )
    return codec.make(
        module,
        "CreateAclsResponse",
        throttle_time=NO_THROTTLE,
        results=tuple(result for _ in request.creations),
    )


def handle_delete_acls(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(31, header.api_version, True)
    result = codec.make(
        module,
        "DeleteAclsFilterResult",
        error_code=ErrorCode.security_disabled,
        error_message="No Authorizer is configured.",
        matching_acls=(),
    )
    return codec.make(
        module,
        "DeleteAclsResponse",
        throttle_time=NO_THROTTLE,
        filter_results=tuple(result for _ in request.filters),
    )


def handle_describe_user_scram_credentials(
    broker: Broker, header: codec.RequestHeader, request: Any
) -> Any:
    """No SCRAM users: every named user is RESOURCE_NOT_FOUND (a name given twice,
    DUPLICATE_RESOURCE), and asking for all lists none, as Kafka answers."""
    module = codec.schema_module(50, header.api_version, True)
    names = [u.name for u in request.users or ()]
    results = []
    for name in dict.fromkeys(names):
        if names.count(name) > 1:
            code = ErrorCode.duplicate_resource
            message = (
                "Cannot describe SCRAM credentials for the same user twice in a single "
                f"request: {name}"
            )
        else:
            code = ErrorCode.resource_not_found
            message = f"Attempt to describe a user credential that does not exist: {name}"
        results.append(
            codec.make(
                module,
                "DescribeUserScramCredentialsResult",
                user=name,
                error_code=code,
                error_message=message,
                credential_infos=(),
            )
        )
    return codec.make(
        module,
        "DescribeUserScramCredentialsResponse",
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        error_message="",
        results=tuple(results),
    )
