"""The SASL exchange on a connection, and the gate that keeps every other request out until
it completes (or once the session it made has expired, KIP-368).

As Kafka: before authentication a client may send ApiVersions and SaslHandshake, then only
SaslAuthenticate; anything else closes the connection. A failed exchange is answered with
SASL_AUTHENTICATION_FAILED and Kafka's message, and the connection is closed after it; both
wait connection.failed.authentication.delay.ms (100 ms by default), so that guessing passwords
is slow (the connection's timer, broker/server.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, NamedTuple

from nerve.broker.errors import ErrorCode
from nerve.broker.security.sasl import AuthenticationFailed
from nerve.broker.security.session import API_VERSIONS, SASL_AUTHENTICATE, SASL_HANDSHAKE, Session
from nerve.security.principal import KafkaPrincipal

if TYPE_CHECKING:
    from nerve.broker.server import Broker

log = logging.getLogger("nerve.broker")


def refusal(session: Session, api_key: int) -> str | None:
    """Why a request may not be handled on this connection now, or None if it may."""
    if session.expired:
        if api_key in (SASL_HANDSHAKE, SASL_AUTHENTICATE):
            return None
        return (
            f"api key {api_key} after the SASL session expired without re-authentication "
            "(connections.max.reauth.ms or the credential's lifetime)"
        )
    if session.authenticated:
        return None
    if session.sasl is None and api_key not in (API_VERSIONS, SASL_HANDSHAKE):
        return f"Unexpected Kafka request of type {api_key} during SASL handshake"
    if session.sasl is not None and api_key != SASL_AUTHENTICATE:
        return f"Unexpected Kafka request of type {api_key} during SASL authentication"
    return None


class Handshake(NamedTuple):
    error: ErrorCode
    mechanisms: tuple[str, ...]


def handshake(broker: Broker, session: Session, mechanism: str, version: int) -> Handshake:
    enabled = tuple(broker.security.mechanisms.get(session.listener.name, ()))
    if not session.listener.uses_sasl:
        session.close_after_response = True
        return Handshake(ErrorCode.illegal_sasl_state, ())
    if session.sasl is not None:
        session.close_after_response = True  # a second handshake mid-exchange
        return Handshake(ErrorCode.illegal_sasl_state, enabled)
    if mechanism not in enabled:
        session.close_after_response = True
        return Handshake(ErrorCode.unsupported_sasl_mechanism, enabled)
    session.reauthenticating = session.authenticated
    if session.reauthenticating and version == 0:
        session.close_after_response = True
        return Handshake(ErrorCode.illegal_sasl_state, enabled)
    session.bad_reauth_mechanism = session.reauthenticating and mechanism != session.mechanism
    if session.bad_reauth_mechanism:
        session.bad_reauth_message = (
            f"SASL mechanism '{mechanism}' requested by client is not supported for "
            f"re-authentication of mechanism '{session.mechanism}'"
        )
    else:
        session.mechanism = mechanism
    session.sasl = broker.security.sasl_server(session, mechanism)
    session.raw_tokens = version == 0
    return Handshake(ErrorCode.none, enabled)


class Authenticated(NamedTuple):
    error: ErrorCode
    message: str | None
    reply: bytes
    session_lifetime_ms: int


def authenticate(broker: Broker, session: Session, token: bytes) -> Authenticated:
    server = session.sasl
    if server is None:
        session.close_after_response = True
        return Authenticated(
            ErrorCode.illegal_sasl_state, "SaslAuthenticate without a SaslHandshake first", b"", 0
        )
    try:
        if session.bad_reauth_mechanism:
            raise AuthenticationFailed(session.bad_reauth_message)
        reply = server.evaluate(token)
        if not server.complete:
            return Authenticated(ErrorCode.none, None, reply, 0)
        principal = KafkaPrincipal("User", server.principal_name)
        if session.reauthenticating and principal != session.principal:
            raise AuthenticationFailed(
                "Cannot change principals during re-authentication from "
                f"{session.principal.type}.{session.principal.name}: "
                f"{principal.type}.{principal.name}"
            )
    except AuthenticationFailed as exc:
        message = str(exc)
        if session.reauthenticating:
            message = message.replace("during authentication", "during re-authentication")
        log.info(
            "SASL %s %s failed from %s: %s%s",
            session.mechanism,
            "re-authentication" if session.reauthenticating else "authentication",
            session.host,
            message,
            f" ({exc.detail})" if exc.detail else "",
        )
        session.close_after_response = True
        session.failed_authentication = True
        session.sasl = None
        return Authenticated(ErrorCode.sasl_authentication_failed, message, b"", 0)
    lifetime = _complete(broker, session, principal, server.credential_expiry_ms)
    return Authenticated(ErrorCode.none, None, reply, lifetime)


def _complete(
    broker: Broker, session: Session, principal: KafkaPrincipal, expiry_ms: int | None
) -> int:
    """The session starts: its principal, and its lifetime as Kafka computes it (the smaller
    of connections.max.reauth.ms and the credential's remaining life; 0 for none)."""
    session.principal = principal
    session.authenticated = True
    session.expired = False
    session.reauthenticating = False
    session.sasl = None
    max_reauth = broker.security.reauth_ms(session)
    lifetime = 0
    if expiry_ms is not None or max_reauth > 0:
        now = broker.now_ms()
        if expiry_ms is None:
            lifetime = max(0, max_reauth)
        elif max_reauth <= 0:
            lifetime = max(0, expiry_ms - now)
        else:
            lifetime = max(0, min(expiry_ms - now, max_reauth))
    session.lifetime_ms = lifetime if (expiry_ms is not None or max_reauth > 0) else None
    session.auth_count += 1
    return lifetime


def schedule_expiry(broker: Broker, session: Session, loop: asyncio.AbstractEventLoop) -> None:
    """Arm the timer that ends a session at its lifetime (after a completed exchange)."""
    lifetime = session.lifetime_ms
    if lifetime is None or not session.authenticated:
        return
    count = session.auth_count

    def expire() -> None:
        if session.auth_count == count:
            session.expired = True

    loop.call_later(lifetime / 1000, expire)
    session.lifetime_ms = None


def raw_token(broker: Broker, session: Session, token: bytes) -> bytes | None:
    """A token after SaslHandshake v0; the reply, or None when authentication failed."""
    result = authenticate(broker, session, token)
    if result.error != ErrorCode.none:
        return None
    if session.authenticated:
        session.raw_tokens = False
    return result.reply
