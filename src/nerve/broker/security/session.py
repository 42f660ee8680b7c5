"""One connection's security state: which listener it came in on, who it is, and where it is
in the SASL exchange (SaslHandshake, then SaslAuthenticate until complete; KIP-368
re-authentication later on the same connection)."""

from __future__ import annotations

from dataclasses import dataclass, field

from nerve.broker.security.listeners import Listener
from nerve.broker.security.sasl import SaslServer
from nerve.security.principal import ANONYMOUS, KafkaPrincipal

SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36
API_VERSIONS = 18


@dataclass(eq=False)
class Session:
    listener: Listener
    host: str  # the client's address, as ACLs name hosts
    principal: KafkaPrincipal = ANONYMOUS
    # False until SASL completes on a SASL listener; a connection that is not yet
    # authenticated may send only ApiVersions, SaslHandshake and SaslAuthenticate.
    authenticated: bool = True
    # The mechanism of the exchange in progress or the last completed one.
    mechanism: str | None = None
    sasl: SaslServer | None = None
    # SaslHandshake v0: the client's next frames are bare SASL tokens, not Kafka requests.
    raw_tokens: bool = False
    # Set once a session's lifetime is over (connections.max.reauth.ms or the token's
    # expiry): from then on only re-authentication is accepted.
    expired: bool = False
    reauthenticating: bool = False
    close_after_response: bool = False
    # The exchange failed (wrong credentials): the refusal waits for
    # connection.failed.authentication.delay.ms, then the connection closes.
    failed_authentication: bool = False
    # A re-authentication that asked for another mechanism fails at its first token.
    bad_reauth_mechanism: bool = False
    bad_reauth_message: str = ""
    # Completed exchanges (a timer of an earlier session must not end a later one), and
    # the lifetime of the session the last one started, until its timer is armed.
    auth_count: int = 0
    lifetime_ms: int | None = None
    # Authorization decisions of this connection: (operation, type, name) -> allowed,
    # valid for the authorizer's generation they were made in.
    decisions: dict[tuple[int, int, str], bool] = field(default_factory=dict)
    generation: int = -1

    @property
    def gated(self) -> bool:
        """Whether the next request needs the SASL gate (never on a plain connection)."""
        return not self.authenticated or self.expired or self.raw_tokens
