"""SaslHandshake and SaslAuthenticate (v0-v2): the exchange itself is in broker/security/gate."""

from __future__ import annotations

import asyncio
import datetime
from typing import TYPE_CHECKING, Any

from nerve.broker.security import gate
from nerve.protocol import codec

if TYPE_CHECKING:
    from nerve.broker.server import Broker


def handle_sasl_handshake(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    assert broker.session is not None
    result = gate.handshake(broker, broker.session, request.mechanism, header.api_version)
    module = codec.schema_module(17, header.api_version, True)
    return codec.make(
        module, "SaslHandshakeResponse", error_code=result.error, mechanisms=result.mechanisms
    )


def handle_sasl_authenticate(broker: Broker, header: codec.RequestHeader, request: Any) -> Any:
    session = broker.session
    assert session is not None
    result = gate.authenticate(broker, session, request.auth_bytes)
    gate.schedule_expiry(broker, session, asyncio.get_running_loop())
    module = codec.schema_module(36, header.api_version, True)
    return codec.make(
        module,
        "SaslAuthenticateResponse",
        error_code=result.error,
        error_message=result.message,
        auth_bytes=result.reply,
        session_lifetime=datetime.timedelta(milliseconds=result.session_lifetime_ms),
    )
