"""Authorization of every request, as Kafka's KafkaApis checks it with the authorizer: the
operation each API needs on which resource, and the error code a refusal is answered with.

Handlers stay unaware of ACLs. With an authorizer configured, the connection hands each
request here: a request refused as a whole is answered with the API's error response; a
request naming several topics or groups is passed on without the refused ones, whose entries
are then added to the handler's response with TOPIC_AUTHORIZATION_FAILED (and so on). An API
this table does not name is allowed to super users only (CLUSTER_AUTHORIZATION_FAILED), so a
new handler is closed until its rule is written here.
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import types
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nerve.broker.errors import ErrorCode
from nerve.broker.security.acls import CLUSTER_NAME, AclOperation, ResourceType
from nerve.broker.security.session import Session
from nerve.protocol import codec

if TYPE_CHECKING:
    from nerve.broker.server import Broker

Op = AclOperation
RT = ResourceType
_ZERO_UUID = uuid.UUID(int=0)
_MINUS_ONE = ("offset", "timestamp", "epoch", "leader", "node_id", "generation", "producer_id")


class Context:
    """One request being authorized."""

    def __init__(self, broker: Broker, session: Session, header: codec.RequestHeader) -> None:
        self.broker = broker
        self.session = session
        self.header = header
        self.module = codec.schema_module(header.api_key, header.api_version, True)

    def allowed(self, operation: AclOperation, resource: ResourceType, name: str) -> bool:
        return self.broker.security.authorize(self.session, operation, resource, name)

    def cluster(self, operation: AclOperation) -> bool:
        return self.allowed(operation, RT.CLUSTER, CLUSTER_NAME)

    def topic_name(self, entry: Any) -> str | None:
        name = getattr(entry, "name", None) or getattr(entry, "topic", None)
        if name:
            return str(name)
        topic_id = getattr(entry, "topic_id", None)
        topic = self.broker.topics.by_id.get(topic_id) if topic_id is not None else None
        return topic.name if topic is not None else None

    def blank(self, class_name: str, **values: Any) -> Any:
        return blank(getattr(self.module, class_name), **values)


def blank(cls: type, **values: Any) -> Any:
    """An instance of a kio class with every field not given at its default or zero value
    (-1 for offsets, epochs and ids, as Kafka fills the entries of refused items)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            out[f.name] = values[f.name]
        elif f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
        else:
            out[f.name] = _zero(f)
    return cls(**out)


def _zero(f: dataclasses.Field[Any]) -> Any:
    kind = f.metadata.get("kafka_type")
    optional = type(None) in getattr(f.type, "__args__", ())
    if kind == "error_code":
        return ErrorCode.none
    if kind in ("int8", "int16", "int32", "int64", "uint16"):
        return -1 if any(w in f.name for w in _MINUS_ONE) else 0
    if kind == "bool":
        return False
    if kind == "string":
        return None if optional else ""
    if kind == "bytes":
        return None if optional else b""
    if kind == "records":
        return None
    if kind == "uuid":
        return _ZERO_UUID
    if kind == "float64":
        return 0.0
    if kind in ("timedelta_i32", "timedelta_i64"):
        return datetime.timedelta(0)
    if kind == "datetime_i64":
        return None
    origin = getattr(f.type, "__origin__", None)
    if origin is tuple:
        return ()
    if isinstance(f.type, type) and dataclasses.is_dataclass(f.type):
        return blank(f.type)
    if isinstance(f.type, types.UnionType) and optional:
        return None
    raise TypeError(f"no zero value for {f.name}: {f.type}")


def error_response(ctx: Context, code: ErrorCode, message: str | None = None) -> Any:
    """The API's response refusing the whole request: top-level error fields set, lists of
    items given the same error where the request names them."""
    response_cls = codec._response_class(ctx.header.api_key, ctx.header.api_version)
    values: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(response_cls)}
    if "error_code" in names:
        values["error_code"] = code
    if "error_message" in names:
        values["error_message"] = message
    return blank(response_cls, **values)


Handler = Callable[..., Any]
Rule = Callable[[Context, Any, Handler], Any]


def _run(ctx: Context, handler: Handler, request: Any) -> Any:
    return handler(ctx.broker, ctx.header, request)


def _then(result: Any, patch: Callable[[Any], Any]) -> Any:
    """Apply ``patch`` to a handler's response, now or once it is ready."""
    if result is None:
        return None
    if not inspect.isawaitable(result):
        return patch(result)

    async def later() -> Any:
        body = await result
        return None if body is None else patch(body)

    return later()


# -- whole requests -----------------------------------------------------------------------------


def _whole(check: Callable[[Context, Any], ErrorCode | None]) -> Rule:
    def rule(ctx: Context, request: Any, handler: Handler) -> Any:
        code = check(ctx, request)
        if code is not None:
            return error_response(ctx, code)
        return _run(ctx, handler, request)

    return rule


def _cluster(operation: AclOperation) -> Rule:
    return _whole(
        lambda ctx, _r: None if ctx.cluster(operation) else ErrorCode.cluster_authorization_failed
    )


def _group(operation: AclOperation, field: str = "group_id") -> Rule:
    def check(ctx: Context, request: Any) -> ErrorCode | None:
        if ctx.allowed(operation, RT.GROUP, getattr(request, field)):
            return None
        return ErrorCode.group_authorization_failed

    return _whole(check)


def _init_producer_id(ctx: Context, request: Any, handler: Handler) -> Any:
    txn = request.transactional_id
    if txn:
        if not ctx.allowed(Op.WRITE, RT.TRANSACTIONAL_ID, txn):
            return error_response(ctx, ErrorCode.transactional_id_authorization_failed)
    elif not (
        ctx.cluster(Op.IDEMPOTENT_WRITE)
        or ctx.broker.security.authorizer is None
        or ctx.broker.security.authorizer.any_allowed(
            ctx.session.principal, ctx.session.host, Op.WRITE, RT.TOPIC
        )
    ):
        return error_response(ctx, ErrorCode.cluster_authorization_failed)
    return _run(ctx, handler, request)


def _txn_write(field: str = "transactional_id") -> Rule:
    def check(ctx: Context, request: Any) -> ErrorCode | None:
        if ctx.allowed(Op.WRITE, RT.TRANSACTIONAL_ID, getattr(request, field)):
            return None
        return ErrorCode.transactional_id_authorization_failed

    return _whole(check)


def _add_offsets_to_txn(ctx: Context, request: Any, handler: Handler) -> Any:
    if not ctx.allowed(Op.WRITE, RT.TRANSACTIONAL_ID, request.transactional_id):
        return error_response(ctx, ErrorCode.transactional_id_authorization_failed)
    if not ctx.allowed(Op.READ, RT.GROUP, request.group_id):
        return error_response(ctx, ErrorCode.group_authorization_failed)
    return _run(ctx, handler, request)


def _add_partitions_to_txn(ctx: Context, request: Any, handler: Handler) -> Any:
    """v0-v3: a refused transactional id fails every partition with its error; refused
    topics fail theirs with TOPIC_AUTHORIZATION_FAILED and the rest OPERATION_NOT_ATTEMPTED."""
    txn = request.v3_and_below_transactional_id
    topics = request.v3_and_below_topics
    txn_denied = not ctx.allowed(Op.WRITE, RT.TRANSACTIONAL_ID, txn)
    denied = {t.name for t in topics if not ctx.allowed(Op.WRITE, RT.TOPIC, t.name)}
    if not txn_denied and not denied:
        return _run(ctx, handler, request)

    def code(name: str) -> ErrorCode:
        if txn_denied:
            return ErrorCode.transactional_id_authorization_failed
        if name in denied:
            return ErrorCode.topic_authorization_failed
        return ErrorCode.operation_not_attempted

    results = tuple(
        ctx.blank(
            "AddPartitionsToTxnTopicResult",
            name=t.name,
            results_by_partition=tuple(
                ctx.blank(
                    "AddPartitionsToTxnPartitionResult",
                    partition_index=p,
                    partition_error_code=code(t.name),
                )
                for p in t.partitions
            ),
        )
        for t in topics
    )
    return ctx.blank("AddPartitionsToTxnResponse", results_by_topic_v3_and_below=results)


# -- requests naming several topics -------------------------------------------------------------


def _per_topic(
    operation: AclOperation,
    topics: str,
    partitions: str,
    responses: str,
    topic_class: str,
    partition_class: str,
    response_partitions: str,
    index: str,
    response_index: str = "partition_index",
    error: str = "error_code",
    before: Callable[[Context, Any], ErrorCode | None] | None = None,
    tweak: Callable[[Any], Any] | None = None,
) -> Rule:
    """Refuse the topics the principal may not ``operation``; pass the rest on."""

    def rule(ctx: Context, request: Any, handler: Handler) -> Any:
        whole = before(ctx, request) if before is not None else None
        entries = getattr(request, topics) or ()
        refused = []
        kept = []
        for entry in entries:
            name = ctx.topic_name(entry)
            if whole is None and (name is None or ctx.allowed(operation, RT.TOPIC, name)):
                kept.append(entry)  # unknown ids: the handler answers UNKNOWN_TOPIC_ID
            else:
                refused.append(entry)
        if not refused:
            return _run(ctx, handler, request)
        code = whole or ErrorCode.topic_authorization_failed
        narrowed = dataclasses.replace(request, **{topics: tuple(kept)})
        if tweak is not None:
            narrowed = tweak(narrowed)

        def add_refused(response: Any) -> Any:
            made = []
            for entry in refused:
                ident = {
                    k: getattr(entry, k) for k in ("name", "topic", "topic_id") if hasattr(entry, k)
                }
                made.append(
                    ctx.blank(
                        topic_class,
                        **ident,
                        **{
                            response_partitions: tuple(
                                ctx.blank(
                                    partition_class,
                                    **{response_index: _index(p, index), error: code},
                                )
                                for p in getattr(entry, partitions)
                            )
                        },
                    )
                )
            listed = tuple(getattr(response, responses)) + tuple(made)
            return dataclasses.replace(response, **{responses: listed})

        return _then(_run(ctx, handler, narrowed), add_refused)

    return rule


def _index(partition: Any, field: str) -> Any:
    return partition if isinstance(partition, int) else getattr(partition, field)


def _offset_commit_group(ctx: Context, request: Any) -> ErrorCode | None:
    if ctx.allowed(Op.READ, RT.GROUP, request.group_id):
        return None
    return ErrorCode.group_authorization_failed


def _txn_offset_commit_whole(ctx: Context, request: Any) -> ErrorCode | None:
    if not ctx.allowed(Op.WRITE, RT.TRANSACTIONAL_ID, request.transactional_id):
        return ErrorCode.transactional_id_authorization_failed
    if not ctx.allowed(Op.READ, RT.GROUP, request.group_id):
        return ErrorCode.group_authorization_failed
    return None


def _fetch_now(request: Any) -> Any:
    """A fetch with refused partitions answers at once, as Kafka's (errors are data)."""
    return dataclasses.replace(request, max_wait=datetime.timedelta(0))


def _per_item(
    items: str | tuple[str, ...],
    check: Callable[[Context, Any], ErrorCode | None],
    responses: str,
    result_class: str,
    fields: Callable[[Any], dict[str, Any]],
) -> Rule:
    """Requests naming resources one per entry (topics to create, groups, config
    resources): refused entries are answered with ``check``'s error, the rest passed on."""

    def rule(ctx: Context, request: Any, handler: Handler) -> Any:
        field = items if isinstance(items, str) else next(f for f in items if hasattr(request, f))
        entries = getattr(request, field) or ()
        refused = [(e, code) for e in entries if (code := check(ctx, e)) is not None]
        if not refused:
            return _run(ctx, handler, request)
        refused_ids = {id(e) for e, _ in refused}
        kept = tuple(e for e in entries if id(e) not in refused_ids)
        made = tuple(ctx.blank(result_class, error_code=code, **fields(e)) for e, code in refused)

        def add_refused(response: Any) -> Any:
            listed = tuple(getattr(response, responses)) + made
            return dataclasses.replace(response, **{responses: listed})

        if not kept:
            return add_refused(error_response(ctx, ErrorCode.none))
        return _then(_run(ctx, handler, dataclasses.replace(request, **{field: kept})), add_refused)

    return rule


def _topic_check(operation: AclOperation, also_cluster: bool = False) -> Callable[..., Any]:
    def check(ctx: Context, entry: Any) -> ErrorCode | None:
        name = entry if isinstance(entry, str) else ctx.topic_name(entry)
        if name is None:
            return None
        if also_cluster and ctx.cluster(operation):
            return None
        return (
            None
            if ctx.allowed(operation, RT.TOPIC, name)
            else (ErrorCode.topic_authorization_failed)
        )

    return check


def _group_check(operation: AclOperation) -> Callable[..., Any]:
    def check(ctx: Context, entry: Any) -> ErrorCode | None:
        name = entry if isinstance(entry, str) else entry.group_id
        return (
            None
            if ctx.allowed(operation, RT.GROUP, name)
            else (ErrorCode.group_authorization_failed)
        )

    return check


# DescribeConfigs' and AlterConfigs' resource types: what each is authorized on.
_CONFIG_RESOURCES = {2: RT.TOPIC, 4: RT.CLUSTER, 8: RT.CLUSTER, 16: RT.CLUSTER, 32: RT.GROUP}
_CONFIG_ERRORS = {
    RT.TOPIC: ErrorCode.topic_authorization_failed,
    RT.CLUSTER: ErrorCode.cluster_authorization_failed,
    RT.GROUP: ErrorCode.group_authorization_failed,
}


def _config_check(operation: AclOperation) -> Callable[..., Any]:
    def check(ctx: Context, entry: Any) -> ErrorCode | None:
        kind = _CONFIG_RESOURCES.get(entry.resource_type, RT.CLUSTER)
        name = CLUSTER_NAME if kind == RT.CLUSTER else entry.resource_name
        return None if ctx.allowed(operation, kind, name) else _CONFIG_ERRORS[kind]

    return check


def _config_fields(entry: Any) -> dict[str, Any]:
    return {
        "resource_type": entry.resource_type,
        "resource_name": entry.resource_name,
        "error_message": None,
    }


def authorized_operations(ctx: Context, resource: ResourceType, name: str) -> int:
    from nerve.broker.authorization import SUPPORTED
    from nerve.broker.authorization import ResourceType as Reported

    return sum(
        1 << op
        for op in SUPPORTED[Reported(int(resource))]
        if ctx.allowed(AclOperation(int(op)), resource, name)
    )


def _metadata(ctx: Context, request: Any, handler: Handler) -> Any:
    """Metadata lists only the topics the principal may describe; a named topic it may not
    describe (or create, when it would be auto-created) is TOPIC_AUTHORIZATION_FAILED."""
    everything = request.topics is None or (ctx.header.api_version == 0 and not request.topics)
    refused: list[Any] = []
    if not everything:
        kept = []
        auto = getattr(request, "allow_auto_topic_creation", True) and (
            ctx.broker.config.auto_create_topics_enable
        )
        for entry in request.topics:
            name = ctx.topic_name(entry)
            if name is None:
                kept.append(entry)
                continue
            exists = ctx.broker.topics.get(name) is not None
            if not ctx.allowed(Op.DESCRIBE, RT.TOPIC, name) or (
                not exists
                and auto
                and not ctx.cluster(Op.CREATE)
                and not ctx.allowed(Op.CREATE, RT.TOPIC, name)
            ):
                refused.append(entry)
            else:
                kept.append(entry)
        if refused:
            request = dataclasses.replace(request, topics=tuple(kept))
    wants_ops = getattr(request, "include_topic_authorized_operations", False)

    def patch(response: Any) -> Any:
        topics = []
        for topic in response.topics:
            if topic.name is not None and not ctx.allowed(Op.DESCRIBE, RT.TOPIC, topic.name):
                continue  # listing everything: what may not be described is left out
            if wants_ops and topic.error_code == ErrorCode.none:
                topic = dataclasses.replace(
                    topic,
                    topic_authorized_operations=authorized_operations(ctx, RT.TOPIC, topic.name),
                )
            topics.append(topic)
        for entry in refused:
            topics.append(
                ctx.blank(
                    "MetadataResponseTopic",
                    name=ctx.topic_name(entry),
                    error_code=ErrorCode.topic_authorization_failed,
                    topic_authorized_operations=-(2**31),
                )
            )
        changed: dict[str, Any] = {"topics": tuple(topics)}
        if getattr(request, "include_cluster_authorized_operations", False):  # v8-v10
            changed["cluster_authorized_operations"] = authorized_operations(
                ctx, RT.CLUSTER, CLUSTER_NAME
            )
        return dataclasses.replace(response, **changed)

    return _then(_run(ctx, handler, request), patch)


def _find_coordinator(ctx: Context, request: Any, handler: Handler) -> Any:
    kind = RT.TRANSACTIONAL_ID if request.key_type == 1 else RT.GROUP
    code = (
        ErrorCode.transactional_id_authorization_failed
        if kind == RT.TRANSACTIONAL_ID
        else ErrorCode.group_authorization_failed
    )
    if not hasattr(request, "coordinator_keys"):
        if not ctx.allowed(Op.DESCRIBE, kind, request.key):
            return error_response(ctx, code)
        return _run(ctx, handler, request)
    return _per_item(
        "coordinator_keys",
        lambda c, key: None if c.allowed(Op.DESCRIBE, kind, key) else code,
        "coordinators",
        "Coordinator",
        lambda key: {"key": key, "error_message": None},
    )(ctx, request, handler)


def _offset_fetch(ctx: Context, request: Any, handler: Handler) -> Any:
    """The group needs DESCRIBE (GROUP_AUTHORIZATION_FAILED); topics the principal may not
    describe are left out of an all-topics answer and refused when named."""

    def refuse_topics(topics: Any, named: bool) -> tuple[Any, ...]:
        out = []
        for topic in topics or ():
            name = ctx.topic_name(topic)
            if name is None or ctx.allowed(Op.DESCRIBE, RT.TOPIC, name):
                out.append(topic)
            elif named:
                out.append(
                    dataclasses.replace(
                        topic,
                        partitions=tuple(
                            dataclasses.replace(
                                p,
                                committed_offset=-1,
                                metadata="",
                                error_code=ErrorCode.topic_authorization_failed,
                            )
                            for p in topic.partitions
                        ),
                    )
                )
        return tuple(out)

    if hasattr(request, "groups"):
        named_by_group = {g.group_id: g.topics is not None for g in request.groups}
        refused = {
            g.group_id for g in request.groups if not ctx.allowed(Op.DESCRIBE, RT.GROUP, g.group_id)
        }

        def patch_groups(response: Any) -> Any:
            groups = []
            for group in response.groups:
                if group.group_id in refused:
                    group = dataclasses.replace(
                        group, topics=(), error_code=ErrorCode.group_authorization_failed
                    )
                else:
                    group = dataclasses.replace(
                        group,
                        topics=refuse_topics(
                            group.topics, named_by_group.get(group.group_id, False)
                        ),
                    )
                groups.append(group)
            return dataclasses.replace(response, groups=tuple(groups))

        return _then(_run(ctx, handler, request), patch_groups)
    if not ctx.allowed(Op.DESCRIBE, RT.GROUP, request.group_id):
        return error_response(ctx, ErrorCode.group_authorization_failed)
    named = request.topics is not None
    return _then(
        _run(ctx, handler, request),
        lambda r: dataclasses.replace(r, topics=refuse_topics(r.topics, named)),
    )


def _list_groups(ctx: Context, request: Any, handler: Handler) -> Any:
    if ctx.cluster(Op.DESCRIBE):
        return _run(ctx, handler, request)
    return _then(
        _run(ctx, handler, request),
        lambda r: dataclasses.replace(
            r, groups=tuple(g for g in r.groups if ctx.allowed(Op.DESCRIBE, RT.GROUP, g.group_id))
        ),
    )


def _describe_groups(ctx: Context, request: Any, handler: Handler) -> Any:
    wants_ops = getattr(request, "include_authorized_operations", False)
    rule = _per_item(
        "groups",
        _group_check(Op.DESCRIBE),
        "groups",
        "DescribedGroup",
        lambda g: {"group_id": g, "authorized_operations": -(2**31), "error_message": None},
    )
    if not wants_ops:
        return rule(ctx, request, handler)

    def patch(response: Any) -> Any:
        return dataclasses.replace(
            response,
            groups=tuple(
                dataclasses.replace(
                    g, authorized_operations=authorized_operations(ctx, RT.GROUP, g.group_id)
                )
                if g.error_code == ErrorCode.none
                else g
                for g in response.groups
            ),
        )

    return _then(rule(ctx, request, handler), patch)


def _describe_cluster(ctx: Context, request: Any, handler: Handler) -> Any:
    if not request.include_cluster_authorized_operations:
        return _run(ctx, handler, request)
    return _then(
        _run(ctx, handler, request),
        lambda r: dataclasses.replace(
            r, cluster_authorized_operations=authorized_operations(ctx, RT.CLUSTER, CLUSTER_NAME)
        ),
    )


def _delete_topics_check(ctx: Context, entry: Any) -> ErrorCode | None:
    return _topic_check(Op.DELETE)(ctx, entry)


def _delete_topic_fields(entry: Any) -> dict[str, Any]:
    if isinstance(entry, str):
        return {"name": entry, "error_message": None}
    return {"name": entry.name, "topic_id": entry.topic_id, "error_message": None}


def _consumer_group_heartbeat(ctx: Context, request: Any, handler: Handler) -> Any:
    """KIP-848: READ on the group; DESCRIBE on every subscribed topic named."""
    if not ctx.allowed(Op.READ, RT.GROUP, request.group_id):
        return error_response(ctx, ErrorCode.group_authorization_failed)
    names = request.subscribed_topic_names or ()
    refused = [n for n in names if not ctx.allowed(Op.DESCRIBE, RT.TOPIC, n)]
    if refused:
        return error_response(
            ctx,
            ErrorCode.topic_authorization_failed,
            "The group is not authorized to describe topics: " + ", ".join(sorted(refused)),
        )
    return _run(ctx, handler, request)


def _list_transactions(ctx: Context, request: Any, handler: Handler) -> Any:
    return _then(
        _run(ctx, handler, request),
        lambda r: dataclasses.replace(
            r,
            transaction_states=tuple(
                t
                for t in r.transaction_states
                if ctx.allowed(Op.DESCRIBE, RT.TRANSACTIONAL_ID, t.transactional_id)
            ),
        ),
    )


def _describe_topic_partitions(ctx: Context, request: Any, handler: Handler) -> Any:
    return _per_item(
        "topics",
        _topic_check(Op.DESCRIBE),
        "topics",
        "DescribeTopicPartitionsResponseTopic",
        lambda t: {"name": t.name, "topic_authorized_operations": -(2**31)},
    )(ctx, request, handler)


# -- the rules ----------------------------------------------------------------------------------

RULES: dict[int, Rule] = {
    0: _per_topic(Op.WRITE, "topic_data", "partition_data", "responses", "TopicProduceResponse",
                  "PartitionProduceResponse", "partition_responses", "index", "index"),
    1: _per_topic(Op.READ, "topics", "partitions", "responses", "FetchableTopicResponse",
                  "PartitionData", "partitions", "partition", tweak=_fetch_now),
    2: _per_topic(Op.DESCRIBE, "topics", "partitions", "topics", "ListOffsetsTopicResponse",
                  "ListOffsetsPartitionResponse", "partitions", "partition_index"),
    8: _per_topic(Op.READ, "topics", "partitions", "topics", "OffsetCommitResponseTopic",
                  "OffsetCommitResponsePartition", "partitions", "partition_index",
                  before=_offset_commit_group),
    3: _metadata,
    9: _offset_fetch,
    10: _find_coordinator,
    11: _group(Op.READ),
    12: _group(Op.READ),
    13: _group(Op.READ),
    14: _group(Op.READ),
    15: _describe_groups,
    16: _list_groups,
    19: _per_item("topics", _topic_check(Op.CREATE, also_cluster=True), "topics",
                  "CreatableTopicResult", lambda t: {"name": t.name, "error_message": None}),
    20: _per_item(("topics", "topic_names"), _delete_topics_check, "responses",
                  "DeletableTopicResult", _delete_topic_fields),
    21: _per_topic(Op.DELETE, "topics", "partitions", "topics", "DeleteRecordsTopicResult",
                   "DeleteRecordsPartitionResult", "partitions", "partition_index"),
    23: _per_topic(Op.DESCRIBE, "topics", "partitions", "topics", "OffsetForLeaderTopicResult",
                   "EpochEndOffset", "partitions", "partition", "partition"),
    22: _init_producer_id,
    24: _add_partitions_to_txn,
    25: _add_offsets_to_txn,
    26: _txn_write(),
    27: _cluster(Op.CLUSTER_ACTION),
    28: _per_topic(Op.READ, "topics", "partitions", "topics", "TxnOffsetCommitResponseTopic",
                   "TxnOffsetCommitResponsePartition", "partitions", "partition_index",
                   before=_txn_offset_commit_whole),
    32: _per_item("resources", _config_check(Op.DESCRIBE_CONFIGS), "results",
                  "DescribeConfigsResult", _config_fields),
    33: _per_item("resources", _config_check(Op.ALTER_CONFIGS), "responses",
                  "AlterConfigsResourceResponse", _config_fields),
    35: _cluster(Op.DESCRIBE),
    37: _per_item("topics", _topic_check(Op.ALTER), "results", "CreatePartitionsTopicResult",
                  lambda t: {"name": t.name, "error_message": None}),
    42: _per_item("groups_names", _group_check(Op.DELETE), "results", "DeletableGroupResult",
                  lambda g: {"group_id": g}),
    43: _cluster(Op.ALTER),
    45: _cluster(Op.ALTER),
    44: _per_item("resources", _config_check(Op.ALTER_CONFIGS), "responses",
                  "AlterConfigsResourceResponse", _config_fields),
    46: _cluster(Op.DESCRIBE),
    48: _cluster(Op.DESCRIBE_CONFIGS),
    49: _cluster(Op.ALTER_CONFIGS),
    47: _group(Op.DELETE),
    60: _describe_cluster,
    61: _per_topic(Op.READ, "topics", "partition_indexes", "topics", "TopicResponse",
                   "PartitionResponse", "partitions", "partition_index"),
    65: _per_item("transactional_ids",
                  lambda ctx, t: None if ctx.allowed(Op.DESCRIBE, RT.TRANSACTIONAL_ID, t)
                  else ErrorCode.transactional_id_authorization_failed,
                  "transaction_states", "TransactionState",
                  lambda t: {"transactional_id": t}),
    66: _list_transactions,
    68: _consumer_group_heartbeat,
    69: _per_item("group_ids", _group_check(Op.DESCRIBE), "groups", "DescribedGroup",
                  lambda g: {"group_id": g, "authorized_operations": -(2**31),
                             "error_message": None}),
    74: _cluster(Op.DESCRIBE_CONFIGS),
    75: _describe_topic_partitions,
}  # fmt: skip

# Answered for anyone (the SASL exchange, versions), or authorized by their handlers
# (the ACL and SCRAM APIs check the cluster themselves; DescribeCluster reports operations).
OPEN = frozenset({17, 18, 36, 29, 30, 31, 50, 51})


def handle(
    broker: Broker, session: Session, header: codec.RequestHeader, request: Any, handler: Handler
) -> Any:
    """Run ``handler`` on what ``session`` may do of ``request``; refuse the rest."""
    key = header.api_key
    if key in OPEN:
        return handler(broker, header, request)
    rule = RULES.get(key)
    ctx = Context(broker, session, header)
    if rule is None:
        if broker.security.authorizer is not None and broker.security.authorizer.is_super_user(
            session.principal
        ):
            return handler(broker, header, request)
        return error_response(ctx, ErrorCode.cluster_authorization_failed)
    return rule(ctx, request, handler)
