"""DescribeAcls, CreateAcls, DeleteAcls, DescribeUserScramCredentials and
AlterUserScramCredentials. ACLs are kept (in the security topic) only with an authorizer
configured; without one the ACL requests get SECURITY_DISABLED as on Kafka (tools such as
MirrorMaker 2 then skip ACL syncing quietly).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kio.static.primitive import i8, i32

from nerve.broker.errors import ErrorCode
from nerve.broker.handlers.metadata import NO_THROTTLE
from nerve.broker.security.acls import (
    CLUSTER_NAME,
    Acl,
    AclFilter,
    AclOperation,
    PatternType,
    Permission,
    ResourceType,
)
from nerve.broker.security.credentials import (
    CODES,
    MAX_ITERATIONS,
    MECHANISM_CODES,
    MIN_ITERATIONS,
    Credential,
    credential_key,
)
from nerve.broker.security.store import Key, Value
from nerve.protocol import codec

if TYPE_CHECKING:
    from nerve.broker.security.session import Session
    from nerve.broker.server import Broker


def handle_describe_acls(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(29, header.api_version, True)
    authorizer = broker.security.authorizer
    if authorizer is not None:
        assert broker.session is not None
        if not broker.security.authorize(
            broker.session, AclOperation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME
        ):
            return codec.make(
                module,
                "DescribeAclsResponse",
                throttle_time=NO_THROTTLE,
                error_code=ErrorCode.cluster_authorization_failed,
                error_message="Cluster authorization failed.",
                resources=(),
            )
        matching = [acl for acl in authorizer.acls if _filter(request).matches(acl)]
        by_resource: dict[tuple[int, str, int], list[Acl]] = {}
        for acl in sorted(matching):
            by_resource.setdefault(
                (acl.resource_type, acl.resource_name, acl.pattern_type), []
            ).append(acl)
        resources = tuple(
            codec.make(
                module,
                "DescribeAclsResource",
                resource_type=i8(kind),
                resource_name=name,
                pattern_type=i8(pattern),
                acls=tuple(
                    codec.make(
                        module,
                        "AclDescription",
                        principal=a.principal,
                        host=a.host,
                        operation=i8(a.operation),
                        permission_type=i8(a.permission),
                    )
                    for a in acls
                ),
            )
            for (kind, name, pattern), acls in by_resource.items()
        )
        return codec.make(
            module,
            "DescribeAclsResponse",
            throttle_time=NO_THROTTLE,
            error_code=ErrorCode.none,
            error_message=None,
            resources=resources,
        )
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
    if broker.security.authorizer is not None:
        assert broker.session is not None
        return _create_acls(broker, broker.session, module, request)
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
    if broker.security.authorizer is not None:
        assert broker.session is not None
        return _delete_acls(broker, broker.session, module, request)
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


def _filter(request: Any) -> AclFilter:
    return AclFilter(
        request.resource_type_filter,
        request.resource_name_filter,
        getattr(request, "pattern_type_filter", PatternType.LITERAL),
        request.principal_filter,
        request.host_filter,
        request.operation,
        request.permission_type,
    )


def _invalid_acl(creation: Any) -> str | None:
    """Why Kafka refuses to create this ACL (INVALID_REQUEST), or None (AclControlManager's
    and AclApis' checks, their texts)."""
    if creation.resource_type == ResourceType.CLUSTER and creation.resource_name != CLUSTER_NAME:
        return f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
    if not creation.resource_name:
        return "Invalid empty resource name"
    checks = (
        (
            ResourceType,
            creation.resource_type,
            "resourceType",
            (ResourceType.UNKNOWN, ResourceType.ANY),
        ),
        (
            PatternType,
            creation.resource_pattern_type,
            "patternType",
            (PatternType.UNKNOWN, PatternType.ANY, PatternType.MATCH),
        ),
        (AclOperation, creation.operation, "operation", (AclOperation.UNKNOWN, AclOperation.ANY)),
        (
            Permission,
            creation.permission_type,
            "permissionType",
            (Permission.UNKNOWN, Permission.ANY),
        ),
    )
    for kind, value, label, invalid in checks:
        try:
            member = kind(value)
        except ValueError:
            return f"Invalid {label} UNKNOWN"
        if member in invalid:
            return f"Invalid {label} {member.name}"
    if ":" not in creation.principal:
        return (
            f"Could not parse principal from `{creation.principal}` (no colon is present "
            "separating the principal type from the principal name)"
        )
    return None


async def _create_acls(broker: Broker, session: Session, module: Any, request: Any) -> Any:
    # ``session`` is the caller's: by the time this coroutine runs, broker.session may be
    # another connection's.
    assert session is not None and broker.security.authorizer is not None
    results: list[tuple[ErrorCode, str | None]] = []
    if not broker.security.authorize(
        session, AclOperation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME
    ):
        results = [
            (ErrorCode.cluster_authorization_failed, "Cluster authorization failed.")
            for _ in request.creations
        ]
    else:
        changes: list[tuple[Key, Value]] = []
        for creation in request.creations:
            reason = _invalid_acl(creation)
            if reason is not None:
                results.append((ErrorCode.invalid_request, reason))
                continue
            acl = Acl(
                creation.resource_type,
                creation.resource_name,
                creation.resource_pattern_type,
                creation.principal,
                creation.host,
                creation.operation,
                creation.permission_type,
            )
            changes.append((acl.key(), {}))
            results.append((ErrorCode.none, None))
        if changes:
            await broker.security.store.write(changes)
            for key, value in changes:
                broker.security.authorizer.apply(key, value)
    return codec.make(
        module,
        "CreateAclsResponse",
        throttle_time=NO_THROTTLE,
        results=tuple(
            codec.make(module, "AclCreationResult", error_code=code, error_message=message)
            for code, message in results
        ),
    )


async def _delete_acls(broker: Broker, session: Session, module: Any, request: Any) -> Any:
    authorizer = broker.security.authorizer
    assert session is not None and authorizer is not None
    allowed = broker.security.authorize(
        session, AclOperation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME
    )
    results = []
    deleted: set[Acl] = set()
    for request_filter in request.filters:
        if not allowed:
            results.append(
                codec.make(
                    module,
                    "DeleteAclsFilterResult",
                    error_code=ErrorCode.cluster_authorization_failed,
                    error_message="Cluster authorization failed.",
                    matching_acls=(),
                )
            )
            continue
        matching = sorted(a for a in authorizer.acls if _filter(request_filter).matches(a))
        deleted.update(matching)
        results.append(
            codec.make(
                module,
                "DeleteAclsFilterResult",
                error_code=ErrorCode.none,
                error_message=None,
                matching_acls=tuple(
                    codec.make(
                        module,
                        "DeleteAclsMatchingAcl",
                        error_code=ErrorCode.none,
                        error_message=None,
                        resource_type=i8(a.resource_type),
                        resource_name=a.resource_name,
                        pattern_type=i8(a.pattern_type),
                        principal=a.principal,
                        host=a.host,
                        operation=i8(a.operation),
                        permission_type=i8(a.permission),
                    )
                    for a in matching
                ),
            )
        )
    if deleted:
        changes: list[tuple[Key, Value]] = [(acl.key(), None) for acl in deleted]
        await broker.security.store.write(changes)
        for key, value in changes:
            authorizer.apply(key, value)
    return codec.make(
        module, "DeleteAclsResponse", throttle_time=NO_THROTTLE, filter_results=tuple(results)
    )


def handle_describe_user_scram_credentials(
    broker: Broker, header: codec.RequestHeader, request: Any
) -> Any:
    """The users with SCRAM credentials and the mechanisms and iterations of each (never the
    salts or keys); a named user without any is RESOURCE_NOT_FOUND, one named twice
    DUPLICATE_RESOURCE, as Kafka answers."""
    module = codec.schema_module(50, header.api_version, True)
    assert broker.session is not None
    if not broker.security.authorize(
        broker.session, AclOperation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME
    ):
        return codec.make(
            module,
            "DescribeUserScramCredentialsResponse",
            throttle_time=NO_THROTTLE,
            error_code=ErrorCode.cluster_authorization_failed,
            error_message="Cluster authorization failed.",
            results=(),
        )
    known = broker.security.credentials.by_user
    names = [u.name for u in request.users] if request.users else sorted(known)
    results = []
    for name in dict.fromkeys(names):
        infos: tuple[Any, ...] = ()
        if names.count(name) > 1:
            code = ErrorCode.duplicate_resource
            message: str | None = (
                "Cannot describe SCRAM credentials for the same user twice in a single "
                f"request: {name}"
            )
        elif name not in known:
            code = ErrorCode.resource_not_found
            message = f"Attempt to describe a user credential that does not exist: {name}"
        else:
            code, message = ErrorCode.none, None
            infos = tuple(
                codec.make(
                    module,
                    "CredentialInfo",
                    mechanism=i8(CODES[mechanism]),
                    iterations=i32(credential.iterations),
                )
                for mechanism, credential in sorted(known[name].items())
            )
        results.append(
            codec.make(
                module,
                "DescribeUserScramCredentialsResult",
                user=name,
                error_code=code,
                error_message=message,
                credential_infos=infos,
            )
        )
    return codec.make(
        module,
        "DescribeUserScramCredentialsResponse",
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        error_message=None,
        results=tuple(results),
    )


def handle_alter_user_scram_credentials(
    broker: Broker, header: codec.RequestHeader, request: Any
) -> Any:
    """Takes the requesting session now: the coroutine runs later, when broker.session may be
    another connection's."""
    assert broker.session is not None
    return _alter_user_scram_credentials(broker, broker.session, header, request)


async def _alter_user_scram_credentials(
    broker: Broker, session: Session, header: codec.RequestHeader, request: Any
) -> Any:
    """KIP-554: the client salts the password; the broker keeps salt, StoredKey and ServerKey
    in the security topic, fsynced before it answers. Validation and texts are Kafka's
    (ScramControlManager); a user may be altered once per request."""
    module = codec.schema_module(51, header.api_version, True)
    security = broker.security
    if not security.authorize(session, AclOperation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME):
        users = dict.fromkeys(
            [d.name for d in request.deletions] + [u.name for u in request.upsertions]
        )
        denied = (ErrorCode.cluster_authorization_failed, "Cluster authorization failed.")
        return _scram_response(module, [(u, *denied) for u in users])
    deletions: dict[str, Any] = {}
    upsertions: dict[str, Any] = {}
    errors: dict[str, tuple[ErrorCode, str]] = {}
    twice = (
        ErrorCode.duplicate_resource,
        "A user credential cannot be altered twice in the same request",
    )
    for deletion in request.deletions:
        if deletion.name in errors:
            continue
        if deletions.pop(deletion.name, None) is not None:
            errors[deletion.name] = twice
            continue
        error = _check_user(deletion.name, deletion.mechanism)
        if (
            error is None
            and security.credentials.get(MECHANISM_CODES[deletion.mechanism], deletion.name) is None
        ):
            error = (
                ErrorCode.resource_not_found,
                "Attempt to delete a user credential that does not exist",
            )
        if error is not None:
            errors[deletion.name] = error
        else:
            deletions[deletion.name] = deletion
    for upsertion in request.upsertions:
        if upsertion.name in errors:
            continue
        if (
            deletions.pop(upsertion.name, None) is not None
            or upsertions.pop(upsertion.name, None) is not None
        ):
            errors[upsertion.name] = twice
            continue
        error = _check_user(upsertion.name, upsertion.mechanism)
        if error is None:
            if upsertion.iterations < MIN_ITERATIONS:
                error = (ErrorCode.unacceptable_credential, "Too few iterations")
            elif upsertion.iterations > MAX_ITERATIONS:
                error = (ErrorCode.unacceptable_credential, "Too many iterations")
            elif len(upsertion.salt) < 12:
                error = (
                    ErrorCode.unacceptable_credential,
                    "The salt must be at least 12 bytes long",
                )
        if error is not None:
            errors[upsertion.name] = error
        else:
            upsertions[upsertion.name] = upsertion
    changes: list[tuple[Key, Value]] = []
    for deletion in deletions.values():
        changes.append((credential_key(deletion.name, MECHANISM_CODES[deletion.mechanism]), None))
    for upsertion in upsertions.values():
        mechanism = MECHANISM_CODES[upsertion.mechanism]
        credential = Credential.from_salted_password(
            mechanism, upsertion.salt, upsertion.salted_password, upsertion.iterations
        )
        changes.append((credential_key(upsertion.name, mechanism), credential.to_json()))
    if changes:
        await security.store.write(changes)
        for key, value in changes:
            security.credentials.apply(key, value)
    results: list[tuple[str, ErrorCode, str | None]] = [
        (name, ErrorCode.none, None) for name in [*deletions, *upsertions]
    ]
    results += [(name, code, message) for name, (code, message) in errors.items()]
    return _scram_response(module, results)


def _check_user(name: str, mechanism: int) -> tuple[ErrorCode, str] | None:
    if not name:
        return ErrorCode.unacceptable_credential, "Username must not be empty"
    if mechanism not in MECHANISM_CODES:
        return ErrorCode.unsupported_sasl_mechanism, "Unknown SCRAM mechanism"
    return None


def _scram_response(module: Any, results: list[tuple[str, ErrorCode, str | None]]) -> Any:
    return codec.make(
        module,
        "AlterUserScramCredentialsResponse",
        throttle_time=NO_THROTTLE,
        results=tuple(
            codec.make(
                module,
                "AlterUserScramCredentialsResult",
                user=name,
                error_code=code,
                error_message=message,
            )
            for name, code, message in results
        ),
    )
