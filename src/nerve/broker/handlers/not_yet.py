"""Answers for APIs whose feature is not built yet (producer ids and transactions).

Leaving them out of ApiVersions makes clients wait forever for a coordinator; answering with
an error that clients treat as fatal makes the missing feature visible at once instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nerve.broker.errors import ErrorCode
from nerve.broker.handlers.metadata import NO_THROTTLE
from nerve.protocol import codec

if TYPE_CHECKING:
    from nerve.broker.server import Broker

TXN_MESSAGE = "nerve does not support transactions or idempotent producers yet"


def handle_find_coordinator(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    """FindCoordinator for a transactional id (key type 1)."""
    module = codec.schema_module(10, header.api_version, True)
    code, message = ErrorCode.transactional_id_authorization_failed, TXN_MESSAGE
    if hasattr(request, "coordinator_keys"):
        coordinators = tuple(
            codec.make(
                module,
                "Coordinator",
                key=key,
                node_id=-1,
                host="",
                port=-1,
                error_code=code,
                error_message=message,
            )
            for key in request.coordinator_keys
        )
        return codec.make(
            module, "FindCoordinatorResponse", throttle_time=NO_THROTTLE, coordinators=coordinators
        )
    return codec.make(
        module,
        "FindCoordinatorResponse",
        throttle_time=NO_THROTTLE,
        error_code=code,
        error_message=message,
        node_id=-1,
        host="",
        port=-1,
    )


def handle_init_producer_id(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    module = codec.schema_module(22, header.api_version, True)
    code = (
        ErrorCode.transactional_id_authorization_failed
        if request.transactional_id
        else ErrorCode.cluster_authorization_failed
    )
    return codec.make(
        module,
        "InitProducerIdResponse",
        throttle_time=NO_THROTTLE,
        error_code=code,
        producer_id=-1,
        producer_epoch=-1,
    )
