"""ApiVersions: which APIs and versions this broker answers."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from nerve.broker.errors import ErrorCode
from nerve.protocol import codec

if TYPE_CHECKING:
    from nerve.broker.handlers import ApiHandler
    from nerve.broker.server import Broker

_handlers: dict[int, ApiHandler] = {}
_NO_THROTTLE = datetime.timedelta(0)


def register(handlers: dict[int, ApiHandler]) -> None:
    _handlers.update(handlers)


def _response(version: int, error: ErrorCode) -> Any:
    module = codec.schema_module(codec.API_VERSIONS_KEY, version, True)
    keys = tuple(
        codec.make(
            module, "ApiVersion", api_key=key, min_version=h.min_version, max_version=h.max_version
        )
        for key, h in sorted(_handlers.items())
    )
    return codec.make(
        module,
        "ApiVersionsResponse",
        error_code=error,
        api_keys=keys,
        throttle_time=_NO_THROTTLE,
        supported_features=(),
        finalized_features_epoch=-1,
        finalized_features=(),
        zk_migration_ready=False,
    )


def handle_api_versions(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    return _response(header.api_version, ErrorCode.none)


def unsupported_version_response(header: codec.RequestHeader) -> memoryview:
    """ApiVersions v0 with UNSUPPORTED_VERSION, for a client that asked in a newer version."""
    v0 = header._replace(api_version=0)
    return codec.encode_response(v0, _response(0, ErrorCode.unsupported_version))
